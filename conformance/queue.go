package conformance

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-mq/switchyard/transport"
)

// queueCases are RabbitMQ's tutorials 1 and 2: one queue, the default
// exchange, competing consumers, acknowledgements and redelivery.
func queueCases() []testCase {
	return []testCase{
		{"hello-world", helloWorld},
		{"competing-consumers", competingConsumers},
		{"receivers-share-a-consumer", receiversShareAConsumer},
		{"fair-dispatch", fairDispatch},
		{"prefetch-bounds-unacked", prefetchBoundsUnacked},
		{"redeliver-on-consumer-close", func(e *env) { redeliverOnClose(e, false) }},
		{"redeliver-on-transport-close", func(e *env) { redeliverOnClose(e, true) }},
		{"nack-requeue", nackRequeue},
		{"reject-removes", func(e *env) { rejectRemoves(e, (*transport.Delivery).Reject) }},
		{"nack-without-requeue-removes", func(e *env) {
			rejectRemoves(e, func(d *transport.Delivery) error { return d.Nack(false) })
		}},
		{"exclusive-consumer", exclusiveConsumer},
		{"purge-and-delete-count", purgeAndDeleteCount},
		{"quorum-queue", quorumQueue},
		{"stream-queue", streamQueue},
	}
}

// quorumQueue: a quorum queue is a queue like any other to its producers
// and consumers, and counts a message's returns. (Where a requeued message
// goes, head or tail, is the broker's: RabbitMQ's quorum queues have put
// it at either over their versions.)
func quorumQueue(e *env) {
	require(e.t, e.caps, transport.CapQuorumQueue)
	tr := e.open()
	q := e.declareQueue(tr, transport.Queue{Name: uniqueName("quorum"), Durable: true, Type: transport.QuorumQueue})
	e.publishBodies(tr, "", q, "one")
	c := e.consume(tr, q, transport.ConsumeOptions{Prefetch: 1})
	d := e.receive(c)
	if err := d.Nack(true); err != nil {
		e.t.Fatalf("nack with requeue: %v", err)
	}
	again := e.receive(c)
	if string(again.Body) != string(d.Body) || !again.Redelivered {
		e.t.Errorf("after a requeue: got %q (redelivered %v), want %q again, redelivered", again.Body, again.Redelivered, d.Body)
	}
	if e.caps.Has(transport.CapDeliveryCount) && again.DeliveryCount < 1 {
		e.t.Errorf("a requeued message's DeliveryCount is %d, want at least 1", again.DeliveryCount)
	}
	e.ack(again)
	e.publishBodies(tr, "", q, "two")
	e.wantSameBodies("the next", e.receiveBodies(c, 1, false), []string{"two"})
}

// streamQueue: every consumer of a stream reads every message published
// after it started, whoever else read it; an early message is not read by
// a later consumer.
func streamQueue(e *env) {
	require(e.t, e.caps, transport.CapStreamQueue)
	tr := e.open()
	q := e.declareQueue(tr, transport.Queue{Name: uniqueName("stream"), Durable: true, Type: transport.StreamQueue, MessageTTL: time.Hour})
	first := e.consume(tr, q, transport.ConsumeOptions{Prefetch: 10})
	e.publishBodies(tr, "", q, "early")
	e.wantSameBodies("the first consumer", e.receiveBodies(first, 1, false), []string{"early"})
	second := e.consume(tr, q, transport.ConsumeOptions{Prefetch: 10, AutoAck: true})
	e.publishBodies(tr, "", q, "a", "b", "c")
	e.wantSameBodies("the first consumer", e.receiveBodies(first, 3, false), []string{"a", "b", "c"})
	e.wantSameBodies("the second consumer", e.receiveBodies(second, 3, true), []string{"a", "b", "c"})
	e.expectNone(second)
}

