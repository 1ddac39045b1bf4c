package zmq

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/security/null"
	"go.uber.org/goleak"

	"github.com/switchyard-mq/switchyard/drivers/zmq/internal/matchmaker"
	"github.com/switchyard-mq/switchyard/transport"
	"github.com/switchyard-mq/switchyard/transport/driver"
)

// logRecorder is a slog handler that keeps records for assertions.
type logRecorder struct {
	mu      sync.Mutex
	records []string
	changed chan struct{}
}

func newLogRecorder() *logRecorder { return &logRecorder{changed: make(chan struct{}, 1)} }

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	l.mu.Lock()
	l.records = append(l.records, b.String())
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// waitFor waits until a record at WARN or above contains every part.
func (l *logRecorder) waitFor(t *testing.T, parts ...string) {
	t.Helper()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	for {
		l.mu.Lock()
		for _, r := range l.records {
			if !strings.HasPrefix(r, "WARN") && !strings.HasPrefix(r, "ERROR") {
				continue
			}
			all := true
			for _, p := range parts {
				all = all && strings.Contains(r, p)
			}
			if all {
				l.mu.Unlock()
				return
			}
		}
		l.mu.Unlock()
		select {
		case <-l.changed:
		case <-timer.C:
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Fatalf("no warning mentioning %q; logged:\n%s", parts, strings.Join(l.records, "\n"))
		}
	}
}

// testNodes opens nodes sharing one in-process registry.
type testNodes struct {
	t   *testing.T
	op  *opener
	url string
	log *logRecorder
}

func newTestNodes(t *testing.T, options string) *testNodes {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs after the nodes close
	return &testNodes{
		t: t, op: &opener{registries: map[string]*matchmaker.Memory{}},
		url: "zmq://test?" + options, log: newLogRecorder(),
	}
}

func (n *testNodes) open() *conn {
	n.t.Helper()
	cfg, err := transport.ParseURL(n.url)
	if err != nil {
		n.t.Fatal(err)
	}
	cfg.Logger = slog.New(n.log)
	dc, err := n.op.Open(context.Background(), cfg)
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() {
		if err := dc.Close(); err != nil {
			n.t.Errorf("close: %v", err)
		}
	})
	return dc.(*conn)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// roundTrip checks that the nodes still work: a message published on one
// is consumed on the other.
func roundTrip(t *testing.T, ctx context.Context, pub, sub *conn, body string) {
	t.Helper()
	q, err := sub.DeclareQueue(ctx, driver.Queue{})
	if err != nil {
		t.Fatal(err)
	}
	cons, err := sub.Consume(ctx, q, driver.ConsumeOptions{AutoAck: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	if err := pub.Publish(ctx, "", q, driver.Message{Body: []byte(body)}); err != nil {
		t.Fatal(err)
	}
	d, err := cons.Receive(ctx)
	if err != nil || string(d.Body) != body {
		t.Fatalf("round trip: %q, %v", d.Body, err)
	}
}

// TestGarbageFromZMQPeer: a raw zmq4 socket sends malformed messages to a
// node's endpoint; each is logged and its connection closed, and the node
// keeps serving others.
func TestGarbageFromZMQPeer(t *testing.T) {
	rows := []struct {
		name   string
		frames [][]byte
		want   string
	}{
		{"not a header", [][]byte{[]byte("hello")}, "protocol version"},
		{"unknown version", [][]byte{{7, typeDeliver}}, "protocol version 7"},
		{"unknown type", [][]byte{{protocolVersion, 'Z'}}, "unknown message type"},
		{"deliver without body", [][]byte{{protocolVersion, typeDeliver, 1, 1, 0, 0, 0}}, "DELIVER of 1 frames"},
		{"deliver with bad properties", [][]byte{{protocolVersion, typeDeliver, 1, 1, 0, 0, 0}, {0xff}, nil}, "exchange"},
		{"settle with garbage", [][]byte{{protocolVersion, typeSettle, 3, 1}}, "exceeds"},
		{"too many frames", [][]byte{{1}, {2}, {3}, {4}}, "more than 3"},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			nodes := newTestNodes(t, "")
			a, b := nodes.open(), nodes.open()
			ctx := testCtx(t)
			sock := zmq4.NewDealer(ctx, zmq4.WithTimeout(time.Second), zmq4.WithDialerMaxRetries(0))
			defer sock.Close()
			if err := sock.Dial(a.endpoint); err != nil {
				t.Fatal(err)
			}
			if err := sock.SendMulti(zmq4.NewMsgFrom(row.frames...)); err != nil {
				t.Fatal(err)
			}
			nodes.log.waitFor(t, "closing it", row.want)
			roundTrip(t, ctx, b, a, "still serving")
		})
	}
}

