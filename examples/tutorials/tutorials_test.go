package tutorials_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/switchyard-mq/switchyard/drivers/memory"
	"github.com/switchyard-mq/switchyard/examples/tutorials"
	"github.com/switchyard-mq/switchyard/transport"
)

// testTimeout bounds every test's waits.
const testTimeout = 20 * time.Second

// openBroker opens a transport on a memory broker of the test's own, so
// that tests share no queues.
func openBroker(t *testing.T) (context.Context, *transport.Transport) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	name := strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-"))
	tr, err := transport.Open(ctx, "memory://"+name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			t.Error(err)
		}
	})
	return ctx, tr
}

// runner runs receivers in goroutines and waits for them.
type runner struct {
	t  *testing.T
	wg sync.WaitGroup
}

// receiver is one receiver's run: its output and the messages it handled.
type receiver struct {
	out    bytes.Buffer
	keys   []string
	bodies []string
	err    error
}

// start runs a receiver and returns once it is consuming. opts.Handled,
// if set, is called after the receiver records each message.
func (r *runner) start(ctx context.Context, opts tutorials.RunOptions,
	run func(context.Context, io.Writer, tutorials.RunOptions) error) *receiver {
	r.t.Helper()
	rc := &receiver{}
	ready := make(chan struct{})
	done := make(chan struct{})
	opts.Ready = sync.OnceFunc(func() { close(ready) })
	next := opts.Handled
	opts.Handled = func(key string, body []byte) {
		rc.keys = append(rc.keys, key)
		rc.bodies = append(rc.bodies, string(body))
		if next != nil {
			next(key, body)
		}
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(done)
		rc.err = run(ctx, &rc.out, opts)
	}()
	select {
	case <-ready:
	case <-done:
		// A receiver may be ready and end at once (stopped by its first
		// message); select picks either of two closed channels.
		select {
		case <-ready:
		default:
			r.t.Fatalf("receiver ended before it was ready: %v", rc.err)
		}
	}
	return rc
}

// wait waits for every receiver and checks that none failed.
func (r *runner) wait(rcs ...*receiver) {
	r.t.Helper()
	r.wg.Wait()
	for _, rc := range rcs {
		if rc.err != nil {
			r.t.Errorf("receiver failed: %v", rc.err)
		}
	}
}

func TestHelloWorld(t *testing.T) {
	ctx, tr := openBroker(t)
	r := &runner{t: t}
	rc := r.start(ctx, tutorials.RunOptions{Limit: 1}, func(ctx context.Context, w io.Writer, o tutorials.RunOptions) error {
		return tutorials.Receive(ctx, tr, w, o)
	})
	var sent bytes.Buffer
	if err := tutorials.Send(ctx, tr, &sent, "Hello World!"); err != nil {
		t.Fatal(err)
	}
	r.wait(rc)
	if got, want := sent.String(), " [x] Sent 'Hello World!'\n"; got != want {
		t.Errorf("send printed %q, want %q", got, want)
	}
	if got, want := rc.out.String(), " [x] Received Hello World!\n"; got != want {
		t.Errorf("receive printed %q, want %q", got, want)
	}
}

// TestWorkQueuesFairDispatch queues a long task and quick ones while one
// worker runs, then starts a second: at prefetch 1 the first worker holds
// only the long task, so the second does the quick ones.
func TestWorkQueuesFairDispatch(t *testing.T) {
	ctx, tr := openBroker(t)
	const workPerDot = 50 * time.Millisecond
	tasks := []string{"long..........", "quick 1.", "quick 2.", "quick 3."}
	workCtx, stopWorkers := context.WithCancel(ctx)
	defer stopWorkers()
	var mu sync.Mutex
	done := 0
	countDone := func(string, []byte) {
		mu.Lock()
		defer mu.Unlock()
		if done++; done == len(tasks) {
			stopWorkers()
		}
	}
	worker := func(ctx context.Context, w io.Writer, o tutorials.RunOptions) error {
		return tutorials.Worker(ctx, tr, w, workPerDot, o)
	}
	r := &runner{t: t}
	took := make(chan struct{})
	w1 := r.start(workCtx, tutorials.RunOptions{Handled: countDone, Received: func(string, []byte) {
		select {
		case <-took:
		default:
			close(took)
		}
	}}, worker)
	var sent bytes.Buffer
	for _, task := range tasks {
		if err := tutorials.NewTask(ctx, tr, &sent, task); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-took:
	case <-ctx.Done():
		t.Fatal("worker 1 took no task")
	}
	w2 := r.start(workCtx, tutorials.RunOptions{Handled: countDone}, worker)
	r.wait(w1, w2)

	if len(w1.bodies) == 0 || w1.bodies[0] != tasks[0] {
		t.Fatalf("worker 1 did %q, want %q first", w1.bodies, tasks[0])
	}
	all := slices.Sorted(slices.Values(slices.Concat(w1.bodies, w2.bodies)))
	if want := slices.Sorted(slices.Values(tasks)); !slices.Equal(all, want) {
		t.Fatalf("the workers did %q, want each of %q once", all, want)
	}
	// Worker 2 starts while worker 1 works 500ms on the long task: at
	// prefetch 1 the quick tasks are still in the queue for it (a worker
	// that hoarded would have taken them all with the long one).
	if len(w2.bodies) == 0 {
		t.Errorf("worker 1 did %q, worker 2 nothing: the busy worker hoarded tasks", w1.bodies)
	}
	if !strings.Contains(w1.out.String(), " [x] Received long..........\n [x] Done\n") {
		t.Errorf("worker 1 printed %q", w1.out.String())
	}
}

