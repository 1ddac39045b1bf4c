package tutorials_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/internal/brokertest"
	"github.com/switchyard-mq/switchyard/transport"
)

// debianPython is the Python that runs the pika originals: Debian's, with
// its python3-pika package.
var debianPython = []string{"/usr/bin/python3"}

// The cross-language test's bounds: the whole of it, and each wait for a
// program's lines or exit.
const (
	crossTimeout = 5 * time.Minute
	stepTimeout  = 30 * time.Second
)

// TestCrossLanguage runs RabbitMQ's tutorials across languages on RabbitMQ,
// each run in a virtual host of its own: the pika originals of testdata/
// against the Go programs of cmd/, a pika producer with a Go receiver and
// a Go producer with a pika receiver, and in tutorial 2 a pika worker and
// a Go worker sharing "task_queue". Each receiver must print exactly what
// the original prints. A declaration that differs between the two (a
// durable exchange, a classic queue where the original's is a quorum one)
// fails the second program to declare with a 406.
func TestCrossLanguage(t *testing.T) {
	python := requirePika(t, debianPython)
	testCrossLanguage(t, python, func(t *testing.T) string { return brokertest.NewRabbitVHost(t).URL })
}

// requirePika returns python if it imports pika, and otherwise skips t,
// or fails it under SWITCHYARD_BROKERS=required, saying how to install it.
func requirePika(t *testing.T, python []string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), stepTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, python[0], append(slices.Clone(python[1:]), "-c", "import pika")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		msg := fmt.Sprintf("%q cannot import pika (%v: %s); install Debian's python3-pika: apt-get install -y python3-pika",
			strings.Join(python, " "), err, bytes.TrimSpace(out))
		if brokertest.Required() {
			t.Fatal(msg + " [SWITCHYARD_BROKERS=required]")
		}
		t.Skip(msg)
	}
	return python
}

// lang is the language a tutorial program runs in.
type lang string

const (
	goLang   lang = "Go"
	pikaLang lang = "pika"
)

// program is a tutorial program and its arguments, by its Go name (the
// pika original is NAME.py).
type program struct {
	name string
	args []string
}

// crossCase is one tutorial across languages: a receiver and the
// producers run one after the other while it runs, and what the receiver
// prints from start to stop (its waiting line, one line per message, and
// "Interrupted" where the original prints it when interrupted).
type crossCase struct {
	name      string
	receiver  program
	producers []program
	want      []string
}

func crossCases() []crossCase {
	const waitingMessages, waitingLogs = " [*] Waiting for messages. To exit press CTRL+C", " [*] Waiting for logs. To exit press CTRL+C"
	return []crossCase{
		{
			name:      "1 hello world",
			receiver:  program{name: "receive"},
			producers: []program{{name: "send"}},
			want:      []string{waitingMessages, " [x] Received Hello World!", "Interrupted"},
		},
		{
			name:      "2 work queues",
			receiver:  program{name: "worker"},
			producers: []program{{name: "new_task"}, {name: "new_task", args: []string{"A", "task."}}},
			want:      []string{waitingMessages, " [x] Received Hello World!", " [x] Done", " [x] Received A task.", " [x] Done"},
		},
		{
			name:      "3 publish subscribe",
			receiver:  program{name: "receive_logs"},
			producers: []program{{name: "emit_log"}, {name: "emit_log", args: []string{"warning:", "disk 90% full"}}},
			want:      []string{waitingLogs, " [x] info: Hello World!", " [x] warning: disk 90% full", "Interrupted"},
		},
		{
			// A severity alone is ignored (the log goes out as info), and
			// info is not routed to this receiver.
			name:     "4 routing",
			receiver: program{name: "receive_logs_direct", args: []string{"warning", "error"}},
			producers: []program{
				{name: "emit_log_direct", args: []string{"info", "Everything", "is", "fine."}},
				{name: "emit_log_direct", args: []string{"error"}},
				{name: "emit_log_direct", args: []string{"warning", "Disk almost full."}},
				{name: "emit_log_direct", args: []string{"error", "Run.", "Run.", "Or", "it", "will", "explode."}},
			},
			want: []string{waitingLogs, " [x] warning:Disk almost full.", " [x] error:Run. Run. Or it will explode.", "Interrupted"},
		},
		{
			// A routing key alone is ignored (the log goes out as
			// anonymous.info), which no binding key here matches.
			name:     "5 topics",
			receiver: program{name: "receive_logs_topic", args: []string{"kern.*", "*.critical"}},
			producers: []program{
				{name: "emit_log_topic", args: []string{"cron.warning", "The nightly backup is late."}},
				{name: "emit_log_topic", args: []string{"kern.info", "The kernel booted."}},
				{name: "emit_log_topic", args: []string{"kern.critical"}},
				{name: "emit_log_topic", args: []string{"auth.critical", "Too many failed logins."}},
				{name: "emit_log_topic", args: []string{"kern.critical", "A critical kernel error"}},
			},
			want: []string{
				waitingLogs, " [x] kern.info:The kernel booted.", " [x] auth.critical:Too many failed logins.",
				" [x] kern.critical:A critical kernel error", "Interrupted",
			},
		},
	}
}

