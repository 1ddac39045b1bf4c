// Package driver is the contract between Switchyard's portable transport and
// the backends that implement it. Users never call it: they hold a
// *transport.Transport, which validates every call, enforces the closed
// state, wraps errors with what failed and where, and then delegates here.
// Keeping that work in one place lets each driver stay small.
//
// A driver registers a URL scheme from its package's init function with
// transport.Register, as database/sql drivers do; a blank import selects it.
//
// The data types below (Exchange, Queue, Binding, Message, ...) are the
// portable messaging model. package transport re-exports each of them under
// the same name, so users and drivers share one definition without copying
// per message.
package driver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Sentinel errors. Drivers return them (wrapped with %w and the broker's
// own text) so that users can test with errors.Is whatever the backend.
// package transport re-exports each one under the same name.
var (
	// ErrClosed: the transport, consumer or delivery's channel is closed.
	ErrClosed = errors.New("closed")
	// ErrNotFound: a queue or exchange does not exist.
	ErrNotFound = errors.New("not found")
	// ErrTimeout: an operation ran out of time (an RPC call without reply).
	ErrTimeout = errors.New("timed out")
	// ErrUnsupported: the backend lacks the capability that was asked for.
	ErrUnsupported = errors.New("not supported by this driver")
	// ErrUnroutable: a mandatory message reached no queue.
	ErrUnroutable = errors.New("unroutable")
	// ErrInvalid: an argument is malformed (a name, a URL, an option).
	ErrInvalid = errors.New("invalid argument")
	// ErrPrecondition: an entity exists with other properties (AMQP 406), or
	// an operation's precondition does not hold (deleting a queue in use).
	ErrPrecondition = errors.New("precondition failed")
	// ErrInUse: an exclusive queue or consumer is held by another owner.
	ErrInUse = errors.New("resource locked")
	// ErrSettled: a delivery was already acknowledged, rejected or requeued,
	// or it came from an auto-ack consumer.
	ErrSettled = errors.New("delivery already settled")
)

// ExchangeKind is how an exchange routes: by exact key, to every binding,
// or by topic pattern.
type ExchangeKind string

// The exchange kinds of the portable model, as RabbitMQ defines them.
const (
	Direct ExchangeKind = "direct"
	Fanout ExchangeKind = "fanout"
	Topic  ExchangeKind = "topic"
)

// Valid reports whether k is one of the model's kinds.
func (k ExchangeKind) Valid() bool { return k == Direct || k == Fanout || k == Topic }

// Exchange describes an exchange to declare. Redeclaring an exchange with
// the same properties does nothing; with other properties it fails with
// ErrPrecondition.
type Exchange struct {
	// Name is the exchange's name; it must not be empty (the default
	// exchange "" always exists and cannot be declared).
	Name string
	// Kind is direct, fanout or topic.
	Kind ExchangeKind
	// Durable exchanges survive a broker restart.
	Durable bool
	// AutoDelete exchanges are deleted when their last binding goes away.
	AutoDelete bool
}

// Queue describes a queue to declare. Zero values mean "not set": no TTL,
// no expiry, no length limit, no dead-lettering.
type Queue struct {
	// Name is the queue's name. Empty asks the broker to choose a unique
	// name, which DeclareQueue returns.
	Name string
	// Durable queues survive a broker restart.
	Durable bool
	// Exclusive queues belong to the connection that declared them: only
	// it may consume, and the queue is deleted when it closes.
	Exclusive bool
	// AutoDelete queues are deleted when their last consumer goes away
	// (after having had at least one).
	AutoDelete bool
	// MessageTTL expires messages that stay longer in the queue (x-message-ttl).
	MessageTTL time.Duration
	// Expires deletes the queue after it has been unused (no consumer, no
	// redeclaration) for this long (x-expires).
	Expires time.Duration
	// MaxLength caps the number of ready messages; the oldest are dropped
	// or dead-lettered first (x-max-length, overflow drop-head).
	MaxLength int
	// DeadLetterExchange receives messages that are rejected without
	// requeue, expire, overflow MaxLength or exceed DeliveryLimit.
	DeadLetterExchange string
	// DeadLetterRoutingKey replaces the message's routing key when it is
	// dead-lettered; empty keeps the original key.
	DeadLetterRoutingKey string
	// DeliveryLimit is how many times a message may be returned to the
	// queue (nack with requeue, consumer gone) before it is dead-lettered
	// instead, so a poison message never loops forever (x-delivery-limit).
	DeliveryLimit int
}

// Binding routes messages from an exchange to a queue. Key is the routing
// key for a direct exchange, a pattern for a topic exchange (`*` is exactly
// one dot-separated word, `#` zero or more), and ignored by a fanout one.
type Binding struct {
	Exchange string
	Queue    string
	Key      string
}

// Headers are application headers carried with a message. Values should be
// strings, booleans, integers, floats, []byte, time.Time, nested Headers or
// []any of those, the types every backend can carry.
type Headers map[string]any

// Message is what is published and what a delivery carries. Treat a
// delivered message as read-only: on in-process backends its body may be
// shared by the copies routed to several queues.
type Message struct {
	// Body is the payload; it may be empty. Publish copies it, so the
	// caller may reuse its buffer once Publish returns.
	Body []byte
	// Headers are application headers.
	Headers Headers
	// ContentType is the MIME type of Body, e.g. "application/json".
	ContentType string
	// ContentEncoding is the encoding of Body, e.g. "utf-8" or "gzip".
	ContentEncoding string
	// MessageID identifies the message to the application.
	MessageID string
	// CorrelationID links a reply to its request.
	CorrelationID string
	// ReplyTo names the queue a reply should be sent to.
	ReplyTo string
	// Expiration is the message's time to live in the queue; zero is none.
	Expiration time.Duration
	// Persistent messages are written to disk by brokers that can, and
	// survive a restart in durable queues.
	Persistent bool
	// Timestamp is when the message was created; zero is unset.
	Timestamp time.Time
	// Mandatory is a publish flag, not a property: a mandatory message that
	// reaches no queue fails Publish with ErrUnroutable instead of being
	// dropped. It is always false on deliveries.
	Mandatory bool
}

// ConsumeOptions tune a consumer.
type ConsumeOptions struct {
	// Prefetch bounds the deliveries handed out but not yet settled.
	// Zero means the driver's default (unbounded on brokers that allow it).
	// Prefetch 1 is fair dispatch: a busy consumer receives nothing more.
	Prefetch int
	// AutoAck settles every delivery as it is handed out: faster, but a
	// message is lost if the consumer fails while handling it.
	AutoAck bool
	// Exclusive asks to be the queue's only consumer.
	Exclusive bool
}

// Delivery is one message handed to a consumer.
type Delivery struct {
	Message
	// Exchange and RoutingKey are where the message was published.
	Exchange   string
	RoutingKey string
	// Redelivered is set when the message was handed out before and came
	// back to the queue (requeued, or its consumer went away unsettled).
	Redelivered bool
	// DeliveryCount is how many times the message was returned to the
	// queue before this delivery, where the backend counts it.
	DeliveryCount int
	// Settler settles this delivery; nil for auto-ack deliveries.
	Settler Settler
	// Tag identifies the delivery to its Settler.
	Tag uint64
}

// Settler acknowledges, requeues or rejects deliveries by tag. A settled
// tag returns ErrSettled if settled again.
type Settler interface {
	Ack(tag uint64) error
	// Nack returns the message to its queue when requeue is true, and
	// otherwise dead-letters or drops it.
	Nack(tag uint64, requeue bool) error
}

// Conn is an open connection to a backend. Its methods are called only
// with validated arguments and never after Close.
type Conn interface {
	// Capabilities reports what this connection's backend supports. It
	// must not change over the connection's life.
	Capabilities() Capabilities
	DeclareExchange(ctx context.Context, ex Exchange) error
	// DeleteExchange deletes an exchange and its bindings. A missing
	// exchange is not an error.
	DeleteExchange(ctx context.Context, name string) error
	// DeclareQueue declares q and returns its name (chosen by the backend
	// when q.Name is empty).
	DeclareQueue(ctx context.Context, q Queue) (string, error)
	// DeleteQueue deletes a queue, dropping its messages, and returns how
	// many it held. A missing queue is not an error.
	DeleteQueue(ctx context.Context, name string) (int, error)
	// PurgeQueue drops a queue's ready messages and returns how many.
	PurgeQueue(ctx context.Context, name string) (int, error)
	Bind(ctx context.Context, b Binding) error
	Unbind(ctx context.Context, b Binding) error
	// Publish sends msg. It returns once the backend has taken
	// responsibility for the message (a broker confirm where there is one).
	Publish(ctx context.Context, exchange, routingKey string, msg Message) error
	// Consume starts a consumer on an existing queue.
	Consume(ctx context.Context, queue string, opts ConsumeOptions) (Consumer, error)
	// Close releases the connection; consumers end, their unsettled
	// deliveries go back to their queues.
	Close() error
}

// Consumer is a stream of deliveries from one queue.
type Consumer interface {
	// Receive blocks for the next delivery until ctx ends (returning
	// ctx.Err()) or the consumer closes (ErrClosed).
	Receive(ctx context.Context) (Delivery, error)
	// Close stops the consumer; its unsettled deliveries go back to the
	// queue marked redelivered. Close is idempotent.
	Close() error
}

// HealthChecker is implemented by connections that can tell whether their
// backend is reachable right now.
type HealthChecker interface {
	Healthy(ctx context.Context) error
}

// Opener opens connections for one URL scheme.
type Opener interface {
	Open(ctx context.Context, cfg *Config) (Conn, error)
}

// OpenerFunc adapts a function to Opener.
type OpenerFunc func(ctx context.Context, cfg *Config) (Conn, error)

// Open calls f.
func (f OpenerFunc) Open(ctx context.Context, cfg *Config) (Conn, error) { return f(ctx, cfg) }

// Host is one broker address of a URL.
type Host struct {
	Name string // host name or IP, without brackets
	Port int    // 0 when the URL gave none
}

// String returns host:port, bracketing IPv6 literals.
func (h Host) String() string {
	name := h.Name
	if strings.Contains(name, ":") {
		name = "[" + name + "]"
	}
	if h.Port == 0 {
		return name
	}
	return fmt.Sprintf("%s:%d", name, h.Port)
}

// Config is a parsed transport URL:
// scheme://user:pass@host1:port,host2:port/vhost?option=value.
// Its String form never shows the password.
type Config struct {
	Scheme   string
	User     string
	Password string
	// HasPassword distinguishes an empty password from none.
	HasPassword bool
	Hosts       []Host
	// VirtualHost is the URL path without its leading slash, unescaped
	// ("" when the URL has no path). For memory:// it names the broker.
	VirtualHost string
	// Options are the query parameters. Drivers read theirs and report
	// unknown ones with UnknownOptions.
	Options url.Values
	// Logger receives the driver's logs; never nil when a driver opens.
	Logger *slog.Logger
}

// String is the URL with the password replaced by "xxxxx".
func (c *Config) String() string {
	var b strings.Builder
	b.WriteString(c.Scheme)
	b.WriteString("://")
	if c.User != "" || c.HasPassword {
		b.WriteString(url.PathEscape(c.User))
		if c.HasPassword {
			b.WriteString(":xxxxx")
		}
		b.WriteByte('@')
	}
	for i, h := range c.Hosts {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(h.String())
	}
	if c.VirtualHost != "" {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(c.VirtualHost))
	}
	if len(c.Options) > 0 {
		redacted := make(url.Values, len(c.Options))
		for k, vs := range c.Options {
			for _, v := range vs {
				redacted[k] = append(redacted[k], RedactURLValue(v))
			}
		}
		b.WriteByte('?')
		b.WriteString(redacted.Encode())
	}
	return b.String()
}

