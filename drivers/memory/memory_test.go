package memory_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/conformance"
	"github.com/switchyard-mq/switchyard/transport"
	"github.com/switchyard-mq/switchyard/transport/driver"

	_ "github.com/switchyard-mq/switchyard/drivers/memory"
)

// brokerURL names a fresh broker, so that no state leaks between tests.
func brokerURL(testing.TB) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "memory://test-" + hex.EncodeToString(b[:])
}

func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Harness{URL: brokerURL})
}

// TestCapabilities pins what the driver declares, so that a change shows
// up here and in the README's matrix together.
func TestCapabilities(t *testing.T) {
	tr, err := transport.Open(t.Context(), "memory://")
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	want := driver.NewCapabilities(driver.AllCapabilities()...).Without(driver.CapCrossProcess, driver.CapQuorumQueue, driver.CapStreamQueue)
	if got := tr.Capabilities(); got != want {
		t.Errorf("capabilities: got %s, want %s", got, want)
	}
}

// TestBrokerIsolation: memory://NAME brokers are separate; transports with
// the same URL share one, and a broker outlives its transports.
func TestBrokerIsolation(t *testing.T) {
	ctx := t.Context()
	a, b := brokerURL(t), brokerURL(t)
	open := func(url string) *transport.Transport {
		tr, err := transport.Open(ctx, url)
		if err != nil {
			t.Fatalf("open %s: %v", url, err)
		}
		t.Cleanup(func() { _ = tr.Close() })
		return tr
	}
	trA := open(a)
	if _, err := trA.DeclareQueue(ctx, transport.Queue{Name: "q"}); err != nil {
		t.Fatal(err)
	}
	if err := trA.Publish(ctx, "", "q", transport.Message{Body: []byte("kept")}); err != nil {
		t.Fatal(err)
	}
	if err := trA.Close(); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		url     string
		wantErr error
	}{
		{"another broker does not see the queue", b, transport.ErrNotFound},
		{"the same broker, opened again, still holds it", a, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := open(tt.url).PurgeQueue(ctx, "q")
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("purge q on %s: got %v, want %v", tt.url, err, tt.wantErr)
			}
			if tt.wantErr == nil && n != 1 {
				t.Errorf("purge q on %s: %d messages, want 1", tt.url, n)
			}
		})
	}
}

// TestOpenBadURL: a memory URL with parts it does not take is refused
// with ErrInvalid and a message naming the part.
func TestOpenBadURL(t *testing.T) {
	tests := []struct {
		url      string
		wantText string
	}{
		{"memory://broker:5672", "no port"},
		{"memory://user@broker", "no credentials"},
		{"memory://user:sekrit-pw@broker", "no credentials"},
		{"memory://broker/vhost", "no virtual host"},
		{"memory://a,b", "one broker name"},
		{"memory://broker?prefetch=10", "unknown option prefetch"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			tr, err := transport.Open(t.Context(), tt.url)
			if err == nil {
				_ = tr.Close()
				t.Fatalf("Open(%q) succeeded, want an error", tt.url)
			}
			if !errors.Is(err, transport.ErrInvalid) {
				t.Errorf("Open(%q): %v, want ErrInvalid", tt.url, err)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("Open(%q): %q does not say %q", tt.url, err, tt.wantText)
			}
			if strings.Contains(err.Error(), "sekrit-pw") {
				t.Errorf("Open(%q): the error shows the password: %q", tt.url, err)
			}
		})
	}
}

// TestOpenCancelled: Open honours an ended context.
func TestOpenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := transport.Open(ctx, brokerURL(t)); !errors.Is(err, context.Canceled) {
		t.Errorf("Open with a cancelled context: %v, want context.Canceled", err)
	}
}