// testCrossLanguage is TestCrossLanguage's body, for any RabbitMQ broker:
// python is the command that runs Python with pika (a path, or a prefix
// such as chroot DIR python3: the programs are given on its standard
// input, so they need not be visible to it), and newURL returns the
// rabbit:// URL of a fresh virtual host for one run.
func testCrossLanguage(t *testing.T, python []string, newURL func(t *testing.T) string) {
	ctx, cancel := context.WithTimeout(t.Context(), crossTimeout)
	defer cancel()
	env := &crossEnv{python: python, bin: buildCommands(ctx, t)}
	for _, tc := range crossCases() {
		t.Run(tc.name, func(t *testing.T) {
			for _, dir := range []struct{ producer, receiver lang }{{pikaLang, goLang}, {goLang, pikaLang}} {
				t.Run(fmt.Sprintf("%s producer, %s receiver", dir.producer, dir.receiver), func(t *testing.T) {
					env.runCase(ctx, t, newURL(t), tc, dir.producer, dir.receiver)
				})
			}
			if tc.receiver.name == "worker" {
				t.Run("pika worker and Go worker share task_queue", func(t *testing.T) {
					env.runSharedWork(ctx, t, newURL(t))
				})
			}
		})
	}
}

// buildCommands builds the tutorial commands into a temporary directory,
// which it returns.
func buildCommands(ctx context.Context, t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin+string(filepath.Separator), "./cmd/...")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/...: %v\n%s", err, out)
	}
	return bin
}

// crossEnv runs the tutorial programs of both languages.
type crossEnv struct {
	python []string
	bin    string // the Go commands
}

// command returns the command that runs p in language l on the broker of
// rabbitURL. The Go programs take it with -url; the pika ones read it from
// AMQP_URL, as an amqp:// URL.
func (e *crossEnv) command(ctx context.Context, t *testing.T, rabbitURL string, l lang, p program) *exec.Cmd {
	t.Helper()
	if l == goLang {
		return exec.CommandContext(ctx, filepath.Join(e.bin, p.name), append([]string{"-url", rabbitURL}, p.args...)...)
	}
	script, err := os.ReadFile(filepath.Join("testdata", p.name+".py"))
	if err != nil {
		t.Fatal(err)
	}
	amqp, err := pikaURL(rabbitURL)
	if err != nil {
		t.Fatal(err)
	}
	// -u: unbuffered, so that each line arrives as it is printed (the
	// tutorials run their Python programs so when writing to a file).
	args := append(slices.Clone(e.python[1:]), "-u", "-")
	cmd := exec.CommandContext(ctx, e.python[0], append(args, p.args...)...)
	cmd.Stdin = bytes.NewReader(script)
	cmd.Env = append(os.Environ(), "AMQP_URL="+amqp)
	return cmd
}

