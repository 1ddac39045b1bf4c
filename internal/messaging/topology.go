package messaging

import (
	"fmt"
	"time"

	"github.com/switchyard-mq/switchyard/internal/oslo"
	"github.com/switchyard-mq/switchyard/internal/rabbitmq"
	"github.com/switchyard-mq/switchyard/transport"
	"github.com/switchyard-mq/switchyard/transport/driver/option"
)

// Topology turns oslo.messaging's topology options into the portable
// model's declarations, so that rpc and notify create, on every backend,
// the exchanges and queues oslo.messaging's rabbit driver creates.
//
// The options come from the transport URL's query, under oslo's names:
// control_exchange, amqp_durable_queues, amqp_auto_delete and
// rabbit_transient_queues_ttl. Where a backend lacks a capability
// (auto-delete, queue expiry) the flag is left out rather than failing,
// since those flags only tidy up and change no routing.
type Topology struct {
	// ControlExchange is the exchange of targets that name none.
	ControlExchange string
	// Durable and AutoDelete flag the control exchange and the shared
	// (topic and notification) queues.
	Durable, AutoDelete bool
	// TransientTTL expires reply and fanout queues left unused.
	TransientTTL time.Duration

	caps transport.Capabilities
}

// topologyOptions are those a Topology reads: the portable ones, and the
// rabbit driver's rabbit_quorum_queue, which makes the exchange and shared
// queues durable, as oslo does (other drivers refuse it at Open).
var topologyOptions = option.NewSet(append(option.Portable(), rabbitmq.QuorumQueue)...)

// NewTopology reads the topology from tr's URL options, with oslo's
// defaults.
func NewTopology(tr *transport.Transport) (Topology, error) {
	v, err := topologyOptions.Pick(tr.URL())
	if err != nil {
		return Topology{}, err
	}
	t := Topology{
		ControlExchange: option.ControlExchange.Get(v),
		Durable:         option.DurableQueues.Get(v) || rabbitmq.QuorumQueue.Get(v),
		AutoDelete:      option.AutoDelete.Get(v),
		TransientTTL:    option.TransientQueuesTTL.Get(v),
		caps:            tr.Capabilities(),
	}
	if t.ControlExchange == "" {
		return t, fmt.Errorf("%w: option control_exchange is empty", transport.ErrInvalid)
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
// outlives them.
func (t Topology) SharedQueue(name string) transport.Queue {
	return transport.Queue{Name: name, Durable: t.Durable, AutoDelete: t.autoDelete(t.AutoDelete)}
}

// TransientQueue is a reply or fanout queue: private to one process and
// expiring once unused.
func (t Topology) TransientQueue(name string) transport.Queue {
	q := transport.Queue{Name: name}
	if t.caps.Has(transport.CapQueueExpiry) {
		q.Expires = t.TransientTTL
	}
	return q
}

// FanoutExchange is the exchange of fanout casts to topic.
func (t Topology) FanoutExchange(topic string) transport.Exchange {
	return transport.Exchange{Name: oslo.FanoutExchange(topic), Kind: transport.Fanout, AutoDelete: t.autoDelete(true)}
}

func (t Topology) autoDelete(want bool) bool { return want && t.caps.Has(transport.CapAutoDelete) }
