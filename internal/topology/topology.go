// Package topology turns oslo.messaging's topology options into the
// portable model's declarations, so that the rpc and notify packages
// create, on every backend, the exchanges and queues oslo.messaging's
// rabbit driver creates (reference/oslo-wire.md, sections 2 and 3).
//
// The options come from the transport URL's query, under oslo's names:
// control_exchange, amqp_durable_queues, amqp_auto_delete and
// rabbit_transient_queues_ttl. Where a backend lacks a capability
// (auto-delete, queue expiry) the flag is left out rather than failing,
// since those flags only tidy up and change no routing.
package topology

import (
	"fmt"
	"time"

	"github.com/switchyard-mq/switchyard/internal/oslo"
	"github.com/switchyard-mq/switchyard/internal/rabbitmq"
	"github.com/switchyard-mq/switchyard/transport"
	"github.com/switchyard-mq/switchyard/transport/driver/option"
)

// Settings are the topology options of one transport.
type Settings struct {
	// ControlExchange is the exchange of targets that name none.
	ControlExchange string
	// Durable and AutoDelete flag the control exchange and the shared
	// (topic and notification) queues.
	Durable, AutoDelete bool
	// TransientTTL expires reply and fanout queues left unused.
	TransientTTL time.Duration

	caps transport.Capabilities
}

// options are those the settings read: the portable ones, and the rabbit
// driver's rabbit_quorum_queue, which makes the exchange and shared
// queues durable, as oslo does (other drivers refuse it at Open).
var options = option.NewSet(append(option.Portable(), rabbitmq.QuorumQueue)...)

// FromTransport reads the settings from tr's URL options, with oslo's
// defaults.
func FromTransport(tr *transport.Transport) (Settings, error) {
	v, err := options.Pick(tr.URL())
	if err != nil {
		return Settings{}, err
	}
	s := Settings{
		ControlExchange: option.ControlExchange.Get(v),
		Durable:         option.DurableQueues.Get(v) || rabbitmq.QuorumQueue.Get(v),
		AutoDelete:      option.AutoDelete.Get(v),
		TransientTTL:    option.TransientQueuesTTL.Get(v),
		caps:            tr.Capabilities(),
	}
	if s.ControlExchange == "" {
		return s, fmt.Errorf("%w: option control_exchange is empty", transport.ErrInvalid)
	}
	return s, nil
}

// ExchangeName is the target's exchange, or the control exchange.
func (s Settings) ExchangeName(t transport.Target) string {
	if t.Exchange != "" {
		return t.Exchange
	}
	return s.ControlExchange
}

// Exchange is the topic exchange RPC requests and notifications go to.
func (s Settings) Exchange(name string) transport.Exchange {
	return transport.Exchange{Name: name, Kind: transport.Topic, Durable: s.Durable, AutoDelete: s.autoDelete(s.AutoDelete)}
}

// SharedQueue is a topic or notification queue: consumers share it and it
// outlives them.
func (s Settings) SharedQueue(name string) transport.Queue {
	return transport.Queue{Name: name, Durable: s.Durable, AutoDelete: s.autoDelete(s.AutoDelete)}
}

// TransientQueue is a reply or fanout queue: private to one process and
// expiring once unused.
func (s Settings) TransientQueue(name string) transport.Queue {
	q := transport.Queue{Name: name}
	if s.caps.Has(transport.CapQueueExpiry) {
		q.Expires = s.TransientTTL
	}
	return q
}

// FanoutExchange is the exchange of fanout casts to topic.
func (s Settings) FanoutExchange(topic string) transport.Exchange {
	return transport.Exchange{Name: oslo.FanoutExchange(topic), Kind: transport.Fanout, AutoDelete: s.autoDelete(true)}
}

func (s Settings) autoDelete(want bool) bool { return want && s.caps.Has(transport.CapAutoDelete) }
