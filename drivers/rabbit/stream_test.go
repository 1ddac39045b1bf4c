package rabbit

import (
	"errors"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/transport"
)

// TestQueueTypes: Queue.Type is RabbitMQ's x-queue-type, with the
// arguments each type takes.
func TestQueueTypes(t *testing.T) {
	x := newTester(t)
	tr := x.open("")
	for _, tt := range []struct {
		q    transport.Queue
		args map[string]any
	}{
		{transport.Queue{Name: "quorum", Durable: true, Type: transport.QuorumQueue, DeliveryLimit: 3},
			map[string]any{"x-queue-type": "quorum", "x-delivery-limit": float64(3)}},
		{transport.Queue{Name: "stream", Durable: true, Type: transport.StreamQueue, MessageTTL: 30 * time.Minute},
			map[string]any{"x-queue-type": "stream", "x-max-age": "1800s"}},
		{transport.Queue{Name: "classic", Durable: true, Type: transport.ClassicQueue}, map[string]any{}},
	} {
		x.queue(tr, tt.q)
		info := x.vh.Queue(t, tt.q.Name)
		if info == nil {
			t.Fatalf("%s: not on the broker", tt.q.Name)
		}
		args, _ := info["arguments"].(map[string]any)
		if len(args) != len(tt.args) {
			t.Errorf("%s: arguments %v, want %v", tt.q.Name, args, tt.args)
		}
		for k, v := range tt.args {
			if args[k] != v {
				t.Errorf("%s: argument %s = %v, want %v", tt.q.Name, k, args[k], v)
			}
		}
	}
}

// TestStreamQueue: every consumer of a stream reads every message published
// after it started; settling only gives credit; a consumer resumes after
// its last delivery when the connection comes back, without replaying
// what it read.
func TestStreamQueue(t *testing.T) {
	x := newTester(t)
	p := newProxy(t, x.vh)
	tr := x.openURL(p.url(x.vh, fastRetry)) // its connection is cut below
	publisher := x.open("")
	q := x.queue(tr, transport.Queue{Name: "casts", Durable: true, Type: transport.StreamQueue, MessageTTL: time.Hour})
	if _, err := tr.Consume(x.ctx, q, transport.ConsumeOptions{}); !errors.Is(err, transport.ErrInvalid) {
		t.Fatalf("a stream consumer without a prefetch: %v, want ErrInvalid", err)
	}

	first := x.consume(tr, q, transport.ConsumeOptions{Prefetch: 10})
	x.publish(tr, "", q, transport.Message{Body: []byte("m1")})
	x.wantBodies(first, "m1")
	late := x.consume(tr, q, transport.ConsumeOptions{Prefetch: 10, AutoAck: true})
	x.publish(tr, "", q, transport.Message{Body: []byte("m2")})
	x.publish(tr, "", q, transport.Message{Body: []byte("m3")})
	x.wantBodies(first, "m2", "m3")
	x.wantBodies(late, "m2", "m3") // not m1, published before it started

	// m4 and m5 come while the consumers' connection is down: they read
	// them when it is back, from where they stopped, and nothing again.
	p.SetRefuse(true)
	p.CutAll()
	x.publish(publisher, "", q, transport.Message{Body: []byte("m4")})
	x.publish(publisher, "", q, transport.Message{Body: []byte("m5")})
	p.SetRefuse(false)
	x.wantBodies(first, "m4", "m5")
	x.wantBodies(late, "m4", "m5")
	x.expectNone(first)
	x.expectNone(late)
}

// wantBodies receives len(want) deliveries from c, acking those it must,
// and checks their bodies in order.
func (x *tester) wantBodies(c *transport.Consumer, want ...string) {
	x.t.Helper()
	for _, w := range want {
		d := x.receive(c)
		if string(d.Body) != w {
			x.t.Fatalf("%s: got %q, want %q", c.Queue(), d.Body, w)
		}
		if err := d.Ack(); err != nil && !errors.Is(err, transport.ErrSettled) {
			x.t.Fatalf("ack %q: %v", d.Body, err)
		}
	}
}
