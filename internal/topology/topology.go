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
	"strconv"
	"time"

	"github.com/switchyard-mq/switchyard/internal/oslo"
	"github.com/switchyard-mq/switchyard/transport"
	"github.com/switchyard-mq/switchyard/transport/driver"
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

// FromTransport reads the settings from tr's URL options, with oslo's
// defaults.
func FromTransport(tr *transport.Transport) (Settings, error) {
	cfg := tr.Config()
	s := Settings{
		ControlExchange: cfg.Option("control_exchange", oslo.DefaultControlExchange),
		TransientTTL:    oslo.DefaultTransientQueueTTL,
		caps:            tr.Capabilities(),
	}
	var err error
	if s.Durable, err = boolOption(cfg, "amqp_durable_queues"); err != nil {
		return s, err
	}
	if s.AutoDelete, err = boolOption(cfg, "amqp_auto_delete"); err != nil {
		return s, err
	}
	// oslo makes the exchange and shared queues durable for quorum queues
	// too (rabbit_quorum_queue is the rabbit driver's option; other drivers
	// refuse it as unknown).
	quorum, err := boolOption(cfg, "rabbit_quorum_queue")
	if err != nil {
		return s, err
	}
	s.Durable = s.Durable || quorum
	if v := cfg.Option("rabbit_transient_queues_ttl", ""); v != "" {
		secs, err := strconv.Atoi(v)
		if err != nil || secs < 1 {
			return s, fmt.Errorf("%w: option rabbit_transient_queues_ttl=%q is not a positive number of seconds", transport.ErrInvalid, v)
		}
		s.TransientTTL = time.Duration(secs) * time.Second
	}
	if s.ControlExchange == "" {
		return s, fmt.Errorf("%w: option control_exchange is empty", transport.ErrInvalid)
	}
	return s, nil
}

func boolOption(cfg *transport.Config, name string) (bool, error) {
	v := cfg.Option(name, "false")
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%w: option %s=%q is not a boolean", transport.ErrInvalid, name, v)
	}
	return b, nil
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
	if s.caps.Has(driver.CapQueueExpiry) {
		q.Expires = s.TransientTTL
	}
	return q
}

// FanoutExchange is the exchange of fanout casts to topic.
func (s Settings) FanoutExchange(topic string) transport.Exchange {
	return transport.Exchange{Name: oslo.FanoutExchange(topic), Kind: transport.Fanout, AutoDelete: s.autoDelete(true)}
}

func (s Settings) autoDelete(want bool) bool { return want && s.caps.Has(driver.CapAutoDelete) }
