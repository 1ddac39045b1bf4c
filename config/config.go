package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-mq/switchyard/notify"
	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
	"github.com/switchyard-mq/switchyard/transport/driver"
	"github.com/switchyard-mq/switchyard/transport/driver/option"
)

// Config is what a service needs to open a transport and build RPC
// clients and servers and notifiers the oslo.messaging way. Build one with
// Default and change its fields, or with Load from a file, the environment
// and flags. Its String, GoString and LogValue forms hide passwords.
type Config struct {
	// TransportURL selects the backend: [DEFAULT] transport_url,
	// SWITCHYARD_URL, -transport-url. Default memory://.
	TransportURL string
	// ControlExchange is the exchange of RPC targets that name none and of
	// notifications: [DEFAULT] control_exchange. Default "openstack".
	ControlExchange string
	// RPCResponseTimeout is how long an RPC call waits for its reply unless
	// the call says otherwise: [DEFAULT] rpc_response_timeout, in seconds
	// or as a Go duration (at least a second, where Load reads it).
	// Default 60 s.
	RPCResponseTimeout time.Duration
	// ExecutorThreadPoolSize bounds how many requests an RPC server handles
	// at once: [DEFAULT] executor_thread_pool_size. Default 64.
	ExecutorThreadPoolSize int
	// TransportOptions are the [oslo_messaging_rabbit] options Switchyard
	// implements, by oslo name, as text (booleans "true" or "false",
	// numbers in decimal, durations in seconds). Open sends them as the transport URL's query
	// options: amqp_durable_queues, amqp_auto_delete and
	// rabbit_transient_queues_ttl to every scheme (the rpc and notify layers
	// read them), the others to rabbit:// and rabbits:// only, as oslo
	// gives [oslo_messaging_rabbit] to its rabbit driver only. An option
	// the URL's own query sets wins, as in oslo.
	TransportOptions url.Values
	// Notifications are the [oslo_messaging_notifications] options.
	Notifications Notifications
}

// Notifications configure notifiers: [oslo_messaging_notifications].
type Notifications struct {
	// Driver is how notifications are sent (driver). Default notify.Noop:
	// as in oslo, a service sends no notifications until a driver is
	// configured. oslo allows several drivers; Switchyard one.
	Driver notify.Driver
	// TransportURL, when set, sends notifications through another
	// transport than RPC (transport_url); the TransportOptions apply to it
	// too.
	TransportURL string
	// Topics are the topics each notification is published to (topics).
	// Default ["notifications"].
	Topics []string
	// Retry bounds how many times a failed publish is retried (retry):
	// -1, the default, retries until it succeeds.
	Retry int
	// Queues is what notifiers declare for each "<topic>.<priority>", and
	// the bounds listeners declare those queues with: Switchyard's own
	// declare_queues, queue_max_length and queue_message_ttl, which
	// oslo.messaging does not have (and ignores in a shared file). The
	// zero value, the default, is oslo's queue, unbounded.
	Queues notify.QueuePolicy
}

// Default returns oslo.messaging's defaults, with the in-process broker
// memory:// for the transport (oslo's default, rabbit://, would need a
// broker on localhost).
func Default() Config {
	return Config{
		TransportURL:           "memory://",
		ControlExchange:        "openstack",
		RPCResponseTimeout:     rpc.DefaultTimeout,
		ExecutorThreadPoolSize: rpc.DefaultMaxConcurrency,
		TransportOptions:       url.Values{},
		Notifications: Notifications{
			Driver: notify.Noop,
			Topics: []string{notify.DefaultTopic},
			Retry:  -1,
		},
	}
}

// Clone returns a deep copy of c.
func (c Config) Clone() Config {
	cp := c
	cp.TransportOptions = url.Values{}
	for k, v := range c.TransportOptions {
		cp.TransportOptions[k] = slices.Clone(v)
	}
	cp.Notifications.Topics = slices.Clone(c.Notifications.Topics)
	return cp
}

