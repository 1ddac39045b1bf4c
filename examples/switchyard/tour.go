package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-mq/switchyard/examples/tutorials"
	"github.com/switchyard-mq/switchyard/transport"
)

// tourOptions are the tour's flags.
type tourOptions struct {
	url        string
	workPerDot time.Duration // tutorial 2's work per dot in a task
	timeout    time.Duration // what each section may take
}

func tourCommand() command {
	return command{
		name:    "tour",
		summary: "run RabbitMQ's five tutorials in one process and show who received what",
		doc: `Runs RabbitMQ's five tutorials (hello world, work queues, publish/subscribe,
routing, topics) in one process, on the in-process broker by default, and
prints what each program sent and received. It fails if a program receives
other messages than the tutorial's semantics promise, so it is also a quick
check of a backend: switchyard tour -url <URL>.`,
		flags: func(fs *flag.FlagSet) func(context.Context, []string, io.Writer) error {
			var opts tourOptions
			fs.StringVar(&opts.url, "url", "memory://", "transport `URL` of the backend to run the tutorials on")
			fs.DurationVar(&opts.workPerDot, "work", 10*time.Millisecond, "work per dot of a task in tutorial 2 (the original's is 1s)")
			fs.DurationVar(&opts.timeout, "timeout", 10*time.Second, "time each tutorial may take before the tour fails")
			return func(ctx context.Context, args []string, stdout io.Writer) error {
				switch {
				case len(args) > 0:
					return fmt.Errorf("%w: unexpected arguments %q", errUsage, args)
				case opts.workPerDot < 0:
					return fmt.Errorf("%w: -work %v is negative", errUsage, opts.workPerDot)
				case opts.timeout <= 0:
					return fmt.Errorf("%w: -timeout %v is not positive", errUsage, opts.timeout)
				}
				return tour(ctx, stdout, opts)
			}
		},
	}
}

// section is one part of the tour. run runs its programs on tr, writes
// their transcript to w and fails if a program saw what the semantics
// forbid. It must return within ctx, whose deadline bounds the section.
type section struct {
	title string
	about string // what to look for in the transcript
	run   func(ctx context.Context, tr *transport.Transport, w io.Writer) error
}

// tourSections lists the tour's sections in order. Later parts of
// Switchyard (RPC, notifications) append theirs.
func tourSections(opts tourOptions) []section {
	return []section{
		{
			title: `"Hello World!": one producer, one consumer, the queue "hello"`,
			about: "send publishes through the default exchange, which routes by queue name.",
			run:   helloWorld,
		},
		{
			title: `Work queues: the durable queue "task_queue", persistent messages, manual ack, prefetch 1`,
			about: fmt.Sprintf(`Every dot in a task is %v of work. All tasks are queued while only worker 1
runs; it takes the long one and, at prefetch 1, nothing more until it acks.`, opts.workPerDot),
			run: workQueues(opts.workPerDot),
		},
		{
			title: `Publish/subscribe: the fanout exchange "logs"`,
			about: "Each receive_logs binds a server-named, exclusive queue of its own to the exchange.",
			run:   publishSubscribe,
		},
		{
			title: `Routing: the direct exchange "direct_logs", severities as routing keys`,
			about: "Each receiver binds its queue once per severity it names.",
			run:   routing,
		},
		{
			title: `Topics: the topic exchange "topic_logs", keys <facility>.<severity>`,
			about: "In a binding key, * stands for exactly one word and # for zero or more.",
			run:   topics,
		},
		rpcSection(),
		notifySection(),
	}
}

