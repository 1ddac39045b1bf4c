package worker_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/switchyard-mq/switchyard/drivers/memory"
	"github.com/switchyard-mq/switchyard/transport"
	"github.com/switchyard-mq/switchyard/transport/worker"
)

// testTimeout bounds every wait of a test.
const testTimeout = 10 * time.Second

// env is a test's own memory broker, with a dead-letter exchange "dlx"
// routing to the queue "dead" with key "dead".
type env struct {
	t   *testing.T
	ctx context.Context
	tr  *transport.Transport
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	var b [8]byte
	_, _ = rand.Read(b[:])
	tr, err := transport.Open(ctx, "memory://worker-"+hex.EncodeToString(b[:]))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	e := &env{t: t, ctx: ctx, tr: tr}
	if err := tr.DeclareExchange(ctx, transport.Exchange{Name: "dlx", Kind: transport.Direct}); err != nil {
		t.Fatal(err)
	}
	e.declare(transport.Queue{Name: "dead"})
	if err := tr.Bind(ctx, transport.Binding{Exchange: "dlx", Queue: "dead", Key: "dead"}); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) declare(q transport.Queue) string {
	e.t.Helper()
	name, err := e.tr.DeclareQueue(e.ctx, q)
	if err != nil {
		e.t.Fatal(err)
	}
	return name
}

// workQueue declares "work", dead-lettering to "dlx" with key "dead", and
// publishes one message with body to it.
func (e *env) workQueue(msg transport.Message) string {
	e.t.Helper()
	q := e.declare(transport.Queue{Name: "work", DeadLetterExchange: "dlx", DeadLetterRoutingKey: "dead"})
	e.publish(q, msg)
	return q
}

func (e *env) publish(queue string, msg transport.Message) {
	e.t.Helper()
	if err := e.tr.Publish(e.ctx, "", queue, msg); err != nil {
		e.t.Fatal(err)
	}
}

// running is a worker started by env.start.
type running struct {
	cancel context.CancelFunc // ends Run's context
	stop   func() error       // cancel, then wait for Run and return its error
}

// start runs a worker until it is stopped (or the test ends), returning
// once it consumes.
func (e *env) start(queue string, h worker.Handler, opts ...worker.Option) running {
	e.t.Helper()
	ctx, cancel := context.WithCancel(e.ctx)
	ready := make(chan struct{})
	done := make(chan error, 1)
	opts = append(opts, worker.WithReady(func() { close(ready) }))
	go func() { done <- worker.Run(ctx, e.tr, queue, h, opts...) }()
	stop := sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(testTimeout):
			return errors.New("the worker did not stop")
		}
	})
	e.t.Cleanup(func() { _ = stop() })
	select {
	case <-ready:
	case err := <-done:
		e.t.Fatalf("worker ended before consuming: %v", err)
	case <-e.ctx.Done():
		e.t.Fatal("worker never consumed")
	}
	return running{cancel: cancel, stop: stop}
}

// receive takes the next message of queue, failing the test if none comes.
func (e *env) receive(queue string) *transport.Delivery {
	e.t.Helper()
	c, err := e.tr.Consume(e.ctx, queue, transport.ConsumeOptions{AutoAck: true})
	if err != nil {
		e.t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	d, err := c.Receive(e.ctx)
	if err != nil {
		e.t.Fatalf("expected a message in %q: %v", queue, err)
	}
	return d
}

// empty fails the test unless queue holds no message.
func (e *env) empty(queue string) {
	e.t.Helper()
	if n, err := e.tr.PurgeQueue(e.ctx, queue); err != nil || n != 0 {
		e.t.Errorf("queue %q held %d messages (%v), want none", queue, n, err)
	}
}

// wait waits for ch to close.
func (e *env) wait(ch <-chan struct{}, what string) {
	e.t.Helper()
	select {
	case <-ch:
	case <-e.ctx.Done():
		e.t.Fatalf("timed out waiting for %s", what)
	}
}

// script is a handler that returns results[i] on its i-th call (nil past
// the end), records each delivery's Redelivered flag, and closes done
// after its last scripted call.
type script struct {
	results     []error
	mu          sync.Mutex
	redelivered []bool
	done        chan struct{}
}

func newScript(results ...error) *script {
	return &script{results: results, done: make(chan struct{})}
}

func (s *script) handle(_ context.Context, d *transport.Delivery) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.redelivered)
	s.redelivered = append(s.redelivered, d.Redelivered)
	if n == max(len(s.results)-1, 0) {
		close(s.done)
	}
	if n < len(s.results) {
		return s.results[n]
	}
	return nil
}

