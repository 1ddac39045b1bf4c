package conformance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/switchyard-mq/switchyard/transport"
	"github.com/switchyard-mq/switchyard/transport/worker"
)

// workerCases hold the handler loop (package transport/worker) and its
// middleware to the same behaviour on every backend: settling by the
// handler's result, retries, poison messages, panics, timeouts and a
// stop that gives unfinished work back.
func workerCases() []testCase {
	return []testCase{
		{"retry", workerRetry},
		{"poison", workerPoison},
		{"recover", workerRecover},
		{"timeout", workerTimeout},
		{"stop-requeues", workerStopRequeues},
	}
}

// errWorkerFailed is what the cases' handlers fail with.
var errWorkerFailed = errors.New("handler failed")

// handlerCall is one call recorded by workerRun.record: the delivery's
// body, whether it was a redelivery, and the error returned.
type handlerCall struct {
	body        string
	redelivered bool
	err         error
}

// workerRun is a worker running for a case, with what its handler chain
// returned where record was placed.
type workerRun struct {
	e     *env
	mu    sync.Mutex
	calls []handlerCall
	// changed is signalled after each recorded call.
	changed chan struct{}
	stop    func() error
}

func newWorkerRun(e *env) *workerRun {
	return &workerRun{e: e, changed: make(chan struct{}, 1)}
}

// record is a middleware recording each call of what it wraps.
func (w *workerRun) record(next worker.Handler) worker.Handler {
	return func(ctx context.Context, d *transport.Delivery) error {
		err := next(ctx, d)
		w.mu.Lock()
		w.calls = append(w.calls, handlerCall{body: string(d.Body), redelivered: d.Redelivered, err: err})
		w.mu.Unlock()
		select {
		case w.changed <- struct{}{}:
		default:
		}
		return err
	}
}