// tour opens the transport, empties the tutorials' named queues and runs
// every section, each within opts.timeout.
func tour(ctx context.Context, w io.Writer, opts tourOptions) (err error) {
	openCtx, cancel := context.WithTimeout(ctx, opts.timeout)
	// The tour prints its own transcript; only problems are logged.
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	tr, err := transport.Open(openCtx, opts.url, transport.WithLogger(quiet))
	cancel()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, tr.Close()) }()
	fmt.Fprintf(w, "Switchyard tour: RabbitMQ's tutorials, RPC and notifications on %s\n", tr)

	resetCtx, cancel := context.WithTimeout(ctx, opts.timeout)
	dropped, err := tutorials.Reset(resetCtx, tr)
	cancel()
	if err != nil {
		return err
	}
	if dropped > 0 {
		fmt.Fprintf(w, "(dropped %s that earlier runs left in the queues hello and task_queue)\n", count(dropped, "message"))
	}

	for i, s := range tourSections(opts) {
		fmt.Fprintf(w, "\n%d. %s\n%s\n\n", i+1, s.title, s.about)
		sctx, cancel := context.WithTimeout(ctx, opts.timeout)
		err := s.run(sctx, tr, w)
		timedOut := errors.Is(sctx.Err(), context.DeadlineExceeded)
		cancel()
		if err != nil && timedOut {
			return fmt.Errorf("section %d, stopped by its %v timeout (see -timeout): %w", i+1, opts.timeout, err)
		}
		if err != nil {
			return fmt.Errorf("section %d: %w", i+1, err)
		}
	}
	return nil
}

func helloWorld(ctx context.Context, tr *transport.Transport, w io.Writer) error {
	s, ctx := newStage(ctx)
	defer s.close(w)
	receive, err := s.receiver(ctx, "receive", tutorials.RunOptions{Limit: 1},
		func(ctx context.Context, w io.Writer, opts tutorials.RunOptions) error {
			return tutorials.Receive(ctx, tr, w, opts)
		})
	if err != nil {
		return err
	}
	send := s.producer("send")
	if err := tutorials.Send(ctx, tr, &send.out, "Hello World!"); err != nil {
		return err
	}
	if err := s.finish(w); err != nil {
		return err
	}
	if err := receive.expect(receive.bodies, "Hello World!"); err != nil {
		return err
	}
	fmt.Fprintln(w, "  => receive got the message that send published.")
	return nil
}

// workQueues shows fair dispatch. Worker 1 alone takes the long task
// while every task is already queued; worker 2 starts after it, so the
// quick tasks are still in the queue only because prefetch 1 kept worker 1
// from taking them.
func workQueues(workPerDot time.Duration) func(context.Context, *transport.Transport, io.Writer) error {
	return func(ctx context.Context, tr *transport.Transport, w io.Writer) error {
		tasks := []string{"A long task..........", "Quick task 1.", "Quick task 2.", "Quick task 3.", "Quick task 4."}
		s, ctx := newStage(ctx)
		defer s.close(w)
		var done atomic.Int64
		stopWhenAllDone := func(string, []byte) {
			if done.Add(1) == int64(len(tasks)) {
				s.cancel()
			}
		}
		worker := func(ctx context.Context, w io.Writer, opts tutorials.RunOptions) error {
			return tutorials.Worker(ctx, tr, w, workPerDot, opts)
		}

		tookTask := make(chan struct{})
		signalTookTask := sync.OnceFunc(func() { close(tookTask) })
		worker1, err := s.receiver(ctx, "worker 1", tutorials.RunOptions{
			Received: func(string, []byte) { signalTookTask() },
			Handled:  stopWhenAllDone,
		}, worker)
		if err != nil {
			return err
		}
		newTask := s.producer("new_task")
		for _, task := range tasks {
			if err := tutorials.NewTask(ctx, tr, &newTask.out, task); err != nil {
				return err
			}
		}
		select {
		case <-tookTask:
		case <-ctx.Done():
			return fmt.Errorf("worker 1 took no task: %w", ctx.Err())
		}
		worker2, err := s.receiver(ctx, "worker 2", tutorials.RunOptions{Handled: stopWhenAllDone}, worker)
		if err != nil {
			return err
		}
		if err := s.finish(w); err != nil {
			return err
		}

		all := slices.Concat(worker1.bodies, worker2.bodies)
		slices.Sort(all)
		want := slices.Clone(tasks)
		slices.Sort(want)
		if !slices.Equal(all, want) {
			return fmt.Errorf("the workers did %q, want each of %q once", all, tasks)
		}
		if len(worker1.bodies) == 0 || worker1.bodies[0] != tasks[0] {
			return fmt.Errorf("worker 1 did %q, want %q first", worker1.bodies, tasks[0])
		}
		fmt.Fprintf(w, "  => Worker 1 did %s, worker 2 did %s, and every task was done once.\n",
			count(len(worker1.bodies), "task"), count(len(worker2.bodies), "task"))
		if len(worker2.bodies) > 0 {
			fmt.Fprintln(w, "  => Fair dispatch: while worker 1 held the long task unacknowledged, prefetch 1 left the quick ones to worker 2.")
		}
		return nil
	}
}

