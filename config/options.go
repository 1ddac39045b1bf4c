package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/switchyard-mq/switchyard/internal/rabbitmq"
	"github.com/switchyard-mq/switchyard/notify"
	"github.com/switchyard-mq/switchyard/transport"
	"github.com/switchyard-mq/switchyard/transport/driver/option"
)

// ownedSections are the sections whose every option Switchyard checks: an
// option it does not know there is a typo or an option it does not
// implement, and either is an error. Other sections ([DEFAULT] included,
// which every OpenStack service fills with its own options) are read only
// for the options Switchyard knows.
var ownedSections = []string{option.GroupRabbit, option.GroupNotifications}

// The service's own options, which configure the rpc and notify layers
// rather than a transport. Their defaults are Default's.
var (
	transportURL = option.String(option.Spec{Name: "transport_url", Group: option.GroupDefault, Check: checkURL,
		Doc: "transport `URL` of the backend, e.g. rabbit://user:pass@host:5672/vhost (default memory://)"})
	// controlExchange is the portable option, which refuses what is not a
	// name: an oslo file has no trailing comments, so "nova # the
	// exchange" is a value, and a mistake.
	controlExchange    = option.ControlExchange
	rpcResponseTimeout = option.Duration(option.Spec{Name: "rpc_response_timeout", Min: 1, Group: option.GroupDefault,
		Doc: "`seconds` an RPC call waits for its reply, or a Go duration such as 90s (default 60)"})
	executorThreadPoolSize = option.Int(option.Spec{Name: "executor_thread_pool_size", Min: 1, Group: option.GroupDefault,
		Doc: "how many `requests` an RPC server handles at once (default 64)"})

	notificationDriver = option.String(option.Spec{Name: "driver", Group: option.GroupNotifications,
		Aliases: []option.Alias{{Group: option.GroupDefault, Name: "notification_driver"}}, Check: checkNotificationDriver,
		Doc: "notification `driver`: messagingv2, messaging, log or noop (oslo's default: noop, notifications off)"})
	notificationURL = option.String(option.Spec{Name: "transport_url", Group: option.GroupNotifications,
		Aliases: []option.Alias{{Group: option.GroupDefault, Name: "notification_transport_url"}}, Check: checkURL,
		Doc: "transport `URL` for notifications (default: the RPC transport's)"})
	notificationTopics = option.List(option.Spec{Name: "topics", Group: option.GroupNotifications,
		Aliases: []option.Alias{{Group: option.GroupDefault, Name: "notification_topics"}, {Group: "rpc_notifier2", Name: "topics"}},
		Check:   option.CheckName, Doc: "comma-separated notification `topics` (default notifications)"})
	notificationRetry = option.Int(option.Spec{Name: "retry", Min: -1, Group: option.GroupNotifications,
		Doc: "`times` a failed notification publish is retried (default -1: until it succeeds)"})
	// Switchyard's own: oslo.messaging declares the notification queues
	// unbounded and has no option about them.
	notificationDeclareQueues = option.Bool(option.Spec{Name: "declare_queues", Default: "true", Group: option.GroupNotifications,
		Doc: "notifiers declare the <topic>.<priority> queue, as oslo does (Switchyard's; false: publish to the exchange only, for listener pools)"})
	notificationQueueMaxLength = option.Int(option.Spec{Name: "queue_max_length", Group: option.GroupNotifications,
		Doc: "bound the <topic>.<priority> queues to this many `notifications`, the oldest dropped (Switchyard's; default 0: unbounded)"})
	notificationQueueMessageTTL = option.Duration(option.Spec{Name: "queue_message_ttl", Group: option.GroupNotifications,
		Doc: "drop notifications older than this many `seconds` from the <topic>.<priority> queues (Switchyard's; default 0: never)"})
)

// scope says which transport URLs an option travels in.
type scope int