// openTestBroker opens a transport on a fresh broker, closed at cleanup.
func openTestBroker(t *testing.T) *transport.Transport {
	t.Helper()
	tr, err := transport.Open(t.Context(), brokerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// must fails t on err.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// receive waits for one delivery, failing t after five seconds.
func receive(t *testing.T, c *transport.Consumer) *transport.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	d, err := c.Receive(ctx)
	if err != nil {
		t.Fatalf("receive from %q: %v", c.Queue(), err)
	}
	return d
}

// TestPredeclaredExchanges: the amq.* exchanges exist, as on RabbitMQ,
// route by their kind, and cannot be declared or deleted by users.
func TestPredeclaredExchanges(t *testing.T) {
	tests := []struct {
		exchange, bindKey, publishKey string
	}{
		{"amq.direct", "k", "k"},
		{"amq.fanout", "", "anything"},
		{"amq.topic", "a.*", "a.b"},
	}
	for _, tt := range tests {
		t.Run(tt.exchange, func(t *testing.T) {
			ctx := t.Context()
			tr := openTestBroker(t)
			q, err := tr.DeclareQueue(ctx, transport.Queue{Name: "q"})
			must(t, err)
			must(t, tr.Bind(ctx, transport.Binding{Exchange: tt.exchange, Queue: q, Key: tt.bindKey}))
			must(t, tr.Publish(ctx, tt.exchange, tt.publishKey, transport.Message{Body: []byte("routed"), Mandatory: true}))
			c, err := tr.Consume(ctx, q, transport.ConsumeOptions{AutoAck: true})
			must(t, err)
			if d := receive(t, c); string(d.Body) != "routed" || d.Exchange != tt.exchange || d.RoutingKey != tt.publishKey {
				t.Errorf("got %q from %q with key %q", d.Body, d.Exchange, d.RoutingKey)
			}
			if err := tr.DeleteExchange(ctx, tt.exchange); !errors.Is(err, transport.ErrInvalid) {
				t.Errorf("delete %s: %v, want ErrInvalid", tt.exchange, err)
			}
		})
	}
}

// deaths returns the x-death entries of d as the broker writes them.
func deaths(t *testing.T, d *transport.Delivery) []driver.Headers {
	t.Helper()
	list, ok := d.Headers["x-death"].([]any)
	if !ok {
		t.Fatalf("no x-death header in %v", d.Headers)
	}
	out := make([]driver.Headers, 0, len(list))
	for _, e := range list {
		out = append(out, e.(driver.Headers))
	}
	return out
}

// TestDeadLetterCycles: a message dead-lettered back into its own queue
// counts its deaths in x-death when it was rejected (the application
// decides), and is dropped when it died otherwise (an expiry loop would
// never end), as RabbitMQ does.
func TestDeadLetterCycles(t *testing.T) {
	ctx := t.Context()
	tr := openTestBroker(t)
	must(t, tr.DeclareExchange(ctx, transport.Exchange{Name: "dlx", Kind: transport.Fanout}))

	t.Run("rejected twice", func(t *testing.T) {
		q, err := tr.DeclareQueue(ctx, transport.Queue{Name: "retry", DeadLetterExchange: "dlx"})
		must(t, err)
		must(t, tr.Bind(ctx, transport.Binding{Exchange: "dlx", Queue: q}))
		t.Cleanup(func() { _, _ = tr.DeleteQueue(context.Background(), q) })
		must(t, tr.Publish(ctx, "", q, transport.Message{Body: []byte("m")}))
		c, err := tr.Consume(ctx, q, transport.ConsumeOptions{})
		must(t, err)
		defer c.Close()
		for want := int64(1); want <= 2; want++ {
			must(t, receive(t, c).Reject())
			d := receive(t, c)
			ds := deaths(t, d)
			if len(ds) != 1 || ds[0]["count"] != want || ds[0]["reason"] != "rejected" || ds[0]["queue"] != q {
				t.Fatalf("after %d rejections: x-death %v, want one entry, count %d", want, ds, want)
			}
			if d.Headers["x-first-death-reason"] != "rejected" || d.Headers["x-first-death-queue"] != q {
				t.Errorf("x-first-death headers: %v", d.Headers)
			}
			must(t, d.Nack(true))
		}
	})

	t.Run("expired into itself", func(t *testing.T) {
		q, err := tr.DeclareQueue(ctx, transport.Queue{Name: "loop", MessageTTL: 20 * time.Millisecond, DeadLetterExchange: "dlx"})
		must(t, err)
		watch, err := tr.DeclareQueue(ctx, transport.Queue{Name: "watch"})
		must(t, err)
		for _, name := range []string{q, watch} {
			must(t, tr.Bind(ctx, transport.Binding{Exchange: "dlx", Queue: name}))
		}
		must(t, tr.Publish(ctx, "", q, transport.Message{Body: []byte("m")}))
		c, err := tr.Consume(ctx, watch, transport.ConsumeOptions{AutoAck: true})
		must(t, err)
		defer c.Close()
		if ds := deaths(t, receive(t, c)); len(ds) != 1 || ds[0]["reason"] != "expired" {
			t.Fatalf("first death: %v", ds)
		}
		// Had the copy in "loop" died again, "watch" would get a copy
		// every 20 ms. Absence has no signal: listen for 15 TTLs.
		quiet, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		if d, err := c.Receive(quiet); err == nil {
			t.Errorf("the message looped: died again with x-death %v", d.Headers["x-death"])
		}
		if n, err := tr.PurgeQueue(ctx, q); err != nil || n != 0 {
			t.Errorf("queue %q holds %d messages (%v), want 0: the cycle's copy is dropped", q, n, err)
		}
	})
}

// TestAutoDeleteKeepsNewConsumer: when the last consumer of an
// auto-delete queue leaves just as another subscribes, either the new
// consumer is refused (the queue is gone) or it keeps a working queue;
// never a consumer on a deleted queue. The race is tried many times.
func TestAutoDeleteKeepsNewConsumer(t *testing.T) {
	ctx := t.Context()
	tr := openTestBroker(t)
	kept := 0
	for i := range 300 {
		q, err := tr.DeclareQueue(ctx, transport.Queue{Name: fmt.Sprintf("q%d", i), AutoDelete: true})
		must(t, err)
		first, err := tr.Consume(ctx, q, transport.ConsumeOptions{})
		must(t, err)
		closed := make(chan error, 1)
		go func() { closed <- first.Close() }()
		second, err := tr.Consume(ctx, q, transport.ConsumeOptions{})
		must(t, <-closed)
		if errors.Is(err, transport.ErrNotFound) {
			continue // deleted first: refused, as it should be
		}
		must(t, err)
		kept++
		if err := tr.Publish(ctx, "", q, transport.Message{Body: []byte("m"), Mandatory: true}); err != nil {
			t.Fatalf("round %d: the new consumer's queue is gone: %v", i, err)
		}
		must(t, receive(t, second).Ack())
		must(t, second.Close())
	}
	t.Logf("the new consumer kept the queue in %d of 300 rounds", kept)
}

// Hello world, RabbitMQ's first tutorial, on the in-process broker.
func Example() {
	ctx := context.Background()
	tr, err := transport.Open(ctx, "memory://example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tr.Close()

	q, err := tr.DeclareQueue(ctx, transport.Queue{Name: "hello"})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := tr.Publish(ctx, "", q, transport.Message{Body: []byte("Hello World!")}); err != nil {
		fmt.Println(err)
		return
	}

	c, err := tr.Consume(ctx, q, transport.ConsumeOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	d, err := c.Receive(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("received %s\n", d.Body)
	if err := d.Ack(); err != nil {
		fmt.Println(err)
	}
	// Output: received Hello World!
}
