package amqp1_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/transport"
)

// openT opens a transport that closes when t ends.
func openT(t testing.TB, ctx context.Context, url string) *transport.Transport {
	t.Helper()
	tr, err := transport.Open(ctx, url)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return tr
}

// publishN publishes n messages with bodies "0" ... "n-1" to queue from
// several goroutines, each message confirmed by the broker.
func publishN(t testing.TB, ctx context.Context, tr *transport.Transport, queue string, n int) {
	t.Helper()
	const publishers = 16
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for p := range publishers {
		wg.Go(func() {
			for i := p; i < n; i += publishers {
				if err := tr.Publish(ctx, "", queue, transport.Message{Body: []byte(strconv.Itoa(i))}); err != nil {
					errs <- fmt.Errorf("publish %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestBacklogDrains is the proof of the flow-control workaround: a queue
// holding a backlog is consumed to the end, with every delivery acked one
// by one, whatever the prefetch. With go-amqp's own credit management the
// same link stops for good after a few hundred messages on RabbitMQ 3.10
// (see "Flow control" in the package documentation). It runs on RabbitMQ
// 4.3 too, where the same manual credit drains the (durable) queue.
func TestBacklogDrains(t *testing.T) {
	tests := []struct {
		prefetch, messages int
	}{
		{100, 100_000},
		{1, 2_000},
		{10, 20_000},
		{1000, 20_000},
	}
	if testing.Short() {
		tests = tests[1:]
	}
	eachRabbit(t, func(t *testing.T, url string) {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("prefetch-%d-backlog-%d", tt.prefetch, tt.messages), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
				defer cancel()
				tr := openT(t, ctx, url)
				q, err := tr.DeclareQueue(ctx, orDurable(t, url, transport.Queue{Name: "backlog." + randomHex(4)}))
				if err != nil {
					t.Fatal(err)
				}
				defer func() { _, _ = tr.DeleteQueue(context.Background(), q) }()
				start := time.Now()
				publishN(t, ctx, tr, q, tt.messages)
				published := time.Since(start)

				c, err := tr.Consume(ctx, q, transport.ConsumeOptions{Prefetch: tt.prefetch})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				seen := make([]bool, tt.messages)
				start = time.Now()
				for got := 0; got < tt.messages; got++ {
					// A stall shows as no delivery for a long while: fail fast
					// rather than at the test's deadline.
					rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
					d, err := c.Receive(rctx)
					rcancel()
					if err != nil {
						t.Fatalf("stalled after %d of %d messages: %v", got, tt.messages, err)
					}
					i, err := strconv.Atoi(string(d.Body))
					if err != nil || i < 0 || i >= tt.messages || seen[i] {
						t.Fatalf("unexpected or duplicate body %q after %d messages", d.Body, got)
					}
					seen[i] = true
					if err := d.Ack(); err != nil {
						t.Fatalf("ack message %d: %v", got, err)
					}
				}
				drained := time.Since(start)
				if n, err := tr.PurgeQueue(ctx, q); err != nil || n != 0 {
					t.Errorf("after draining: purge found %d messages (%v), want 0", n, err)
				}
				t.Logf("published %d in %v (%.0f msg/s); drained with prefetch %d in %v (%.0f msg/s)",
					tt.messages, published.Round(time.Millisecond), float64(tt.messages)/published.Seconds(),
					tt.prefetch, drained.Round(time.Millisecond), float64(tt.messages)/drained.Seconds())
			})
		}
	})
}