func (s *script) calls() []bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]bool(nil), s.redelivered...)
}

var errFailed = errors.New("failed")

// TestSettleByResult: nil acks, an error requeues or rejects by the
// policy, and a marker overrides the policy.
func TestSettleByResult(t *testing.T) {
	for _, tc := range []struct {
		name    string
		results []error // the handler's results, one per call
		opts    []worker.Option
		dead    bool // the message ends in the dead-letter queue
	}{
		{name: "nil acks", results: []error{nil}},
		{name: "error requeues by default", results: []error{errFailed, nil}},
		{name: "error rejects without requeue", results: []error{errFailed}, opts: []worker.Option{worker.WithRequeue(false)}, dead: true},
		{name: "permanent rejects", results: []error{worker.Permanent(errFailed)}, dead: true},
		{name: "requeue marker overrides the policy", results: []error{worker.Requeue(errFailed), nil}, opts: []worker.Option{worker.WithRequeue(false)}},
		{name: "outermost marker wins", results: []error{worker.Requeue(worker.Permanent(errFailed)), nil}},
		{name: "wrapped permanent rejects", results: []error{fmt.Errorf("decoding: %w", worker.Permanent(errFailed))}, dead: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			q := e.workQueue(transport.Message{Body: []byte("task")})
			s := newScript(tc.results...)
			w := e.start(q, s.handle, tc.opts...)
			e.wait(s.done, "the handler's last call")
			if err := w.stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			calls := s.calls()
			if len(calls) != len(tc.results) {
				t.Fatalf("handler called %d times, want %d", len(calls), len(tc.results))
			}
			for i, redelivered := range calls {
				if redelivered != (i > 0) {
					t.Errorf("call %d: redelivered %v, want %v", i, redelivered, i > 0)
				}
			}
			e.empty(q)
			if tc.dead {
				if d := e.receive("dead"); string(d.Body) != "task" {
					t.Errorf("dead letter %q, want %q", d.Body, "task")
				}
			}
			e.empty("dead")
		})
	}
}

// TestStop: at the end of Run's context, a handler still running within
// the grace period finishes and is acked; one cut off by it goes back to
// the queue.
func TestStop(t *testing.T) {
	for _, tc := range []struct {
		name     string
		grace    time.Duration
		requeued bool
	}{
		{name: "finishes within the grace period", grace: testTimeout},
		{name: "cut off without one", grace: 0, requeued: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			q := e.workQueue(transport.Message{Body: []byte("task")})
			started, release := make(chan struct{}), make(chan struct{})
			var ctxErr atomic.Value
			w := e.start(q, func(ctx context.Context, _ *transport.Delivery) error {
				if ctxErr.Load() != nil {
					t.Errorf("the task was handled twice")
					return nil
				}
				close(started)
				select {
				case <-release:
				case <-ctx.Done():
				}
				ctxErr.Store(fmt.Sprint(ctx.Err()))
				return ctx.Err()
			}, worker.WithGracePeriod(tc.grace), worker.WithRequeue(false))
			e.wait(started, "the handler")
			w.cancel()
			if !tc.requeued {
				// Run's context has ended; the handler's has the grace
				// period.
				close(release)
			}
			if err := w.stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if tc.requeued {
				if d := e.receive(q); !d.Redelivered {
					t.Errorf("the cut-off task came back not marked redelivered")
				}
			} else if got := ctxErr.Load(); got != "<nil>" {
				t.Errorf("the handler's context ended within the grace period: %v", got)
			}
			e.empty(q)
			e.empty("dead")
		})
	}
}

// TestConcurrency: WithConcurrency(n) hands n deliveries out at once.
func TestConcurrency(t *testing.T) {
	e := newEnv(t)
	const n = 3
	q := e.declare(transport.Queue{Name: "work"})
	for i := range n {
		e.publish(q, transport.Message{Body: fmt.Appendf(nil, "task %d", i)})
	}
	var inFlight sync.WaitGroup
	inFlight.Add(n)
	all := make(chan struct{})
	go func() { inFlight.Wait(); close(all) }()
	var handled atomic.Int32
	w := e.start(q, func(ctx context.Context, _ *transport.Delivery) error {
		inFlight.Done()
		select {
		case <-all: // every handler is running at once
		case <-ctx.Done():
			return ctx.Err()
		}
		handled.Add(1)
		return nil
	}, worker.WithConcurrency(n))
	e.wait(all, fmt.Sprintf("%d handlers running at once", n))
	if err := w.stop(); err != nil {
		t.Fatal(err)
	}
	if handled.Load() != n {
		t.Errorf("handled %d, want %d", handled.Load(), n)
	}
	e.empty(q)
}

