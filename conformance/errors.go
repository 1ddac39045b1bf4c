package conformance

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/switchyard-mq/switchyard/transport"
)

// errorCases check that every failure is reported with the right sentinel
// error, that nothing blocks forever, and what is deliberately not an
// error.
func errorCases() []testCase {
	return []testCase{
		{"not-found", notFound},
		{"closed-transport", closedTransport},
		{"receive-unblocks", receiveUnblocks},
		{"invalid-names", invalidNames},
		{"redeclare-precondition", redeclarePrecondition},
		{"missing-is-not-an-error", missingIsNotAnError},
		{"settle-twice", settleTwice},
	}
}

// notFound: using a queue or exchange that does not exist is ErrNotFound.
// (Publishing to the default exchange with a key naming no queue is not:
// the message is unroutable; see pubsub/mandatory-unroutable.)
func notFound(e *env) {
	rows := []struct {
		name  string
		needs []transport.Capability
		call  func(e *env, tr *transport.Transport) error
	}{
		{"consume a missing queue", []transport.Capability{transport.CapQueueExistence}, func(e *env, tr *transport.Transport) error {
			_, err := tr.Consume(e.ctx, uniqueName("missing"), transport.ConsumeOptions{})
			return err
		}},
		{"purge a missing queue", []transport.Capability{transport.CapQueueExistence}, func(e *env, tr *transport.Transport) error {
			_, err := tr.PurgeQueue(e.ctx, uniqueName("missing"))
			return err
		}},
		{"publish to a missing exchange", nil, func(e *env, tr *transport.Transport) error {
			return tr.Publish(e.ctx, uniqueName("missing"), "key", transport.Message{Body: []byte("x")})
		}},
		{"bind to a missing exchange", []transport.Capability{transport.CapQueueBinding}, func(e *env, tr *transport.Transport) error {
			return tr.Bind(e.ctx, transport.Binding{Exchange: uniqueName("missing"), Queue: e.simpleQueue(tr, "q"), Key: "k"})
		}},
		{"bind a missing queue", []transport.Capability{transport.CapQueueBinding, transport.CapDirect, transport.CapQueueExistence}, func(e *env, tr *transport.Transport) error {
			x := e.declareExchange(tr, "x", transport.Direct)
			return tr.Bind(e.ctx, transport.Binding{Exchange: x, Queue: uniqueName("missing"), Key: "k"})
		}},
	}
	for _, row := range rows {
		e.run(row.name, func(e *env) {
			require(e.t, e.caps, row.needs...)
			tr := e.open()
			e.wantErr(row.name, row.call(e, tr), transport.ErrNotFound)
			// The transport stays usable after the error (on AMQP 0-9-1 the
			// broker closes the channel; the driver must hide that).
			e.publish(tr, "", uniqueName("after-error"), transport.Message{Body: []byte("still open")})
		})
	}
}

