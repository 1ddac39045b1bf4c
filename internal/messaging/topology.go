package messaging

import (
	"context"
	"fmt"
	"time"

	"github.com/switchyard-mq/switchyard/internal/oslo"
	"github.com/switchyard-mq/switchyard/internal/rabbitmq"
	"github.com/switchyard-mq/switchyard/transport"
	"github.com/switchyard-mq/switchyard/transport/driver/option"
)

// Topology turns oslo.messaging's topology options into the portable
// model's declarations, so that rpc and notify create, on every backend,
// the exchanges and queues oslo.messaging's rabbit driver creates with the
// same options.
//
// The options come from the transport URL's query, under oslo's names:
// the portable control_exchange, amqp_durable_queues, amqp_auto_delete and
// rabbit_transient_queues_ttl, and the rabbit driver's rabbit_quorum_queue,
// rabbit_transient_quorum_queue, rabbit_stream_fanout and use_queue_manager
// (with hostname and processname), which other drivers refuse at Open.
// Where a backend lacks a capability that only tidies up (auto-delete,
// queue expiry) the flag is left out rather than failing. So is durability
// where the backend has none (no CapDurable: zmq://, where a message lives
// with its sender): amqp_durable_queues=true then declares nothing durable
// and says so in a warning, and messages are published persistent only
// where the backend keeps them, so that the same options run on every
// backend and the transport never sees a property it would refuse.
type Topology struct {
	// ControlExchange is the exchange of targets that name none.
	ControlExchange string
	// Durable and AutoDelete flag the control exchange and the shared
	// (topic and notification) queues; Durable only where the backend
	// has CapDurable.
	Durable, AutoDelete bool
	// TransientTTL expires reply and fanout queues left unused, and is a
	// fanout stream's retention; 0 is for ever.
	TransientTTL time.Duration
	// Quorum makes the shared queues quorum queues, TransientQuorum the
	// reply and fanout queues.
	Quorum, TransientQuorum bool
	// StreamFanout fans casts out through one stream queue per topic that
	// every server reads, instead of a queue per server.
	StreamFanout bool

	names *queueManager // nil: random reply and fanout queue names
	caps  transport.Capabilities
}

// topologyOptions are those a Topology reads.
var topologyOptions = option.NewSet(append(option.Portable(),
	rabbitmq.QuorumQueue, rabbitmq.TransientQuorumQueue, rabbitmq.StreamFanout, rabbitmq.Prefetch,
	rabbitmq.UseQueueManager, rabbitmq.Hostname, rabbitmq.ProcessName)...)

// NewTopology reads the topology from tr's URL options, with oslo's
// defaults. Combinations oslo.messaging refuses are ErrInvalid, naming the
// options to set.
func NewTopology(tr *transport.Transport) (Topology, error) {
	u := tr.URL()
	v, err := topologyOptions.Pick(u)
	if err != nil {
		return Topology{}, err
	}
	caps := tr.Capabilities()
	durable := option.DurableQueues.Get(v)
	if durable && !caps.Has(transport.CapDurable) {
		tr.Logger().WarnContext(context.Background(), "amqp_durable_queues=true has no effect on this backend: it keeps nothing durable, so the control exchange and shared queues are declared transient",
			"transport", tr.String(), "capability", transport.CapDurable.String())
		durable = false
	}
	t := Topology{
		ControlExchange: option.ControlExchange.Get(v),
		// oslo makes the control exchange and shared queues durable for
		// quorum queues too.
		Durable:         durable || rabbitmq.QuorumQueue.Get(v),
		AutoDelete:      option.AutoDelete.Get(v),
		TransientTTL:    option.TransientQueuesTTL.Get(v),
		Quorum:          rabbitmq.QuorumQueue.Get(v),
		TransientQuorum: rabbitmq.TransientQuorumQueue.Get(v),
		StreamFanout:    rabbitmq.StreamFanout.Get(v),
		caps:            caps,
	}
	switch {
	case t.ControlExchange == "":
		return t, fmt.Errorf("%w: option control_exchange is empty", transport.ErrInvalid)
	case t.StreamFanout && !t.TransientQuorum:
		return t, fmt.Errorf("%w: %s=true needs %s=true, as in oslo.messaging (%s)", transport.ErrInvalid,
			rabbitmq.StreamFanout.Spec().Name, rabbitmq.TransientQuorumQueue.Spec().Name, u)
	case t.StreamFanout && rabbitmq.Prefetch.Get(v) == 0:
		return t, fmt.Errorf("%w: %s=true needs %s above 0, as in oslo.messaging: a stream is read with a prefetch (%s)", transport.ErrInvalid,
			rabbitmq.StreamFanout.Spec().Name, rabbitmq.Prefetch.Spec().Name, u)
	}
	if rabbitmq.UseQueueManager.Get(v) {
		if t.names, err = newQueueManager(rabbitmq.Hostname.Get(v), rabbitmq.ProcessName.Get(v)); err != nil {
			return t, err
		}
	}
	return t, nil
}