// count says "1 task", "2 tasks".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func publishSubscribe(ctx context.Context, tr *transport.Transport, w io.Writer) error {
	logs := []string{"info: service started", "warning: disk 90% full", "error: disk full"}
	s, ctx := newStage(ctx)
	defer s.close(w)
	var receivers []*program
	for _, label := range []string{"receive_logs 1", "receive_logs 2"} {
		p, err := s.receiver(ctx, label, tutorials.RunOptions{Limit: len(logs)},
			func(ctx context.Context, w io.Writer, opts tutorials.RunOptions) error {
				return tutorials.ReceiveLogs(ctx, tr, w, opts)
			})
		if err != nil {
			return err
		}
		receivers = append(receivers, p)
	}
	emit := s.producer("emit_log")
	for _, log := range logs {
		if err := tutorials.EmitLog(ctx, tr, &emit.out, log); err != nil {
			return err
		}
	}
	if err := s.finish(w); err != nil {
		return err
	}
	for _, p := range receivers {
		if err := p.expect(p.bodies, logs...); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "  => Both receivers got all %d logs.\n", len(logs))
	return nil
}

// keyedLog is a log of tutorials 4 and 5: a routing key and a body.
type keyedLog struct{ key, body string }

// bound is a receiver of tutorials 4 and 5: its binding keys and the
// routing keys of the logs it must get, in order.
type bound struct {
	keys []string
	want []string
}

// routeLogs runs one emitter and several receivers of tutorial 4 or 5.
// The last log must reach every receiver: queues are FIFO, so a receiver
// that stops at its count having seen the last log has seen everything
// routed to it, and a log routed to it wrongly would show in its
// transcript.
func routeLogs(ctx context.Context, w io.Writer, receiverName, emitterName string, receivers []bound, logs []keyedLog,
	receive func(ctx context.Context, w io.Writer, keys []string, opts tutorials.RunOptions) error,
	emit func(ctx context.Context, w io.Writer, key, body string) error) error {
	s, ctx := newStage(ctx)
	defer s.close(w)
	programs := make([]*program, len(receivers))
	for i, r := range receivers {
		p, err := s.receiver(ctx, receiverName+" "+strings.Join(r.keys, " "), tutorials.RunOptions{Limit: len(r.want)},
			func(ctx context.Context, w io.Writer, opts tutorials.RunOptions) error {
				return receive(ctx, w, r.keys, opts)
			})
		if err != nil {
			return err
		}
		programs[i] = p
	}
	emitter := s.producer(emitterName)
	for _, l := range logs {
		if err := emit(ctx, &emitter.out, l.key, l.body); err != nil {
			return err
		}
	}
	if err := s.finish(w); err != nil {
		return err
	}
	for i, p := range programs {
		if err := p.expect(p.keys, receivers[i].want...); err != nil {
			return err
		}
	}
	return nil
}

func routing(ctx context.Context, tr *transport.Transport, w io.Writer) error {
	err := routeLogs(ctx, w, "receive_logs_direct", "emit_log_direct",
		[]bound{
			{keys: []string{"warning", "error"}, want: []string{"warning", "error"}},
			{keys: []string{"info", "warning", "error"}, want: []string{"info", "warning", "error"}},
		},
		[]keyedLog{
			{"info", "Everything is fine."},
			{"debug", "Nobody listens to debug."},
			{"warning", "Disk almost full."},
			{"error", "Run. Run. Or it will explode."},
		},
		func(ctx context.Context, w io.Writer, keys []string, opts tutorials.RunOptions) error {
			return tutorials.ReceiveLogsDirect(ctx, tr, w, keys, opts)
		},
		func(ctx context.Context, w io.Writer, key, body string) error {
			return tutorials.EmitLogDirect(ctx, tr, w, key, body)
		})
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "  => Each receiver got only its severities; no queue is bound to debug, so that log was dropped.")
	return nil
}

