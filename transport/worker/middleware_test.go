package worker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/transport"
	"github.com/switchyard-mq/switchyard/transport/worker"
)

// fastRetry retries at once, for tests.
func fastRetry(attempts int) worker.Middleware {
	return worker.Retry(worker.RetryOptions{MaxAttempts: attempts, InitialInterval: time.Millisecond, MaxInterval: time.Millisecond})
}

// TestRetry: the handler runs again on the same delivery while it fails,
// up to MaxAttempts in all; a permanent error is not retried.
func TestRetry(t *testing.T) {
	for _, tc := range []struct {
		name    string
		results []error
		retry   worker.Middleware
		// redelivered lists, per handler call, whether the delivery was a
		// redelivery: retries in process reuse the delivery.
		redelivered []bool
		dead        bool
	}{
		{name: "succeeds on the third attempt", results: []error{errFailed, errFailed, nil}, retry: fastRetry(3),
			redelivered: []bool{false, false, false}},
		{name: "attempts exhausted, then requeued", results: []error{errFailed, errFailed, nil}, retry: fastRetry(2),
			redelivered: []bool{false, false, true}},
		{name: "permanent not retried", results: []error{worker.Permanent(errFailed)}, retry: fastRetry(3),
			redelivered: []bool{false}, dead: true},
		{name: "default of three attempts", results: []error{errFailed, errFailed, nil},
			retry:       worker.Retry(worker.RetryOptions{InitialInterval: time.Millisecond}),
			redelivered: []bool{false, false, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			q := e.workQueue(transport.Message{Body: []byte("task")})
			s := newScript(tc.results...)
			w := e.start(q, s.handle, worker.WithMiddleware(tc.retry))
			e.wait(s.done, "the handler's last call")
			if err := w.stop(); err != nil {
				t.Fatal(err)
			}
			if got := s.calls(); fmt.Sprint(got) != fmt.Sprint(tc.redelivered) {
				t.Errorf("calls (redelivered each): %v, want %v", got, tc.redelivered)
			}
			e.empty(q)
			if tc.dead {
				e.receive("dead")
			}
			e.empty("dead")
		})
	}
}

// TestRetryStopsWithTheContext: a retry's wait ends with the handler's
// context, returning the last error.
func TestRetryStopsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	calls := 0
	h := worker.Retry(worker.RetryOptions{MaxAttempts: 5, InitialInterval: time.Hour})(
		func(context.Context, *transport.Delivery) error {
			calls++
			cancel()
			return errFailed
		})
	if err := h(ctx, &transport.Delivery{}); !errors.Is(err, errFailed) || calls != 1 {
		t.Errorf("got %v after %d calls, want %v after 1", err, calls, errFailed)
	}
}

// failingPublisher fails every publish.
type failingPublisher struct{ caps transport.Capabilities }

func (p failingPublisher) Publish(context.Context, string, string, transport.Message) error {
	return fmt.Errorf("publish: %w", transport.ErrClosed)
}
func (p failingPublisher) Capabilities() transport.Capabilities { return p.caps }

