package rabbit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-mq/switchyard/internal/rabbitmq"
	"github.com/switchyard-mq/switchyard/transport"
	"github.com/switchyard-mq/switchyard/transport/driver"
)

// TestChannelErrors: each channel error maps to its sentinel with the
// broker's text, keeps amqp091-go's *amqp091.Error with its reply code in
// the chain, and closes nothing else: a consumer started before keeps
// receiving and publishing goes on.
func TestChannelErrors(t *testing.T) {
	onStacks(t, func(t *testing.T, x *tester) {
		tr := x.open("")
		other := x.open("")
		// Classic queues, as these cases are about: on a stack with
		// rabbit_quorum_queue, a durable queue of no type would be quorum.
		durable := x.stack.DeniesTransientQueues // as x.queue declares them
		live := x.queue(tr, transport.Queue{Name: uniq("live"), Type: transport.ClassicQueue})
		c := x.consume(tr, live, transport.ConsumeOptions{Prefetch: 10})
		exclusive := x.queue(tr, transport.Queue{Name: uniq("exclusive"), Exclusive: true})
		shared := x.queue(tr, transport.Queue{Name: uniq("shared"), Type: transport.ClassicQueue})
		x.consume(tr, shared, transport.ConsumeOptions{Exclusive: true})

		for i, tc := range []struct {
			what string
			op   func() error
			want error
			code int // the broker's AMQP reply code
			text string
		}{
			{"redeclare with other flags", func() error {
				_, err := tr.DeclareQueue(x.ctx, transport.Queue{Name: live, Type: transport.ClassicQueue, Durable: durable, AutoDelete: true})
				return err
			}, transport.ErrPrecondition, amqp.PreconditionFailed, "inequivalent arg 'auto_delete'"},
			{"redeclare with other arguments", func() error {
				_, err := tr.DeclareQueue(x.ctx, transport.Queue{Name: live, Type: transport.ClassicQueue, Durable: durable, MessageTTL: time.Second})
				return err
			}, transport.ErrPrecondition, amqp.PreconditionFailed, "PRECONDITION_FAILED"},
			{"exchange of another kind", func() error {
				if err := tr.DeclareExchange(x.ctx, transport.Exchange{Name: "kinds", Kind: transport.Direct}); err != nil {
					return err
				}
				return tr.DeclareExchange(x.ctx, transport.Exchange{Name: "kinds", Kind: transport.Topic})
			}, transport.ErrPrecondition, amqp.PreconditionFailed, "inequivalent arg 'type'"},
			{"consume a missing queue", func() error {
				_, err := tr.Consume(x.ctx, "no-such-queue", transport.ConsumeOptions{})
				return err
			}, transport.ErrNotFound, amqp.NotFound, "no queue 'no-such-queue'"},
			{"purge a missing queue", func() error {
				_, err := tr.PurgeQueue(x.ctx, "no-such-queue")
				return err
			}, transport.ErrNotFound, amqp.NotFound, "NOT_FOUND"},
			{"bind to a missing exchange", func() error {
				return tr.Bind(x.ctx, transport.Binding{Exchange: "no-such-exchange", Queue: live, Key: "k"})
			}, transport.ErrNotFound, amqp.NotFound, "no exchange 'no-such-exchange'"},
			{"publish to a missing exchange", func() error {
				return tr.Publish(x.ctx, "no-such-exchange", "k", transport.Message{Body: []byte("x")})
			}, transport.ErrNotFound, amqp.NotFound, "no exchange 'no-such-exchange'"},
			{"another connection's exclusive queue", func() error {
				_, err := other.Consume(x.ctx, exclusive, transport.ConsumeOptions{})
				return err
			}, transport.ErrInUse, amqp.ResourceLocked, "RESOURCE_LOCKED"},
			{"a queue with an exclusive consumer", func() error {
				_, err := other.Consume(x.ctx, shared, transport.ConsumeOptions{})
				return err
			}, transport.ErrInUse, amqp.AccessRefused, "in exclusive use"},
			{"a reserved name", func() error {
				_, err := other.Consume(x.ctx, "amq.nope", transport.ConsumeOptions{})
				return err
			}, transport.ErrNotFound, amqp.NotFound, "NOT_FOUND"},
		} {
			t.Run(tc.what, func(t *testing.T) {
				err := tc.op()
				wantErr(t, tc.what, err, tc.want, tc.text)
				var reply *amqp.Error
				if !errors.As(err, &reply) || reply.Code != tc.code {
					t.Errorf("%s: error %q holds AMQP reply %v, want the *amqp091.Error of code %d", tc.what, err, reply, tc.code)
				}
				// Nothing else closed: the live consumer receives what is
				// published after the error.
				body := fmt.Sprintf("after error %d", i)
				x.publish(tr, "", live, transport.Message{Body: []byte(body)})
				d := x.receive(c)
				if string(d.Body) != body {
					t.Fatalf("got %q, want %q", d.Body, body)
				}
				if err := d.Ack(); err != nil {
					t.Fatalf("ack after the error: %v", err)
				}
			})
		}
	})
}