// ExchangeName is the target's exchange, or the control exchange.
func (t Topology) ExchangeName(target transport.Target) string {
	if target.Exchange != "" {
		return target.Exchange
	}
	return t.ControlExchange
}

// Exchange is the topic exchange RPC requests and notifications go to.
func (t Topology) Exchange(name string) transport.Exchange {
	return transport.Exchange{Name: name, Kind: transport.Topic, Durable: t.Durable, AutoDelete: t.autoDelete(t.AutoDelete)}
}

// SharedQueue is a topic or notification queue: consumers share it and it
// outlives them. A quorum queue cannot be auto-delete.
func (t Topology) SharedQueue(name string) transport.Queue {
	if t.Quorum {
		return transport.Queue{Name: name, Durable: true, Type: transport.QuorumQueue}
	}
	return transport.Queue{Name: name, Durable: t.Durable, AutoDelete: t.autoDelete(t.AutoDelete)}
}

// ReplyQueue is a new reply queue: "reply_" and the queue manager's next
// name, or a random one.
func (t Topology) ReplyQueue() (transport.Queue, error) {
	name, err := t.uniqueName("reply_", oslo.ReplyQueue)
	if err != nil {
		return transport.Queue{}, err
	}
	return t.transientQueue(name), nil
}

// FanoutQueue is the queue a server of topic reads fanout casts from,
// bound to FanoutExchange(topic). It is the server's own (shared false:
// "topic_fanout_" and the queue manager's next name, or a random one),
// which it deletes when it stops; or, with StreamFanout, the topic's one
// stream "topic_fanout" that every server reads, which none deletes.
func (t Topology) FanoutQueue(topic string) (q transport.Queue, shared bool, err error) {
	if t.StreamFanout {
		return transport.Queue{Name: oslo.FanoutExchange(topic), Durable: true, Type: transport.StreamQueue, MessageTTL: t.TransientTTL}, true, nil
	}
	name, err := t.uniqueName(oslo.FanoutExchange(topic)+"_", func() string { return oslo.FanoutQueue(topic) })
	if err != nil {
		return transport.Queue{}, false, err
	}
	return t.transientQueue(name), false, nil
}

// uniqueName is prefix and the queue manager's next name, or random().
func (t Topology) uniqueName(prefix string, random func() string) (string, error) {
	if t.names == nil {
		return random(), nil
	}
	name, err := t.names.next()
	if err != nil {
		return "", err
	}
	return prefix + name, nil
}

// transientQueue is a reply or fanout queue: private to one process and
// expiring once unused; with TransientQuorum a durable quorum queue.
func (t Topology) transientQueue(name string) transport.Queue {
	q := transport.Queue{Name: name}
	if t.TransientQuorum {
		q.Durable, q.Type = true, transport.QuorumQueue
	}
	if t.caps.Has(transport.CapQueueExpiry) {
		q.Expires = t.TransientTTL
	}
	return q
}

// FanoutExchange is the exchange of fanout casts to topic: durable with
// TransientQuorum, as oslo declares it, and auto-delete.
func (t Topology) FanoutExchange(topic string) transport.Exchange {
	return transport.Exchange{Name: oslo.FanoutExchange(topic), Kind: transport.Fanout, Durable: t.TransientQuorum, AutoDelete: t.autoDelete(true)}
}

// Persistent is whether rpc and notify publish messages persistent: as
// oslo's rabbit driver does (kombu's default delivery mode), where the
// backend keeps them (CapDurable).
func (t Topology) Persistent() bool { return t.caps.Has(transport.CapDurable) }

func (t Topology) autoDelete(want bool) bool { return want && t.caps.Has(transport.CapAutoDelete) }