// closedTransport: after Close, every method returns ErrClosed, and Close
// itself is idempotent.
func closedTransport(e *env) {
	tr := e.open()
	q := e.simpleQueue(tr, "q")
	e.publishBodies(tr, "", q, "m")
	c := e.consume(tr, q, transport.ConsumeOptions{})
	d := e.receive(c)
	if err := tr.Close(); err != nil {
		e.t.Fatalf("close: %v", err)
	}
	ctx := e.ctx
	x := uniqueName("x")
	binding := transport.Binding{Exchange: "amq.direct", Queue: q, Key: "k"}
	rows := []struct {
		method string
		call   func() error
	}{
		{"DeclareExchange", func() error { return tr.DeclareExchange(ctx, transport.Exchange{Name: x, Kind: transport.Direct}) }},
		{"DeleteExchange", func() error { return tr.DeleteExchange(ctx, x) }},
		{"DeclareQueue", func() error { _, err := tr.DeclareQueue(ctx, transport.Queue{Name: q}); return err }},
		{"DeclareQueue server-named", func() error { _, err := tr.DeclareQueue(ctx, transport.Queue{}); return err }},
		{"DeleteQueue", func() error { _, err := tr.DeleteQueue(ctx, q); return err }},
		{"PurgeQueue", func() error { _, err := tr.PurgeQueue(ctx, q); return err }},
		{"Bind", func() error { return tr.Bind(ctx, binding) }},
		{"Unbind", func() error { return tr.Unbind(ctx, binding) }},
		{"Publish", func() error { return tr.Publish(ctx, "", q, transport.Message{Body: []byte("late")}) }},
		{"Publish mandatory", func() error {
			return tr.Publish(ctx, "", q, transport.Message{Body: []byte("late"), Mandatory: true})
		}},
		{"Consume", func() error { _, err := tr.Consume(ctx, q, transport.ConsumeOptions{}); return err }},
		{"Healthy", func() error { return tr.Healthy(ctx) }},
		{"Consumer.Receive", func() error { _, err := c.Receive(ctx); return err }},
		{"Delivery.Ack", d.Ack},
	}
	for _, row := range rows {
		e.wantErr(row.method+" after Close", row.call(), transport.ErrClosed)
	}
	if err := tr.Close(); err != nil {
		e.t.Errorf("second Close: %v, want nil (Close is idempotent)", err)
	}
	if err := c.Close(); err != nil {
		e.t.Errorf("Consumer.Close after the transport closed: %v, want nil", err)
	}
	// Closing lost nothing: the unsettled message is back in the queue.
	again := e.receive(e.consume(e.open(), q, transport.ConsumeOptions{}))
	if string(again.Body) != "m" || !again.Redelivered {
		e.t.Errorf("after Close: got %q redelivered=%v, want %q redelivered=true", again.Body, again.Redelivered, "m")
	}
	e.ack(again)
}

// receiveUnblocks: a Receive blocked on an empty queue returns promptly
// when its context ends (with the context's error) and when its consumer
// or transport closes (ErrClosed).
func receiveUnblocks(e *env) {
	const promptly = 5 * time.Second
	rows := []struct {
		name string
		want error
		end  func(cancel context.CancelFunc, tr *transport.Transport, c *transport.Consumer) error
	}{
		{"queue deleted", transport.ErrClosed, func(_ context.CancelFunc, tr *transport.Transport, c *transport.Consumer) error {
			_, err := tr.DeleteQueue(e.ctx, c.Queue())
			return err
		}},
		{"context cancelled", context.Canceled, func(cancel context.CancelFunc, _ *transport.Transport, _ *transport.Consumer) error {
			cancel()
			return nil
		}},
		{"consumer closed", transport.ErrClosed, func(_ context.CancelFunc, _ *transport.Transport, c *transport.Consumer) error {
			return c.Close()
		}},
		{"transport closed", transport.ErrClosed, func(_ context.CancelFunc, tr *transport.Transport, _ *transport.Consumer) error {
			return tr.Close()
		}},
	}
	for _, row := range rows {
		e.run(row.name, func(e *env) {
			tr := e.open()
			c := e.consume(tr, e.simpleQueue(tr, "empty"), transport.ConsumeOptions{})
			ctx, cancel := context.WithCancel(e.ctx)
			defer cancel()
			result := make(chan error, 1)
			go func() {
				_, err := c.Receive(ctx)
				result <- err
			}()
			if err := row.end(cancel, tr, c); err != nil {
				e.t.Fatalf("%s: %v", row.name, err)
			}
			timer := time.NewTimer(promptly)
			defer timer.Stop()
			select {
			case err := <-result:
				e.wantErr("Receive after "+row.name, err, row.want)
			case <-timer.C:
				// Unblock it so that the leak check does not report it too.
				cancel()
				_ = tr.Close()
				<-result
				e.t.Fatalf("Receive still blocked %v after %s", promptly, row.name)
			}
		})
	}
}