// TestWorkerReturnsInterruptedTask stops a worker in the middle of a task:
// the task was not acknowledged, so it goes back to the queue and the next
// worker does it.
func TestWorkerReturnsInterruptedTask(t *testing.T) {
	ctx, tr := openBroker(t)
	if err := tutorials.NewTask(ctx, tr, io.Discard, "slow task....."); err != nil {
		t.Fatal(err)
	}
	r := &runner{t: t}
	workCtx, stop := context.WithCancel(ctx)
	w1 := r.start(workCtx, tutorials.RunOptions{Received: func(string, []byte) { stop() }},
		func(ctx context.Context, w io.Writer, o tutorials.RunOptions) error {
			return tutorials.Worker(ctx, tr, w, time.Hour, o)
		})
	r.wait(w1)
	if len(w1.bodies) != 0 {
		t.Fatalf("interrupted worker handled %q", w1.bodies)
	}
	w2 := r.start(ctx, tutorials.RunOptions{Limit: 1}, func(ctx context.Context, w io.Writer, o tutorials.RunOptions) error {
		return tutorials.Worker(ctx, tr, w, 0, o)
	})
	r.wait(w2)
	if !slices.Equal(w2.bodies, []string{"slow task....."}) {
		t.Errorf("next worker did %q, want the interrupted task", w2.bodies)
	}
}

func TestPublishSubscribe(t *testing.T) {
	ctx, tr := openBroker(t)
	logs := []string{"one", "two", "three"}
	r := &runner{t: t}
	var rcs []*receiver
	for range 3 {
		rcs = append(rcs, r.start(ctx, tutorials.RunOptions{Limit: len(logs)},
			func(ctx context.Context, w io.Writer, o tutorials.RunOptions) error {
				return tutorials.ReceiveLogs(ctx, tr, w, o)
			}))
	}
	var sent bytes.Buffer
	for _, l := range logs {
		if err := tutorials.EmitLog(ctx, tr, &sent, l); err != nil {
			t.Fatal(err)
		}
	}
	r.wait(rcs...)
	for i, rc := range rcs {
		if !slices.Equal(rc.bodies, logs) {
			t.Errorf("receiver %d got %q, want %q", i, rc.bodies, logs)
		}
		if got, want := rc.out.String(), " [x] one\n [x] two\n [x] three\n"; got != want {
			t.Errorf("receiver %d printed %q, want %q", i, got, want)
		}
	}
	if got, want := sent.String(), " [x] Sent one\n [x] Sent two\n [x] Sent three\n"; got != want {
		t.Errorf("emit_log printed %q, want %q", got, want)
	}
}

// routed is a receiver of tutorial 4 or 5: its binding keys, and the
// routing keys of the logs it must get.
type routed struct {
	keys []string
	want []string
}

// testRouting emits logs with the given routing keys (the last must reach
// every receiver, so that a receiver stopping at its count has seen all
// that was routed to it) and checks what each receiver got.
func testRouting(t *testing.T, receivers []routed, routingKeys []string,
	receive func(ctx context.Context, tr *transport.Transport, w io.Writer, keys []string, o tutorials.RunOptions) error,
	emit func(ctx context.Context, tr *transport.Transport, w io.Writer, key, body string) error) {
	ctx, tr := openBroker(t)
	r := &runner{t: t}
	rcs := make([]*receiver, len(receivers))
	for i, rv := range receivers {
		rcs[i] = r.start(ctx, tutorials.RunOptions{Limit: len(rv.want)},
			func(ctx context.Context, w io.Writer, o tutorials.RunOptions) error {
				return receive(ctx, tr, w, rv.keys, o)
			})
	}
	for _, key := range routingKeys {
		if err := emit(ctx, tr, io.Discard, key, "log "+key); err != nil {
			t.Fatal(err)
		}
	}
	r.wait(rcs...)
	for i, rc := range rcs {
		if !slices.Equal(rc.keys, receivers[i].want) {
			t.Errorf("receiver bound with %q got %q, want %q", receivers[i].keys, rc.keys, receivers[i].want)
		}
		for _, line := range strings.Split(strings.TrimSuffix(rc.out.String(), "\n"), "\n") {
			if key, body, _ := strings.Cut(strings.TrimPrefix(line, " [x] "), ":"); body != "log "+key {
				t.Errorf("receiver bound with %q printed %q, want \" [x] KEY:log KEY\"", receivers[i].keys, line)
			}
		}
	}
}

