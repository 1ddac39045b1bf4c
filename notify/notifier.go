// Package notify is oslo.messaging's notifications for Go: a Notifier that
// publishes events (publisher id, event type, payload) at one of seven
// priorities, and a Listener that consumes them with endpoints per
// priority, pools, filters, batches and requeue.
//
// Like package rpc it is written once on the portable model and carries
// oslo.messaging's format and topology on every backend: a notification to
// topic N at priority P goes to the control exchange with routing key
// "N.p" (the lower-case priority), wrapped in the 2.0 envelope by the
// messagingv2 driver or bare by the messaging driver. On RabbitMQ, Python
// notifiers and listeners interoperate with Go ones. Like oslo's, a
// notifier declares the queue "N.p" so that notifications wait for a
// listener to come; QueuePolicy bounds that queue or declares none, for
// deployments where only listener pools consume. The noop driver, the
// configuration's default, drops notifications, and says so once when
// the notifier is made.
//
// A notification carries the request context of the context.Context it is
// published with (rpc.WithRequestContext makes one: RequestContext is the
// same type in both packages), cut down to oslo's allow-list of keys; a
// listener's handler finds it in Notification.Context.
package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/switchyard-mq/switchyard/internal/messaging"
	"github.com/switchyard-mq/switchyard/internal/oslo"
	"github.com/switchyard-mq/switchyard/transport"
)

// Priority is a notification's priority, one of the seven constants.
type Priority string

// The priorities, as oslo.messaging's notifier methods name them. There is
// no "warning": oslo's is Warn.
const (
	Audit    Priority = "audit"
	Debug    Priority = "debug"
	Info     Priority = "info"
	Warn     Priority = "warn"
	Error    Priority = "error"
	Critical Priority = "critical"
	Sample   Priority = "sample"
)

// Priorities lists every priority.
func Priorities() []Priority { return []Priority{Audit, Debug, Info, Warn, Error, Critical, Sample} }

func (p Priority) valid() bool { return oslo.Priority(p).Valid() }

// Driver is how a Notifier delivers, as oslo.messaging's notification
// drivers.
type Driver string

// The notification drivers.
const (
	// MessagingV2 publishes in the 2.0 envelope (the default).
	MessagingV2 Driver = "messagingv2"
	// Messaging publishes the bare 1.0 message, for old consumers.
	Messaging Driver = "messaging"
	// Log writes each notification to the logger instead.
	Log Driver = "log"
	// Noop drops notifications, as oslo's noop driver does; it is the
	// configuration's default (config: no [oslo_messaging_notifications]
	// driver), and NewNotifier warns that notifications are dropped.
	Noop Driver = "noop"
)

// DefaultTopic is where notifications go unless WithTopics says otherwise.
const DefaultTopic = "notifications"

// NotifierOption configures a Notifier.
type NotifierOption func(*notifierSettings)

type notifierSettings struct {
	topics []string
	driver Driver
	retry  int
	logger *slog.Logger
	queues QueuePolicy
}

// QueuePolicy says what a Notifier declares for each "<topic>.<priority>"
// it publishes to. The zero value is oslo.messaging's behaviour: its
// rabbit driver declares, before the first notification to a routing key
// (once per connection), a queue named after the key and bound to the
// control exchange with it, durable and auto-delete as the control
// exchange (amqp_durable_queues, amqp_auto_delete), a quorum queue with
// rabbit_quorum_queue, and with no length limit or TTL: oslo.messaging 14
// to 18 have no option to skip or bound it (operators bound it with a
// RabbitMQ policy). Such a queue keeps notifications for a listener that
// has not started yet, and grows for ever where none ever reads it, as
// where only listener pools (each with its own queue) consume.
type QueuePolicy struct {
	// PublishOnly declares no queue: notifications go to the control
	// exchange only, to whatever queues listeners bound there, and one
	// sent while none is bound is dropped. On zmq:// nothing is then held
	// in the sender for an absent listener (no buffer to fill, no
	// ErrBufferFull).
	PublishOnly bool
	// MaxLength bounds each declared queue's ready notifications, the
	// oldest dropped first (x-max-length; needs CapMaxLength, which
	// zmq:// lacks); 0 is no bound.
	MaxLength int
	// MessageTTL drops a notification that waited this long in a
	// declared queue (x-message-ttl; CapMessageTTL; on zmq:// in the
	// sender's buffer); 0 is none.
	MessageTTL time.Duration
}

// validate checks p against the backend's capabilities: a bound the
// backend cannot enforce is ErrUnsupported, at NewNotifier.
func (p QueuePolicy) validate(caps transport.Capabilities) error {
	switch {
	case p.MaxLength < 0 || p.MessageTTL < 0:
		return fmt.Errorf("%w: negative notification queue bound %+v", transport.ErrInvalid, p)
	case p.PublishOnly && (p.MaxLength > 0 || p.MessageTTL > 0):
		return fmt.Errorf("%w: notification queues both not declared and bounded (%+v)", transport.ErrInvalid, p)
	case p.MaxLength > 0 && !caps.Has(transport.CapMaxLength):
		return fmt.Errorf("%w: bounding notification queues by length needs the %q capability", transport.ErrUnsupported, transport.CapMaxLength)
	case p.MessageTTL > 0 && !caps.Has(transport.CapMessageTTL):
		return fmt.Errorf("%w: bounding notification queues by age needs the %q capability", transport.ErrUnsupported, transport.CapMessageTTL)
	}
	return nil
}