// TestPoison: a permanent error, or a failure on the MaxDeliveries-th
// delivery, sends the message to the poison exchange with headers saying
// why, and acks it; a poison publish that fails requeues it.
func TestPoison(t *testing.T) {
	for _, tc := range []struct {
		name       string
		results    []error
		opts       worker.PoisonOptions
		failing    bool   // the poison publish fails
		requeue    bool   // the worker's policy; false: a requeue can come only from Poison
		reason     string // the poison reason; empty: not poisoned
		deliveries int
	}{
		{name: "permanent at once", results: []error{worker.Permanent(errFailed)},
			opts: worker.PoisonOptions{Exchange: "poison", RoutingKey: "work", MaxDeliveries: 5}, reason: worker.ReasonPermanent, deliveries: 1},
		{name: "on the third delivery", results: []error{errFailed, errFailed, errFailed},
			opts: worker.PoisonOptions{Exchange: "poison", RoutingKey: "work", MaxDeliveries: 3}, requeue: true, reason: worker.ReasonMaxDeliveries, deliveries: 3},
		{name: "first failure by default", results: []error{errFailed},
			opts: worker.PoisonOptions{Exchange: "poison", RoutingKey: "work"}, reason: worker.ReasonMaxDeliveries, deliveries: 1},
		{name: "default exchange and a queue's name", results: []error{worker.Permanent(errFailed)},
			opts: worker.PoisonOptions{RoutingKey: "poisoned"}, reason: worker.ReasonPermanent, deliveries: 1},
		{name: "publish fails: requeued", results: []error{worker.Permanent(errFailed), nil},
			opts: worker.PoisonOptions{Exchange: "poison", RoutingKey: "work"}, failing: true},
		{name: "unroutable: requeued", results: []error{worker.Permanent(errFailed), nil},
			opts: worker.PoisonOptions{Exchange: "poison", RoutingKey: "nobody"}},
		{name: "nowhere to send: requeued", results: []error{worker.Permanent(errFailed), nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if err := e.tr.DeclareExchange(e.ctx, transport.Exchange{Name: "poison", Kind: transport.Direct}); err != nil {
				t.Fatal(err)
			}
			e.declare(transport.Queue{Name: "poisoned"})
			if err := e.tr.Bind(e.ctx, transport.Binding{Exchange: "poison", Queue: "poisoned", Key: "work"}); err != nil {
				t.Fatal(err)
			}
			q := e.workQueue(transport.Message{Body: []byte("task"), MessageID: "m-1", Headers: transport.Headers{"x-app": "kept"}})
			var pub worker.Publisher = e.tr
			if tc.failing {
				pub = failingPublisher{caps: e.tr.Capabilities()}
			}
			s := newScript(tc.results...)
			w := e.start(q, s.handle, worker.WithRequeue(tc.requeue), worker.WithMiddleware(worker.Poison(pub, tc.opts)))
			e.wait(s.done, "the handler's last call")
			if err := w.stop(); err != nil {
				t.Fatal(err)
			}
			if calls := s.calls(); len(calls) != len(tc.results) {
				t.Errorf("handler called %d times, want %d", len(calls), len(tc.results))
			}
			e.empty(q)
			e.empty("dead")
			if tc.reason == "" {
				e.empty("poisoned")
				return
			}
			d := e.receive("poisoned")
			want := map[string]any{
				worker.HeaderPoisonReason:     tc.reason,
				worker.HeaderPoisonQueue:      q,
				worker.HeaderPoisonError:      errFailed.Error(),
				worker.HeaderPoisonExchange:   "",
				worker.HeaderPoisonRoutingKey: q,
				worker.HeaderPoisonDeliveries: tc.deliveries,
				"x-app":                       "kept",
			}
			for k, v := range want {
				if fmt.Sprint(d.Headers[k]) != fmt.Sprint(v) {
					t.Errorf("header %s = %#v, want %#v", k, d.Headers[k], v)
				}
			}
			if string(d.Body) != "task" || d.MessageID != "m-1" {
				t.Errorf("poisoned message %q (id %q), want the original", d.Body, d.MessageID)
			}
		})
	}
}

// TestPoisonPassesCancellation: an error after the handler's context ended
// (the worker cut it off) is not poisoned.
func TestPoisonPassesCancellation(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	h := worker.Poison(failingPublisher{}, worker.PoisonOptions{RoutingKey: "p"})(
		func(ctx context.Context, _ *transport.Delivery) error { return ctx.Err() })
	if err := h(ctx, &transport.Delivery{}); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want the cancellation passed on", err)
	}
}

// TestRecover: a panic becomes a *PanicError with the stack, logged at
// error level, and the delivery is settled as for any error.
func TestRecover(t *testing.T) {
	e := newEnv(t)
	q := e.workQueue(transport.Message{Body: []byte("task"), MessageID: "m-1"})
	logs := &records{}
	var (
		mu      sync.Mutex
		settled error
		calls   int
	)
	done := make(chan struct{})
	panicky := func(context.Context, *transport.Delivery) error {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 1 {
			panic("nil map")
		}
		close(done)
		return nil
	}
	// The inner middleware sees what Recover returns for the worker.
	record := func(next worker.Handler) worker.Handler {
		return func(ctx context.Context, d *transport.Delivery) error {
			err := next(ctx, d)
			mu.Lock()
			defer mu.Unlock()
			if settled == nil {
				settled = err
			}
			return err
		}
	}
	w := e.start(q, panicky, worker.WithLogger(slog.New(logs)), worker.WithMiddleware(record, worker.Recover()))
	e.wait(done, "the redelivery")
	if err := w.stop(); err != nil {
		t.Fatal(err)
	}
	var perr *worker.PanicError
	if !errors.As(settled, &perr) || perr.Value != "nil map" || !strings.Contains(string(perr.Stack), "TestRecover") {
		t.Fatalf("first result %v, want a *PanicError for %q with the stack", settled, "nil map")
	}
	attrs, ok := logs.find("handler panicked")
	if !ok || attrs["level"] != "ERROR" || attrs["panic"] != "nil map" || attrs["message_id"] != "m-1" || !strings.Contains(attrs["stack"], "TestRecover") {
		t.Errorf("panic log %v (present %v), want an error with the panic, the message id and the stack", attrs, ok)
	}
	e.empty(q)
}

