package messaging_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/internal/messaging"
	"github.com/switchyard-mq/switchyard/transport"
)

// TestWorkerPool: what every queue delivers is handled, less what Accept
// drops, and every delivery is settled.
func TestWorkerPool(t *testing.T) {
	tests := []struct {
		name      string
		published map[string][]string // queue: bodies
		drop      string              // the body Accept rejects
		want      []string
	}{
		{"one queue", map[string][]string{"q0": {"a", "b"}}, "", []string{"a", "b"}},
		{"several queues", map[string][]string{"q0": {"a"}, "q1": {"b", "c"}, "q2": {"d"}}, "", []string{"a", "b", "c", "d"}},
		{"Accept drops some", map[string][]string{"q0": {"a", "drop"}, "q1": {"drop", "b"}}, "drop", []string{"a", "b"}},
		{"nothing", nil, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			tr, queues, consumers := poolFixture(t, 3)
			stopping := make(chan struct{})
			var mu sync.Mutex
			var got []string
			settled := make(chan struct{}, 16)
			pool := messaging.NewWorkerPool(consumers, messaging.WorkerPoolConfig[string]{
				Accept: func(d *transport.Delivery) (string, bool) {
					if string(d.Body) == tt.drop {
						_ = d.Reject()
						settled <- struct{}{}
						return "", false
					}
					_ = d.Ack()
					return string(d.Body), true
				},
				Handle: func(_ context.Context, body string) {
					mu.Lock()
					got = append(got, body)
					mu.Unlock()
					settled <- struct{}{}
				},
				Context: context.Background(), MaxConcurrency: 4, Stopping: stopping, Logger: quiet, What: "bodies",
			})
			n := 0
			for q, bodies := range tt.published {
				for _, b := range bodies {
					publish(t, tr, q, b)
					n++
				}
			}
			for i := range n {
				select {
				case <-settled:
				case <-ctx.Done():
					t.Fatalf("%d of %d deliveries settled", i, n)
				}
			}
			close(stopping)
			pool.Close()
			pool.Wait()
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("handled %q, want %q", got, tt.want)
			}
			for _, q := range queues {
				if n, err := tr.PurgeQueue(ctx, q); err != nil || n != 0 {
					t.Errorf("queue %s: %d left, %v; want every delivery settled", q, n, err)
				}
			}
		})
	}
}

// TestWorkerPoolBound: no more than MaxConcurrency handlers run at once;
// the pool starts goroutines as deliveries come, and goes back to one per
// queue once they have been idle.
func TestWorkerPoolBound(t *testing.T) {
	for _, maxConcurrency := range []int{1, 3} {
		t.Run(fmt.Sprint("max", maxConcurrency), func(t *testing.T) {
			ctx := testContext(t)
			tr, queues, consumers := poolFixture(t, 2)
			stopping := make(chan struct{})
			started, release := make(chan string, 16), make(chan struct{})
			pool := messaging.NewWorkerPool(consumers, messaging.WorkerPoolConfig[*transport.Delivery]{
				Accept: func(d *transport.Delivery) (*transport.Delivery, bool) { return d, true },
				Handle: func(_ context.Context, d *transport.Delivery) {
					started <- string(d.Body)
					<-release
					_ = d.Ack()
				},
				Context: context.Background(), MaxConcurrency: maxConcurrency, IdleTimeout: 20 * time.Millisecond,
				Stopping: stopping, Logger: quiet, What: "deliveries",
			})
			defer func() { close(stopping); pool.Close(); pool.Wait() }()
			if got := pool.Goroutines(); got != 2 {
				t.Fatalf("%d goroutines at start, want one per queue (2)", got)
			}
			bodies := []string{"a", "b", "c", "d"}
			for _, b := range bodies {
				publish(t, tr, queues[0], b)
			}
			publish(t, tr, queues[1], "e")
			for i := range maxConcurrency {
				select {
				case <-started:
				case <-ctx.Done():
					t.Fatalf("%d of %d handlers running", i, maxConcurrency)
				}
			}
			select {
			case b := <-started:
				t.Fatalf("%q started past the bound of %d", b, maxConcurrency)
			case <-time.After(50 * time.Millisecond):
			}
			close(release)
			for i := maxConcurrency; i < len(bodies)+1; i++ {
				select {
				case <-started:
				case <-ctx.Done():
					t.Fatalf("%d of %d deliveries handled once room was made", i, len(bodies)+1)
				}
			}
			for pool.Goroutines() != 2 {
				select {
				case <-ctx.Done():
					t.Fatalf("%d goroutines once idle, want 2", pool.Goroutines())
				case <-time.After(10 * time.Millisecond):
				}
			}
		})
	}
}