// WithTopics sets the topics each notification is published to (default
// "notifications"), one message per topic.
func WithTopics(topics ...string) NotifierOption {
	return func(s *notifierSettings) { s.topics = topics }
}

// WithDriver chooses the driver (default MessagingV2).
func WithDriver(d Driver) NotifierOption { return func(s *notifierSettings) { s.driver = d } }

// WithRetry bounds how many times a failed publish is retried (0: never;
// -1, the default: until the context ends).
func WithRetry(n int) NotifierOption { return func(s *notifierSettings) { s.retry = n } }

// WithQueues sets what the notifier declares for each topic and
// priority (default: oslo's queue, unbounded; see QueuePolicy).
func WithQueues(p QueuePolicy) NotifierOption { return func(s *notifierSettings) { s.queues = p } }

// WithLogger is where the Log driver writes (default the transport's
// logger, or slog.Default() without a transport).
func WithLogger(l *slog.Logger) NotifierOption { return func(s *notifierSettings) { s.logger = l } }

// Notifier publishes notifications. It is safe for concurrent use.
type Notifier struct {
	publisherID string
	set         notifierSettings
	shared      *notifierShared
}

type notifierShared struct {
	tr        *transport.Transport
	topo      messaging.Topology
	publisher messaging.Publisher

	queues QueuePolicy

	mu       sync.Mutex // serialises declaring
	declared sync.Map   // routing keys whose queue is declared
}

// NewNotifier returns a notifier publishing as publisherID (e.g.
// "compute.host1") through tr. tr may be nil for the Log and Noop drivers.
// With the Noop driver it logs a warning, once (Prepare's notifiers share
// it), that notifications are dropped and how to send them.
// Like oslo's, the notifier declares the queue "N.p" for each topic and
// priority before its first publish there, so that notifications sent
// before any listener exists wait for one; WithQueues bounds those queues
// or declares none.
func NewNotifier(tr *transport.Transport, publisherID string, opts ...NotifierOption) (*Notifier, error) {
	n := &Notifier{publisherID: publisherID, set: notifierSettings{topics: []string{DefaultTopic}, driver: MessagingV2, retry: -1}}
	for _, opt := range opts {
		opt(&n.set)
	}
	switch n.set.driver {
	case MessagingV2, Messaging:
		if tr == nil {
			return nil, fmt.Errorf("notifier: %w: the %s driver needs a transport", transport.ErrInvalid, n.set.driver)
		}
	case Log, Noop:
	default:
		return nil, fmt.Errorf("notifier: %w: unknown driver %q (want messagingv2, messaging, log or noop)", transport.ErrInvalid, n.set.driver)
	}
	if len(n.set.topics) == 0 {
		return nil, fmt.Errorf("notifier: %w: no topics", transport.ErrInvalid)
	}
	n.shared = &notifierShared{tr: tr}
	if tr != nil {
		topo, err := messaging.NewTopology(tr)
		if err != nil {
			return nil, fmt.Errorf("notifier on %s: %w", tr, err)
		}
		n.shared.topo = topo
		if err := n.set.queues.validate(tr.Capabilities()); err != nil {
			return nil, fmt.Errorf("notifier on %s: %w", tr, err)
		}
		n.shared.queues = n.set.queues
		if n.set.logger == nil {
			n.set.logger = tr.Logger()
		}
		n.shared.publisher = messaging.NewPublisher(tr, n.set.logger, "publishing a notification failed; retrying")
	}
	if n.set.logger == nil {
		n.set.logger = slog.Default()
	}
	if n.set.driver == Noop {
		// oslo drops them without a word; a service that meant to notify
		// should learn it at start, not from a listener that gets nothing.
		n.set.logger.WarnContext(context.Background(), "notifications are dropped: the notification driver is noop, "+
			"the default when [oslo_messaging_notifications] driver is not set; to send them, set driver = messagingv2 there "+
			"(or -notifications-driver, SWITCHYARD_NOTIFICATIONS_DRIVER, notify.WithDriver(notify.MessagingV2))",
			"publisher_id", publisherID)
	}
	for _, topic := range n.set.topics {
		if err := (transport.Target{Topic: topic}).Validate(); err != nil {
			return nil, fmt.Errorf("notifier: %w", err)
		}
	}
	return n, nil
}

// Prepare returns a notifier that publishes as another publisher id and
// shares everything else with n.
func (n *Notifier) Prepare(publisherID string) *Notifier {
	p := *n
	p.publisherID = publisherID
	return &p
}

// Audit publishes at priority audit; see Notify.
func (n *Notifier) Audit(ctx context.Context, eventType string, payload any) error {
	return n.Notify(ctx, Audit, eventType, payload)
}

