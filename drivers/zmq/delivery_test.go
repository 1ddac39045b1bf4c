package zmq

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/transport"
	"github.com/switchyard-mq/switchyard/transport/driver"
)

func mustQueue(t *testing.T, ctx context.Context, c *conn, name string) string {
	t.Helper()
	q, err := c.DeclareQueue(ctx, driver.Queue{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func mustConsume(t *testing.T, ctx context.Context, c *conn, q string, opts driver.ConsumeOptions) driver.Consumer {
	t.Helper()
	cons, err := c.Consume(ctx, q, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cons.Close() })
	return cons
}

func publishN(t *testing.T, ctx context.Context, c *conn, q string, n int) {
	t.Helper()
	for i := range n {
		if err := c.Publish(ctx, "", q, driver.Message{Body: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
}

// receiveWithin receives one delivery or returns an error after d.
func receiveWithin(cons driver.Consumer, d time.Duration) (driver.Delivery, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return cons.Receive(ctx)
}

// heldCount is how many messages a node holds.
func heldCount(c *conn) int {
	pending, inflight := c.sender.counts()
	return pending + inflight
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not the case after 10s", what)
		}
		<-tick.C
	}
}

// TestCreditHonoursPrefetch: each consumer gets at most its prefetch of
// unsettled deliveries from a sender; the rest waits with the sender until
// credit comes back.
func TestCreditHonoursPrefetch(t *testing.T) {
	nodes := newTestNodes(t, "")
	pub, n1, n2 := nodes.open(), nodes.open(), nodes.open()
	ctx := testCtx(t)
	q := mustQueue(t, ctx, pub, "credit")
	c1 := mustConsume(t, ctx, n1, q, driver.ConsumeOptions{Prefetch: 2})
	c2 := mustConsume(t, ctx, n2, q, driver.ConsumeOptions{Prefetch: 2})
	publishN(t, ctx, pub, q, 10)

	var held []driver.Delivery
	for _, cons := range []driver.Consumer{c1, c2} {
		for range 2 {
			d, err := receiveWithin(cons, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, d)
		}
		if d, err := receiveWithin(cons, 200*time.Millisecond); err == nil {
			t.Fatalf("a third delivery %q beyond prefetch 2", d.Body)
		}
	}
	s := pub.sender
	s.mu.Lock()
	for _, tg := range s.queues[q].targets {
		if tg.inflight > 2 {
			t.Errorf("consumer %v has %d in flight, prefetch 2", tg.key, tg.inflight)
		}
	}
	pending := s.queues[q].live
	s.mu.Unlock()
	if pending != 6 {
		t.Errorf("sender holds %d messages pending, want 6", pending)
	}
	for _, d := range held {
		if err := d.Settler.Ack(d.Tag); err != nil {
			t.Fatal(err)
		}
	}
	got := 4
	for _, cons := range []driver.Consumer{c1, c2} {
		for {
			d, err := receiveWithin(cons, 300*time.Millisecond)
			if err != nil {
				break
			}
			got++
			_ = d.Settler.Ack(d.Tag)
		}
	}
	if got != 10 {
		t.Errorf("received %d of 10", got)
	}
	eventually(t, "sender forgets acked messages", func() bool { return heldCount(pub) == 0 })
}

// TestSettleTag: a tag the consumer holds settles; one it never handed
// out is an error, not a panic; after the consumer ended, a tag it held is
// ErrClosed.
func TestSettleTag(t *testing.T) {
	nodes := newTestNodes(t, "")
	n := nodes.open()
	ctx := testCtx(t)
	q := mustQueue(t, ctx, n, "tags")
	cons := mustConsume(t, ctx, n, q, driver.ConsumeOptions{})
	publishN(t, ctx, n, q, 2)
	var ds []driver.Delivery
	for range 2 {
		d, err := receiveWithin(cons, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	settler := ds[0].Settler
	rows := []struct {
		name   string
		settle func() error
		want   error // nil: settles
	}{
		{"a held tag", func() error { return settler.Ack(ds[0].Tag) }, nil},
		{"a tag never handed out", func() error { return settler.Nack(ds[1].Tag+100, true) }, driver.ErrInvalid},
		{"after the consumer ended", func() error { _ = cons.Close(); return settler.Ack(ds[1].Tag) }, driver.ErrClosed},
	}
	for _, row := range rows {
		if err := row.settle(); (row.want == nil) != (err == nil) || !errors.Is(err, row.want) {
			t.Errorf("%s: %v, want %v", row.name, err, row.want)
		}
	}
}

// TestAckTimeoutRedelivers: a delivery not settled within ack_timeout goes
// to another consumer, marked redelivered and counted.
func TestAckTimeoutRedelivers(t *testing.T) {
	for _, sameNode := range []bool{false, true} {
		t.Run(fmt.Sprintf("same-node=%v", sameNode), func(t *testing.T) { ackTimeoutRedelivers(t, sameNode) })
	}
}

// ackTimeoutRedelivers: the copy goes to the other consumer, on another
// node or on the slow one's own node (whose duplicate filter must not
// take it for a copy of the delivery the slow consumer holds).
func ackTimeoutRedelivers(t *testing.T, sameNode bool) {
	nodes := newTestNodes(t, "ack_timeout=200ms")
	pub, slow, fast := nodes.open(), nodes.open(), nodes.open()
	if sameNode {
		fast = slow
	}
	ctx := testCtx(t)
	q := mustQueue(t, ctx, pub, "timeout")
	cs := mustConsume(t, ctx, slow, q, driver.ConsumeOptions{Prefetch: 1})
	publishN(t, ctx, pub, q, 1)
	first, err := receiveWithin(cs, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cf := mustConsume(t, ctx, fast, q, driver.ConsumeOptions{Prefetch: 1})
	again, err := receiveWithin(cf, 5*time.Second)
	if err != nil {
		t.Fatalf("not redelivered after the ack timeout: %v", err)
	}
	if string(again.Body) != string(first.Body) || !again.Redelivered || again.DeliveryCount != 1 {
		t.Errorf("redelivery: %q redelivered=%v count=%d", again.Body, again.Redelivered, again.DeliveryCount)
	}
	nodes.log.waitFor(t, "ack_timeout")
	if err := again.Settler.Ack(again.Tag); err != nil {
		t.Fatal(err)
	}
	if err := first.Settler.Ack(first.Tag); err != nil { // late, harmless
		t.Fatal(err)
	}
	eventually(t, "sender forgets the message", func() bool { return heldCount(pub) == 0 })
}

// TestDuplicateDropped: when the ack timeout sends a message again to the
// consumer still holding it, the consumer's node drops the copy.
func TestDuplicateDropped(t *testing.T) {
	nodes := newTestNodes(t, "ack_timeout=50ms")
	pub, sub := nodes.open(), nodes.open()
	ctx := testCtx(t)
	q := mustQueue(t, ctx, pub, "dups")
	cons := mustConsume(t, ctx, sub, q, driver.ConsumeOptions{})
	publishN(t, ctx, pub, q, 1)
	d, err := receiveWithin(cons, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	nodes.log.waitFor(t, "ack_timeout") // sent again, to the same consumer
	if dup, err := receiveWithin(cons, 300*time.Millisecond); err == nil {
		t.Fatalf("duplicate delivered: %q redelivered=%v", dup.Body, dup.Redelivered)
	}
	if err := d.Settler.Ack(d.Tag); err != nil {
		t.Fatal(err)
	}
	eventually(t, "sender forgets the message", func() bool { return heldCount(pub) == 0 })
	if dup, err := receiveWithin(cons, 200*time.Millisecond); err == nil {
		t.Fatalf("delivered again after its ack: %q", dup.Body)
	}
}

func TestDedupTable(t *testing.T) {
	d := newDedup()
	k := dedupKey{"n", 1, 1}
	if fresh, _ := d.arrive(k); !fresh {
		t.Fatal("first arrival not fresh")
	}
	if fresh, resend := d.arrive(k); fresh || resend != 0 {
		t.Fatalf("copy of a held delivery: fresh %v resend %v", fresh, resend)
	}
	d.settled(k, opRequeue) // returned: its sender may send it again
	if fresh, _ := d.arrive(k); !fresh {
		t.Fatal("redelivery after a requeue dropped")
	}
	d.settled(k, opAck)
	if fresh, resend := d.arrive(k); fresh || resend != opAck {
		t.Fatalf("copy of an acked delivery: fresh %v resend %v, want the ack again", fresh, resend)
	}
	d.evict(time.Now().Add(dedupKeep + time.Second))
	if fresh, _ := d.arrive(k); !fresh {
		t.Fatal("settlement remembered past dedupKeep")
	}
	for i := range uint64(dedupMax + 10) {
		d.settled(dedupKey{"m", 1, i}, opAck)
	}
	if len(d.done) > dedupMax {
		t.Errorf("%d settlements remembered, bound %d", len(d.done), dedupMax)
	}
}

// TestConsumerConnectionDies: when a consumer's node dies (its connections
// drop, nothing is returned), its sender redelivers what it held.
func TestConsumerConnectionDies(t *testing.T) {
	nodes := newTestNodes(t, "")
	pub, doomed, survivor := nodes.open(), nodes.open(), nodes.open()
	ctx := testCtx(t)
	q := mustQueue(t, ctx, pub, "death")
	cd := mustConsume(t, ctx, doomed, q, driver.ConsumeOptions{Prefetch: 5})
	publishN(t, ctx, pub, q, 5)
	for range 5 {
		if _, err := receiveWithin(cd, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	cs := mustConsume(t, ctx, survivor, q, driver.ConsumeOptions{})
	crash(doomed)
	seen := map[string]bool{}
	for len(seen) < 5 {
		d, err := receiveWithin(cs, 5*time.Second)
		if err != nil {
			t.Fatalf("after %d of 5: %v", len(seen), err)
		}
		if !d.Redelivered || d.DeliveryCount != 1 {
			t.Errorf("%q: redelivered=%v count=%d, want true and 1", d.Body, d.Redelivered, d.DeliveryCount)
		}
		seen[string(d.Body)] = true
		_ = d.Settler.Ack(d.Tag)
	}
}

// crash cuts a node's connections as a dying process would: no returns.
func crash(c *conn) {
	_ = c.ln.Close()
	for _, p := range c.pool.conns() {
		_ = p.nc.Close()
	}
}

// TestBufferBound: without consumers a sender holds at most buffer_size
// messages per queue, then Publish fails; with a busy consumer it waits.
func TestBufferBound(t *testing.T) {
	nodes := newTestNodes(t, "buffer_size=3")
	pub, sub := nodes.open(), nodes.open()
	ctx := testCtx(t)
	q := mustQueue(t, ctx, pub, "bounded")
	publishN(t, ctx, pub, q, 3)
	err := pub.Publish(ctx, "", q, driver.Message{Body: []byte("one too many")})
	if !errors.Is(err, ErrBufferFull) || !errors.Is(err, driver.ErrUnroutable) || !strings.Contains(err.Error(), q) {
		t.Fatalf("publish past the buffer: %v, want ErrBufferFull naming the queue", err)
	}

	cons := mustConsume(t, ctx, sub, q, driver.ConsumeOptions{Prefetch: 1})
	d, err := receiveWithin(cons, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, ctx, pub, q, 1) // room for one: the consumer took one
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := pub.Publish(short, "", q, driver.Message{Body: []byte("waits")}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("publish to a full queue with a busy consumer: %v, want it to wait until ctx ends", err)
	}
	if err := d.Settler.Ack(d.Tag); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, "", q, driver.Message{Body: []byte("fits")}); err != nil {
		t.Fatalf("publish once credit came back: %v", err)
	}
}

// TestBufferTime: a message that waits longer than buffer_time for a
// consumer is dropped with a warning.
func TestBufferTime(t *testing.T) {
	nodes := newTestNodes(t, "buffer_time=100ms")
	pub, sub := nodes.open(), nodes.open()
	ctx := testCtx(t)
	q := mustQueue(t, ctx, pub, "stale")
	publishN(t, ctx, pub, q, 2)
	nodes.log.waitFor(t, "buffer_time", "messages=2")
	cons := mustConsume(t, ctx, sub, q, driver.ConsumeOptions{})
	if d, err := receiveWithin(cons, 200*time.Millisecond); err == nil {
		t.Fatalf("delivered %q after buffer_time", d.Body)
	}
}

func TestOptions(t *testing.T) {
	rows := []struct {
		query string
		want  string // "" for valid
	}{
		{"", ""},
		{"matchmaker=memory&bind=127.0.0.1:0&ack_timeout=0&liveness_ttl=3s&liveness_refresh=1s&buffer_size=0&buffer_time=1m&send_timeout=1s", ""},
		{"bogus=1", "bogus"},
		{"matchmaker=etcd://x", "matchmaker"},
		{"ack_timeout=soon", "ack_timeout"},
		{"liveness_ttl=0", "liveness_ttl"},
		{"liveness_ttl=1s&liveness_refresh=2s", "liveness_refresh"},
		{"buffer_size=-1", "buffer_size"},
		{"send_timeout=-1s", "send_timeout"},
	}
	for _, row := range rows {
		cfg := &driver.URL{Scheme: Scheme, Options: url.Values{}}
		q, _ := url.ParseQuery(row.query)
		cfg.Options = q
		_, err := parseOptions(cfg)
		switch {
		case row.want == "" && err != nil:
			t.Errorf("%q: %v", row.query, err)
		case row.want != "" && (!errors.Is(err, driver.ErrInvalid) || !strings.Contains(err.Error(), row.want)):
			t.Errorf("%q: %v, want ErrInvalid naming %q", row.query, err, row.want)
		}
	}
	for _, raw := range []string{"zmq://a:1", "zmq://u:p@a", "zmq://a/vhost", "zmq://a,b"} {
		if _, err := transport.Open(context.Background(), raw); !errors.Is(err, transport.ErrInvalid) {
			t.Errorf("open %s: %v, want ErrInvalid", raw, err)
		}
	}
}

func TestCapabilitiesInProcess(t *testing.T) {
	nodes := newTestNodes(t, "")
	caps := nodes.open().Capabilities()
	for _, c := range []driver.Capability{driver.CapDurable, driver.CapCrossProcess, driver.CapMaxLength, driver.CapQueueExpiry} {
		if caps.Has(c) {
			t.Errorf("in-process zmq:// declares %s", c)
		}
	}
	if !caps.Has(driver.CapPrefetch, driver.CapTopic, driver.CapMandatory, driver.CapDeliveryCount) {
		t.Errorf("capabilities %s lack what the driver provides", caps)
	}
}

// TestCloseHandsOff: a closing sender hands the messages no consumer has
// to another live node, in order, which delivers them later.
func TestCloseHandsOff(t *testing.T) {
	nodes := newTestNodes(t, "")
	pub, other := nodes.open(), nodes.open()
	ctx := testCtx(t)
	q := mustQueue(t, ctx, pub, "handoff")
	publishN(t, ctx, pub, q, 5)
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the other node holds the messages", func() bool { return heldCount(other) == 5 })
	consumerNode := nodes.open()
	cons := mustConsume(t, ctx, consumerNode, q, driver.ConsumeOptions{})
	for i := range 5 {
		d, err := receiveWithin(cons, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if string(d.Body) != fmt.Sprint(i) || d.Redelivered {
			t.Errorf("delivery %d: %q redelivered=%v", i, d.Body, d.Redelivered)
		}
		_ = d.Settler.Ack(d.Tag)
	}
}
