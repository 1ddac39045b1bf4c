package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// stopped returns nil when err met a loop after its context ended (the
// run's bound, or another loop's failure), and err otherwise. A deadline
// that has passed counts as ended even before the context says so: a call
// bounded by it (an RPC timeout) may fail a moment earlier.
func stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	if deadline, ok := ctx.Deadline(); ok && !time.Now().Before(deadline) {
		return nil
	}
	return err
}

// runAll runs fns concurrently and waits for them all; the first error
// cancels the others' context and is returned.
func runAll(ctx context.Context, fns ...func(ctx context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for _, fn := range fns {
		wg.Go(func() {
			if err := fn(ctx); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		})
	}
	wg.Wait()
	return first
}

// streamWindow is how many messages a publisher may be ahead of its
// consumer, as a Go channel of that capacity would be: both sides then
// measure a steady flow, not a queue growing for the whole run.
const streamWindow = 1024

// window keeps a publisher at most streamWindow messages ahead of its
// consumer. One publisher and one consumer use it.
type window struct {
	outstanding atomic.Int64
	wake        chan struct{}
}

func newWindow() *window { return &window{wake: make(chan struct{}, 1)} }

// acquire waits until the publisher may send one more message.
func (w *window) acquire(ctx context.Context) error {
	for w.outstanding.Load() >= streamWindow {
		select {
		case <-w.wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	w.outstanding.Add(1)
	return nil
}

// release marks one message received, waking a waiting publisher when
// half the window has drained (a full window always drains past half).
func (w *window) release() {
	if w.outstanding.Add(-1) == streamWindow/2 {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// measureStream is the publish→consume workload, measured: after one
// message to warm up (it makes the connections and routes), streamLoop.
func measureStream(ctx context.Context, lim Limits, m *meter, publish, receive func(ctx context.Context) error) error {
	if err := warmStream(ctx, publish, receive); err != nil {
		return err
	}
	return m.measure(ctx, lim.Duration, func(ctx context.Context) error {
		return streamLoop(ctx, lim.Messages, m, publish, receive)
	})
}

// warmStream passes one message, which makes the connections and routes.
func warmStream(ctx context.Context, publish, receive func(ctx context.Context) error) error {
	if err := publish(ctx); err != nil {
		return fmt.Errorf("warm-up publish: %w", err)
	}
	if err := receive(ctx); err != nil {
		return fmt.Errorf("warm-up receive: %w", err)
	}
	return nil
}

// streamLoop is one publisher and one consumer passing total messages,
// at most streamWindow in flight. receive must return when its context
// ends.
func streamLoop(ctx context.Context, total int, m *meter, publish, receive func(ctx context.Context) error) error {
	w := newWindow()
	return runAll(ctx,
		func(ctx context.Context) error {
			for range total {
				if err := w.acquire(ctx); err != nil {
					return stopped(ctx, err)
				}
				if err := publish(ctx); err != nil {
					return stopped(ctx, fmt.Errorf("publish: %w", err))
				}
			}
			return nil
		},
		func(ctx context.Context) error {
			for range total {
				if err := receive(ctx); err != nil {
					return stopped(ctx, fmt.Errorf("receive: %w", err))
				}
				m.done(1)
				w.release()
			}
			return nil
		})
}

// measureCalls is the RPC workload, measured: after a call from every
// caller to warm up, callLoop.
func measureCalls(ctx context.Context, lim Limits, callers int, m *meter, call func(ctx context.Context, caller int) error) error {
	if err := warmCalls(ctx, callers, call); err != nil {
		return err
	}
	return m.measure(ctx, lim.Duration, func(ctx context.Context) error {
		return callLoop(ctx, lim.Messages, callers, m, call)
	})
}

// warmCalls makes a call from every caller: the first makes the
// connections, reply queues and routes, and every caller's its own.
func warmCalls(ctx context.Context, callers int, call func(ctx context.Context, caller int) error) error {
	for i := range callers {
		if err := call(ctx, i); err != nil {
			return fmt.Errorf("warm-up call: %w", err)
		}
	}
	return nil
}

// callLoop is callers goroutines making total calls between them, each
// waiting for its reply before the next, recording every call's latency.
// call's second argument is the caller's index.
func callLoop(ctx context.Context, total, callers int, m *meter, call func(ctx context.Context, caller int) error) error {
	var tickets atomic.Int64
	fns := make([]func(context.Context) error, callers)
	for i := range fns {
		fns[i] = func(ctx context.Context) error {
			lat := &latencies{}
			defer m.addLatencies(lat)
			for ctx.Err() == nil && tickets.Add(1) <= int64(total) {
				start := time.Now()
				if err := call(ctx, i); err != nil {
					return stopped(ctx, fmt.Errorf("call: %w", err))
				}
				lat.record(time.Since(start))
				m.done(1)
			}
			return nil
		}
	}
	return runAll(ctx, fns...)
}

// uniqueName returns a unique name for a queue, exchange or topic of one
// run, so that runs never meet each other's messages, nor other users'.
func uniqueName(what string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "switchyard-bench-" + what + "-" + hex.EncodeToString(b[:])
}

// body returns a message body of size bytes.
func body(size int) []byte { return bytes.Repeat([]byte("x"), size) }

// cleanupContext bounds cleaning up after a run, even an interrupted one.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
}