// Debug publishes at priority debug; see Notify.
func (n *Notifier) Debug(ctx context.Context, eventType string, payload any) error {
	return n.Notify(ctx, Debug, eventType, payload)
}

// Info publishes at priority info; see Notify.
func (n *Notifier) Info(ctx context.Context, eventType string, payload any) error {
	return n.Notify(ctx, Info, eventType, payload)
}

// Warn publishes at priority warn; see Notify.
func (n *Notifier) Warn(ctx context.Context, eventType string, payload any) error {
	return n.Notify(ctx, Warn, eventType, payload)
}

// Error publishes at priority error; see Notify.
func (n *Notifier) Error(ctx context.Context, eventType string, payload any) error {
	return n.Notify(ctx, Error, eventType, payload)
}

// Critical publishes at priority critical; see Notify.
func (n *Notifier) Critical(ctx context.Context, eventType string, payload any) error {
	return n.Notify(ctx, Critical, eventType, payload)
}

// Sample publishes at priority sample; see Notify.
func (n *Notifier) Sample(ctx context.Context, eventType string, payload any) error {
	return n.Notify(ctx, Sample, eventType, payload)
}

// Notify publishes one notification to every topic: payload (anything
// JSON can encode) under eventType at priority, with the request context
// ctx carries (rpc.WithRequestContext), cut down to oslo's allow-list of
// keys. It returns once the backend has taken every message.
func (n *Notifier) Notify(ctx context.Context, priority Priority, eventType string, payload any) error {
	if err := n.notify(ctx, priority, eventType, payload); err != nil {
		return fmt.Errorf("notify %s %s from %s: %w", priority, eventType, n.publisherID, err)
	}
	return nil
}

func (n *Notifier) notify(ctx context.Context, priority Priority, eventType string, payload any) error {
	if !priority.valid() {
		return fmt.Errorf("%w: unknown priority %q", transport.ErrInvalid, priority)
	}
	if n.set.driver == Noop {
		return nil
	}
	raw, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("%w: payload: %v", transport.ErrInvalid, err)
	}
	if n.set.driver == Log {
		n.log(ctx, priority, eventType, raw)
		return nil
	}
	rc, err := messaging.EncodeRequestContext(messaging.RequestContextFrom(ctx))
	if err != nil {
		return fmt.Errorf("%w: %v", transport.ErrInvalid, err)
	}
	note := oslo.Notification{
		MessageID: oslo.NewDashedID(), PublisherID: n.publisherID, EventType: eventType,
		Priority: oslo.Priority(priority), Payload: raw, Timestamp: oslo.FormatTimestamp(time.Now()),
		Context: oslo.FilterNotificationContext(rc),
	}
	exchange := n.shared.topo.ControlExchange
	for _, topic := range n.set.topics {
		key := oslo.NotificationKey(topic, oslo.Priority(priority))
		if err := n.shared.declare(ctx, exchange, key); err != nil {
			return err
		}
		note.UniqueID = oslo.NewID()
		var body []byte
		if n.set.driver == Messaging {
			body, err = oslo.EncodeNotification(&note)
		} else {
			body, err = oslo.WrapNotification(&note)
		}
		if err != nil {
			return fmt.Errorf("%w: %v", transport.ErrInvalid, err)
		}
		msg := transport.Message{Body: body, ContentType: "application/json", ContentEncoding: "utf-8", Persistent: n.shared.topo.Persistent()}
		if err := n.shared.publisher.Publish(ctx, exchange, key, msg, n.set.retry); err != nil {
			return err
		}
	}
	return nil
}

// declare creates the control exchange and, unless the policy is
// PublishOnly, the queue key (bounded as the policy says), bound with key,
// once per key.
func (s *notifierShared) declare(ctx context.Context, exchange, key string) error {
	if _, ok := s.declared.Load(key); ok {
		return nil // the common case: concurrent notifiers do not queue on mu
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.declared.Load(key); ok {
		return nil
	}
	if err := s.topo.DeclareExchange(ctx, s.tr, s.topo.Exchange(exchange)); err != nil {
		return err
	}
	if !s.queues.PublishOnly {
		q := s.topo.SharedQueue(key)
		q.MaxLength, q.MessageTTL = s.queues.MaxLength, s.queues.MessageTTL
		if _, err := s.topo.DeclareQueue(ctx, s.tr, q); err != nil {
			return err
		}
		if err := s.tr.Bind(ctx, transport.Binding{Exchange: exchange, Queue: key, Key: key}); err != nil {
			return err
		}
	}
	s.declared.Store(key, true)
	return nil
}

func (n *Notifier) log(ctx context.Context, p Priority, eventType string, payload json.RawMessage) {
	level := slog.LevelInfo
	switch p {
	case Debug:
		level = slog.LevelDebug
	case Warn:
		level = slog.LevelWarn
	case Error, Critical:
		level = slog.LevelError
	}
	n.set.logger.Log(ctx, level, "notification", "publisher_id", n.publisherID, "event_type", eventType,
		"priority", string(p), "payload", string(payload))
}