// invalidNames: malformed arguments are refused with ErrInvalid before
// reaching the backend.
func invalidNames(e *env) {
	tr := e.open()
	ctx := e.ctx
	long := strings.Repeat("n", 256)
	declareQueue := func(q transport.Queue) error { _, err := tr.DeclareQueue(ctx, q); return err }
	declareExchange := func(name string, kind transport.ExchangeKind) error {
		return tr.DeclareExchange(ctx, transport.Exchange{Name: name, Kind: kind})
	}
	rows := []struct {
		name string
		err  error
	}{
		{"Consume with an empty queue name", func() error { _, err := tr.Consume(ctx, "", transport.ConsumeOptions{}); return err }()},
		{"DeclareQueue with a 256-byte name", declareQueue(transport.Queue{Name: long})},
		{"DeclareQueue with a newline in the name", declareQueue(transport.Queue{Name: "bad\nname"})},
		{"DeclareQueue with a NUL in the name", declareQueue(transport.Queue{Name: "bad\x00name"})},
		{"DeclareQueue with the amq. prefix", declareQueue(transport.Queue{Name: uniqueName("amq.mine")})},
		{"DeclareQueue with a negative TTL", declareQueue(transport.Queue{Name: uniqueName("q"), MessageTTL: -time.Second})},
		{"DeclareExchange with an empty name", declareExchange("", transport.Direct)},
		{"DeclareExchange with a 256-byte name", declareExchange(long, transport.Direct)},
		{"DeclareExchange with a control character", declareExchange("bad\x7fname", transport.Direct)},
		{"DeclareExchange with the amq. prefix", declareExchange(uniqueName("amq.mine"), transport.Direct)},
		{"DeclareExchange of kind headers", declareExchange(uniqueName("x"), "headers")},
		{"Bind with an empty exchange", tr.Bind(ctx, transport.Binding{Queue: "q", Key: "k"})},
		{"Bind with an empty queue", tr.Bind(ctx, transport.Binding{Exchange: "amq.direct", Key: "k"})},
		{"Publish with a 256-byte routing key", tr.Publish(ctx, "", long, transport.Message{})},
		{"Publish with a negative expiration", tr.Publish(ctx, "", "q", transport.Message{Expiration: -time.Second})},
		{"Publish with a channel in a header", tr.Publish(ctx, "", "q", transport.Message{Headers: transport.Headers{"x": make(chan int)}})},
		{"Publish with a struct in a header", tr.Publish(ctx, "", "q", transport.Message{Headers: transport.Headers{"x": struct{}{}}})},
		{"Consume with a negative prefetch", func() error {
			_, err := tr.Consume(ctx, "q", transport.ConsumeOptions{Prefetch: -1})
			return err
		}()},
		{"DeleteQueue with an empty name", func() error { _, err := tr.DeleteQueue(ctx, ""); return err }()},
	}
	for _, row := range rows {
		e.wantErr(row.name, row.err, transport.ErrInvalid)
	}
}

// redeclarePrecondition: declaring an existing entity again with the same
// properties is fine; with other properties it is ErrPrecondition.
func redeclarePrecondition(e *env) {
	queueRows := []struct {
		name          string
		needs         []transport.Capability
		first, second transport.Queue
	}{
		{"queue durable", []transport.Capability{transport.CapTransientQueue, transport.CapDurable}, transport.Queue{}, transport.Queue{Durable: true}},
		{"queue auto-delete", []transport.Capability{transport.CapAutoDelete}, transport.Queue{}, transport.Queue{AutoDelete: true}},
		{"queue max length", []transport.Capability{transport.CapMaxLength}, transport.Queue{MaxLength: 10}, transport.Queue{MaxLength: 20}},
		{"queue message TTL", []transport.Capability{transport.CapMessageTTL}, transport.Queue{MessageTTL: time.Minute}, transport.Queue{}},
	}
	for _, row := range queueRows {
		e.run(row.name, func(e *env) {
			require(e.t, e.caps, append(row.needs, transport.CapQueueExistence)...)
			tr := e.open()
			if row.name != "queue durable" {
				row.first, row.second = e.orDurable(row.first), e.orDurable(row.second)
			}
			row.first.Name = uniqueName("q")
			row.second.Name = row.first.Name
			e.declareQueue(tr, row.first)
			if _, err := tr.DeclareQueue(e.ctx, row.first); err != nil {
				e.t.Errorf("redeclare with the same properties: %v", err)
			}
			_, err := tr.DeclareQueue(e.ctx, row.second)
			e.wantErr(fmt.Sprintf("redeclare %+v as %+v", row.first, row.second), err, transport.ErrPrecondition)
		})
	}
	exchangeRows := []struct {
		name          string
		needs         []transport.Capability
		first, second transport.Exchange
	}{
		{"exchange kind", []transport.Capability{transport.CapDirect, transport.CapFanout},
			transport.Exchange{Kind: transport.Direct}, transport.Exchange{Kind: transport.Fanout}},
		{"exchange durable", []transport.Capability{transport.CapDirect, transport.CapDurable},
			transport.Exchange{Kind: transport.Direct}, transport.Exchange{Kind: transport.Direct, Durable: true}},
	}
	for _, row := range exchangeRows {
		e.run(row.name, func(e *env) {
			require(e.t, e.caps, row.needs...)
			tr := e.open()
			name := e.declareExchange(tr, "x", row.first.Kind)
			row.first.Name, row.second.Name = name, name
			if err := tr.DeclareExchange(e.ctx, row.first); err != nil {
				e.t.Errorf("redeclare with the same properties: %v", err)
			}
			e.wantErr(fmt.Sprintf("redeclare %+v as %+v", row.first, row.second), tr.DeclareExchange(e.ctx, row.second), transport.ErrPrecondition)
		})
	}
}

