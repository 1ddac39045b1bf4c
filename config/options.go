package config

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-mq/switchyard/notify"
	"github.com/switchyard-mq/switchyard/transport"
)

// The oslo.config sections (groups) Switchyard reads.
const (
	sectionDefault       = "DEFAULT"
	sectionRabbit        = "oslo_messaging_rabbit"
	sectionNotifications = "oslo_messaging_notifications"
)

// ownedSections are the sections whose every option Switchyard checks: an
// option it does not know there is a typo or an option it does not
// implement, and either is an error. Other sections ([DEFAULT] included,
// which every OpenStack service fills with its own options) are read only
// for the options below.
var ownedSections = []string{sectionRabbit, sectionNotifications}

// use says what Switchyard does with an option.
type use int

const (
	// useConfig: a field of Config.
	useConfig use = iota
	// useTransport: a transport URL option for every scheme, read by the
	// rpc and notify layers (driver.PortableOptions).
	useTransport
	// useRabbit: a transport URL option of the rabbit driver, passed to
	// rabbit:// and rabbits:// URLs only, as oslo gives
	// [oslo_messaging_rabbit] to its rabbit driver only.
	useRabbit
	// useIgnored: an oslo option that tunes the Python implementation
	// (connection pools, threads) and has no counterpart here; its value is
	// checked and has no effect.
	useIgnored
	// useOnly: an oslo option Switchyard does not implement; it is accepted
	// only with a value that describes what Switchyard does anyway.
	useOnly
)

// kind is an option's type, as oslo.config's.
type kind int

const (
	kindString kind = iota
	kindName        // an exchange or topic name
	kindURL
	kindBool
	kindInt
	kindSeconds // a number of seconds, fractions allowed
	kindList    // comma-separated
	kindNotificationDriver
)

// alias is another place oslo.config reads an option from: a deprecated
// name, or a deprecated section.
type alias struct{ section, name string }

// option describes one option Switchyard reads.
type option struct {
	section string
	name    string
	kind    kind
	min     float64 // for kindInt and kindSeconds
	max     float64
	use     use
	only    []string // for useOnly: the accepted values, normalized
	why     string   // for useIgnored and useOnly: what Switchyard does instead
	aliases []alias
	doc     string // for the flag's usage
	// apply stores a normalized value in a Config (useConfig only).
	apply func(c *Config, v string)
}

// flagName is the option's command-line flag (without the dash) and the
// suffix of its environment variable: notification options are prefixed
// with "notifications-".
func (o *option) flagName() string {
	name := strings.ReplaceAll(o.name, "_", "-")
	if o.section == sectionNotifications {
		return "notifications-" + name
	}
	return name
}

// envName is the option's environment variable.
func (o *option) envName() string {
	if o.section == sectionDefault && o.name == "transport_url" {
		return "SWITCHYARD_URL"
	}
	return "SWITCHYARD_" + strings.ToUpper(strings.ReplaceAll(o.flagName(), "-", "_"))
}

// settable reports whether the option has a flag and an environment
// variable: the options Switchyard uses.
func (o *option) settable() bool {
	return o.use == useConfig || o.use == useTransport || o.use == useRabbit
}

// transportOption reports whether the option travels in the transport
// URL's query.
func (o *option) transportOption() bool { return o.use == useTransport || o.use == useRabbit }

// qualified names the option for messages: "[section] name".
func (o *option) qualified() string { return "[" + o.section + "] " + o.name }

const noLimit = math.MaxInt32

// optTransportURL is [DEFAULT] transport_url, options[0].
var optTransportURL = options[0]