// RedactURLValue returns v with the password of a URL in it replaced by
// "xxxxx", for option values that are URLs themselves (zmq's
// matchmaker=redis://:password@host); other values come back unchanged.
// A value that looks like a URL with credentials but does not parse is
// hidden whole.
func RedactURLValue(v string) string {
	if !strings.Contains(v, "@") {
		return v
	}
	u, err := url.Parse(v)
	switch {
	case err != nil:
		return "xxxxx"
	case u.User == nil:
		return v
	}
	if _, has := u.User.Password(); !has {
		return v
	}
	return u.Redacted()
}

// LogValue keeps the password out of structured logs.
func (c *Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Clone returns a deep copy of c.
func (c *Config) Clone() *Config {
	cp := *c
	cp.Hosts = append([]Host(nil), c.Hosts...)
	cp.Options = make(url.Values, len(c.Options))
	for k, v := range c.Options {
		cp.Options[k] = append([]string(nil), v...)
	}
	return &cp
}

// Option returns the last value of a query option, or def when absent.
func (c *Config) Option(name, def string) string {
	if vs, ok := c.Options[name]; ok && len(vs) > 0 {
		return vs[len(vs)-1]
	}
	return def
}

// UnknownOptions returns an ErrInvalid error naming every option of c that
// is neither in known nor one of PortableOptions; nil if there is none.
func (c *Config) UnknownOptions(known ...string) error {
	var unknown []string
	for name := range c.Options {
		if !slices.Contains(known, name) && !slices.Contains(PortableOptions(), name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	return fmt.Errorf("%w: unknown option %s for %s:// (known: %s)", ErrInvalid,
		strings.Join(unknown, ", "), c.Scheme, strings.Join(append(known, PortableOptions()...), ", "))
}

// PortableOptions are the URL options read by the layers above the driver
// (rpc and notify topology, named as oslo.messaging names them); every
// scheme accepts them.
func PortableOptions() []string {
	return []string{"control_exchange", "amqp_durable_queues", "amqp_auto_delete", "rabbit_transient_queues_ttl"}
}
