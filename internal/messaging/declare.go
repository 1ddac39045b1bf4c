package messaging

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/switchyard-mq/switchyard/internal/rabbitmq"
	"github.com/switchyard-mq/switchyard/transport"
	"github.com/switchyard-mq/switchyard/transport/driver/option"
)

// DeclareExchange declares ex on tr. When the broker refuses it, the error
// names the options that decide it.
func (t Topology) DeclareExchange(ctx context.Context, tr *transport.Transport, ex transport.Exchange) error {
	return explain(tr.DeclareExchange(ctx, ex), "exchange", ex.Name)
}

// DeclareQueue declares q on tr and returns its name. When the broker
// refuses it, the error names the options that decide it.
func (t Topology) DeclareQueue(ctx context.Context, tr *transport.Transport, q transport.Queue) (string, error) {
	name, err := tr.DeclareQueue(ctx, q)
	return name, explain(err, "queue", q.Name)
}

// optionsOf names, for each property of a declaration the broker compares,
// the options that set it: a service that set them otherwise declared the
// entity first.
var optionsOf = map[string][]string{
	"durable": {option.DurableQueues.Spec().Name, rabbitmq.QuorumQueue.Spec().Name,
		rabbitmq.TransientQuorumQueue.Spec().Name},
	"auto_delete":      {option.AutoDelete.Spec().Name},
	"x-queue-type":     {rabbitmq.QuorumQueue.Spec().Name, rabbitmq.TransientQuorumQueue.Spec().Name, rabbitmq.StreamFanout.Spec().Name},
	"x-expires":        {option.TransientQueuesTTL.Spec().Name},
	"x-max-age":        {option.TransientQueuesTTL.Spec().Name},
	"x-delivery-limit": {rabbitmq.QuorumDeliveryLimit.Spec().Name},
	"x-ha-policy":      {rabbitmq.HAQueues.Spec().Name},
	// The notification queues' bounds (notify.QueuePolicy), options of
	// package config's [oslo_messaging_notifications].
	"x-max-length":  {"queue_max_length"},
	"x-message-ttl": {"queue_message_ttl"},
}

// explain adds to a broker's refusal of a declaration the options to set,
// on which side: every service that shares an exchange or a queue must
// declare it alike, and RabbitMQ 4 brokers refuse the non-durable,
// non-exclusive queues oslo.messaging's defaults declare.
func explain(err error, kind, name string) error {
	if err == nil {
		return nil
	}
	text := err.Error()
	switch {
	case errors.Is(err, transport.ErrUnsupported) && strings.Contains(text, "transient_nonexcl_queues"):
		return fmt.Errorf("%w; this broker refuses non-durable, non-exclusive queues (RabbitMQ's deprecated feature "+
			"transient_nonexcl_queues is denied), which oslo.messaging's defaults declare: set %s=true and %s=true "+
			"(or %s=true for the shared queues), as oslo.messaging's RabbitMQ guide recommends, on every service alike",
			err, rabbitmq.QuorumQueue.Spec().Name, rabbitmq.TransientQuorumQueue.Spec().Name, option.DurableQueues.Spec().Name)
	case errors.Is(err, transport.ErrPrecondition) && strings.Contains(text, "inequivalent arg '"):
		arg, _, _ := strings.Cut(text[strings.Index(text, "inequivalent arg '")+len("inequivalent arg '"):], "'")
		if names, ok := optionsOf[arg]; ok {
			return fmt.Errorf("%w; another service declared %s %q with another %s: set %s alike on every service that shares it",
				err, kind, name, arg, strings.Join(names, ", "))
		}
	}
	return err
}