func topics(ctx context.Context, tr *transport.Transport, w io.Writer) error {
	err := routeLogs(ctx, w, "receive_logs_topic", "emit_log_topic",
		[]bound{
			{keys: []string{"#"}, want: []string{"cron.warning", "kern.info", "auth.critical", "kern.critical"}},
			{keys: []string{"kern.*"}, want: []string{"kern.info", "kern.critical"}},
			{keys: []string{"*.critical"}, want: []string{"auth.critical", "kern.critical"}},
			{keys: []string{"kern.*", "*.critical"}, want: []string{"kern.info", "auth.critical", "kern.critical"}},
		},
		[]keyedLog{
			{"cron.warning", "The nightly backup is late."},
			{"kern.info", "The kernel booted."},
			{"auth.critical", "Too many failed logins."},
			{"kern.critical", "A critical kernel error"},
		},
		func(ctx context.Context, w io.Writer, keys []string, opts tutorials.RunOptions) error {
			return tutorials.ReceiveLogsTopic(ctx, tr, w, keys, opts)
		},
		func(ctx context.Context, w io.Writer, key, body string) error {
			return tutorials.EmitLogTopic(ctx, tr, w, key, body)
		})
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "  => Each receiver got exactly the logs its patterns match, kern.critical once though it matches both of the last one's.")
	return nil
}

// program is one run of a tutorial program in a section: what it printed
// and, for a receiver, what it handled.
type program struct {
	label    string
	receiver bool
	out      bytes.Buffer
	// Set by a receiver's goroutine; read once it has ended.
	bodies []string // the bodies it handled, in order
	keys   []string // their routing keys
	err    error
	done   chan struct{}
}

// expect checks what a receiver handled (its bodies or its keys) against
// want.
func (p *program) expect(got []string, want ...string) error {
	if !slices.Equal(got, want) {
		return fmt.Errorf("%s got %q, want %q", p.label, got, want)
	}
	return nil
}

// stage runs one section's programs: receivers in goroutines that it owns
// and waits for, producers in the caller's. It prints their output as a
// transcript, producers first, each line labelled with its program.
type stage struct {
	cancel   context.CancelFunc // stops the receivers
	wg       sync.WaitGroup
	programs []*program
	printed  bool
}

func newStage(ctx context.Context) (*stage, context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	return &stage{cancel: cancel}, ctx
}

// receiver starts a receiver program and returns once it is consuming, so
// that what is published afterwards reaches it. opts.Handled, if set, is
// called after the program records each message.
func (s *stage) receiver(ctx context.Context, label string, opts tutorials.RunOptions,
	run func(context.Context, io.Writer, tutorials.RunOptions) error) (*program, error) {
	p := &program{label: label, receiver: true, done: make(chan struct{})}
	s.programs = append(s.programs, p)
	ready := make(chan struct{})
	opts.Ready = sync.OnceFunc(func() { close(ready) })
	handled := opts.Handled
	opts.Handled = func(key string, body []byte) {
		p.keys = append(p.keys, key)
		p.bodies = append(p.bodies, string(body))
		if handled != nil {
			handled(key, body)
		}
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(p.done)
		p.err = run(ctx, &p.out, opts)
	}()
	select {
	case <-ready:
		return p, nil
	case <-p.done:
		if p.err != nil {
			return nil, fmt.Errorf("%s: %w", label, p.err)
		}
		return nil, fmt.Errorf("%s ended before it was consuming", label)
	}
}

// producer adds a producer program, which the caller runs.
func (s *stage) producer(label string) *program {
	p := &program{label: label}
	s.programs = append(s.programs, p)
	return p
}

// finish waits for the receivers to end (at their limit, when the stage is
// cancelled, or at the section's deadline), prints the transcript once, and
// returns the receivers' errors.
func (s *stage) finish(w io.Writer) error {
	s.wg.Wait()
	if s.printed {
		return nil
	}
	s.printed = true
	width := 0
	for _, p := range s.programs {
		width = max(width, len(p.label))
	}
	var errs []error
	for _, receivers := range []bool{false, true} {
		for _, p := range s.programs {
			if p.receiver != receivers {
				continue
			}
			lines := bufio.NewScanner(&p.out)
			for lines.Scan() {
				fmt.Fprintf(w, "  %-*s | %s\n", width, p.label, strings.TrimLeft(lines.Text(), " "))
			}
			if p.err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", p.label, p.err))
			}
		}
	}
	return errors.Join(errs...)
}

// close stops the receivers still running and prints what they did; it
// is deferred, so that a section that fails half way still ends them.
func (s *stage) close(w io.Writer) {
	s.cancel()
	_ = s.finish(w)
}