// Validate checks every field; its errors name the field and never show
// a password. Open and Load call it.
func (c Config) Validate() error {
	var errs []error
	bad := func(field string, err error) {
		if errors.Is(err, transport.ErrInvalid) {
			errs = append(errs, fmt.Errorf("config %s: %w", field, err))
		} else {
			errs = append(errs, fmt.Errorf("%w: config %s: %w", transport.ErrInvalid, field, err))
		}
	}
	// A field is checked as its option's value would be.
	check := func(field string, o option.Option, v string) {
		if _, err := o.Spec().Normalize(v); err != nil {
			bad(field, err)
		}
	}
	check("TransportURL", transportURL, c.TransportURL)
	check("ControlExchange", controlExchange, c.ControlExchange)
	// Code may set a timeout shorter than the second a file's minimum is.
	if c.RPCResponseTimeout <= 0 {
		bad("RPCResponseTimeout", fmt.Errorf("%v is not positive", c.RPCResponseTimeout))
	}
	check("ExecutorThreadPoolSize", executorThreadPoolSize, strconv.Itoa(c.ExecutorThreadPoolSize))
	for _, name := range sortedKeys(c.TransportOptions) {
		if _, err := normalizeTransportOption(name, c.TransportOptions[name]); err != nil {
			bad("TransportOptions", err)
		}
	}
	n := c.Notifications
	check("Notifications.Driver", notificationDriver, string(n.Driver))
	if n.TransportURL != "" {
		check("Notifications.TransportURL", notificationURL, n.TransportURL)
	}
	if len(n.Topics) == 0 {
		bad("Notifications.Topics", errors.New("no topics"))
	}
	for _, topic := range n.Topics {
		if err := option.CheckName(topic); err != nil {
			bad("Notifications.Topics", err)
		}
	}
	check("Notifications.Retry", notificationRetry, strconv.Itoa(n.Retry))
	check("Notifications.Queues.MaxLength", notificationQueueMaxLength, strconv.Itoa(n.Queues.MaxLength))
	check("Notifications.Queues.MessageTTL", notificationQueueMessageTTL, n.Queues.MessageTTL.String())
	if n.Queues.PublishOnly && (n.Queues.MaxLength > 0 || n.Queues.MessageTTL > 0) {
		bad("Notifications.Queues", errors.New("queues not declared (declare_queues=false) cannot be bounded"))
	}
	return errors.Join(errs...)
}

// normalizeTransportOption checks one of TransportOptions.
func normalizeTransportOption(name string, values []string) (string, error) {
	e := known.inQuery(name)
	if e == nil || !e.transportOption() {
		return "", fmt.Errorf("option %s is not one of the [oslo_messaging_rabbit] options Switchyard implements (put another driver's options in the URL's query)", name)
	}
	if len(values) == 0 {
		return "", fmt.Errorf("option %s has no value", name)
	}
	v, err := e.spec.Normalize(values[len(values)-1])
	if err != nil {
		return "", fmt.Errorf("option %s: %w", name, err)
	}
	return v, nil
}

// TransportConfig returns the parsed transport URL that Open opens: the
// TransportURL with ControlExchange and the TransportOptions that apply to
// its scheme added as query options, unless the URL's query sets them.
func (c Config) TransportConfig() (*transport.URL, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c.transportConfig(c.TransportURL)
}

func (c Config) transportConfig(rawURL string) (*transport.URL, error) {
	tc, err := transport.ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	setDefault := func(name, value string) {
		if _, set := tc.Options[name]; !set {
			tc.Options.Set(name, value)
		}
	}
	if c.ControlExchange != option.ControlExchange.Spec().Default {
		setDefault(option.ControlExchange.Spec().Name, c.ControlExchange)
	}
	for _, name := range sortedKeys(c.TransportOptions) {
		v, err := normalizeTransportOption(name, c.TransportOptions[name])
		if err != nil {
			return nil, err
		}
		if known.inQuery(name).travels(tc.Scheme) {
			setDefault(name, v)
		}
	}
	return tc, nil
}

// Open opens the transport: TransportConfig, then transport.OpenURL
// with opts. Its errors never show the password.
func (c Config) Open(ctx context.Context, opts ...transport.Option) (*transport.Transport, error) {
	tc, err := c.TransportConfig()
	if err != nil {
		return nil, err
	}
	return transport.OpenURL(ctx, tc, opts...)
}

// ForNotifications returns the configuration of the transport that
// notifications go through: c itself unless Notifications.TransportURL is
// set, then c with that URL.
func (c Config) ForNotifications() Config {
	if c.Notifications.TransportURL == "" {
		return c
	}
	n := c.Clone()
	n.TransportURL = c.Notifications.TransportURL
	return n
}