// start runs worker.Run on queue until the case ends or stop is called,
// and returns once it consumes.
func (w *workerRun) start(tr *transport.Transport, queue string, handle worker.Handler, opts ...worker.Option) {
	e := w.e
	e.t.Helper()
	ctx, cancel := context.WithCancel(e.ctx)
	ready := make(chan struct{})
	done := make(chan error, 1)
	opts = append(opts, worker.WithReady(func() { close(ready) }))
	go func() { done <- worker.Run(ctx, tr, queue, handle, opts...) }()
	w.stop = sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(caseTimeout):
			return errors.New("worker.Run did not return after its context ended")
		}
	})
	e.t.Cleanup(func() {
		if err := w.stop(); err != nil {
			e.t.Errorf("worker: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		e.t.Fatalf("worker ended before consuming: %v", err)
	case <-e.ctx.Done():
		e.t.Fatal("worker never consumed its queue")
	}
}

// waitCalls waits until n calls were recorded, and returns them.
func (w *workerRun) waitCalls(n int) []handlerCall {
	w.e.t.Helper()
	timeout := time.NewTimer(deliveryTimeout * time.Duration(n))
	defer timeout.Stop()
	for {
		w.mu.Lock()
		calls := append([]handlerCall(nil), w.calls...)
		w.mu.Unlock()
		if len(calls) >= n {
			return calls
		}
		select {
		case <-w.changed:
		case <-timeout.C:
			w.e.t.Fatalf("handler returned %d times, want %d: %+v", len(calls), n, calls)
		case <-w.e.ctx.Done():
			w.e.t.Fatalf("case deadline: handler returned %d times, want %d: %+v", len(calls), n, calls)
		}
	}
}

// stopped stops the worker, failing the case if Run failed.
func (w *workerRun) stopped() {
	w.e.t.Helper()
	if err := w.stop(); err != nil {
		w.e.t.Fatalf("worker.Run: %v", err)
	}
}

// failFirst is a handler failing with fail(ctx) on its first n calls,
// then succeeding.
func failFirst(n int, fail func(ctx context.Context) error) worker.Handler {
	var mu sync.Mutex
	calls := 0
	return func(ctx context.Context, _ *transport.Delivery) error {
		mu.Lock()
		calls++
		c := calls
		mu.Unlock()
		if c <= n {
			return fail(ctx)
		}
		return nil
	}
}

// wantCalls checks the calls' redelivered flags and errors: errs[i] nil
// wants a success, otherwise an error wrapping it.
func (e *env) wantCalls(calls []handlerCall, redelivered []bool, errs []error) {
	e.t.Helper()
	if len(calls) != len(redelivered) {
		e.t.Fatalf("handler returned %d times, want %d: %+v", len(calls), len(redelivered), calls)
	}
	for i, c := range calls {
		if c.redelivered != redelivered[i] {
			e.t.Errorf("call %d: redelivered %v, want %v", i+1, c.redelivered, redelivered[i])
		}
		if (errs[i] == nil) != (c.err == nil) || (errs[i] != nil && !errors.Is(c.err, errs[i])) {
			e.t.Errorf("call %d: error %v, want one wrapping %v", i+1, c.err, errs[i])
		}
	}
}

// workerRetry: Retry runs the handler again on the same delivery (not a
// redelivery) until it succeeds, and the message is acknowledged; with its
// attempts exhausted, the message is requeued and comes back redelivered.
func workerRetry(e *env) {
	for _, row := range []struct {
		name        string
		attempts    int
		redelivered []bool
	}{
		{"succeeds within its attempts", 3, []bool{false, false, false}},
		{"requeued once they are exhausted", 2, []bool{false, false, true}},
	} {
		e.run(row.name, func(e *env) {
			tr := e.open()
			q := e.simpleQueue(tr, "work")
			e.publishBodies(tr, "", q, "task")
			w := newWorkerRun(e)
			retry := worker.Retry(worker.RetryOptions{MaxAttempts: row.attempts, InitialInterval: time.Millisecond, MaxInterval: 10 * time.Millisecond})
			// Inside Retry, record sees every attempt.
			w.start(tr, q, failFirst(2, func(context.Context) error { return errWorkerFailed }),
				worker.WithMiddleware(retry, w.record))
			calls := w.waitCalls(3)
			w.stopped()
			e.wantCalls(calls, row.redelivered, []error{errWorkerFailed, errWorkerFailed, nil})
			e.expectNone(e.consume(tr, q, transport.ConsumeOptions{}))
		})
	}
}

// workerPoison: Poison publishes a message whose handler failed
// permanently, or failed on its MaxDeliveries-th delivery, to the poison
// exchange with headers saying why, and acknowledges it; a poison publish
// that fails (a missing exchange) requeues the message instead of losing
// it.
func workerPoison(e *env) {
	// Without a delivery count, Poison poisons at the first failure.
	maxDeliveries := 1
	if e.caps.Has(transport.CapDeliveryCount) {
		maxDeliveries = 2
	}
	for _, row := range []struct {
		name        string
		handle      worker.Handler
		exchangeOK  bool    // the poison exchange exists
		reason      string  // the poison reason; empty: not poisoned
		redelivered []bool  // per handler call
		errs        []error // per handler call, as seen outside Poison
	}{
		{"permanent error", failFirst(1, func(context.Context) error { return worker.Permanent(errWorkerFailed) }),
			true, worker.ReasonPermanent, []bool{false}, []error{nil}},
		{"failed on its last delivery", failFirst(maxDeliveries, func(context.Context) error { return errWorkerFailed }),
			true, worker.ReasonMaxDeliveries, []bool{false, true}[:maxDeliveries], []error{errWorkerFailed, nil}[2-maxDeliveries:]},
		{"poison publish fails", failFirst(1, func(context.Context) error { return worker.Permanent(errWorkerFailed) }),
			false, "", []bool{false, true}, []error{transport.ErrNotFound, nil}},
	} {
		e.run(row.name, func(e *env) {
			tr := e.open()
			poison, key := uniqueName("missing-poison"), "poisoned"
			var poisoned *transport.Consumer
			if row.exchangeOK {
				pq := e.simpleQueue(tr, "poisoned")
				if e.caps.Has(transport.CapDirect) && e.caps.Has(transport.CapQueueBinding) {
					poison = e.declareExchange(tr, "poison", transport.Direct)
					e.bind(tr, poison, pq, key)
				} else {
					// A bare queue store: the default exchange and the
					// poison queue's name.
					poison, key = "", pq
				}
				poisoned = e.consume(tr, pq, transport.ConsumeOptions{})
			}
			q := e.simpleQueue(tr, "work")
			e.publish(tr, "", q, poisonMessage("task"))
			w := newWorkerRun(e)
			// Outside Poison, record sees what the worker settles by.
			w.start(tr, q, row.handle, worker.WithMiddleware(w.record,
				worker.Poison(tr, worker.PoisonOptions{Exchange: poison, RoutingKey: key, MaxDeliveries: maxDeliveries})))
			calls := w.waitCalls(len(row.redelivered))
			w.stopped()
			e.wantCalls(calls, row.redelivered, row.errs)
			e.expectNone(e.consume(tr, q, transport.ConsumeOptions{}))
			if poisoned == nil {
				return
			}
			d := e.receive(poisoned)
			e.ack(d)
			if string(d.Body) != "task" {
				e.t.Errorf("poisoned message %q, want %q", d.Body, "task")
			}
			if e.caps.Has(transport.CapHeaders) {
				for k, want := range map[string]string{
					worker.HeaderPoisonReason: row.reason,
					worker.HeaderPoisonQueue:  q,
					worker.HeaderPoisonError:  errWorkerFailed.Error(),
					"x-app":                   "kept",
				} {
					if got := fmt.Sprint(d.Headers[k]); got != want {
						e.t.Errorf("poisoned message: header %s = %q, want %q", k, got, want)
					}
				}
			}
			e.expectNone(poisoned)
		})
	}
}

// logRecords is a slog handler keeping the records' messages and
// attributes, for cases to read.
type logRecords struct {
	mu   sync.Mutex
	recs []map[string]string
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	rec := map[string]string{"msg": r.Message, "level": r.Level.String()}
	r.Attrs(func(a slog.Attr) bool {
		rec[a.Key] = a.Value.String()
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, rec)
	return nil
}
func (l *logRecords) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecords) WithGroup(string) slog.Handler      { return l }

// find returns the first record with msg.
func (l *logRecords) find(msg string) (map[string]string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.recs {
		if r["msg"] == msg {
			return r, true
		}
	}
	return nil, false
}

// workerRecover: Recover turns a handler's panic into a *PanicError, logged
// at error level with the stack; the worker requeues the message, and its
// redelivery is handled.
func workerRecover(e *env) {
	tr := e.open()
	q := e.simpleQueue(tr, "work")
	e.publishBodies(tr, "", q, "task")
	w := newWorkerRun(e)
	logs := &logRecords{}
	w.start(tr, q, failFirst(1, func(context.Context) error { panic("nil map") }),
		worker.WithLogger(slog.New(logs)), worker.WithMiddleware(w.record, worker.Recover()))
	calls := w.waitCalls(2)
	w.stopped()
	var perr *worker.PanicError
	if !errors.As(calls[0].err, &perr) || perr.Value != "nil map" {
		e.t.Errorf("first call: %v, want a *worker.PanicError for %q", calls[0].err, "nil map")
	}
	e.wantCalls(calls, []bool{false, true}, []error{perr, nil})
	rec, ok := logs.find("handler panicked")
	if !ok || rec["level"] != "ERROR" || rec["panic"] != "nil map" || !strings.Contains(rec["stack"], "conformance.workerRecover") {
		e.t.Errorf("panic log %v (found %v), want an error record with the panic and its stack", rec, ok)
	}
	e.expectNone(e.consume(tr, q, transport.ConsumeOptions{}))
}

// workerTimeout: Timeout ends the handler's context at its deadline; the
// error wraps context.DeadlineExceeded, the message is requeued, and its
// redelivery is handled.
func workerTimeout(e *env) {
	tr := e.open()
	q := e.simpleQueue(tr, "work")
	e.publishBodies(tr, "", q, "task")
	w := newWorkerRun(e)
	w.start(tr, q, failFirst(1, func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}), worker.WithMiddleware(w.record, worker.Timeout(100*time.Millisecond)))
	calls := w.waitCalls(2)
	w.stopped()
	e.wantCalls(calls, []bool{false, true}, []error{context.DeadlineExceeded, nil})
	e.expectNone(e.consume(tr, q, transport.ConsumeOptions{}))
}

// workerStopRequeues: a handler still running when the worker stops and
// its grace period ends is cut off, and its message goes back to the
// queue, to the next consumer, even under WithRequeue(false).
func workerStopRequeues(e *env) {
	tr := e.open()
	q := e.simpleQueue(tr, "work")
	e.publishBodies(tr, "", q, "task")
	started := make(chan struct{})
	w := newWorkerRun(e)
	w.start(tr, q, func(ctx context.Context, _ *transport.Delivery) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	}, worker.WithGracePeriod(0), worker.WithRequeue(false), worker.WithMiddleware(w.record))
	select {
	case <-started:
	case <-time.After(deliveryTimeout):
		e.t.Fatal("the worker handled nothing")
	}
	w.stopped()
	e.wantCalls(w.waitCalls(1), []bool{false}, []error{context.Canceled})
	d := e.receive(e.consume(tr, q, transport.ConsumeOptions{}))
	if !d.Redelivered || string(d.Body) != "task" {
		e.t.Errorf("after the stop: %q redelivered %v, want %q redelivered", d.Body, d.Redelivered, "task")
	}
	e.ack(d)
}