// pikaURL is the amqp:// URL that pika.URLParameters reads for the broker
// and virtual host of a rabbit:// (or rabbits://) transport URL.
func pikaURL(rabbitURL string) (string, error) {
	u, err := transport.ParseURL(rabbitURL)
	if err != nil {
		return "", err
	}
	scheme := map[string]string{"rabbit": "amqp", "rabbits": "amqps"}[u.Scheme]
	if scheme == "" || len(u.Hosts) == 0 {
		return "", fmt.Errorf("%w: pika needs a rabbit:// or rabbits:// URL with a host, not %s", transport.ErrInvalid, u)
	}
	h := u.Hosts[0]
	if h.Port == 0 {
		h.Port = map[string]int{"amqp": 5672, "amqps": 5671}[scheme]
	}
	pu := url.URL{Scheme: scheme, Host: h.String()}
	if u.User != "" || u.HasPassword {
		pu.User = url.UserPassword(u.User, u.Password)
	}
	if u.VirtualHost != "" {
		pu.Path, pu.RawPath = "/"+u.VirtualHost, "/"+url.PathEscape(u.VirtualHost)
	}
	return pu.String(), nil
}

// runCase runs tc with its producers in one language and its receiver in
// the other, and checks what the receiver printed.
func (e *crossEnv) runCase(ctx context.Context, t *testing.T, rabbitURL string, tc crossCase, producer, receiver lang) {
	changed := make(chan struct{}, 1)
	r := e.start(ctx, t, rabbitURL, receiver, tc.receiver, changed)
	if !waitUntil(ctx, changed, func() bool { return len(r.lines()) >= 1 || r.ended() }) || len(r.lines()) < 1 {
		t.Fatalf("%s printed %q, want its waiting line; stderr:\n%s", r, r.lines(), r.stderr())
	}
	for _, p := range tc.producers {
		e.produce(ctx, t, rabbitURL, producer, p)
	}
	// Every message's line, then the stop.
	stopAt := len(tc.want)
	if tc.want[stopAt-1] == "Interrupted" {
		stopAt--
	}
	if !waitUntil(ctx, changed, func() bool { return len(r.lines()) >= stopAt || r.ended() }) || len(r.lines()) < stopAt {
		t.Fatalf("%s printed %q, want %q; stderr:\n%s", r, r.lines(), tc.want, r.stderr())
	}
	err := r.interrupt(t)
	if got := r.lines(); !slices.Equal(got, tc.want) {
		t.Errorf("%s printed %q, want %q (what the original prints)", r, got, tc.want)
	}
	if stopAt < len(tc.want) && err != nil {
		t.Errorf("interrupted %s: %v, want exit status 0 as the original; stderr:\n%s", r, err, r.stderr())
	}
}

// runSharedWork runs a pika worker and a Go worker on "task_queue" and
// queues tasks from both languages: each task is done once, by one worker,
// and at prefetch 1 both work (the first task keeps one busy two seconds,
// so the next goes to the other).
func (e *crossEnv) runSharedWork(ctx context.Context, t *testing.T, rabbitURL string) {
	const waiting = " [*] Waiting for messages. To exit press CTRL+C"
	changed := make(chan struct{}, 1)
	workers := []*running{
		e.start(ctx, t, rabbitURL, pikaLang, program{name: "worker"}, changed),
		e.start(ctx, t, rabbitURL, goLang, program{name: "worker"}, changed),
	}
	for _, w := range workers {
		if !waitUntil(ctx, changed, func() bool { return len(w.lines()) >= 1 || w.ended() }) || !slices.Equal(w.lines(), []string{waiting}) {
			t.Fatalf("%s printed %q, want its waiting line; stderr:\n%s", w, w.lines(), w.stderr())
		}
	}
	tasks := []string{"First task..", "Second task.", "Third task.", "Fourth task."}
	for i, task := range tasks {
		e.produce(ctx, t, rabbitURL, []lang{pikaLang, goLang}[i%2], program{name: "new_task", args: []string{task}})
	}
	allDone := func() bool {
		n := 0
		for _, w := range workers {
			for _, line := range w.lines() {
				if line == " [x] Done" {
					n++
				}
			}
		}
		return n >= len(tasks)
	}
	if !waitUntil(ctx, changed, allDone) {
		t.Fatalf("%s printed %q, %s printed %q: want %d tasks done", workers[0], workers[0].lines(), workers[1], workers[1].lines(), len(tasks))
	}
	var did []string
	for _, w := range workers {
		_ = w.interrupt(t) // pika's worker.py dies of the KeyboardInterrupt, as the original
		lines := w.lines()[1:]
		if len(lines) == 0 || len(lines)%2 != 0 {
			t.Errorf("%s printed %q: want a Received and a Done line per task, and some tasks", w, w.lines())
			continue
		}
		for i := 0; i < len(lines); i += 2 {
			task, ok := strings.CutPrefix(lines[i], " [x] Received ")
			if !ok || lines[i+1] != " [x] Done" {
				t.Errorf("%s printed %q, %q: want a Received and a Done line per task", w, lines[i], lines[i+1])
			}
			did = append(did, task)
		}
	}
	if slices.Sort(did); !slices.Equal(did, slices.Sorted(slices.Values(tasks))) {
		t.Errorf("the workers did %q, want each of %q once", did, tasks)
	}
}

