package driver

import (
	"fmt"
	"strings"
)

// Capability is one behaviour of the portable model that a backend may or
// may not provide. The conformance suite runs the cases of every declared
// capability and reports the others as not supported.
type Capability uint32

// The capabilities a driver can declare.
const (
	// CapDirect, CapFanout and CapTopic: exchanges of that kind.
	CapDirect Capability = 1 << iota
	CapFanout
	CapTopic
	// CapQueueBinding: named queues bound to exchanges (several consumers
	// sharing one bound queue), not only private subscriptions.
	CapQueueBinding
	// CapServerNamedQueue: DeclareQueue with an empty name.
	CapServerNamedQueue
	// CapExclusiveQueue: queues owned by their connection.
	CapExclusiveQueue
	// CapAutoDelete: queues deleted with their last consumer and exchanges
	// with their last binding.
	CapAutoDelete
	// CapMessageTTL: per-queue and per-message time to live.
	CapMessageTTL
	// CapQueueExpiry: unused queues deleted after Queue.Expires.
	CapQueueExpiry
	// CapMaxLength: Queue.MaxLength with drop-head overflow.
	CapMaxLength
	// CapDeadLetter: rejected, expired and overflowing messages go to the
	// queue's dead-letter exchange.
	CapDeadLetter
	// CapDeliveryLimit: a message returned more than Queue.DeliveryLimit
	// times is dead-lettered.
	CapDeliveryLimit
	// CapMandatory: a mandatory publish that reaches no queue fails with
	// ErrUnroutable.
	CapMandatory
	// CapPrefetch: ConsumeOptions.Prefetch bounds unsettled deliveries.
	CapPrefetch
	// CapHeaders: Message.Headers reach the consumer.
	CapHeaders
	// CapDurable: Exchange.Durable, Queue.Durable and Message.Persistent
	// are honoured: durable exchanges and queues, and the persistent
	// messages in durable queues, outlive what holds them. On a broker
	// (rabbit://, amqp://) that is a broker restart. On memory://, whose
	// broker is the process, it is every transport closing and new ones
	// opening: they last as long as the process, not past it. A backend
	// where a message lives with its sender (zmq://) lacks it.
	CapDurable
	// CapCrossProcess: separate OS processes share queues and exchanges.
	CapCrossProcess
	// CapDeliveryCount: Delivery.DeliveryCount counts earlier returns.
	CapDeliveryCount
	// CapExclusiveConsumer: ConsumeOptions.Exclusive makes a consumer the
	// queue's only one (ErrInUse for others).
	CapExclusiveConsumer
	// CapQueueExistence: a queue exists only once declared and until
	// deleted (using a missing one is ErrNotFound), and keeps the
	// properties it was declared with (a different redeclaration is
	// ErrPrecondition). Brokers that create queues on first use lack it.
	CapQueueExistence
	// CapQuorumQueue: Queue.Type QuorumQueue, replicated queues.
	CapQuorumQueue
	// CapStreamQueue: Queue.Type StreamQueue, logs every consumer reads.
	CapStreamQueue
	// CapTransientQueue: queues neither durable nor exclusive, which
	// RabbitMQ 4 brokers may deny (its deprecated feature
	// transient_nonexcl_queues).
	CapTransientQueue

	capEnd
)

// AllCapabilities lists every capability in declaration order.
func AllCapabilities() []Capability {
	var all []Capability
	for c := Capability(1); c < capEnd; c <<= 1 {
		all = append(all, c)
	}
	return all
}

// String is the capability's short name, as the README's matrix shows it.
func (c Capability) String() string {
	switch c {
	case CapDirect:
		return "direct"
	case CapFanout:
		return "fanout"
	case CapTopic:
		return "topic"
	case CapQueueBinding:
		return "queue-binding"
	case CapServerNamedQueue:
		return "server-named-queue"
	case CapExclusiveQueue:
		return "exclusive-queue"
	case CapAutoDelete:
		return "auto-delete"
	case CapMessageTTL:
		return "message-ttl"
	case CapQueueExpiry:
		return "queue-expiry"
	case CapMaxLength:
		return "max-length"
	case CapDeadLetter:
		return "dead-letter"
	case CapDeliveryLimit:
		return "delivery-limit"
	case CapMandatory:
		return "mandatory"
	case CapPrefetch:
		return "prefetch"
	case CapHeaders:
		return "headers"
	case CapDurable:
		return "durable"
	case CapCrossProcess:
		return "cross-process"
	case CapDeliveryCount:
		return "delivery-count"
	case CapExclusiveConsumer:
		return "exclusive-consumer"
	case CapQueueExistence:
		return "queue-existence"
	case CapQuorumQueue:
		return "quorum-queue"
	case CapStreamQueue:
		return "stream-queue"
	case CapTransientQueue:
		return "transient-queue"
	}
	return fmt.Sprintf("capability(%#x)", uint32(c))
}

// Capabilities is a set of Capability values.
type Capabilities uint32

// NewCapabilities returns the set holding cs.
func NewCapabilities(cs ...Capability) Capabilities {
	var s Capabilities
	for _, c := range cs {
		s |= Capabilities(c)
	}
	return s
}

// Has reports whether every capability in cs is in s.
func (s Capabilities) Has(cs ...Capability) bool {
	for _, c := range cs {
		if s&Capabilities(c) == 0 {
			return false
		}
	}
	return true
}

// Without returns s minus cs.
func (s Capabilities) Without(cs ...Capability) Capabilities {
	for _, c := range cs {
		s &^= Capabilities(c)
	}
	return s
}

// String lists the set's names, comma separated.
func (s Capabilities) String() string {
	var names []string
	for _, c := range AllCapabilities() {
		if s.Has(c) {
			names = append(names, c.String())
		}
	}
	return strings.Join(names, ",")
}