// TestTimeout: the handler's context has the deadline; its error says it
// timed out, and wraps context.DeadlineExceeded.
func TestTimeout(t *testing.T) {
	var got error
	h := worker.Timeout(10 * time.Millisecond)(func(ctx context.Context, _ *transport.Delivery) error {
		if _, ok := ctx.Deadline(); !ok {
			return errors.New("no deadline")
		}
		<-ctx.Done()
		return ctx.Err()
	})
	got = h(t.Context(), &transport.Delivery{})
	if !errors.Is(got, context.DeadlineExceeded) || !strings.Contains(got.Error(), "timed out after 10ms") {
		t.Errorf("got %v, want a timeout wrapping context.DeadlineExceeded", got)
	}
	// A handler done in time is untouched.
	quick := worker.Timeout(time.Hour)(func(context.Context, *transport.Delivery) error { return errFailed })
	if err := quick(t.Context(), &transport.Delivery{}); err != errFailed {
		t.Errorf("got %v, want %v unwrapped", err, errFailed)
	}
}

// TestDeduplicate: a message id handled successfully is dropped when it
// comes again, within the window; a failed one is handled again; a copy
// in flight waits for the first.
func TestDeduplicate(t *testing.T) {
	t.Run("window", func(t *testing.T) {
		var handled []string
		h := worker.Deduplicate(2)(func(_ context.Context, d *transport.Delivery) error {
			handled = append(handled, d.MessageID)
			if d.MessageID == "fails" {
				return errFailed
			}
			return nil
		})
		for _, id := range []string{"a", "a", "b", "", "", "fails", "fails", "a", "c", "a"} {
			_ = h(t.Context(), &transport.Delivery{Message: transport.Message{MessageID: id}})
		}
		// a is forgotten once b and c are remembered (window 2).
		if want := []string{"a", "b", "", "", "fails", "fails", "c", "a"}; fmt.Sprint(handled) != fmt.Sprint(want) {
			t.Errorf("handled %q, want %q", handled, want)
		}
	})
	t.Run("copy in flight", func(t *testing.T) {
		e := newEnv(t)
		q := e.declare(transport.Queue{Name: "work"})
		for range 2 {
			e.publish(q, transport.Message{Body: []byte("task"), MessageID: "m-1"})
		}
		e.publish(q, transport.Message{Body: []byte("last"), MessageID: "m-2"})
		var (
			mu      sync.Mutex
			handled []string
		)
		release, settled := make(chan struct{}), make(chan struct{})
		returned := 0
		// count, outside Deduplicate, closes settled once the three
		// deliveries have gone through it.
		count := func(next worker.Handler) worker.Handler {
			return func(ctx context.Context, d *transport.Delivery) error {
				err := next(ctx, d)
				mu.Lock()
				defer mu.Unlock()
				if returned++; returned == 3 {
					close(settled)
				}
				return err
			}
		}
		w := e.start(q, func(ctx context.Context, d *transport.Delivery) error {
			mu.Lock()
			handled = append(handled, d.MessageID)
			mu.Unlock()
			if d.MessageID == "m-2" {
				close(release)
				return nil
			}
			select {
			case <-release: // the copy and m-2 have been received
			case <-ctx.Done():
			}
			return ctx.Err()
		}, worker.WithConcurrency(3), worker.WithMiddleware(count, worker.Deduplicate(0)))
		e.wait(settled, "the three deliveries")
		if err := w.stop(); err != nil {
			t.Fatal(err)
		}
		slices.Sort(handled)
		if fmt.Sprint(handled) != "[m-1 m-2]" {
			t.Errorf("handled %q, want m-1 once, then m-2", handled)
		}
		e.empty(q)
	})
}

// TestPanicIsPoisoned: with Recover innermost, a message whose handler
// panics is poisoned like one whose handler fails, not requeued forever.
func TestPanicIsPoisoned(t *testing.T) {
	e := newEnv(t)
	q := e.workQueue(transport.Message{Body: []byte("task")})
	w := e.start(q, func(context.Context, *transport.Delivery) error { panic("nil map") },
		worker.WithLogger(slog.New(&records{})),
		worker.WithMiddleware(
			worker.Poison(e.tr, worker.PoisonOptions{RoutingKey: "dead"}),
			fastRetry(2),
			worker.Recover()))
	d := e.receive("dead")
	if err := w.stop(); err != nil {
		t.Fatal(err)
	}
	if got := d.Headers[worker.HeaderPoisonError]; got != "handler panicked: nil map" {
		t.Errorf("poison error header %q, want the panic", got)
	}
	e.empty(q)
}
