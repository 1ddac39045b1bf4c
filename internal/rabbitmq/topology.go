package rabbitmq

import (
	"cmp"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-mq/switchyard/transport/driver"
)

// ServerNamedPrefix starts the names the drivers give queues declared
// with an empty name. They name such queues themselves rather than let the
// broker pick an amq.gen- name: a name in the reserved amq. space cannot
// be declared again after a reconnection, and users keep the name; amq.gen-
// is also what RabbitMQ's AMQP 1.0 plugin calls the subscription queues it
// leaks.
const ServerNamedPrefix = "switchyard.gen-"

// ServerNamedQueue returns a new name for a queue declared with an empty
// one: ServerNamedPrefix and 16 random bytes.
func ServerNamedQueue() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return ServerNamedPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// QueueOptions are the rabbit driver's options that shape every queue it
// declares. The zero value declares a queue as the model alone asks,
// which is what the amqp1 driver does.
type QueueOptions struct {
	// Quorum (rabbit_quorum_queue) declares the queues that may be quorum
	// queues as quorum queues.
	Quorum bool
	// QuorumDeliveryLimit (rabbit_quorum_delivery_limit) is the
	// x-delivery-limit of quorum queues whose DeliveryLimit is 0.
	QuorumDeliveryLimit int
	// QuorumMaxMemoryLength and QuorumMaxMemoryBytes
	// (rabbit_quorum_max_memory_length and _bytes) are the
	// x-max-in-memory-length and -bytes of quorum queues; 0 is none.
	QuorumMaxMemoryLength, QuorumMaxMemoryBytes int
	// HA (rabbit_ha_queues) adds x-ha-policy=all to every queue.
	HA bool
}

// QueueDeclaration is a model queue as RabbitMQ declares it: the fields of
// queue.declare.
type QueueDeclaration struct {
	Name       string
	Durable    bool
	AutoDelete bool
	Exclusive  bool
	// Quorum: a quorum queue, which counts deliveries and applies the
	// delivery limit itself; a classic queue does neither.
	Quorum bool
	// Args are the x-arguments; nil when there are none.
	Args amqp091.Table
}

// Declaration maps q onto RabbitMQ. The arguments are exactly those that
// q's fields and o ask for, so that another client declaring the same
// queue (an oslo.messaging peer, the other driver) is not refused with
// 406 PRECONDITION_FAILED. In particular there is no x-overflow: the
// broker's default, drop-head, is the model's overflow, and a queue
// declared with the argument is not equivalent to one declared without
// (Python oslo.messaging never sets it).
//
// q.Type QuorumQueue is a quorum queue, with q.DeliveryLimit or else
// o.QuorumDeliveryLimit as x-delivery-limit. q.Type StreamQueue is a
// stream, its MessageTTL the stream's retention (x-max-age, in seconds as
// oslo.messaging writes it). A queue of no type is a quorum queue with
// o.Quorum when it may be one (not exclusive, not auto-delete, no expiry:
// oslo's reply and fanout queues stay classic), durable as quorum queues
// must be, and otherwise a classic queue; ClassicQueue keeps it classic
// whatever o says, with no x-queue-type, as a queue of the broker's
// default type is declared. A classic queue gets no x-delivery-limit,
// which it does not apply (the rabbit driver counts deliveries itself).
// o.HA adds x-ha-policy to every queue but a stream.
func (o QueueOptions) Declaration(q driver.Queue) QueueDeclaration {
	d := QueueDeclaration{Name: q.Name, Durable: q.Durable, AutoDelete: q.AutoDelete, Exclusive: q.Exclusive}
	switch q.Type {
	case driver.QuorumQueue:
		d.Quorum = true
	case "":
		d.Quorum = o.Quorum && !q.Exclusive && !q.AutoDelete && q.Expires == 0
	}
	put := func(k string, v any) {
		if d.Args == nil {
			d.Args = amqp091.Table{}
		}
		d.Args[k] = v
	}
	if q.Type == driver.StreamQueue {
		d.Durable = true
		put("x-queue-type", "stream")
		if q.MessageTTL > 0 {
			put("x-max-age", fmt.Sprintf("%ds", int64(max(q.MessageTTL.Round(time.Second), time.Second)/time.Second)))
		}
		return d // and nothing else, as oslo.messaging declares a stream
	}
	if q.MessageTTL > 0 {
		put("x-message-ttl", milliseconds(q.MessageTTL))
	}
	if q.Expires > 0 {
		put("x-expires", milliseconds(q.Expires))
	}
	if q.MaxLength > 0 {
		put("x-max-length", int64(q.MaxLength))
	}
	if q.DeadLetterExchange != "" {
		put("x-dead-letter-exchange", q.DeadLetterExchange)
	}
	if q.DeadLetterRoutingKey != "" {
		put("x-dead-letter-routing-key", q.DeadLetterRoutingKey)
	}
	if d.Quorum {
		d.Durable = true
		put("x-queue-type", "quorum")
		if limit := cmp.Or(q.DeliveryLimit, o.QuorumDeliveryLimit); limit > 0 {
			put("x-delivery-limit", int64(limit))
		}
		if o.QuorumMaxMemoryLength > 0 {
			put("x-max-in-memory-length", int64(o.QuorumMaxMemoryLength))
		}
		if o.QuorumMaxMemoryBytes > 0 {
			put("x-max-in-memory-bytes", int64(o.QuorumMaxMemoryBytes))
		}
	}
	if o.HA {
		put("x-ha-policy", "all")
	}
	return d
}

// milliseconds is d in whole milliseconds, at least 1: RabbitMQ counts
// TTLs and expiries in milliseconds, and a positive d must not become 0
// (a TTL of 0 expires at once; an expiry of 0 is refused).
func milliseconds(d time.Duration) int64 { return max(d.Milliseconds(), 1) }

// Declare declares the queue on ch.
func (d QueueDeclaration) Declare(ch *amqp091.Channel) error {
	_, err := ch.QueueDeclare(d.Name, d.Durable, d.AutoDelete, d.Exclusive, false, d.Args)
	return err
}

// DeclareExchange declares ex on ch: its kind and its durable and
// auto-delete flags, not internal, with no arguments.
func DeclareExchange(ch *amqp091.Channel, ex driver.Exchange) error {
	return ch.ExchangeDeclare(ex.Name, string(ex.Kind), ex.Durable, ex.AutoDelete, false, false, nil)
}

// Bind binds on ch, with no arguments.
func Bind(ch *amqp091.Channel, b driver.Binding) error {
	return ch.QueueBind(b.Queue, b.Key, b.Exchange, false, nil)
}

// Unbind removes a binding on ch.
func Unbind(ch *amqp091.Channel, b driver.Binding) error {
	return ch.QueueUnbind(b.Queue, b.Key, b.Exchange, nil)
}