// helloWorld publishes one message on the default exchange and consumes
// it, checking that every property survives the trip and that an acked
// message is gone for good.
func helloWorld(e *env) {
	tr := e.open()
	q := e.simpleQueue(tr, "hello")
	sent := transport.Message{
		Body:            []byte("Hello World!"),
		ContentType:     "text/plain",
		ContentEncoding: "utf-8",
		MessageID:       "message-1",
		CorrelationID:   "correlation-1",
		ReplyTo:         "reply.queue",
		// Persistent where the backend keeps messages; elsewhere the
		// flag is ErrUnsupported (the unsupported-properties case).
		Persistent: e.caps.Has(transport.CapDurable),
	}
	withHeaders := e.caps.Has(transport.CapHeaders)
	if withHeaders {
		sent.Headers = transport.Headers{"x-string": "value", "x-int": int64(42), "x-bool": true}
		sent.Timestamp = time.Date(2024, 5, 17, 10, 30, 0, 0, time.UTC) // whole seconds: AMQP's precision
	} else {
		e.t.Logf("not supported: the backend lacks capability %q; headers and timestamp not checked", transport.CapHeaders)
	}
	e.publish(tr, "", q, sent)

	c := e.consume(tr, q, transport.ConsumeOptions{})
	d := e.receive(c)
	check := func(what string, got, want any) {
		e.t.Helper()
		if got != want {
			e.t.Errorf("%s: got %#v, want %#v", what, got, want)
		}
	}
	check("body", string(d.Body), string(sent.Body))
	check("exchange", d.Exchange, "")
	check("routing key", d.RoutingKey, q)
	check("redelivered", d.Redelivered, false)
	check("content type", d.ContentType, sent.ContentType)
	check("content encoding", d.ContentEncoding, sent.ContentEncoding)
	check("message id", d.MessageID, sent.MessageID)
	check("correlation id", d.CorrelationID, sent.CorrelationID)
	check("reply-to", d.ReplyTo, sent.ReplyTo)
	check("persistent", d.Persistent, sent.Persistent)
	check("mandatory (a publish flag, never delivered)", d.Mandatory, false)
	if withHeaders {
		for k, want := range sent.Headers {
			if got, ok := d.Headers[k]; !ok || !sameHeaderValue(got, want) {
				e.t.Errorf("header %q: got %#v (present %v), want %#v", k, got, ok, want)
			}
		}
		if !d.Timestamp.Equal(sent.Timestamp) {
			e.t.Errorf("timestamp: got %v, want %v", d.Timestamp, sent.Timestamp)
		}
	}
	e.ack(d)
	e.expectNone(c)

	// Acked means gone: a new consumer gets nothing back.
	if err := c.Close(); err != nil {
		e.t.Fatalf("close consumer: %v", err)
	}
	e.expectNone(e.consume(e.open(), q, transport.ConsumeOptions{}))
}

// sameHeaderValue compares header values, letting an integer come back as
// another integer type (backends encode them differently).
func sameHeaderValue(got, want any) bool {
	if g, ok := asInt64(got); ok {
		w, ok := asInt64(want)
		return ok && g == w
	}
	return got == want
}

func asInt64(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int8:
		return int64(n), true
	case int16:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case uint8:
		return int64(n), true
	case uint16:
		return int64(n), true
	case uint32:
		return int64(n), true
	}
	return 0, false
}

// competingConsumers: three workers on one queue, each on its own
// transport, share 300 tasks: every task is handled by exactly one worker.
// receiversShareAConsumer holds Consumer.Receive to its promise that
// several goroutines may call it: each of a consumer's receivers gets a
// message of its own while the others hold theirs unsettled, without
// returning to Receive (a worker pool on one consumer), none is handed
// the same message, and one giving up leaves the others waiting.
func receiversShareAConsumer(e *env) {
	const receivers, rounds = 4, 10 // rounds: the races are short windows
	tr := e.open()
	q := e.simpleQueue(tr, "shared-consumer")
	c := e.consume(tr, q, transport.ConsumeOptions{Prefetch: 2 * receivers})
	type result struct {
		d   *transport.Delivery
		err error
	}
	for round := range rounds {
		results := make(chan result, receivers)
		for range receivers {
			go func() {
				d, err := e.tryReceive(c)
				results <- result{d, err}
			}()
		}
		// One more receiver gives up before anything is published: the
		// others must still be woken.
		quitter, quit := context.WithCancel(e.ctx)
		quitted := make(chan error, 1)
		go func() {
			_, err := c.Receive(quitter)
			quitted <- err
		}()
		quit()
		if err := <-quitted; !errors.Is(err, context.Canceled) {
			e.t.Fatalf("round %d: a receiver whose context was cancelled: got %v, want context.Canceled", round, err)
		}
		sent := bodies(fmt.Sprintf("shared-%d", round), receivers)
		e.publishBodies(tr, "", q, sent...)
		var got []string
		var held []*transport.Delivery
		for range receivers {
			r := <-results
			if r.err != nil {
				e.t.Errorf("round %d: a receiver got nothing while the others held their messages (%d of %d received): %v",
					round, len(got), receivers, r.err)
				continue
			}
			got = append(got, string(r.d.Body))
			held = append(held, r.d)
		}
		for _, d := range held {
			e.ack(d)
		}
		e.wantSameBodies(fmt.Sprintf("round %d: receivers of one consumer", round), got, sent)
		if e.t.Failed() {
			return
		}
	}
}

