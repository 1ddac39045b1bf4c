package conformance

import (
	"github.com/switchyard-mq/switchyard/transport"
)

// poisonCases check that messages which cannot be handled leave their
// queue for its dead-letter exchange, and never loop forever.
func poisonCases() []testCase {
	return []testCase{
		{"rejected-dead-lettered", rejectedDeadLettered},
		{"expired-dead-lettered", expiredDeadLettered},
		{"delivery-limit-dead-lettered", deliveryLimitDeadLettered},
		{"delivery-limit-drops", deliveryLimitDrops},
		{"max-length-dead-lettered", maxLengthDeadLettered},
	}
}

// The dead-letter reasons, as RabbitMQ writes them in x-death.
const (
	reasonRejected      = "rejected"
	reasonExpired       = "expired"
	reasonMaxLen        = "maxlen"
	reasonDeliveryLimit = "delivery_limit"
)

// deadLetterSetup declares a direct dead-letter exchange, a queue bound to
// it with key "dead" to catch what dies, and a work queue from decl whose
// dead letters go there. It returns the work queue and a consumer of the
// dead letters.
func deadLetterSetup(e *env, tr *transport.Transport, decl transport.Queue) (string, *transport.Consumer) {
	e.t.Helper()
	dlx := e.declareExchange(tr, "dlx", transport.Direct)
	dlq := e.simpleQueue(tr, "dead-letters")
	e.bind(tr, dlx, dlq, "dead")
	decl.Name = uniqueName("work")
	decl.DeadLetterExchange = dlx
	decl.DeadLetterRoutingKey = "dead"
	return e.declareQueue(tr, decl), e.consume(tr, dlq, transport.ConsumeOptions{})
}

// wantDeadLetter receives the next dead letter and checks its body and,
// where headers reach consumers, the x-death reason and that the
// message's own headers were kept.
func (e *env) wantDeadLetter(dead *transport.Consumer, body, reason string) {
	e.t.Helper()
	d := e.receive(dead)
	if string(d.Body) != body {
		e.t.Errorf("dead letter: got body %q, want %q", d.Body, body)
	}
	if d.RoutingKey != "dead" {
		e.t.Errorf("dead letter: routing key %q, want the queue's dead-letter routing key %q", d.RoutingKey, "dead")
	}
	if e.caps.Has(transport.CapHeaders) {
		if got, ok := deathReason(d.Headers); !ok || got != reason {
			e.t.Errorf("dead letter: x-death reason %q (present %v), want %q; headers %v", got, ok, reason, d.Headers)
		}
		if d.Headers["x-app"] != "kept" {
			e.t.Errorf("dead letter: header x-app = %#v, want %q", d.Headers["x-app"], "kept")
		}
	}
	e.ack(d)
}

// deathReason reads the reason of the latest death from the x-death
// header, a list of tables, newest first.
func deathReason(h transport.Headers) (string, bool) {
	deaths, ok := h["x-death"].([]any)
	if !ok || len(deaths) == 0 {
		return "", false
	}
	var reason any
	switch d := deaths[0].(type) {
	case transport.Headers:
		reason = d["reason"]
	case map[string]any:
		reason = d["reason"]
	}
	s, ok := reason.(string)
	return s, ok
}

// poisonMessage is what the poison cases publish: a header of the
// application's own, to check that dead-lettering keeps it.
func poisonMessage(body string) transport.Message {
	return transport.Message{Body: []byte(body), Headers: transport.Headers{"x-app": "kept"}}
}

// rejectedDeadLettered: a rejected message goes to the dead-letter
// exchange with its headers, and x-death says why.
func rejectedDeadLettered(e *env) {
	require(e.t, e.caps, transport.CapDeadLetter, transport.CapDirect, transport.CapQueueBinding)
	tr := e.open()
	q, dead := deadLetterSetup(e, tr, transport.Queue{})
	e.publish(tr, "", q, poisonMessage("poison"))
	c := e.consume(tr, q, transport.ConsumeOptions{})
	if err := e.receive(c).Reject(); err != nil {
		e.t.Fatalf("reject: %v", err)
	}
	e.wantDeadLetter(dead, "poison", reasonRejected)
	e.expectNone(c)
}