// options is every option Switchyard knows, in the order of its
// documentation. Defaults are in Default.
var options = []*option{
	// [DEFAULT]
	{section: sectionDefault, name: "transport_url", kind: kindURL,
		doc:   "transport `URL` of the backend, e.g. rabbit://user:pass@host:5672/vhost (default memory://)",
		apply: func(c *Config, v string) { c.TransportURL = v }},
	{section: sectionDefault, name: "control_exchange", kind: kindName,
		doc:   "the `exchange` of RPC targets that name none, and of notifications (default openstack)",
		apply: func(c *Config, v string) { c.ControlExchange = v }},
	{section: sectionDefault, name: "rpc_response_timeout", kind: kindInt, min: 1, max: noLimit,
		doc:   "`seconds` an RPC call waits for its reply (default 60)",
		apply: func(c *Config, v string) { c.RPCResponseTimeout = seconds(v) }},
	{section: sectionDefault, name: "executor_thread_pool_size", kind: kindInt, min: 1, max: noLimit,
		doc:   "how many `requests` an RPC server handles at once (default 64)",
		apply: func(c *Config, v string) { c.ExecutorThreadPoolSize, _ = strconv.Atoi(v) }},

	// [oslo_messaging_rabbit], options every scheme takes.
	{section: sectionRabbit, name: "amqp_durable_queues", kind: kindBool, use: useTransport,
		doc: "declare the control exchange and the topic and notification queues durable"},
	{section: sectionRabbit, name: "amqp_auto_delete", kind: kindBool, use: useTransport,
		aliases: []alias{{sectionDefault, "amqp_auto_delete"}},
		doc:     "declare the control exchange and the topic and notification queues auto-delete"},
	{section: sectionRabbit, name: "rabbit_transient_queues_ttl", kind: kindInt, min: 1, max: noLimit, use: useTransport,
		doc: "`seconds` an unused reply or fanout queue lives (default 1800)"},

	// [oslo_messaging_rabbit], the rabbit driver's options.
	{section: sectionRabbit, name: "heartbeat_timeout_threshold", kind: kindInt, max: math.MaxUint16, use: useRabbit,
		doc: "rabbit: heartbeat timeout in `seconds` (default 60; 0 proposes none)"},
	{section: sectionRabbit, name: "rabbit_qos_prefetch_count", kind: kindInt, max: math.MaxUint16, use: useRabbit,
		doc: "rabbit: `prefetch` of consumers that set none (default 0, no limit)"},
	{section: sectionRabbit, name: "rabbit_quorum_queue", kind: kindBool, use: useRabbit,
		doc: "rabbit: declare topic and notification queues as quorum queues"},
	{section: sectionRabbit, name: "rabbit_quorum_delivery_limit", kind: kindInt, max: noLimit, use: useRabbit,
		doc: "rabbit: x-delivery-limit of quorum queues, a `count` (default 0, none)"},
	{section: sectionRabbit, name: "rabbit_ha_queues", kind: kindBool, use: useRabbit,
		aliases: []alias{{sectionDefault, "rabbit_ha_queues"}},
		doc:     "rabbit: add x-ha-policy=all to every queue (RabbitMQ before 3.0)"},
	{section: sectionRabbit, name: "rabbit_retry_interval", kind: kindSeconds, max: 86400, use: useRabbit,
		doc: "rabbit: first reconnection backoff in `seconds` (default 1)"},
	{section: sectionRabbit, name: "rabbit_retry_backoff", kind: kindSeconds, max: 86400, use: useRabbit,
		aliases: []alias{{sectionDefault, "rabbit_retry_backoff"}},
		doc:     "rabbit: growth of the reconnection backoff per round in `seconds` (default 2)"},
	{section: sectionRabbit, name: "rabbit_interval_max", kind: kindSeconds, max: 86400, use: useRabbit,
		doc: "rabbit: longest reconnection backoff in `seconds` (default 30)"},
	{section: sectionRabbit, name: "ssl", kind: kindBool, use: useRabbit,
		aliases: []alias{{sectionRabbit, "rabbit_use_ssl"}},
		doc:     "rabbit: connect with TLS"},
	{section: sectionRabbit, name: "ssl_ca_file", kind: kindString, use: useRabbit,
		aliases: []alias{{sectionRabbit, "kombu_ssl_ca_certs"}},
		doc:     "rabbit: PEM `file` of the CAs to trust (default: the system's)"},
	{section: sectionRabbit, name: "ssl_cert_file", kind: kindString, use: useRabbit,
		aliases: []alias{{sectionRabbit, "kombu_ssl_certfile"}},
		doc:     "rabbit: PEM `file` of the client certificate"},
	{section: sectionRabbit, name: "ssl_key_file", kind: kindString, use: useRabbit,
		aliases: []alias{{sectionRabbit, "kombu_ssl_keyfile"}},
		doc:     "rabbit: PEM `file` of the client certificate's key"},
	// confirms is the rabbit driver's own (oslo always confirms); Python
	// services ignore it in a shared file.
	{section: sectionRabbit, name: "confirms", kind: kindBool, use: useRabbit,
		doc: "rabbit: wait for the broker's confirm of every publish (default true)"},

	// [oslo_messaging_rabbit], oslo options that tune Python's
	// implementation only.
	{section: sectionRabbit, name: "heartbeat_rate", kind: kindInt, max: noLimit, use: useIgnored,
		why: "amqp091-go checks heartbeats itself, twice per interval"},
	{section: sectionRabbit, name: "heartbeat_in_pthread", kind: kindBool, use: useIgnored,
		why: "it is about Python's threads"},
	{section: sectionRabbit, name: "rpc_conn_pool_size", kind: kindInt, max: noLimit, use: useIgnored,
		aliases: []alias{{sectionDefault, "rpc_conn_pool_size"}},
		why:     "a transport has one connection"},
	{section: sectionRabbit, name: "conn_pool_min_size", kind: kindInt, max: noLimit, use: useIgnored,
		why: "a transport has one connection"},
	{section: sectionRabbit, name: "conn_pool_ttl", kind: kindInt, max: noLimit, use: useIgnored,
		why: "a transport has one connection"},
	{section: sectionRabbit, name: "kombu_reconnect_delay", kind: kindSeconds, max: 86400, use: useIgnored,
		aliases: []alias{{sectionDefault, "kombu_reconnect_delay"}},
		why:     "the driver reconnects with the rabbit_retry_* backoff"},

	// [oslo_messaging_rabbit], oslo options Switchyard does not implement:
	// accepted only with the value that describes what it does.
	{section: sectionRabbit, name: "kombu_compression", kind: kindString, use: useOnly,
		why: "Switchyard sends message bodies uncompressed"},
	{section: sectionRabbit, name: "kombu_failover_strategy", kind: kindString, use: useOnly, only: []string{"round-robin"},
		why: "the driver tries the URL's hosts round-robin"},
	{section: sectionRabbit, name: "kombu_missing_consumer_retry_timeout", kind: kindInt, max: noLimit, use: useOnly, only: []string{"60"},
		aliases: []alias{{sectionRabbit, "kombu_reconnect_timeout"}},
		why:     "an RPC server retries a reply to a missing queue for 60 seconds"},
	{section: sectionRabbit, name: "rabbit_login_method", kind: kindString, use: useOnly, only: []string{"AMQPLAIN", "PLAIN"},
		aliases: []alias{{sectionDefault, "rabbit_login_method"}},
		why:     "the driver logs in with PLAIN, which RabbitMQ accepts wherever AMQPLAIN is"},
	{section: sectionRabbit, name: "rabbit_quroum_max_memory_length", kind: kindInt, max: noLimit, use: useOnly, only: []string{"0"},
		why: "quorum queues get no x-max-in-memory-length"},
	{section: sectionRabbit, name: "rabbit_quroum_max_memory_bytes", kind: kindInt, max: noLimit, use: useOnly, only: []string{"0"},
		why: "quorum queues get no x-max-in-memory-bytes"},
	{section: sectionRabbit, name: "direct_mandatory_flag", kind: kindBool, use: useOnly, only: []string{"true"},
		why: "replies are always published mandatory"},
	{section: sectionRabbit, name: "enable_cancel_on_failover", kind: kindBool, use: useOnly, only: []string{"false"},
		why: "consumers do not ask for x-cancel-on-ha-failover"},
	{section: sectionRabbit, name: "ssl_version", kind: kindString, use: useOnly,
		aliases: []alias{{sectionRabbit, "kombu_ssl_version"}},
		why:     "Go negotiates TLS 1.2 or later"},
	{section: sectionRabbit, name: "ssl_enforce_hostname_verification", kind: kindBool, use: useOnly, only: []string{"true"},
		why: "Go's TLS always verifies the broker's host name"},
	{section: sectionRabbit, name: "ssl_enforce_fips_mode", kind: kindBool, use: useOnly, only: []string{"false"},
		why: "there is no FIPS mode switch"},
	// Options of oslo.messaging releases after 14.0.3, the one Switchyard
	// follows, so that a newer deployment's file is understood.
	{section: sectionRabbit, name: "use_queue_manager", kind: kindBool, use: useOnly, only: []string{"false"},
		why: "reply and fanout queues get random names, as in oslo.messaging 14.0"},
	{section: sectionRabbit, name: "hostname", kind: kindString, use: useIgnored,
		why: "it names queues only with use_queue_manager"},
	{section: sectionRabbit, name: "processname", kind: kindString, use: useIgnored,
		why: "it names queues only with use_queue_manager"},
	{section: sectionRabbit, name: "rabbit_stream_fanout", kind: kindBool, use: useOnly, only: []string{"false"},
		why: "fanout uses a fanout exchange and a queue per server, as in oslo.messaging 14.0"},
	{section: sectionRabbit, name: "rabbit_transient_quorum_queue", kind: kindBool, use: useOnly, only: []string{"false"},
		why: "reply and fanout queues are classic queues"},
	{section: sectionRabbit, name: "rabbit_quorum_max_memory_length", kind: kindInt, max: noLimit, use: useOnly, only: []string{"0"},
		why: "quorum queues get no x-max-in-memory-length"},
	{section: sectionRabbit, name: "rabbit_quorum_max_memory_bytes", kind: kindInt, max: noLimit, use: useOnly, only: []string{"0"},
		why: "quorum queues get no x-max-in-memory-bytes"},
	{section: sectionRabbit, name: "kombu_reconnect_splay", kind: kindSeconds, max: 86400, use: useIgnored,
		why: "the driver jitters its reconnection backoff itself"},

	// [oslo_messaging_notifications]
	{section: sectionNotifications, name: "driver", kind: kindNotificationDriver,
		aliases: []alias{{sectionDefault, "notification_driver"}},
		doc:     "notification `driver`: messagingv2, messaging, log or noop (oslo's default: noop, notifications off)",
		apply:   func(c *Config, v string) { c.Notifications.Driver = notify.Driver(v) }},
	{section: sectionNotifications, name: "transport_url", kind: kindURL,
		aliases: []alias{{sectionDefault, "notification_transport_url"}},
		doc:     "transport `URL` for notifications (default: the RPC transport's)",
		apply:   func(c *Config, v string) { c.Notifications.TransportURL = v }},
	{section: sectionNotifications, name: "topics", kind: kindList,
		aliases: []alias{{sectionDefault, "notification_topics"}, {"rpc_notifier2", "topics"}},
		doc:     "comma-separated notification `topics` (default notifications)",
		apply:   func(c *Config, v string) { c.Notifications.Topics = strings.Split(v, ",") }},
	{section: sectionNotifications, name: "retry", kind: kindInt, min: -1, max: noLimit,
		doc:   "`times` a failed notification publish is retried (default -1: until it succeeds)",
		apply: func(c *Config, v string) { c.Notifications.Retry, _ = strconv.Atoi(v) }},
}