const (
	// inNoURL: a service option, read by Config's methods.
	inNoURL scope = iota
	// inEveryURL: a portable option, which every scheme takes and the rpc
	// and notify layers read.
	inEveryURL
	// inRabbitURL: the rabbit driver's own, passed to rabbit:// and
	// rabbits:// URLs only, as oslo gives [oslo_messaging_rabbit] to its
	// rabbit driver only.
	inRabbitURL
)

// rabbitSchemes are the schemes of the rabbit driver.
var rabbitSchemes = []string{"rabbit", "rabbits"}

// entry is an option the loader reads, and where its value goes.
type entry struct {
	opt   option.Option
	spec  option.Spec // opt.Spec(), read once
	scope scope
	// apply stores a normalized value in a field of Config; nil for the
	// options Config.TransportOptions keeps.
	apply func(c *Config, v string)
	// url marks an option whose value is a URL, and so may hold a
	// password: package flag would quote it in an error, so its flag
	// takes any value and Load checks it.
	url bool
}

// transportOption reports whether the option is one of
// Config.TransportOptions: used, and sent in transport URLs.
func (e *entry) transportOption() bool {
	return e.apply == nil && e.scope != inNoURL && e.spec.Effect == option.Used
}

// travels reports whether the option goes into a URL of scheme.
func (e *entry) travels(scheme string) bool {
	return e.scope == inEveryURL || e.scope == inRabbitURL && slices.Contains(rabbitSchemes, scheme)
}

// settable reports whether the option has a flag and an environment
// variable: the options Switchyard uses. The others are read from files
// only, so that a Python neighbour's file is understood.
func (e *entry) settable() bool { return e.spec.Effect == option.Used }

// flagName is the option's command-line flag (without the dash) and the
// suffix of its environment variable: notification options are prefixed
// with "notifications-".
func (e *entry) flagName() string {
	name := strings.ReplaceAll(e.spec.Name, "_", "-")
	if e.spec.Group == option.GroupNotifications {
		return "notifications-" + name
	}
	return name
}

// envName is the option's environment variable.
func (e *entry) envName() string {
	if e.opt == transportURL {
		return "SWITCHYARD_URL"
	}
	return "SWITCHYARD_" + strings.ToUpper(strings.ReplaceAll(e.flagName(), "-", "_"))
}

// usage is the flag's usage text: the option's doc, marked as the rabbit
// driver's when only rabbit:// URLs take it.
func (e *entry) usage() string {
	if e.scope == inRabbitURL {
		return "rabbit: " + e.spec.Doc
	}
	return e.spec.Doc
}

// catalog is every option the loader reads, in the order of its
// documentation.
type catalog []*entry

// known is the catalog: the service's options, then the portable options
// and the rabbit driver's, as their packages declare them.
var known = newCatalog()

func newCatalog() catalog {
	c := catalog{
		{opt: transportURL, url: true, apply: func(c *Config, v string) { c.TransportURL = v }},
		{opt: controlExchange, scope: inEveryURL, apply: func(c *Config, v string) { c.ControlExchange = v }},
		{opt: rpcResponseTimeout, apply: func(c *Config, v string) { c.RPCResponseTimeout = rpcResponseTimeout.Value(v) }},
		{opt: executorThreadPoolSize, apply: func(c *Config, v string) { c.ExecutorThreadPoolSize = executorThreadPoolSize.Value(v) }},
	}
	for _, o := range option.Portable() {
		if o != option.ControlExchange {
			c = append(c, &entry{opt: o, scope: inEveryURL})
		}
	}
	for _, o := range rabbitmq.Options.All() {
		if !slices.Contains(option.Portable(), o) {
			c = append(c, &entry{opt: o, scope: inRabbitURL})
		}
	}
	c = append(c,
		&entry{opt: notificationDriver, apply: func(c *Config, v string) { c.Notifications.Driver = notify.Driver(v) }},
		&entry{opt: notificationURL, url: true, apply: func(c *Config, v string) { c.Notifications.TransportURL = v }},
		&entry{opt: notificationTopics, apply: func(c *Config, v string) { c.Notifications.Topics = notificationTopics.Value(v) }},
		&entry{opt: notificationRetry, apply: func(c *Config, v string) { c.Notifications.Retry = notificationRetry.Value(v) }},
		&entry{opt: notificationDeclareQueues, apply: func(c *Config, v string) {
			c.Notifications.Queues.PublishOnly = !notificationDeclareQueues.Value(v)
		}},
		&entry{opt: notificationQueueMaxLength, apply: func(c *Config, v string) {
			c.Notifications.Queues.MaxLength = notificationQueueMaxLength.Value(v)
		}},
		&entry{opt: notificationQueueMessageTTL, apply: func(c *Config, v string) {
			c.Notifications.Queues.MessageTTL = notificationQueueMessageTTL.Value(v)
		}},
	)
	for _, e := range c {
		e.spec = e.opt.Spec()
	}
	return c
}