// missingIsNotAnError: deleting what does not exist, or unbinding a
// binding that does not exist, succeeds, so cleanup code can be simple.
func missingIsNotAnError(e *env) {
	rows := []struct {
		name  string
		needs []transport.Capability
		call  func(e *env, tr *transport.Transport) error
	}{
		{"delete a missing queue", nil, func(e *env, tr *transport.Transport) error {
			n, err := tr.DeleteQueue(e.ctx, uniqueName("missing"))
			if err == nil && n != 0 {
				err = fmt.Errorf("deleted %d messages from a missing queue", n)
			}
			return err
		}},
		{"delete a missing exchange", nil, func(e *env, tr *transport.Transport) error {
			return tr.DeleteExchange(e.ctx, uniqueName("missing"))
		}},
		{"unbind a missing binding", []transport.Capability{transport.CapDirect, transport.CapQueueBinding}, func(e *env, tr *transport.Transport) error {
			x := e.declareExchange(tr, "x", transport.Direct)
			return tr.Unbind(e.ctx, transport.Binding{Exchange: x, Queue: e.simpleQueue(tr, "q"), Key: "never-bound"})
		}},
	}
	for _, row := range rows {
		e.run(row.name, func(e *env) {
			require(e.t, e.caps, row.needs...)
			if err := row.call(e, e.open()); err != nil {
				e.t.Errorf("%s: %v, want no error", row.name, err)
			}
		})
	}
}

// settleTwice: a delivery is settled once; settling it again, or settling
// an auto-ack delivery at all, is ErrSettled.
func settleTwice(e *env) {
	rows := []struct {
		name          string
		autoAck       bool
		first, second func(d *transport.Delivery) error
	}{
		{"ack then ack", false, (*transport.Delivery).Ack, (*transport.Delivery).Ack},
		{"ack then reject", false, (*transport.Delivery).Ack, (*transport.Delivery).Reject},
		{"reject then ack", false, (*transport.Delivery).Reject, (*transport.Delivery).Ack},
		{"nack with requeue then ack", false, func(d *transport.Delivery) error { return d.Nack(true) }, (*transport.Delivery).Ack},
		{"auto-ack delivery acked", true, nil, (*transport.Delivery).Ack},
		{"auto-ack delivery nacked", true, nil, func(d *transport.Delivery) error { return d.Nack(true) }},
	}
	for _, row := range rows {
		e.run(row.name, func(e *env) {
			tr := e.open()
			q := e.simpleQueue(tr, "q")
			e.publishBodies(tr, "", q, "m")
			d := e.receive(e.consume(tr, q, transport.ConsumeOptions{AutoAck: row.autoAck}))
			if row.first != nil {
				if err := row.first(d); err != nil {
					e.t.Fatalf("first settlement: %v", err)
				}
			}
			e.wantErr(row.name, row.second(d), transport.ErrSettled)
		})
	}
}