// seconds converts a validated whole number of seconds.
func seconds(v string) (d time.Duration) {
	n, _ := strconv.Atoi(v)
	return time.Duration(n) * time.Second
}

// lookup finds the option a section's key names, and whether the key is
// a deprecated alias.
func lookup(section, key string) (opt *option, deprecated bool) {
	for _, o := range options {
		if o.section == section && o.name == key {
			return o, false
		}
	}
	for _, o := range options {
		for _, a := range o.aliases {
			if a.section == section && a.name == key {
				return o, true
			}
		}
	}
	return nil, false
}

// transportOptionNamed finds a transport URL option by name.
func transportOptionNamed(name string) *option {
	for _, o := range options {
		if o.section == sectionRabbit && o.name == name {
			return o
		}
	}
	return nil
}

// unsupportedError says an option or value of oslo's is not implemented
// by Switchyard.
type unsupportedError struct{ msg string }

func (e *unsupportedError) Error() string { return e.msg }

// normalize checks a value against the option's kind and use and returns
// it in canonical form: booleans as "true" or "false", numbers without
// spaces, lists without empty items.
func (o *option) normalize(v string) (string, error) {
	var norm string
	switch o.kind {
	case kindString:
		norm = v
	case kindName:
		if err := validName(v); err != nil {
			return "", err
		}
		norm = v
	case kindURL:
		if _, err := transport.ParseURL(v); err != nil {
			return "", withoutSentinel(err)
		}
		norm = v
	case kindBool:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true", "1", "yes", "on":
			norm = "true"
		case "false", "0", "no", "off":
			norm = "false"
		default:
			return "", fmt.Errorf("%q is not a boolean (true/false, yes/no, on/off or 1/0)", v)
		}
	case kindInt:
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || float64(n) < o.min || float64(n) > o.max {
			return "", fmt.Errorf("%q is not a whole number %s", v, o.rangeText())
		}
		norm = strconv.Itoa(n)
	case kindSeconds:
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || math.IsNaN(f) || f < o.min || f > o.max {
			return "", fmt.Errorf("%q is not a number of seconds %s", v, o.rangeText())
		}
		norm = strconv.FormatFloat(f, 'g', -1, 64)
	case kindList:
		var items []string
		for _, item := range strings.Split(strings.TrimRight(strings.TrimSpace(v), ","), ",") {
			if item = strings.TrimSpace(item); item != "" {
				if err := validName(item); err != nil {
					return "", err
				}
				items = append(items, item)
			}
		}
		if len(items) == 0 {
			return "", fmt.Errorf("%q is an empty list", v)
		}
		norm = strings.Join(items, ",")
	case kindNotificationDriver:
		norm = strings.TrimSpace(v)
		switch notify.Driver(norm) {
		case notify.MessagingV2, notify.Messaging, notify.Log, notify.Noop:
		case "routing", "test":
			return "", &unsupportedError{fmt.Sprintf("driver %q is not supported by Switchyard (messagingv2, messaging, log or noop)", norm)}
		default:
			return "", fmt.Errorf("unknown notification driver %q (messagingv2, messaging, log or noop)", norm)
		}
	}
	if o.use == useOnly && !slices.Contains(o.only, norm) {
		what := "is not supported by Switchyard"
		if len(o.only) > 0 {
			what = fmt.Sprintf("%q is not supported by Switchyard (only %s)", norm, strings.Join(o.only, " or "))
		}
		return "", &unsupportedError{what + ": " + o.why}
	}
	return norm, nil
}

// validName checks an exchange or topic name as transport.Target does.
func validName(v string) error {
	if err := (transport.Target{Topic: v}).Validate(); err != nil {
		return fmt.Errorf("%q is not a valid name: at most 255 bytes, without spaces or control characters (oslo files have no trailing comments)", v)
	}
	return nil
}

// withoutSentinel drops the "invalid argument: " prefix of a transport
// error, since OptionError matches ErrInvalid itself.
func withoutSentinel(err error) error {
	if err == nil {
		return nil
	}
	return errors.New(strings.TrimPrefix(err.Error(), transport.ErrInvalid.Error()+": "))
}

func (o *option) rangeText() string {
	switch {
	case o.max == noLimit:
		return fmt.Sprintf("of at least %g", o.min)
	default:
		return fmt.Sprintf("from %g to %g", o.min, o.max)
	}
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

// Unwrap returns transport.ErrInvalid, transport.ErrUnsupported where it
// applies, and Err.
func (e *OptionError) Unwrap() []error {
	var u *unsupportedError
	if errors.As(e.Err, &u) {
		return []error{transport.ErrInvalid, transport.ErrUnsupported, e.Err}
	}
	return []error{transport.ErrInvalid, e.Err}
}