// TestRunRefuses: bad options are ErrInvalid, a missing queue ErrNotFound,
// before anything is consumed.
func TestRunRefuses(t *testing.T) {
	e := newEnv(t)
	q := e.declare(transport.Queue{Name: "work"})
	ok := func(context.Context, *transport.Delivery) error { return nil }
	for _, tc := range []struct {
		name    string
		queue   string
		handler worker.Handler
		opts    []worker.Option
		want    error
	}{
		{"nil handler", q, nil, nil, transport.ErrInvalid},
		{"zero concurrency", q, ok, []worker.Option{worker.WithConcurrency(0)}, transport.ErrInvalid},
		{"negative grace", q, ok, []worker.Option{worker.WithGracePeriod(-time.Second)}, transport.ErrInvalid},
		{"auto-ack", q, ok, []worker.Option{worker.WithConsumeOptions(transport.ConsumeOptions{AutoAck: true})}, transport.ErrInvalid},
		{"nil middleware", q, ok, []worker.Option{worker.WithMiddleware(worker.Recover(), nil)}, transport.ErrInvalid},
		{"nil logger", q, ok, []worker.Option{worker.WithLogger(nil)}, transport.ErrInvalid},
		{"negative prefetch", q, ok, []worker.Option{worker.WithConsumeOptions(transport.ConsumeOptions{Prefetch: -1})}, transport.ErrInvalid},
		{"missing queue", "missing", ok, nil, transport.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := worker.Run(e.ctx, e.tr, tc.queue, tc.handler, tc.opts...)
			if !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("nil transport", func(t *testing.T) {
		if err := worker.Run(e.ctx, nil, q, ok); !errors.Is(err, transport.ErrInvalid) {
			t.Errorf("got %v, want ErrInvalid", err)
		}
	})
}

// TestRunEndsWithItsConsumer: a queue deleted under the worker ends Run
// with an error, not silently.
func TestRunEndsWithItsConsumer(t *testing.T) {
	e := newEnv(t)
	q := e.declare(transport.Queue{Name: "work"})
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		done <- worker.Run(e.ctx, e.tr, q, func(context.Context, *transport.Delivery) error { return nil },
			worker.WithReady(func() { close(ready) }))
	}()
	e.wait(ready, "the worker")
	if _, err := e.tr.DeleteQueue(e.ctx, q); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil || e.ctx.Err() != nil {
			t.Errorf("Run returned %v after its queue was deleted, want the consumer's error", err)
		}
	case <-e.ctx.Done():
		t.Fatal("Run did not end when its queue was deleted")
	}
}

// records is a slog handler keeping every record, for tests to read.
type records struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec.Clone())
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

// find returns the attributes of the first record with msg, as strings.
func (r *records) find(msg string) (map[string]string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.recs {
		if rec.Message == msg {
			attrs := map[string]string{"level": rec.Level.String()}
			rec.Attrs(func(a slog.Attr) bool {
				attrs[a.Key] = a.Value.String()
				return true
			})
			return attrs, true
		}
	}
	return nil, false
}

// TestErrorsAreLogged: a requeue is a warning and a rejection an error,
// each naming the queue, the message and the error.
func TestErrorsAreLogged(t *testing.T) {
	e := newEnv(t)
	q := e.workQueue(transport.Message{Body: []byte("task"), MessageID: "m-1"})
	logs := &records{}
	s := newScript(errFailed, worker.Permanent(errFailed))
	w := e.start(q, s.handle, worker.WithLogger(slog.New(logs)))
	e.wait(s.done, "the handler's last call")
	if err := w.stop(); err != nil {
		t.Fatal(err)
	}
	for msg, level := range map[string]string{
		"handler failed; requeueing the delivery":                                                     "WARN",
		"handler failed; rejecting the delivery (to the queue's dead-letter exchange, if it has one)": "ERROR",
	} {
		attrs, ok := logs.find(msg)
		if !ok {
			t.Errorf("no log %q", msg)
			continue
		}
		if attrs["level"] != level || attrs["queue"] != q || attrs["message_id"] != "m-1" || attrs["err"] != errFailed.Error() {
			t.Errorf("log %q: %v, want level %s, queue %q, message_id m-1, err %q", msg, attrs, level, q, errFailed)
		}
	}
	if !strings.Contains(fmt.Sprint(logs.find("handler failed; rejecting the delivery (to the queue's dead-letter exchange, if it has one)")), "permanent:true") {
		t.Errorf("the rejection does not say the error was permanent")
	}
}