// TestTransportAs: Transport.As reaches the amqp091-go connection in use,
// which works as the client's own, and nothing else; a closed transport
// reaches nothing.
func TestTransportAs(t *testing.T) {
	onStacks(t, func(t *testing.T, x *tester) {
		tr := x.open("")
		var conn *amqp.Connection
		if !tr.As(&conn) || conn == nil {
			t.Fatalf("As(**amqp091.Connection) = false or nil")
		}
		ch, err := conn.Channel()
		if err != nil {
			t.Fatalf("a channel on the connection As gave: %v", err)
		}
		if err := ch.Close(); err != nil {
			t.Fatalf("close the channel: %v", err)
		}
		for _, tc := range []struct {
			name   string
			target any
		}{
			{"nil", nil},
			{"a connection, not a pointer to one", conn},
			{"a channel", new(*amqp.Channel)},
			{"a string", new(string)},
		} {
			if tr.As(tc.target) {
				t.Errorf("As(%s) = true, want false", tc.name)
			}
		}
		closed, err := transport.Open(x.ctx, x.vh.URL)
		if err != nil {
			t.Fatal(err)
		}
		if err := closed.Close(); err != nil {
			t.Fatal(err)
		}
		if closed.As(&conn) {
			t.Error("As on a closed transport = true, want false")
		}
	})
}

// TestMandatoryCorrelation: with many mandatory publishes in flight at
// once, each unroutable one, and only those, fails with ErrUnroutable.
func TestMandatoryCorrelation(t *testing.T) {
	onStacks(t, func(t *testing.T, x *tester) {
		tr := x.open("")
		ex := x.exchange(tr, "mandatory", transport.Direct)
		q := x.queue(tr, transport.Queue{Name: uniq("routed")})
		x.bind(tr, ex, q, "good")

		const n = 400
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				key := "good"
				if i%3 == 0 {
					key = "bad"
				}
				errs[i] = tr.Publish(x.ctx, ex, key, transport.Message{Body: []byte(fmt.Sprint(i)), Mandatory: true})
			}()
		}
		wg.Wait()
		good := 0
		for i, err := range errs {
			if i%3 == 0 {
				wantErr(t, fmt.Sprintf("publish %d (unroutable)", i), err, transport.ErrUnroutable, "NO_ROUTE")
				continue
			}
			if err != nil {
				t.Fatalf("publish %d (routable): %v", i, err)
			}
			good++
		}
		c := x.consume(tr, q, transport.ConsumeOptions{AutoAck: true})
		for range good {
			d := x.receive(c)
			var i int
			if _, err := fmt.Sscan(string(d.Body), &i); err != nil || i%3 == 0 {
				t.Fatalf("queue received %q, which was unroutable", d.Body)
			}
		}
		x.expectNone(c)
	})
}

// TestPublishErrorSpares: publishes to a missing exchange fail with
// ErrNotFound while publishes sharing their channels all succeed.
func TestPublishErrorSpares(t *testing.T) {
	onStacks(t, func(t *testing.T, x *tester) {
		tr := x.open("")
		ex := x.exchange(tr, "present", transport.Fanout)
		q := x.queue(tr, transport.Queue{Name: uniq("q")})
		x.bind(tr, ex, q, "")

		const n = 300
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				target := ex
				if i%10 == 0 {
					target = "missing"
				}
				errs[i] = tr.Publish(x.ctx, target, "", transport.Message{Body: []byte(fmt.Sprint(i)), MessageID: fmt.Sprint(i)})
			}()
		}
		wg.Wait()
		want := map[string]bool{}
		for i, err := range errs {
			if i%10 == 0 {
				wantErr(t, fmt.Sprintf("publish %d to the missing exchange", i), err, transport.ErrNotFound, "no exchange 'missing'")
				continue
			}
			if err != nil {
				t.Fatalf("publish %d to the present exchange: %v", i, err)
			}
			want[fmt.Sprint(i)] = true
		}
		c := x.consume(tr, q, transport.ConsumeOptions{AutoAck: true})
		seen := map[string]bool{}
		for len(seen) < len(want) {
			d := x.receive(c)
			if !want[d.MessageID] {
				t.Fatalf("unexpected message %q", d.MessageID)
			}
			if seen[d.MessageID] && !d.Redelivered {
				t.Fatalf("message %q twice, the second time not marked redelivered", d.MessageID)
			}
			seen[d.MessageID] = true
		}
	})
}