// expiredDeadLettered: a message that outlives the queue's TTL goes to the
// dead-letter exchange, without anyone consuming the queue.
func expiredDeadLettered(e *env) {
	require(e.t, e.caps, transport.CapDeadLetter, transport.CapMessageTTL, transport.CapDirect, transport.CapQueueBinding)
	tr := e.open()
	q, dead := deadLetterSetup(e, tr, transport.Queue{MessageTTL: ttl})
	e.publish(tr, "", q, poisonMessage("stale"))
	e.wantDeadLetter(dead, "stale", reasonExpired)
	e.expectNone(e.consume(tr, q, transport.ConsumeOptions{}))
}

// deliveryLimitDeadLettered: a message nacked with requeue is delivered
// DeliveryLimit+1 times in all, then dead-lettered instead of requeued.
func deliveryLimitDeadLettered(e *env) {
	require(e.t, e.caps, transport.CapDeadLetter, transport.CapDeliveryLimit, transport.CapDirect, transport.CapQueueBinding)
	const limit = 2
	tr := e.open()
	q, dead := deadLetterSetup(e, tr, transport.Queue{DeliveryLimit: limit})
	e.publish(tr, "", q, poisonMessage("crashes the worker"))
	c := e.consume(tr, q, transport.ConsumeOptions{})
	nackAll(e, c, limit+1)
	e.wantDeadLetter(dead, "crashes the worker", reasonDeliveryLimit)
	e.expectNone(c)
}

// deliveryLimitDrops: without a dead-letter exchange, a message past its
// delivery limit is dropped: it never loops forever.
func deliveryLimitDrops(e *env) {
	require(e.t, e.caps, transport.CapDeliveryLimit)
	const limit = 2
	tr := e.open()
	q := e.declareQueue(tr, transport.Queue{Name: uniqueName("limited"), DeliveryLimit: limit})
	e.publishBodies(tr, "", q, "crashes the worker")
	c := e.consume(tr, q, transport.ConsumeOptions{})
	nackAll(e, c, limit+1)
	e.expectNone(c)
}

// nackAll receives n deliveries of the same message and nacks each with
// requeue, checking the redelivered flag (and count, where counted).
func nackAll(e *env, c *transport.Consumer, n int) {
	e.t.Helper()
	for i := range n {
		d := e.receive(c)
		if d.Redelivered != (i > 0) {
			e.t.Errorf("delivery %d: redelivered %v, want %v", i+1, d.Redelivered, i > 0)
		}
		if e.caps.Has(transport.CapDeliveryCount) && d.DeliveryCount != i {
			e.t.Errorf("delivery %d: DeliveryCount %d, want %d", i+1, d.DeliveryCount, i)
		}
		if err := d.Nack(true); err != nil {
			e.t.Fatalf("delivery %d: nack with requeue: %v", i+1, err)
		}
	}
}

// maxLengthDeadLettered: the oldest messages pushed out by MaxLength go to
// the dead-letter exchange.
func maxLengthDeadLettered(e *env) {
	require(e.t, e.caps, transport.CapDeadLetter, transport.CapMaxLength, transport.CapDirect, transport.CapQueueBinding)
	tr := e.open()
	q, dead := deadLetterSetup(e, tr, transport.Queue{MaxLength: 1})
	e.publish(tr, "", q, poisonMessage("pushed out"))
	e.publish(tr, "", q, poisonMessage("kept"))
	e.wantDeadLetter(dead, "pushed out", reasonMaxLen)
	c := e.consume(tr, q, transport.ConsumeOptions{})
	if got := e.receiveBodies(c, 1, false); got[0] != "kept" {
		e.t.Errorf("queue kept %q, want %q", got[0], "kept")
	}
	e.expectNone(c)
	e.expectNone(dead)
}