func TestRouting(t *testing.T) {
	testRouting(t,
		[]routed{
			{keys: []string{"error"}, want: []string{"error"}},
			{keys: []string{"warning", "error"}, want: []string{"warning", "error"}},
			{keys: []string{"info", "warning", "error"}, want: []string{"info", "warning", "error"}},
			{keys: []string{"error", "error"}, want: []string{"error"}}, // bound twice, routed once
		},
		[]string{"info", "debug", "warning", "error"},
		tutorials.ReceiveLogsDirect, tutorials.EmitLogDirect)
}

func TestTopics(t *testing.T) {
	testRouting(t,
		[]routed{
			{keys: []string{"#"}, want: []string{"cron.warning", "kern.info", "kern.critical.test", "auth.critical", "kern.critical"}},
			{keys: []string{"kern.*"}, want: []string{"kern.info", "kern.critical"}},
			{keys: []string{"*.critical"}, want: []string{"auth.critical", "kern.critical"}},
			{keys: []string{"kern.*", "*.critical"}, want: []string{"kern.info", "auth.critical", "kern.critical"}},
			{keys: []string{"kern.#"}, want: []string{"kern.info", "kern.critical.test", "kern.critical"}},
		},
		[]string{"cron.warning", "kern.info", "kern.critical.test", "auth.critical", "kern.critical"},
		tutorials.ReceiveLogsTopic, tutorials.EmitLogTopic)
}

func TestReceiversNeedBindingKeys(t *testing.T) {
	ctx, tr := openBroker(t)
	for name, receive := range map[string]func(context.Context, *transport.Transport, io.Writer, []string, tutorials.RunOptions) error{
		"receive_logs_direct": tutorials.ReceiveLogsDirect,
		"receive_logs_topic":  tutorials.ReceiveLogsTopic,
	} {
		for _, keys := range [][]string{nil, {}} {
			var out bytes.Buffer
			err := receive(ctx, tr, &out, keys, tutorials.RunOptions{Ready: func() { t.Errorf("%s became ready without keys", name) }})
			if !errors.Is(err, transport.ErrInvalid) {
				t.Errorf("%s with keys %q: got %v, want ErrInvalid", name, keys, err)
			}
			if out.Len() > 0 {
				t.Errorf("%s with keys %q printed %q", name, keys, out.String())
			}
		}
	}
}

func TestWorkerRejectsNegativeWork(t *testing.T) {
	ctx, tr := openBroker(t)
	err := tutorials.Worker(ctx, tr, io.Discard, -time.Second, tutorials.RunOptions{})
	if !errors.Is(err, transport.ErrInvalid) {
		t.Errorf("got %v, want ErrInvalid", err)
	}
}

// TestReceiversStopCleanly cancels each receiver's context while it waits
// for messages: it returns nil, as a program interrupted by Ctrl+C exits 0.
func TestReceiversStopCleanly(t *testing.T) {
	ctx, tr := openBroker(t)
	receivers := map[string]func(context.Context, io.Writer, tutorials.RunOptions) error{
		"receive": func(ctx context.Context, w io.Writer, o tutorials.RunOptions) error {
			return tutorials.Receive(ctx, tr, w, o)
		},
		"worker": func(ctx context.Context, w io.Writer, o tutorials.RunOptions) error {
			return tutorials.Worker(ctx, tr, w, time.Second, o)
		},
		"receive_logs": func(ctx context.Context, w io.Writer, o tutorials.RunOptions) error {
			return tutorials.ReceiveLogs(ctx, tr, w, o)
		},
		"receive_logs_direct": func(ctx context.Context, w io.Writer, o tutorials.RunOptions) error {
			return tutorials.ReceiveLogsDirect(ctx, tr, w, []string{"info"}, o)
		},
		"receive_logs_topic": func(ctx context.Context, w io.Writer, o tutorials.RunOptions) error {
			return tutorials.ReceiveLogsTopic(ctx, tr, w, []string{"#"}, o)
		},
	}
	for name, run := range receivers {
		r := &runner{t: t}
		rctx, cancel := context.WithCancel(ctx)
		rc := r.start(rctx, tutorials.RunOptions{}, run)
		cancel()
		r.wait(rc)
		if rc.err != nil {
			t.Errorf("%s: %v", name, rc.err)
		}
	}
}

func TestReset(t *testing.T) {
	ctx, tr := openBroker(t)
	for _, send := range []func() error{
		func() error { return tutorials.Send(ctx, tr, io.Discard, "left over") },
		func() error { return tutorials.NewTask(ctx, tr, io.Discard, "left over") },
		func() error { return tutorials.NewTask(ctx, tr, io.Discard, "left over too") },
	} {
		if err := send(); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []int{3, 0} {
		n, err := tutorials.Reset(ctx, tr)
		if err != nil || n != want {
			t.Fatalf("Reset = %d, %v; want %d, nil", n, err, want)
		}
	}
}