// TestSettleAfterClose: a delivery of a closed consumer cannot be settled
// (ErrClosed) and comes back redelivered to the next consumer.
func TestSettleAfterClose(t *testing.T) {
	onStacks(t, func(t *testing.T, x *tester) {
		tr := x.open("")
		q := x.queue(tr, transport.Queue{Name: uniq("q")})
		x.publish(tr, "", q, transport.Message{Body: []byte("m")})
		c := x.consume(tr, q, transport.ConsumeOptions{})
		d := x.receive(c)
		if d.Redelivered || d.DeliveryCount != 0 {
			t.Fatalf("first delivery: redelivered %v count %d", d.Redelivered, d.DeliveryCount)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		wantErr(t, "ack after close", d.Ack(), transport.ErrClosed, "")
		c2 := x.consume(tr, q, transport.ConsumeOptions{})
		d2 := x.receive(c2)
		if string(d2.Body) != "m" || !d2.Redelivered || d2.DeliveryCount != 1 {
			t.Fatalf("after close: body %q redelivered %v count %d; want m, true, 1", d2.Body, d2.Redelivered, d2.DeliveryCount)
		}
		if err := d2.Ack(); err != nil {
			t.Fatal(err)
		}
		x.expectNone(c2)
	})
}

// TestTopologySurvivesReconnect: after the broker closes the connection,
// a server-named exclusive queue comes back under the same name with its
// binding, its consumer resumes by itself, and deleted entities stay
// deleted.
func TestTopologySurvivesReconnect(t *testing.T) {
	onStacks(t, func(t *testing.T, x *tester) {
		tr := x.open(fastRetry)
		ex := x.exchange(tr, "events", transport.Topic)
		q := x.queue(tr, transport.Queue{Exclusive: true, AutoDelete: true})
		if !strings.HasPrefix(q, rabbitmq.ServerNamedPrefix) {
			t.Fatalf("server-named queue %q lacks the prefix %q", q, rabbitmq.ServerNamedPrefix)
		}
		x.bind(tr, ex, q, "a.#")
		gone := x.queue(tr, transport.Queue{Name: uniq("deleted")})
		if _, err := tr.DeleteQueue(x.ctx, gone); err != nil {
			t.Fatal(err)
		}
		c := x.consume(tr, q, transport.ConsumeOptions{})
		x.publish(tr, ex, "a.before", transport.Message{Body: []byte("before")})
		if d := x.receive(c); string(d.Body) != "before" {
			t.Fatalf("got %q", d.Body)
		} else if err := d.Ack(); err != nil {
			t.Fatal(err)
		}

		x.vh.CloseConnections(t)
		// Publish waits for the reconnection, which re-declares the queue and
		// its binding before anything is published.
		x.publish(tr, ex, "a.after", transport.Message{Body: []byte("after")})
		d := x.receive(c)
		if string(d.Body) != "after" {
			t.Fatalf("after reconnecting: got %q, want after", d.Body)
		}
		if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(x.logs.String(), "reconnected") {
			t.Errorf("no reconnection logged:\n%s", x.logs)
		}
		if info := x.vh.Queue(t, gone); info != nil {
			t.Errorf("deleted queue %s was declared again", gone)
		}
		if info := x.vh.Queue(t, q); info == nil || info["exclusive"] != true {
			t.Errorf("queue %s after reconnecting: %v", q, info)
		}
		if err := tr.Healthy(x.ctx); err != nil {
			t.Errorf("Healthy after reconnecting: %v", err)
		}
	})
}

// TestAckAcrossReconnect: a delivery from before the connection dropped
// cannot be settled (ErrClosed); the broker delivers it again.
func TestAckAcrossReconnect(t *testing.T) {
	onStacks(t, func(t *testing.T, x *tester) {
		tr := x.open(fastRetry)
		q := x.queue(tr, transport.Queue{Name: uniq("q")})
		x.publish(tr, "", q, transport.Message{Body: []byte("m")})
		c := x.consume(tr, q, transport.ConsumeOptions{})
		d := x.receive(c)
		x.vh.CloseConnections(t)
		again := x.receive(c) // blocks until the consumer resumed
		wantErr(t, "ack across a reconnection", d.Ack(), transport.ErrClosed, "")
		if string(again.Body) != "m" || !again.Redelivered {
			t.Fatalf("after reconnecting: got %q redelivered %v", again.Body, again.Redelivered)
		}
		if err := again.Ack(); err != nil {
			t.Fatal(err)
		}
		x.expectNone(c)
	})
}

// TestQuorumTopology: with rabbit_quorum_queue, a queue that may be a
// quorum queue is one (durable, x-queue-type, the delivery limit), queues
// with an expiry stay classic, and the broker's delivery count reaches
// deliveries; past the limit the message is dead-lettered.
func TestQuorumTopology(t *testing.T) {
	onStacks(t, func(t *testing.T, x *tester) {
		tr := x.open("rabbit_quorum_queue=true&rabbit_quorum_delivery_limit=2")
		dlx := x.exchange(tr, "dlx", transport.Direct)
		dead := x.queue(tr, transport.Queue{Name: uniq("dead"), Expires: time.Hour})
		x.bind(tr, dlx, dead, "dead")
		topic := x.queue(tr, transport.Queue{Name: uniq("T"), DeadLetterExchange: dlx, DeadLetterRoutingKey: "dead"})
		reply := x.queue(tr, transport.Queue{Name: uniq("reply"), Expires: 30 * time.Minute})

		info := x.vh.Queue(t, topic)
		args, _ := info["arguments"].(map[string]any)
		if info["durable"] != true || info["type"] != "quorum" || args["x-queue-type"] != "quorum" || args["x-delivery-limit"] != float64(2) || len(args) != 4 {
			t.Errorf("topic queue: %v", info)
		}
		info = x.vh.Queue(t, reply)
		args = queueArguments(info)
		if info["durable"] != x.stack.DeniesTransientQueues || info["type"] != "classic" || len(args) != 1 || args["x-expires"] != float64(1800000) {
			t.Errorf("reply queue: %v", info)
		}

		x.publish(tr, "", topic, transport.Message{Body: []byte("poison"), Headers: transport.Headers{"x-app": "kept"}})
		c := x.consume(tr, topic, transport.ConsumeOptions{})
		for i := range 3 {
			d := x.receive(c)
			if d.DeliveryCount != i || d.Redelivered != (i > 0) {
				t.Errorf("delivery %d: count %d redelivered %v", i, d.DeliveryCount, d.Redelivered)
			}
			if err := d.Nack(true); err != nil {
				t.Fatal(err)
			}
		}
		dc := x.consume(tr, dead, transport.ConsumeOptions{})
		d := x.receive(dc)
		if string(d.Body) != "poison" || d.Headers["x-app"] != "kept" || d.Headers["x-first-death-reason"] != "delivery_limit" {
			t.Errorf("dead letter: %q %v", d.Body, d.Headers)
		}
		x.expectNone(c)
	})
}

// TestHAQueues: rabbit_ha_queues adds x-ha-policy to every queue, and
// nothing else.
func TestHAQueues(t *testing.T) {
	x := newTester(t)
	tr := x.open("rabbit_ha_queues=true")
	for _, q := range []transport.Queue{
		{Name: uniq("topic")},
		{Name: uniq("reply"), Expires: 30 * time.Minute},
	} {
		x.queue(tr, q)
		info := x.vh.Queue(t, q.Name)
		args, _ := info["arguments"].(map[string]any)
		want := 1 + btoi(q.Expires > 0)
		if args["x-ha-policy"] != "all" || len(args) != want || info["type"] != "classic" {
			t.Errorf("queue %s: %v", q.Name, info)
		}
	}
}

// TestClassicDeliveryLimit: on a classic queue the driver counts returns,
// those of consumers that went away unsettled included, so that a message
// that kills its consumer every time is dead-lettered after the limit
// rather than looping forever.
func TestClassicDeliveryLimit(t *testing.T) {
	onStacks(t, func(t *testing.T, x *tester) {
		tr := x.open("")
		dlx := x.exchange(tr, "dlx", transport.Direct)
		dead := x.queue(tr, transport.Queue{Name: uniq("dead")})
		x.bind(tr, dlx, dead, "dead")
		const limit = 2
		q := x.queue(tr, transport.Queue{Name: uniq("work"), Type: transport.ClassicQueue, DeliveryLimit: limit, DeadLetterExchange: dlx, DeadLetterRoutingKey: "dead"})
		if args := queueArguments(x.vh.Queue(t, q)); len(args) != 2 {
			t.Errorf("classic queue got arguments beyond the model's: %v", args)
		}
		x.publish(tr, "", q, transport.Message{Body: []byte("crash"), Headers: transport.Headers{"x-app": "kept"}})
		for i := range limit + 1 {
			c, err := tr.Consume(x.ctx, q, transport.ConsumeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			d := x.receive(c)
			if d.DeliveryCount != i || d.Redelivered != (i > 0) || d.Exchange != "" || d.RoutingKey != q {
				t.Errorf("delivery %d: count %d redelivered %v from %q/%q", i, d.DeliveryCount, d.Redelivered, d.Exchange, d.RoutingKey)
			}
			if _, ok := d.Headers[headerReturns]; ok {
				t.Errorf("delivery %d shows the driver's header: %v", i, d.Headers)
			}
			_ = c.Close() // the consumer "crashes" without settling
		}
		// The next consumer to take the message counts the last return and
		// dead-letters it instead of handing it out.
		c := x.consume(tr, q, transport.ConsumeOptions{})
		x.expectNone(c)
		dc := x.consume(tr, dead, transport.ConsumeOptions{})
		d := x.receive(dc)
		if string(d.Body) != "crash" || d.RoutingKey != "dead" || d.Headers["x-app"] != "kept" || d.Headers["x-first-death-reason"] != "delivery_limit" {
			t.Errorf("dead letter: %q key %q headers %v", d.Body, d.RoutingKey, d.Headers)
		}
		for _, h := range []string{headerReturns, headerExchange, headerRoutingKey} {
			if _, ok := d.Headers[h]; ok {
				t.Errorf("dead letter shows the driver's header %s", h)
			}
		}
	})
}

// TestPublishWaitsForReconnection: while the broker is unreachable a
// publish waits, until its context ends or the connection comes back;
// it never drops the message. Close is prompt during the outage.
func TestPublishWaitsForReconnection(t *testing.T) {
	onStacks(t, func(t *testing.T, x *tester) {
		proxy := newProxy(t, x)
		tr := x.openURL(proxy.url(fastRetry))
		q := x.queue(tr, transport.Queue{Name: uniq("q"), Durable: true})

		proxy.SetRefuse(true)
		proxy.CutAll()
		poll(t, 5*time.Second, "the transport notices the outage", func() bool { return tr.Healthy(x.ctx) != nil })
		ctx, cancel := context.WithTimeout(x.ctx, 200*time.Millisecond)
		err := tr.Publish(ctx, "", q, transport.Message{Body: []byte("waits"), Persistent: true})
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("publish during the outage: got %v, want the context's deadline", err)
		}
		published := make(chan error, 1)
		go func() {
			published <- tr.Publish(x.ctx, "", q, transport.Message{Body: []byte("later"), Persistent: true})
		}()
		proxy.SetRefuse(false)
		if err := <-published; err != nil {
			t.Fatalf("publish across the outage: %v", err)
		}
		c := x.consume(tr, q, transport.ConsumeOptions{AutoAck: true})
		if d := x.receive(c); string(d.Body) != "later" {
			t.Fatalf("got %q", d.Body)
		}

		// Close during an outage returns promptly.
		other := x.openURL(proxy.url(fastRetry))
		proxy.SetRefuse(true)
		proxy.CutAll()
		poll(t, 5*time.Second, "the transport notices the outage", func() bool { return other.Healthy(x.ctx) != nil })
		start := time.Now()
		if err := other.Close(); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > time.Second {
			t.Fatalf("Close during an outage took %v", took)
		}
		proxy.SetRefuse(false)
	})
}

// TestNoPasswordInLogsAndErrors: a refused login and a reconnection show
// the user but never the password.
func TestNoPasswordInLogsAndErrors(t *testing.T) {
	onStacks(t, func(t *testing.T, x *tester) {
		const password = "Pa55-w0rd-never-shown"
		bad := strings.Replace(x.vh.URL, "guest:guest@", "guest:"+password+"@", 1)
		_, err := transport.Open(x.ctx, bad)
		if err == nil {
			t.Fatal("open with a wrong password succeeded")
		}
		if strings.Contains(err.Error(), password) {
			t.Fatalf("error shows the password: %v", err)
		}
		// A refused login is not a lost connection: trying again will not
		// heal it.
		if !errors.Is(err, transport.ErrInvalid) || errors.Is(err, transport.ErrClosed) {
			t.Errorf("open with a wrong password: %v, want ErrInvalid (and not ErrClosed)", err)
		}
		tr := x.open(fastRetry)
		x.vh.CloseConnections(t)
		poll(t, 10*time.Second, "reconnection", func() bool { return strings.Contains(x.logs.String(), "reconnected") })
		if strings.Contains(x.logs.String(), "guest:guest") {
			t.Fatalf("logs show the password:\n%s", x.logs)
		}
		_ = tr
	})
}

// TestOpenFailsOver: the first host refuses; the second takes over.
func TestOpenFailsOver(t *testing.T) {
	onStacks(t, func(t *testing.T, x *tester) {
		dead := newProxy(t, x)
		dead.SetRefuse(true)
		live := newProxy(t, x)
		url := strings.Replace(live.url(fastRetry), live.Addr(), dead.Addr()+","+live.Addr(), 1)
		tr := x.openURL(url)
		q := x.queue(tr, transport.Queue{Name: uniq("q")})
		x.publish(tr, "", q, transport.Message{Body: []byte("via the second host")})
		if live.Conns() != 1 {
			t.Fatalf("second host has %d connections, want 1", live.Conns())
		}
		_, err := transport.Open(x.ctx, strings.Replace(url, live.Addr(), dead.Addr(), 1))
		wantErr(t, "open with no host answering", err, transport.ErrClosed, dead.Addr())
	})
}

// TestUnsendablePublishRefused: what AMQP or RabbitMQ cannot carry (a
// property longer than a short string, a NaN header) is an ErrInvalid
// before anything is sent, and the connection, with a delivery held on
// it, carries on.
func TestUnsendablePublishRefused(t *testing.T) {
	onStacks(t, func(t *testing.T, x *tester) {
		tr := x.open("")
		q := x.queue(tr, transport.Queue{Name: "unsendable"})
		x.publish(tr, "", q, transport.Message{Body: []byte("held")})
		c := x.consume(tr, q, transport.ConsumeOptions{})
		held := x.receive(c)
		long := strings.Repeat("x", 300)
		for name, msg := range map[string]transport.Message{
			"message id":     {MessageID: long},
			"correlation id": {CorrelationID: long},
			"reply-to":       {ReplyTo: long},
			"content type":   {ContentType: long},
			"NaN header":     {Headers: transport.Headers{"x": math.NaN()}},
			"Inf header":     {Headers: transport.Headers{"x": math.Inf(1)}},
			"long header":    {Headers: transport.Headers{long: "v"}},
		} {
			msg.Body = []byte(name)
			if err := tr.Publish(x.ctx, "", q, msg); !errors.Is(err, transport.ErrInvalid) {
				t.Errorf("publish with a bad %s: %v, want ErrInvalid", name, err)
			}
		}
		if err := held.Ack(); err != nil {
			t.Errorf("ack of a delivery held across the refused publishes: %v", err)
		}
		x.publish(tr, "", q, transport.Message{Body: []byte("after")})
		if d := x.receive(c); string(d.Body) != "after" {
			t.Errorf("received %q, want %q", d.Body, "after")
		}
	})
}

// TestConsumerCancelledByBroker: a consumer whose queue is deleted behind
// its back (here through another transport, as an operator or a broker
// node's loss would) is not left deaf. Where its transport declared the
// queue, it declares the queue and its binding again and goes on
// consuming; where it did not, Healthy reports it and the logs say so at
// error level until the queue is back, and then it consumes again.
func TestConsumerCancelledByBroker(t *testing.T) {
	onStacks(t, func(t *testing.T, x *tester) {
		for _, tc := range []struct {
			name         string
			declaredHere bool
		}{
			{"declared by the consumer's transport", true},
			{"declared elsewhere", false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tr := x.open(fastRetry)
				other := x.open("")
				declarer := other
				if tc.declaredHere {
					declarer = tr
				}
				ex := x.exchange(declarer, uniq("ex"), transport.Direct)
				q := x.queue(declarer, transport.Queue{Name: uniq("cancelled")})
				x.bind(declarer, ex, q, "k")
				c := x.consume(tr, q, transport.ConsumeOptions{})
				received := make(chan string, 10)
				receiveErr := make(chan error, 1)
				go func() {
					for {
						d, err := c.Receive(x.ctx)
						if err != nil {
							receiveErr <- err
							return
						}
						received <- string(d.Body)
						_ = d.Ack()
					}
				}()
				x.publish(other, ex, "k", transport.Message{Body: []byte("before")})
				x.wantReceived(received, receiveErr, "before")

				if _, err := other.DeleteQueue(x.ctx, q); err != nil {
					t.Fatal(err)
				}
				if !tc.declaredHere {
					poll(t, 10*time.Second, "Healthy reporting the cancelled consumer", func() bool {
						err := tr.Healthy(x.ctx)
						return err != nil && strings.Contains(err.Error(), q)
					})
					if !strings.Contains(x.logs.String(), "level=ERROR") {
						t.Errorf("no error-level log while the queue is not consumed:\n%s", x.logs)
					}
					x.queue(other, transport.Queue{Name: q})
					x.bind(other, ex, q, "k")
				}
				// Mandatory: unroutable until the queue and its binding are back.
				poll(t, 20*time.Second, "the queue bound again", func() bool {
					err := other.Publish(x.ctx, ex, "k", transport.Message{Body: []byte("after"), Mandatory: true})
					if err != nil && !errors.Is(err, transport.ErrUnroutable) {
						t.Fatalf("publish: %v", err)
					}
					return err == nil
				})
				x.wantReceived(received, receiveErr, "after")
				// Healthy soon after, not at once: a broker may drop the
				// connection as the queue comes back (RabbitMQ 4.3 does,
				// with 541 INTERNAL_ERROR, on a quorum queue), and the
				// consumer can resume on the next connection a moment
				// before the transport reports itself reconnected.
				var last string
				poll(t, 10*time.Second, "Healthy once the consumer consumes again", func() bool {
					err := tr.Healthy(x.ctx)
					if err != nil && err.Error() != last {
						last = err.Error()
						t.Logf("not healthy yet: %v", err)
					}
					return err == nil
				})
			})
		}
	})
}

