package transport

import (
	"time"

	"github.com/switchyard-mq/switchyard/transport/driver"
)

// ExchangeKind is how an exchange routes: Direct, Fanout or Topic.
type ExchangeKind = driver.ExchangeKind

// The exchange kinds.
const (
	// Direct routes a message to the queues bound with its exact key.
	Direct = driver.Direct
	// Fanout routes a message to every bound queue.
	Fanout = driver.Fanout
	// Topic routes by pattern: `*` is one dot-separated word, `#` zero or
	// more.
	Topic = driver.Topic
)

// Headers are application headers carried with a message. Values should be
// strings, booleans, integers, floats, []byte, time.Time, nested Headers or
// []any of those, the types every backend can carry; another type is
// ErrInvalid.
type Headers = driver.Headers

// Exchange describes an exchange to declare. Redeclaring an exchange with
// the same properties does nothing; with other properties it fails with
// ErrPrecondition.
type Exchange struct {
	// Name is the exchange's name; it must not be empty (the default
	// exchange "" always exists and cannot be declared).
	Name string
	// Kind is direct, fanout or topic.
	Kind ExchangeKind
	// Durable exchanges survive a broker restart (CapDurable: what that
	// means on each backend is said there).
	Durable bool
	// AutoDelete exchanges are deleted when their last binding goes away
	// (CapAutoDelete).
	AutoDelete bool
}

// Queue describes a queue to declare. Zero values mean "not set": no TTL,
// no expiry, no length limit, no dead-lettering. Each property set needs
// the capability named beside it (or in Capability's list: Exclusive
// CapExclusiveQueue, AutoDelete CapAutoDelete, MessageTTL CapMessageTTL,
// Expires CapQueueExpiry, MaxLength CapMaxLength, DeadLetterExchange
// CapDeadLetter, DeliveryLimit CapDeliveryLimit, a queue neither durable
// nor exclusive CapTransientQueue); DeclareQueue fails with ErrUnsupported
// on a backend that lacks it rather than drop the property.
type Queue struct {
	// Name is the queue's name. Empty asks the broker to choose a unique
	// name, which DeclareQueue returns.
	Name string
	// Durable queues survive a broker restart (CapDurable: what that
	// means on each backend is said there).
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
	// Type asks for one of the kinds of queue a backend offers beside its
	// own default (the zero value): QuorumQueue, replicated on several
	// broker nodes (CapQuorumQueue), or StreamQueue, a log that every
	// consumer reads whole (CapStreamQueue).
	Type QueueType
}

// QueueType is a kind of queue (Queue.Type), RabbitMQ's x-queue-type.
type QueueType = driver.QueueType

// The kinds of queue beside a backend's default.
const (
	// ClassicQueue is a queue held by one broker node: RabbitMQ's
	// default, named where a backend's default is another kind.
	ClassicQueue = driver.ClassicQueue
	// QuorumQueue is a durable queue replicated on several broker nodes,
	// which survives the loss of a minority of them and counts every
	// message's deliveries (Delivery.DeliveryCount). It cannot be
	// exclusive or auto-delete.
	QuorumQueue = driver.QuorumQueue
	// StreamQueue is a durable, replicated log: every consumer reads every
	// message, from the ones published after it started, and a message
	// stays until the queue's MessageTTL (its retention, x-max-age)
	// passes, whoever read it; settling a delivery only gives the
	// consumer credit for the next. A consumer resumes after its last
	// delivery when its connection is re-established. It needs a prefetch,
	// cannot be exclusive or auto-delete, and takes no dead-lettering,
	// length limit, expiry or delivery limit.
	StreamQueue = driver.StreamQueue
)

// Binding routes messages from an exchange to a queue. Key is the routing
// key for a direct exchange, a pattern for a topic exchange (`*` is exactly
// one dot-separated word, `#` zero or more), and ignored by a fanout one.
type Binding struct {
	// Exchange is the exchange messages come from.
	Exchange string
	// Queue is the queue they go to.
	Queue string
	// Key is the routing key or pattern.
	Key string
}

// Message is what is published and what a delivery carries. Treat a
// delivered message as read-only: on in-process backends its body may be
// shared by the copies routed to several queues.
type Message struct {
	// Body is the payload; it may be empty. Publish copies it, so the
	// caller may reuse its buffer once Publish returns.
	Body []byte
	// Headers are application headers (CapHeaders).
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
	// Expiration is the message's time to live in the queue; zero is none
	// (CapMessageTTL).
	Expiration time.Duration
	// Persistent messages survive a broker restart in durable queues
	// (CapDurable): brokers write them to disk.
	Persistent bool
	// Timestamp is when the message was created; zero is unset.
	Timestamp time.Time
	// Mandatory is a publish flag, not a property: a mandatory message that
	// reaches no queue fails Publish with ErrUnroutable instead of being
	// dropped (CapMandatory). It is always false on deliveries.
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
