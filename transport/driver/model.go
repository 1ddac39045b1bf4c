package driver

import "time"

// ExchangeKind is how an exchange routes: by exact key, to every binding,
// or by topic pattern. Package transport uses this type under the same
// name.
type ExchangeKind string

// The exchange kinds of the portable model, as RabbitMQ defines them.
const (
	// Direct routes a message to the queues bound with its exact key.
	Direct ExchangeKind = "direct"
	// Fanout routes a message to every bound queue.
	Fanout ExchangeKind = "fanout"
	// Topic routes by pattern: `*` is one dot-separated word, `#` zero or
	// more.
	Topic ExchangeKind = "topic"
)

// Valid reports whether k is one of the model's kinds.
func (k ExchangeKind) Valid() bool { return k == Direct || k == Fanout || k == Topic }

// Headers are a message's application headers. Package transport uses
// this type under the same name, where the values it carries are listed.
type Headers map[string]any

// Exchange is transport.Exchange.
type Exchange struct {
	Name       string
	Kind       ExchangeKind
	Durable    bool
	AutoDelete bool
}

// Queue is transport.Queue.
type Queue struct {
	Name                 string
	Durable              bool
	Exclusive            bool
	AutoDelete           bool
	MessageTTL           time.Duration
	Expires              time.Duration
	MaxLength            int
	DeadLetterExchange   string
	DeadLetterRoutingKey string
	DeliveryLimit        int
	Type                 QueueType
}

// QueueType is a kind of queue; package transport uses this type under
// the same name, and documents its values there.
type QueueType string

// The kinds of queue beside a backend's default ("").
const (
	ClassicQueue QueueType = "classic"
	QuorumQueue  QueueType = "quorum"
	StreamQueue  QueueType = "stream"
)

// Valid reports whether t is the default or one of the kinds.
func (t QueueType) Valid() bool {
	return t == "" || t == ClassicQueue || t == QuorumQueue || t == StreamQueue
}

// Binding is transport.Binding.
type Binding struct {
	Exchange string
	Queue    string
	Key      string
}

// Message is transport.Message.
type Message struct {
	Body            []byte
	Headers         Headers
	ContentType     string
	ContentEncoding string
	MessageID       string
	CorrelationID   string
	ReplyTo         string
	Expiration      time.Duration
	Persistent      bool
	Timestamp       time.Time
	Mandatory       bool
}

// ConsumeOptions is transport.ConsumeOptions.
type ConsumeOptions struct {
	Prefetch  int
	AutoAck   bool
	Exclusive bool
}

// Delivery is one message handed to a consumer: transport.Delivery's
// fields, and how to settle it.
type Delivery struct {
	Message
	Exchange      string
	RoutingKey    string
	Redelivered   bool
	DeliveryCount int
	// Settler settles this delivery; nil for auto-ack deliveries.
	Settler Settler
	// Tag identifies the delivery to its Settler.
	Tag uint64
}