// wantReceived waits for body from a receive loop.
func (x *tester) wantReceived(received <-chan string, receiveErr <-chan error, body string) {
	x.t.Helper()
	t := time.NewTimer(20 * time.Second)
	defer t.Stop()
	select {
	case got := <-received:
		if got != body {
			x.t.Fatalf("received %q, want %q", got, body)
		}
	case err := <-receiveErr:
		x.t.Fatalf("Receive ended waiting for %q: %v", body, err)
	case <-t.C:
		x.t.Fatalf("%q not received within 20s", body)
	}
}

// TestNackedChannelReplaced: a publish the broker nacks (here a queue
// full with x-overflow reject-publish) fails, and the next publish goes
// on a new channel: RabbitMQ may go on nacking everything on a channel
// opened during a quorum queue's leader election, and only a new one
// recovers.
func TestNackedChannelReplaced(t *testing.T) {
	x := newTester(t)
	u, err := transport.ParseURL(x.url(""))
	if err != nil {
		t.Fatal(err)
	}
	dc, err := open(x.ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	c := dc.(*conn)
	t.Cleanup(func() { _ = c.Close() })
	const full = "full"
	if err := c.topoOp(x.ctx, func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclare(full, false, false, true, false, amqp.Table{"x-max-length": int64(1), "x-overflow": "reject-publish"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		mandatory bool
		channel   func(*session) *sharedChannel
	}{
		{"shared channel", false, func(s *session) *sharedChannel { return &s.pub }},
		{"tracked channel", true, func(s *session) *sharedChannel { return &s.tracked }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := c.PurgeQueue(x.ctx, full); err != nil {
				t.Fatal(err)
			}
			msg := driver.Message{Body: []byte("m"), Mandatory: tc.mandatory}
			if err := c.Publish(x.ctx, "", full, msg); err != nil {
				t.Fatalf("first publish: %v", err)
			}
			before := tc.channel(c.cur.Load()).cur.Load()
			if err := c.Publish(x.ctx, "", full, msg); !errors.Is(err, errNack) {
				t.Fatalf("publish to a full reject-publish queue: %v, want the broker's nack", err)
			}
			if err := c.Publish(x.ctx, "", "", driver.Message{Body: []byte("elsewhere"), Mandatory: tc.mandatory}); err != nil && !errors.Is(err, transport.ErrUnroutable) {
				t.Fatalf("publish after the nack: %v", err)
			}
			if after := tc.channel(c.cur.Load()).cur.Load(); after == before || after == nil {
				t.Errorf("the nacked channel is still in use")
			}
			poll(t, 5*time.Second, "the nacked channel closed", before.ch.IsClosed)

			// A nack that passes (the queue has room again) is not the
			// caller's error: the publish goes again on a new channel,
			// and its copy is marked redelivered.
			nacked := tc.channel(c.cur.Load()).cur.Load()
			done := make(chan error, 1)
			go func() {
				done <- c.Publish(x.ctx, "", full, driver.Message{Body: []byte("again"), Mandatory: tc.mandatory})
			}()
			poll(t, 5*time.Second, "a nack and a new channel", func() bool {
				cur := tc.channel(c.cur.Load()).cur.Load()
				return cur != nacked
			})
			if _, err := c.PurgeQueue(x.ctx, full); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatalf("a publish nacked while the queue was full, then room made: %v", err)
			}
			cons, err := c.Consume(x.ctx, full, driver.ConsumeOptions{AutoAck: true})
			if err != nil {
				t.Fatal(err)
			}
			defer cons.Close()
			d, err := cons.Receive(x.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if string(d.Body) != "again" || !d.Redelivered {
				t.Errorf("got %q redelivered %v, want the retried copy marked redelivered", d.Body, d.Redelivered)
			}
		})
	}
}

// TestResentFirstCopyLate: a message the driver published again (marked
// resent) may have its first copy arrive after it, unmarked: a frozen
// node reads the publishes of a connection the driver gave up on once it
// resumes. The consumer marks that later copy redelivered too, by its
// message id; a message without an id, or with another, is not marked.
func TestResentFirstCopyLate(t *testing.T) {
	x := newTester(t)
	tr := x.open("")
	q := x.queue(tr, transport.Queue{Name: uniq("late")})
	c := x.consume(tr, q, transport.ConsumeOptions{})
	// The copy sent again, as the driver marks it, then the first one.
	x.publish(tr, "", q, transport.Message{Body: []byte("m"), MessageID: "id-1", Headers: map[string]any{headerResent: true}})
	x.publish(tr, "", q, transport.Message{Body: []byte("m"), MessageID: "id-1"})
	x.publish(tr, "", q, transport.Message{Body: []byte("other"), MessageID: "id-2"})
	x.publish(tr, "", q, transport.Message{Body: []byte("no id")})
	for i, want := range []struct {
		body        string
		redelivered bool
	}{{"m", true}, {"m", true}, {"other", false}, {"no id", false}} {
		d := x.receive(c)
		if string(d.Body) != want.body || d.Redelivered != want.redelivered {
			t.Errorf("delivery %d: %q redelivered %v, want %q redelivered %v", i, d.Body, d.Redelivered, want.body, want.redelivered)
		}
		if _, ok := d.Headers[headerResent]; ok {
			t.Errorf("delivery %d carries the driver's header: %v", i, d.Headers)
		}
		if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestConsumeWarnsOfUncountedLimit: a consumer of a queue its transport
// did not declare is told, at Consume, that a classic queue's delivery
// limit cannot be enforced there; a consumer of a queue it declared, or
// with AutoAck, is not.
func TestConsumeWarnsOfUncountedLimit(t *testing.T) {
	x := newTester(t)
	declarer := x.open("")
	elsewhere := x.queue(declarer, transport.Queue{Name: uniq("elsewhere"), DeliveryLimit: 3})
	tr := x.open("")
	here := x.queue(tr, transport.Queue{Name: uniq("here"), DeliveryLimit: 3})
	const warning = "cannot enforce the limit"
	for _, tc := range []struct {
		queue string
		opts  transport.ConsumeOptions
		warns bool
	}{
		{here, transport.ConsumeOptions{}, false},
		{elsewhere, transport.ConsumeOptions{AutoAck: true}, false},
		{elsewhere, transport.ConsumeOptions{}, true},
	} {
		before := strings.Count(x.logs.String(), warning)
		x.consume(tr, tc.queue, tc.opts)
		if warned := strings.Count(x.logs.String(), warning) > before; warned != tc.warns {
			t.Errorf("consume %s (AutoAck %v): warned %v, want %v", tc.queue, tc.opts.AutoAck, warned, tc.warns)
		}
	}
}