// lookup finds the option a section's key names, and whether the key is
// a deprecated alias.
func (c catalog) lookup(section, key string) (e *entry, deprecated bool) {
	for _, e := range c {
		if e.spec.Group == section && e.spec.Name == key {
			return e, false
		}
	}
	for _, e := range c {
		if slices.Contains(e.spec.Aliases, option.Alias{Group: section, Name: key}) {
			return e, true
		}
	}
	return nil, false
}

// entryOf finds the entry of o.
func (c catalog) entryOf(o option.Option) *entry {
	for _, e := range c {
		if e.opt == o {
			return e
		}
	}
	return nil
}

// inQuery finds the option a transport URL's query names.
func (c catalog) inQuery(name string) *entry {
	for _, e := range c {
		if e.scope != inNoURL && e.spec.Name == name {
			return e
		}
	}
	return nil
}

// suggest proposes a known option of section close to key, for typos.
func (c catalog) suggest(section, key string) string {
	best, bestDist := "", 3
	for _, e := range c {
		if e.spec.Group != section {
			continue
		}
		if d := editDistance(key, e.spec.Name); d < bestDist {
			best, bestDist = e.spec.Name, d
		}
	}
	if best == "" {
		return ""
	}
	return " (did you mean " + best + "?)"
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// checkURL checks a transport URL. Its error never shows the password,
// and does not repeat the ErrInvalid that an OptionError matches itself.
func checkURL(v string) error {
	if _, err := transport.ParseURL(v); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), transport.ErrInvalid.Error()+": "))
	}
	return nil
}

// checkNotificationDriver checks a notification driver's name.
func checkNotificationDriver(v string) error {
	switch notify.Driver(v) {
	case notify.MessagingV2, notify.Messaging, notify.Log, notify.Noop:
		return nil
	case "routing", "test":
		return option.Unsupported(fmt.Sprintf("driver %q is not supported by Switchyard (messagingv2, messaging, log or noop)", v))
	}
	return fmt.Errorf("unknown driver %q (messagingv2, messaging, log or noop)", v)
}

// OptionError is a bad option, saying where it was set: its file and
// line, its environment variable or its flag. It matches
// transport.ErrInvalid with errors.Is, and also transport.ErrUnsupported
// when the option or value is one of oslo.messaging's that Switchyard does
// not implement.
type OptionError struct {
	// Origin is where the option was set: "nova.conf:42", "environment"
	// or "command line".
	Origin string
	// Option names the option as it was written there:
	// "[oslo_messaging_rabbit] rabbit_qos_prefetch_count",
	// "SWITCHYARD_RPC_RESPONSE_TIMEOUT", "-rpc-response-timeout".
	Option string
	// Err says what is wrong.
	Err error
}

// Error reads "nova.conf:42: [oslo_messaging_rabbit] rabbit_qos_prefetch_cout: unknown option".
func (e *OptionError) Error() string {
	return e.Origin + ": " + e.Option + ": " + e.Err.Error()
}

// Unwrap returns transport.ErrInvalid and Err, which matches
// transport.ErrUnsupported where it applies.
func (e *OptionError) Unwrap() []error { return []error{transport.ErrInvalid, e.Err} }
