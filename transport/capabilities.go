package transport

import "github.com/switchyard-mq/switchyard/transport/driver"

// Capability is one behaviour of the portable model that a backend may or
// may not provide; a call that needs one the backend lacks fails with
// ErrUnsupported. Its String form is the name the README's matrix shows.
type Capability = driver.Capability

// Capabilities is the set of capabilities a backend provides
// (Transport.Capabilities).
type Capabilities = driver.Capabilities

// The capabilities.
const (
	// CapDirect, CapFanout and CapTopic: exchanges of that kind.
	CapDirect = driver.CapDirect
	CapFanout = driver.CapFanout
	CapTopic  = driver.CapTopic
	// CapQueueBinding: named queues bound to exchanges (several consumers
	// sharing one bound queue), not only private subscriptions.
	CapQueueBinding = driver.CapQueueBinding
	// CapServerNamedQueue: DeclareQueue with an empty name.
	CapServerNamedQueue = driver.CapServerNamedQueue
	// CapExclusiveQueue: queues owned by their connection.
	CapExclusiveQueue = driver.CapExclusiveQueue
	// CapAutoDelete: queues deleted with their last consumer and exchanges
	// with their last binding.
	CapAutoDelete = driver.CapAutoDelete
	// CapMessageTTL: per-queue and per-message time to live.
	CapMessageTTL = driver.CapMessageTTL
	// CapQueueExpiry: unused queues deleted after Queue.Expires.
	CapQueueExpiry = driver.CapQueueExpiry
	// CapMaxLength: Queue.MaxLength with drop-head overflow.
	CapMaxLength = driver.CapMaxLength
	// CapDeadLetter: rejected, expired and overflowing messages go to the
	// queue's dead-letter exchange.
	CapDeadLetter = driver.CapDeadLetter
	// CapDeliveryLimit: a message returned more than Queue.DeliveryLimit
	// times is dead-lettered.
	CapDeliveryLimit = driver.CapDeliveryLimit
	// CapMandatory: a mandatory publish that reaches no queue fails with
	// ErrUnroutable.
	CapMandatory = driver.CapMandatory
	// CapPrefetch: ConsumeOptions.Prefetch bounds unsettled deliveries.
	CapPrefetch = driver.CapPrefetch
	// CapHeaders: Message.Headers reach the consumer.
	CapHeaders = driver.CapHeaders
	// CapDurable: Exchange.Durable, Queue.Durable and Message.Persistent
	// are honoured: durable exchanges and queues, and the persistent
	// messages in durable queues, outlive what holds them. On a broker
	// (rabbit://, amqp://) that is a broker restart. On memory://, whose
	// broker is the process, it is every transport closing and new ones
	// opening: they last as long as the process, not past it. A backend
	// where a message lives with its sender (zmq://) lacks it.
	CapDurable = driver.CapDurable
	// CapCrossProcess: separate OS processes share queues and exchanges.
	CapCrossProcess = driver.CapCrossProcess
	// CapDeliveryCount: Delivery.DeliveryCount counts earlier returns.
	CapDeliveryCount = driver.CapDeliveryCount
	// CapExclusiveConsumer: ConsumeOptions.Exclusive makes a consumer the
	// queue's only one (ErrInUse for others).
	CapExclusiveConsumer = driver.CapExclusiveConsumer
	// CapQueueExistence: a queue exists only once declared and until
	// deleted (using a missing one is ErrNotFound), and keeps the
	// properties it was declared with (a different redeclaration is
	// ErrPrecondition). Brokers that create queues on first use lack it.
	CapQueueExistence = driver.CapQueueExistence
	// CapQuorumQueue: Queue.Type QuorumQueue, replicated queues.
	CapQuorumQueue = driver.CapQuorumQueue
	// CapStreamQueue: Queue.Type StreamQueue, logs every consumer reads.
	CapStreamQueue = driver.CapStreamQueue
	// CapTransientQueue: queues neither durable nor exclusive. A RabbitMQ
	// 4 broker may deny them (its deprecated feature
	// transient_nonexcl_queues): rabbit:// declares the capability, and
	// such a broker's refusal is ErrUnsupported too.
	CapTransientQueue = driver.CapTransientQueue
)

// AllCapabilities lists every capability, in the README matrix's order.
func AllCapabilities() []Capability { return driver.AllCapabilities() }
