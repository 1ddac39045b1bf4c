package zmq

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/switchyard-mq/switchyard/transport/driver"
)

// Dead-lettering, done by the sender since it holds the message.

const (
	reasonRejected      = "rejected"
	reasonExpired       = "expired"
	reasonDeliveryLimit = "delivery_limit"
)

// deadLetterLocked finishes h and republishes it to its queue's
// dead-letter exchange, with RabbitMQ's x-death headers, if it has one.
func (s *sender) deadLetterLocked(h *held, reason string) {
	s.finishLocked(h)
	decl := h.q.decl
	if decl.DeadLetterExchange == "" {
		s.logger.DebugContext(context.Background(), "zmq: message dropped", "queue", h.q.name, "reason", reason)
		return
	}
	var msg driver.Message
	exchange, key, err := decodeProps(h.props, &msg)
	if err != nil {
		s.logger.ErrorContext(context.Background(), "zmq: cannot dead-letter a message whose properties do not decode", "queue", h.q.name, "err", err)
		return
	}
	if deadLetterCycle(msg.Headers, h.q.name) {
		s.logger.DebugContext(context.Background(), "zmq: dead-letter cycle: message dropped", "queue", h.q.name)
		return
	}
	msg.Headers = deathHeaders(msg.Headers, h.q.name, reason, exchange, key, msg.Expiration)
	msg.Expiration = 0
	dlKey := key
	if decl.DeadLetterRoutingKey != "" {
		dlKey = decl.DeadLetterRoutingKey
	}
	props, err := encodeProps(decl.DeadLetterExchange, dlKey, &msg)
	if err != nil {
		s.logger.ErrorContext(context.Background(), "zmq: cannot encode a dead letter", "queue", h.q.name, "err", err)
		return
	}
	queues, err := s.view.route(decl.DeadLetterExchange, dlKey, nil)
	if err != nil {
		s.logger.WarnContext(context.Background(), "zmq: dead-lettering failed; message dropped", "queue", h.q.name, "reason", reason, "err", err)
		return
	}
	now := time.Now()
	for _, name := range queues {
		if q := s.outQueueLocked(name); q != nil {
			s.addLocked(&held{q: q, props: props, body: h.body, since: now, expires: expiry(now, 0, q.decl.MessageTTL)}, now)
		}
	}
}

// deadLetterCycle reports whether the message already died in queue for
// a reason other than rejection; RabbitMQ drops it rather than loop.
func deadLetterCycle(h driver.Headers, queue string) bool {
	deaths, _ := h["x-death"].([]any)
	for _, d := range deaths {
		if dh, ok := d.(driver.Headers); ok && dh["queue"] == queue && dh["reason"] != reasonRejected {
			return true
		}
	}
	return false
}

// deathHeaders adds an x-death entry as RabbitMQ does.
func deathHeaders(h driver.Headers, queue, reason, exchange, key string, expiration time.Duration) driver.Headers {
	out := maps.Clone(h)
	if out == nil {
		out = driver.Headers{}
	}
	death := driver.Headers{
		"queue":        queue,
		"reason":       reason,
		"count":        int64(1),
		"exchange":     exchange,
		"routing-keys": []any{key},
		"time":         time.Now().UTC().Truncate(time.Second),
	}
	if expiration > 0 {
		death["original-expiration"] = fmt.Sprint(expiration.Milliseconds())
	}
	deaths, _ := out["x-death"].([]any)
	merged := []any{death}
	for _, d := range deaths {
		if dh, ok := d.(driver.Headers); ok && dh["queue"] == queue && dh["reason"] == reason {
			count, _ := dh["count"].(int64)
			death["count"] = count + 1
			continue
		}
		merged = append(merged, d)
	}
	out["x-death"] = merged
	for k, v := range map[string]string{"x-first-death-queue": queue, "x-first-death-reason": reason, "x-first-death-exchange": exchange} {
		if _, ok := out[k]; !ok {
			out[k] = v
		}
	}
	return out
}