func competingConsumers(e *env) {
	const workers, total = 3, 300
	pub := e.open()
	q := e.simpleQueue(pub, "tasks")
	sent := bodies("task", total)
	consumers := make([]*transport.Consumer, workers)
	for i := range consumers {
		consumers[i] = e.consume(e.open(), q, transport.ConsumeOptions{})
	}
	e.publishBodies(pub, "", q, sent...)

	got := make([][]string, workers)
	// Every worker takes one task before they run concurrently, so each
	// is known to compete.
	for i, c := range consumers {
		got[i] = e.receiveBodies(c, 1, false)
	}
	received := atomic.Int64{}
	received.Store(workers)
	drainCtx, allReceived := context.WithCancel(e.ctx)
	defer allReceived()
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for i, c := range consumers {
		wg.Go(func() {
			for {
				d, err := c.Receive(drainCtx)
				if err != nil {
					if e.ctx.Err() != nil || drainCtx.Err() == nil {
						errs[i] = fmt.Errorf("worker %d after %d of %d tasks in all: %w", i, received.Load(), total, err)
					}
					return
				}
				if err := d.Ack(); err != nil {
					errs[i] = fmt.Errorf("worker %d: ack %q: %w", i, d.Body, err)
					return
				}
				got[i] = append(got[i], string(d.Body))
				if received.Add(1) >= total {
					allReceived()
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		e.t.Fatal(err)
	}
	owner := map[string]int{}
	for i, bodies := range got {
		for _, b := range bodies {
			if j, dup := owner[b]; dup {
				e.t.Errorf("task %q delivered to worker %d and worker %d", b, j, i)
			}
			owner[b] = i
		}
	}
	for _, b := range sent {
		if _, ok := owner[b]; !ok {
			e.t.Errorf("task %q never delivered", b)
		}
	}
	for _, c := range consumers {
		e.expectNone(c)
	}
	e.t.Logf("tasks per worker: %d, %d, %d", len(got[0]), len(got[1]), len(got[2]))
}

// fairDispatch: with prefetch 1, a worker busy with one task gets nothing
// more; an idle one takes everything else.
func fairDispatch(e *env) {
	require(e.t, e.caps, transport.CapPrefetch)
	pub := e.open()
	q := e.simpleQueue(pub, "tasks")
	slow := e.consume(e.open(), q, transport.ConsumeOptions{Prefetch: 1})
	fast := e.consume(e.open(), q, transport.ConsumeOptions{Prefetch: 1})
	sent := bodies("task", 20)
	e.publishBodies(pub, "", q, sent...)

	held := e.receive(slow) // the slow worker is busy with this one
	got := e.receiveBodies(fast, len(sent)-1, false)
	e.expectNone(slow)
	e.expectNone(fast)
	e.wantSameBodies("slow and fast workers together", append(got, string(held.Body)), sent)
	e.ack(held)
	e.expectNone(slow)
}

// prefetchBoundsUnacked: a consumer never holds more unsettled deliveries
// than its prefetch; settling one lets the next through.
func prefetchBoundsUnacked(e *env) {
	require(e.t, e.caps, transport.CapPrefetch)
	tr := e.open()
	q := e.simpleQueue(tr, "prefetch")
	e.publishBodies(tr, "", q, bodies("m", 5)...)
	c := e.consume(tr, q, transport.ConsumeOptions{Prefetch: 3})
	held := []*transport.Delivery{e.receive(c), e.receive(c), e.receive(c)}
	e.expectNone(c)
	e.ack(held[0])
	held = append(held, e.receive(c))
	for _, d := range held[1:] {
		e.ack(d)
	}
	if d := e.receive(c); string(d.Body) != "m-4" {
		e.t.Errorf("last delivery: got %q, want %q", d.Body, "m-4")
	} else {
		e.ack(d)
	}
	e.expectNone(c)
}

// redeliverOnClose: deliveries left unsettled when their consumer (or its
// whole transport) closes return to the queue, marked redelivered, and
// nothing is lost or duplicated.
func redeliverOnClose(e *env, closeTransport bool) {
	tr := e.open()
	q := e.simpleQueue(tr, "work")
	sent := []string{"a", "b", "c"}
	e.publishBodies(tr, "", q, sent...)

	first := e.open()
	c1 := e.consume(first, q, transport.ConsumeOptions{})
	unsettled := e.receive(c1)
	if closeTransport {
		if err := first.Close(); err != nil {
			e.t.Fatalf("close transport: %v", err)
		}
	} else if err := c1.Close(); err != nil {
		e.t.Fatalf("close consumer: %v", err)
	}
	e.wantErr("ack after the consumer closed", unsettled.Ack(), transport.ErrClosed)

	c2 := e.consume(tr, q, transport.ConsumeOptions{})
	seen := map[string]bool{}
	for range sent {
		d := e.receive(c2)
		b := string(d.Body)
		if seen[b] {
			e.t.Errorf("%q delivered twice to the second consumer", b)
		}
		seen[b] = true
		if b == string(unsettled.Body) {
			if !d.Redelivered {
				e.t.Errorf("%q was handed out before: want Redelivered set", b)
			}
			if e.caps.Has(transport.CapDeliveryCount) && d.DeliveryCount < 1 {
				e.t.Errorf("%q was returned once: DeliveryCount %d, want >= 1", b, d.DeliveryCount)
			}
		}
		e.ack(d)
	}
	for _, b := range sent {
		if !seen[b] {
			e.t.Errorf("%q lost", b)
		}
	}
	e.expectNone(c2)
}

// nackRequeue: a message nacked with requeue comes back, marked
// redelivered.
func nackRequeue(e *env) {
	tr := e.open()
	q := e.simpleQueue(tr, "work")
	e.publishBodies(tr, "", q, "retry-me")
	c := e.consume(tr, q, transport.ConsumeOptions{})
	d := e.receive(c)
	if d.Redelivered {
		e.t.Errorf("first delivery marked redelivered")
	}
	if err := d.Nack(true); err != nil {
		e.t.Fatalf("nack with requeue: %v", err)
	}
	again := e.receive(c)
	if string(again.Body) != "retry-me" || !again.Redelivered {
		e.t.Errorf("after nack with requeue: got %q redelivered=%v, want %q redelivered=true", again.Body, again.Redelivered, "retry-me")
	}
	if e.caps.Has(transport.CapDeliveryCount) && again.DeliveryCount != 1 {
		e.t.Errorf("DeliveryCount after one requeue: got %d, want 1", again.DeliveryCount)
	}
	e.ack(again)
	e.expectNone(c)
}

// rejectRemoves: a message refused without requeue (and without a
// dead-letter exchange) is gone; the next one is delivered.
func rejectRemoves(e *env, refuse func(*transport.Delivery) error) {
	tr := e.open()
	q := e.simpleQueue(tr, "work")
	e.publishBodies(tr, "", q, "poison", "next")
	c := e.consume(tr, q, transport.ConsumeOptions{})
	d := e.receive(c)
	if string(d.Body) != "poison" {
		e.t.Fatalf("first delivery: got %q, want %q", d.Body, "poison")
	}
	if err := refuse(d); err != nil {
		e.t.Fatalf("refuse: %v", err)
	}
	if got := e.receiveBodies(c, 1, false); got[0] != "next" {
		e.t.Errorf("after refusing %q: got %q, want %q", "poison", got[0], "next")
	}
	e.expectNone(c)
}

// exclusiveConsumer: a consumer that asked to be exclusive is the queue's
// only one (ErrInUse for others), and cannot start on a queue in use.
func exclusiveConsumer(e *env) {
	require(e.t, e.caps, transport.CapExclusiveConsumer)
	tr := e.open()
	// Classic: RabbitMQ ignores consumer exclusivity on its quorum queues.
	q := e.declareQueue(tr, transport.Queue{Name: uniqueName("exclusive-consumer"), Type: transport.ClassicQueue})
	only := e.consume(tr, q, transport.ConsumeOptions{Exclusive: true})
	_, err := e.open().Consume(e.ctx, q, transport.ConsumeOptions{})
	e.wantErr("a second consumer beside an exclusive one", err, transport.ErrInUse)
	if err := only.Close(); err != nil {
		e.t.Fatalf("close exclusive consumer: %v", err)
	}
	e.consume(tr, q, transport.ConsumeOptions{})
	_, err = e.open().Consume(e.ctx, q, transport.ConsumeOptions{Exclusive: true})
	e.wantErr("an exclusive consumer on a queue in use", err, transport.ErrInUse)
}

// purgeAndDeleteCount: PurgeQueue and DeleteQueue report how many ready
// messages they dropped, and purged messages are gone.
func purgeAndDeleteCount(e *env) {
	tr := e.open()
	q := e.simpleQueue(tr, "purge")
	e.publishBodies(tr, "", q, bodies("m", 3)...)
	if n, err := tr.PurgeQueue(e.ctx, q); err != nil || n != 3 {
		e.t.Errorf("purge: %d, %v; want 3 messages", n, err)
	}
	e.publishBodies(tr, "", q, "after purge")
	c := e.consume(tr, q, transport.ConsumeOptions{})
	if got := e.receiveBodies(c, 1, false); got[0] != "after purge" {
		e.t.Errorf("after purge: got %q", got[0])
	}
	if err := c.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.publishBodies(tr, "", q, bodies("m", 2)...)
	if n, err := tr.DeleteQueue(e.ctx, q); err != nil || n != 2 {
		e.t.Errorf("delete: %d, %v; want 2 messages", n, err)
	}
	if e.caps.Has(transport.CapQueueExistence) {
		e.queueGone(tr, q)
	}
}