// RPCClientOptions are the rpc.NewClient options the configuration sets:
// the call timeout (rpc_response_timeout).
func (c Config) RPCClientOptions() []rpc.Option {
	return []rpc.Option{rpc.WithTimeout(c.RPCResponseTimeout)}
}

// RPCServerOptions are the rpc.NewServer options the configuration sets:
// the concurrency bound (executor_thread_pool_size).
func (c Config) RPCServerOptions() []rpc.ServerOption {
	return []rpc.ServerOption{rpc.WithMaxConcurrency(c.ExecutorThreadPoolSize)}
}

// NotifierOptions are the notify.NewNotifier options the configuration
// sets: driver, topics, retry and the queues notifiers declare.
func (c Config) NotifierOptions() []notify.NotifierOption {
	return []notify.NotifierOption{
		notify.WithDriver(c.Notifications.Driver),
		notify.WithTopics(slices.Clone(c.Notifications.Topics)...),
		notify.WithRetry(c.Notifications.Retry),
		notify.WithQueues(c.Notifications.Queues),
	}
}

// ListenerOptions are the notify.NewListener options the configuration
// sets: the bounds of the "<topic>.<priority>" queues, which a listener
// must declare as the notifiers do.
func (c Config) ListenerOptions() []notify.ListenerOption {
	return []notify.ListenerOption{notify.WithQueueBounds(c.Notifications.Queues)}
}

// String shows the configuration as oslo options, with passwords hidden:
// "transport_url=rabbit://nova:xxxxx@h1:5672/ control_exchange=nova ...".
func (c Config) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "transport_url=%s control_exchange=%s rpc_response_timeout=%v executor_thread_pool_size=%d",
		redactURL(c.TransportURL), c.ControlExchange, c.RPCResponseTimeout, c.ExecutorThreadPoolSize)
	for _, name := range sortedKeys(c.TransportOptions) {
		fmt.Fprintf(&b, " %s=%s", name, c.redactedOption(name))
	}
	n := c.Notifications
	fmt.Fprintf(&b, " notifications.driver=%s", n.Driver)
	if n.TransportURL != "" {
		fmt.Fprintf(&b, " notifications.transport_url=%s", redactURL(n.TransportURL))
	}
	fmt.Fprintf(&b, " notifications.topics=%s notifications.retry=%d", strings.Join(n.Topics, ","), n.Retry)
	fmt.Fprintf(&b, " notifications.declare_queues=%t notifications.queue_max_length=%d notifications.queue_message_ttl=%v",
		!n.Queues.PublishOnly, n.Queues.MaxLength, n.Queues.MessageTTL)
	return b.String()
}

// GoString is String, so that %#v hides passwords too.
func (c Config) GoString() string { return "config.Config{" + c.String() + "}" }

// LogValue logs the configuration as a group of its options, passwords
// hidden.
func (c Config) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("transport_url", redactURL(c.TransportURL)),
		slog.String("control_exchange", c.ControlExchange),
		slog.Duration("rpc_response_timeout", c.RPCResponseTimeout),
		slog.Int("executor_thread_pool_size", c.ExecutorThreadPoolSize),
	}
	for _, name := range sortedKeys(c.TransportOptions) {
		attrs = append(attrs, slog.String(name, c.redactedOption(name)))
	}
	n := c.Notifications
	attrs = append(attrs, slog.Group("notifications", "driver", string(n.Driver),
		"transport_url", redactURL(n.TransportURL), "topics", strings.Join(n.Topics, ","), "retry", n.Retry,
		"declare_queues", !n.Queues.PublishOnly, "queue_max_length", n.Queues.MaxLength, "queue_message_ttl", n.Queues.MessageTTL))
	return slog.GroupValue(attrs...)
}

// redactedOption is a transport option's values, comma-separated, with
// the password of any URL among them hidden.
func (c Config) redactedOption(name string) string {
	values := make([]string, len(c.TransportOptions[name]))
	for i, v := range c.TransportOptions[name] {
		values[i] = driver.RedactURLValue(v)
	}
	return strings.Join(values, ",")
}

// redactURL hides a URL's password; a URL that does not parse is not
// shown at all, since where its password starts is unknown.
func redactURL(raw string) string {
	if raw == "" {
		return ""
	}
	tc, err := transport.ParseURL(raw)
	if err != nil {
		return "(malformed URL)"
	}
	return tc.String()
}

func sortedKeys(v url.Values) []string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
