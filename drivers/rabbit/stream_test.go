package rabbit

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/internal/brokertest"
	"github.com/switchyard-mq/switchyard/rpc"
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

// TestExclusiveConsumerNeedsClassic: RabbitMQ takes the exclusive flag on
// quorum and stream queues and ignores it, so the driver refuses it there
// rather than let a second consumer share the queue unseen.
func TestExclusiveConsumerNeedsClassic(t *testing.T) {
	x := newTester(t)
	tr := x.open("")
	for _, tt := range []struct {
		q    transport.Queue
		want error
	}{
		{transport.Queue{Name: "quorum", Durable: true, Type: transport.QuorumQueue}, transport.ErrUnsupported},
		{transport.Queue{Name: "stream", Durable: true, Type: transport.StreamQueue}, transport.ErrUnsupported},
		{transport.Queue{Name: "classic", Durable: true, Type: transport.ClassicQueue}, nil},
	} {
		q := x.queue(tr, tt.q)
		c, err := tr.Consume(x.ctx, q, transport.ConsumeOptions{Exclusive: true, Prefetch: 1})
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: exclusive consumer: %v, want %v", tt.q.Name, err, tt.want)
		}
		if c != nil {
			if err := c.Close(); err != nil {
				t.Errorf("%s: close: %v", tt.q.Name, err)
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
	p := newProxy(t, x)
	tr := x.openURL(p.url(fastRetry)) // its connection is cut below
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

// castLog records the fanout casts a server receives.
type castLog struct {
	mu  sync.Mutex
	got map[string][]int // server -> cast numbers, as its handlers ran
}

// server is the endpoint receiver of one server.
func (l *castLog) server(name string) castServer { return castServer{log: l, name: name} }

func (l *castLog) of(name string) []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.got[name])
}

type castServer struct {
	log  *castLog
	name string
}

func (s castServer) Note(_ context.Context, args struct{ N int }) error {
	s.log.mu.Lock()
	defer s.log.mu.Unlock()
	s.log.got[s.name] = append(s.log.got[s.name], args.N)
	return nil
}

// TestStreamFanout: with rabbit_stream_fanout, a fanout cast reaches every
// server of the topic once, through the topic's one stream; a server
// started again on the same name reads only the casts made after it
// started, not the stream's earlier ones.
func TestStreamFanout(t *testing.T) {
	x := newTester(t)
	tr := x.open("rabbit_quorum_queue=true&rabbit_transient_quorum_queue=true&rabbit_stream_fanout=true&rabbit_qos_prefetch_count=10")
	topic := "streamed_" + randomName()[:8]
	log := &castLog{got: map[string][]int{}}
	start := func(name string) *rpc.Server {
		t.Helper()
		srv, err := rpc.NewServer(tr, transport.Target{Topic: topic, Server: name}, []rpc.Endpoint{{Receiver: log.server(name)}})
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(x.ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = srv.Stop(context.Background()) })
		return srv
	}
	client, err := rpc.NewClient(tr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	cast := func(from, to int) {
		t.Helper()
		for n := from; n <= to; n++ {
			if err := client.Cast(x.ctx, transport.Target{Topic: topic, Fanout: true}, "note", map[string]int{"n": n}); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := func(name string, ns ...int) {
		t.Helper()
		poll(t, 10*time.Second, name+" has its casts", func() bool { return len(log.of(name)) >= len(ns) })
		// The server's workers run casts concurrently: their order is not
		// the stream's.
		if got := log.of(name); !slices.Equal(slices.Sorted(slices.Values(got)), ns) {
			t.Errorf("%s received casts %v, want %v once each", name, got, ns)
		}
	}

	s1 := start("s1")
	start("s2")
	start("s3")
	cast(1, 5)
	for _, name := range []string{"s1", "s2", "s3"} {
		want(name, 1, 2, 3, 4, 5)
	}
	if err := s1.Stop(x.ctx); err != nil {
		t.Fatal(err)
	}
	cast(6, 7)
	want("s2", 1, 2, 3, 4, 5, 6, 7)
	log.mu.Lock()
	delete(log.got, "s1")
	log.mu.Unlock()
	start("s1") // again, on the same name
	cast(8, 8)
	want("s1", 8)
	want("s3", 1, 2, 3, 4, 5, 6, 7, 8)
}

// TestStreamFanoutNeeds: rabbit_stream_fanout without what oslo.messaging
// requires beside it is refused, naming the option to set.
func TestStreamFanoutNeeds(t *testing.T) {
	x := newTester(t)
	for _, tt := range []struct{ query, names string }{
		{"rabbit_stream_fanout=true&rabbit_qos_prefetch_count=10", "rabbit_transient_quorum_queue"},
		{"rabbit_stream_fanout=true&rabbit_transient_quorum_queue=true", "rabbit_qos_prefetch_count"},
	} {
		tr := x.open(tt.query)
		_, err := rpc.NewServer(tr, transport.Target{Topic: "t", Server: "s"}, []rpc.Endpoint{{Receiver: topologyEcho{}}})
		wantErr(t, tt.query, err, transport.ErrInvalid, tt.names)
		_, err = rpc.NewClient(tr)
		wantErr(t, tt.query, err, transport.ErrInvalid, tt.names)
	}
}

// legacyOptionsTester is a tester on the RabbitMQ 4.3 stack's broker
// with oslo.messaging's default (legacy) options instead of the stack's.
func legacyOptionsTester(t *testing.T) *tester {
	stack := brokertest.SidStack()
	stack.Query = ""
	return setupTester(t, stack, stack.NewVHost(t))
}

// TestLegacyOptionsOnModernBroker: against a broker that refuses
// non-durable, non-exclusive queues (RabbitMQ 4.3 as operators run it
// now), a queue of that kind is ErrUnsupported at once, the transport goes
// on, and an RPC server with oslo.messaging's legacy defaults fails to
// start with an error naming the options to set.
func TestLegacyOptionsOnModernBroker(t *testing.T) {
	x := legacyOptionsTester(t)
	tr := x.open(fastRetry)
	_, err := tr.DeclareQueue(x.ctx, transport.Queue{Name: "transient"})
	wantErr(t, "a transient queue", err, transport.ErrUnsupported, "transient_nonexcl_queues")
	x.queue(tr, transport.Queue{Name: "durable", Durable: true}) // the transport carries on

	srv, err := rpc.NewServer(tr, transport.Target{Topic: "legacy", Server: "s1"}, []rpc.Endpoint{{Receiver: topologyEcho{}}})
	if err != nil {
		t.Fatal(err)
	}
	err = srv.Start(x.ctx)
	if err == nil {
		_ = srv.Stop(x.ctx)
		t.Fatal("a server with legacy options started on a broker that refuses its queues")
	}
	for _, option := range []string{"rabbit_quorum_queue=true", "rabbit_transient_quorum_queue=true"} {
		if !strings.Contains(err.Error(), option) {
			t.Errorf("Start: %v; want it to name %s", err, option)
		}
	}
}

// TestHAQueuesOnModernBroker: rabbit_ha_queues on RabbitMQ 4, which
// removed classic queue mirroring, is said to have no effect.
func TestHAQueuesOnModernBroker(t *testing.T) {
	x := legacyOptionsTester(t)
	x.open("rabbit_ha_queues=true")
	if !strings.Contains(x.logs.String(), "rabbit_ha_queues has no effect on this broker") {
		t.Errorf("no warning that rabbit_ha_queues has no effect on RabbitMQ 4; logs:\n%s", x.logs)
	}
}