// rawPeer completes a ZMTP handshake with a node over a plain TCP
// connection, so that a test can then write anything.
func rawPeer(t *testing.T, endpoint string) net.Conn {
	t.Helper()
	addr, _ := tcpAddress(endpoint)
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	if _, err := zmq4.Open(nc, null.Security(), zmq4.Dealer, zmq4.SocketIdentity("raw-peer"), false, nil); err != nil {
		t.Fatal(err)
	}
	return nc
}

// TestPeerVanishesMidMessage: a peer that sends half a message and hangs
// up is logged; a frame announcing a huge length is refused before any
// allocation; a client that connects and says nothing delays nobody.
func TestPeerVanishesMidMessage(t *testing.T) {
	nodes := newTestNodes(t, "")
	a, b := nodes.open(), nodes.open()
	ctx := testCtx(t)

	silent, err := net.Dial("tcp", strings.TrimPrefix(a.endpoint, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close() // says nothing: its handshake must not block the others

	half := rawPeer(t, a.endpoint)
	msg := appendDeliver(nil, deliverHeader{consumer: 1, seq: 1}, []byte("props"), bytes.Repeat([]byte("x"), 1000))
	if _, err := half.Write(msg[:len(msg)/2]); err != nil {
		t.Fatal(err)
	}
	_ = half.Close()
	nodes.log.waitFor(t, "raw-peer", "unexpected EOF")

	huge := rawPeer(t, a.endpoint)
	if _, err := huge.Write([]byte{zmtpLong, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}); err != nil {
		t.Fatal(err)
	}
	nodes.log.waitFor(t, "exceeds the limit")

	roundTrip(t, ctx, b, a, "still serving")
}

// TestGarbageHandshake: bytes that are not ZMTP, or a handshake frame
// announcing a huge length, end in a logged handshake failure.
func TestGarbageHandshake(t *testing.T) {
	nodes := newTestNodes(t, "")
	a := nodes.open()
	for _, input := range [][]byte{
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n" + strings.Repeat("x", 64)),
		append(validGreeting(), zmtpCommand|zmtpLong, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
	} {
		nc, err := net.Dial("tcp", strings.TrimPrefix(a.endpoint, "tcp://"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Write(input); err != nil {
			t.Fatal(err)
		}
		nodes.log.waitFor(t, "handshake failed")
		_ = nc.Close()
	}
}

// validGreeting is a ZMTP 3.0 NULL greeting.
func validGreeting() []byte {
	g := make([]byte, zmtpGreeting)
	g[0], g[9], g[10] = 0xff, 0x7f, 3
	copy(g[12:], "NULL")
	return g
}

// TestStuckConsumerDoesNotStickSender: a consumer's node that stops
// reading makes writes to it time out after send_timeout; the sender fails
// that connection, and its messages go to another consumer.
func TestStuckConsumerDoesNotStickSender(t *testing.T) {
	nodes := newTestNodes(t, "send_timeout=300ms")
	pub, good := nodes.open(), nodes.open()
	ctx := testCtx(t)

	// A fake node that handshakes and then never reads.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		if _, err := zmq4.Open(nc, null.Security(), zmq4.Router, zmq4.SocketIdentity("stuck"), true, nil); err != nil {
			_ = nc.Close()
			return
		}
		accepted <- nc
	}()
	defer func() {
		select {
		case nc := <-accepted:
			_ = nc.Close()
		default:
		}
	}()
	mm := pub.mm
	if err := mm.Join(ctx, matchmaker.Node{ID: "stuck", Endpoint: "tcp://" + ln.Addr().String()}, time.Minute); err != nil {
		t.Fatal(err)
	}
	q, err := pub.DeclareQueue(ctx, driver.Queue{Name: "work"})
	if err != nil {
		t.Fatal(err)
	}
	if err := mm.AddConsumer(ctx, matchmaker.Consumer{Queue: q, Node: "stuck", ID: 1}); err != nil {
		t.Fatal(err)
	}

	const total = 64
	body := bytes.Repeat([]byte("b"), 256<<10) // enough to fill the socket buffers
	start := time.Now()
	for i := range total {
		if err := pub.Publish(ctx, "", q, driver.Message{Body: body, MessageID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("publishing took %v with a stuck consumer", took)
	}
	nodes.log.waitFor(t, "writing to peer failed", "stuck", "i/o timeout")

	// The stuck node's record stays; the sender must not send to it again
	// over the failed connection, and a real consumer gets everything.
	if err := mm.Leave(ctx, "stuck"); err != nil {
		t.Fatal(err)
	}
	cons, err := good.Consume(ctx, q, driver.ConsumeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for len(seen) < total {
		d, err := cons.Receive(ctx)
		if err != nil {
			t.Fatalf("after %d of %d: %v", len(seen), total, err)
		}
		seen[d.MessageID] = true
		if err := d.Settler.Ack(d.Tag); err != nil {
			t.Fatal(err)
		}
	}
}