// produce runs a producer to its end: it must exit 0 and print one line,
// " [x] Sent ...".
func (e *crossEnv) produce(ctx context.Context, t *testing.T, rabbitURL string, l lang, p program) {
	t.Helper()
	stepCtx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	cmd := e.command(stepCtx, t, rabbitURL, l, p)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || !strings.HasPrefix(string(out), " [x] Sent ") || strings.Count(string(out), "\n") != 1 {
		t.Fatalf("%s %s %q: %v, printed %q; stderr:\n%s", l, p.name, p.args, err, out, stderr.String())
	}
}

// waitUntil waits until cond holds, checking it again at each signal on
// changed (a program printed a line or ended); false after stepTimeout.
func waitUntil(ctx context.Context, changed <-chan struct{}, cond func() bool) bool {
	timeout := time.NewTimer(stepTimeout)
	defer timeout.Stop()
	for !cond() {
		select {
		case <-changed:
		case <-timeout.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// running is a program being run, its output read line by line.
type running struct {
	name    string
	cmd     *exec.Cmd
	changed chan<- struct{} // signalled at each line and at the end of the output
	exited  chan struct{}   // closed once it has exited; then exitErr is set
	exitErr error

	mu     sync.Mutex
	out    []string
	eof    bool
	errOut bytes.Buffer
}

func (r *running) String() string { return r.name }

// lines returns the lines r printed so far.
func (r *running) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.out)
}

// ended reports whether r's output has ended.
func (r *running) ended() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.eof
}

// stderr returns what r wrote to its standard error so far.
func (r *running) stderr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.errOut.String()
}

// Write takes r's standard error.
func (r *running) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.errOut.Write(p)
}

func (r *running) signal() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// start starts program p in language l, signalling changed as it prints;
// t's cleanup kills it if it still runs then.
func (e *crossEnv) start(ctx context.Context, t *testing.T, rabbitURL string, l lang, p program, changed chan<- struct{}) *running {
	t.Helper()
	r := &running{name: strings.TrimSpace(fmt.Sprintf("%s %s %s", l, p.name, strings.Join(p.args, " "))),
		changed: changed, exited: make(chan struct{})}
	r.cmd = e.command(ctx, t, rabbitURL, l, p)
	r.cmd.Stderr = r
	stdout, err := r.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", r, err)
	}
	go func() {
		defer close(r.exited)
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			r.mu.Lock()
			r.out = append(r.out, lines.Text())
			r.mu.Unlock()
			r.signal()
		}
		r.mu.Lock()
		r.eof = true
		r.mu.Unlock()
		r.signal()
		r.exitErr = r.cmd.Wait()
	}()
	t.Cleanup(func() {
		select {
		case <-r.exited:
		default:
			_ = r.cmd.Process.Kill()
			<-r.exited
		}
	})
	return r
}

// interrupt stops r as Ctrl+C does (SIGINT), waits for it to exit and
// returns its exit error.
func (r *running) interrupt(t *testing.T) error {
	t.Helper()
	if err := r.cmd.Process.Signal(os.Interrupt); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("interrupt %s: %v", r, err)
	}
	select {
	case <-r.exited:
		return r.exitErr
	case <-time.After(stepTimeout):
		t.Fatalf("%s did not exit %v after SIGINT; it printed %q", r, stepTimeout, r.lines())
		return nil
	}
}