// TestWorkerPoolStoppingReturnsWhatIsInHand: a delivery received while
// the handlers' room is full goes back to its queue when Stopping closes,
// and Close and Wait return once the handler running has.
func TestWorkerPoolStoppingReturnsWhatIsInHand(t *testing.T) {
	ctx := testContext(t)
	tr, queues, consumers := poolFixture(t, 2)
	stopping := make(chan struct{})
	started, release := make(chan struct{}, 1), make(chan struct{})
	accepted := make(chan string, 2)
	pool := messaging.NewWorkerPool(consumers, messaging.WorkerPoolConfig[*transport.Delivery]{
		Accept: func(d *transport.Delivery) (*transport.Delivery, bool) {
			accepted <- string(d.Body)
			return d, true
		},
		Handle: func(_ context.Context, d *transport.Delivery) {
			_ = d.Ack()
			started <- struct{}{}
			<-release
		},
		Context: context.Background(), MaxConcurrency: 1, Stopping: stopping, Logger: quiet, What: "deliveries",
	})
	publish(t, tr, queues[0], "running")
	<-started
	publish(t, tr, queues[1], "in hand")
	for range 2 {
		select {
		case <-accepted:
		case <-ctx.Done():
			t.Fatal("the delivery in hand was never received")
		}
	}
	close(stopping)
	pool.Close()
	close(release)
	pool.Wait()

	c, err := tr.Consume(ctx, queues[1], transport.ConsumeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d, err := c.Receive(ctx)
	if err != nil {
		t.Fatalf("the delivery in hand is not back in its queue: %v", err)
	}
	if string(d.Body) != "in hand" || !d.Redelivered {
		t.Errorf("got %q (redelivered %v), want %q redelivered", d.Body, d.Redelivered, "in hand")
	}
	_ = d.Ack() // the broker outlives the test (go test -count)
}

// TestWorkerPoolResumes: a consumer that ends unasked is replaced through
// Resume, and its queue is served again.
func TestWorkerPoolResumes(t *testing.T) {
	ctx := testContext(t)
	tr, queues, consumers := poolFixture(t, 1)
	stopping := make(chan struct{})
	handled := make(chan string, 4)
	cfg := ackingConfig(handled)
	cfg.Resume = func(ctx context.Context, queue string) (*transport.Consumer, error) {
		if _, err := tr.DeclareQueue(ctx, transport.Queue{Name: queue}); err != nil {
			return nil, err
		}
		return tr.Consume(ctx, queue, transport.ConsumeOptions{Prefetch: 4})
	}
	cfg.MaxConcurrency, cfg.Stopping, cfg.Logger, cfg.What = 2, stopping, quiet, "deliveries"
	pool := messaging.NewWorkerPool(consumers, cfg)
	defer func() { close(stopping); pool.Close(); pool.Wait() }()
	// A second transport deletes the queue: this one's consumer ends
	// unasked.
	other := openMemory(t, "")
	if _, err := other.DeleteQueue(ctx, queues[0]); err != nil {
		t.Fatal(err)
	}
	for pool.Lost() == 0 || pool.Unconsumed() != 0 {
		select {
		case <-ctx.Done():
			t.Fatalf("lost %d consumers, %d queues unconsumed; want the one lost consumed again", pool.Lost(), pool.Unconsumed())
		case <-time.After(10 * time.Millisecond):
		}
	}
	publish(t, tr, queues[0], "after")
	select {
	case b := <-handled:
		if b != "after" {
			t.Errorf("handled %q, want %q", b, "after")
		}
	case <-ctx.Done():
		t.Fatal("nothing handled after the consumer was resumed")
	}
}

// TestWorkerPoolIdleCheckAtOnce: an idle check that comes as the pool is
// made, and again and again after, keeps one goroutine per queue and
// stops with the pool (run with -race).
func TestWorkerPoolIdleCheckAtOnce(t *testing.T) {
	ctx := testContext(t)
	tr, queues, consumers := poolFixture(t, 2)
	stopping := make(chan struct{})
	handled := make(chan string, 1)
	cfg := ackingConfig(handled)
	cfg.MaxConcurrency, cfg.IdleTimeout = 2, time.Nanosecond
	cfg.Stopping, cfg.Logger, cfg.What = stopping, quiet, "deliveries"
	pool := messaging.NewWorkerPool(consumers, cfg)
	publish(t, tr, queues[1], "through the checks")
	select {
	case <-handled:
	case <-ctx.Done():
		t.Fatal("nothing handled while the idle check ran")
	}
	if got := pool.Goroutines(); got < 2 {
		t.Errorf("%d goroutines, want at least one per queue (2)", got)
	}
	close(stopping)
	pool.Close()
	pool.Wait()
}

// ackingConfig is a pool's configuration whose handler acks each delivery
// and reports its body on handled.
func ackingConfig(handled chan<- string) messaging.WorkerPoolConfig[*transport.Delivery] {
	return messaging.WorkerPoolConfig[*transport.Delivery]{
		Accept: func(d *transport.Delivery) (*transport.Delivery, bool) { return d, true },
		Handle: func(_ context.Context, d *transport.Delivery) {
			_ = d.Ack()
			handled <- string(d.Body)
		},
		Context: context.Background(),
	}
}
