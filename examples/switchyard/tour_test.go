package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/examples/tutorials"
	"github.com/switchyard-mq/switchyard/transport"
)

// transcript is one section of the tour's output: each program's lines,
// by label, and the summary lines ("=> ...").
type transcript struct {
	title   string
	lines   map[string][]string
	summary []string
}

var (
	sectionTitle = regexp.MustCompile(`^(\d+)\. (.*)$`)
	programLine  = regexp.MustCompile(`^  (.*\S) +\| (.*)$`)
)

// parseTour splits the tour's output into its sections.
func parseTour(t *testing.T, out string) []transcript {
	t.Helper()
	var sections []transcript
	lines := bufio.NewScanner(strings.NewReader(out))
	for lines.Scan() {
		line := lines.Text()
		if m := sectionTitle.FindStringSubmatch(line); m != nil {
			sections = append(sections, transcript{title: m[2], lines: map[string][]string{}})
			continue
		}
		if len(sections) == 0 {
			continue
		}
		s := &sections[len(sections)-1]
		if m := programLine.FindStringSubmatch(line); m != nil {
			s.lines[m[1]] = append(s.lines[m[1]], m[2])
		} else if summary, ok := strings.CutPrefix(line, "  => "); ok {
			s.summary = append(s.summary, summary)
		}
	}
	return sections
}

// runTour runs the tour command and returns its output, failing the test
// unless it exits 0.
func runTour(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if code := run(ctx, append([]string{"tour"}, args...), &stdout, &stderr); code != 0 {
		t.Fatalf("tour exited %d; stderr:\n%s\nstdout:\n%s", code, stderr.String(), stdout.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("tour wrote to stderr: %s", stderr.String())
	}
	return stdout.String()
}

// checkNoGoroutineLeft fails t if, by a deadline, more goroutines run
// than before the test.
func checkNoGoroutineLeft(t *testing.T, before int) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for runtime.NumGoroutine() > before {
		select {
		case <-deadline:
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines left running, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		case <-poll.C:
		}
	}
}

func TestTourTranscript(t *testing.T) {
	before := runtime.NumGoroutine()
	out := runTour(t, "-url", "memory://tour-transcript", "-work", "50ms")
	checkNoGoroutineLeft(t, before)
	t.Log("\n" + out)
	if first := strings.SplitN(out, "\n", 2)[0]; first != "Switchyard tour: RabbitMQ's tutorials, RPC and notifications on memory://tour-transcript" {
		t.Errorf("first line %q", first)
	}
	// The tutorials come first; later parts of Switchyard append sections.
	sections := parseTour(t, out)
	if len(sections) < 5 {
		t.Fatalf("got %d sections, want the 5 tutorials first:\n%s", len(sections), out)
	}
	for i, prefix := range []string{`"Hello World!"`, "Work queues", "Publish/subscribe", "Routing", "Topics"} {
		if !strings.HasPrefix(sections[i].title, prefix) {
			t.Errorf("section %d is %q, want tutorial %d, %s", i+1, sections[i].title, i+1, prefix)
		}
	}

	// The sections whose every line is determined.
	exact := map[int]map[string][]string{
		0: {
			"send":    {"[x] Sent 'Hello World!'"},
			"receive": {"[x] Received Hello World!"},
		},
		2: {
			"emit_log":       {"[x] Sent info: service started", "[x] Sent warning: disk 90% full", "[x] Sent error: disk full"},
			"receive_logs 1": {"[x] info: service started", "[x] warning: disk 90% full", "[x] error: disk full"},
			"receive_logs 2": {"[x] info: service started", "[x] warning: disk 90% full", "[x] error: disk full"},
		},
		3: {
			"emit_log_direct": {
				"[x] Sent info:Everything is fine.", "[x] Sent debug:Nobody listens to debug.",
				"[x] Sent warning:Disk almost full.", "[x] Sent error:Run. Run. Or it will explode.",
			},
			"receive_logs_direct warning error": {"[x] warning:Disk almost full.", "[x] error:Run. Run. Or it will explode."},
			"receive_logs_direct info warning error": {
				"[x] info:Everything is fine.", "[x] warning:Disk almost full.", "[x] error:Run. Run. Or it will explode.",
			},
		},
		4: {
			"emit_log_topic": {
				"[x] Sent cron.warning:The nightly backup is late.", "[x] Sent kern.info:The kernel booted.",
				"[x] Sent auth.critical:Too many failed logins.", "[x] Sent kern.critical:A critical kernel error",
			},
			"receive_logs_topic #": {
				"[x] cron.warning:The nightly backup is late.", "[x] kern.info:The kernel booted.",
				"[x] auth.critical:Too many failed logins.", "[x] kern.critical:A critical kernel error",
			},
			"receive_logs_topic kern.*":     {"[x] kern.info:The kernel booted.", "[x] kern.critical:A critical kernel error"},
			"receive_logs_topic *.critical": {"[x] auth.critical:Too many failed logins.", "[x] kern.critical:A critical kernel error"},
			"receive_logs_topic kern.* *.critical": {
				"[x] kern.info:The kernel booted.", "[x] auth.critical:Too many failed logins.", "[x] kern.critical:A critical kernel error",
			},
		},
	}
	for i, want := range exact {
		got := sections[i].lines
		for label, lines := range want {
			if !slices.Equal(got[label], lines) {
				t.Errorf("section %d, %s: got %q, want %q", i+1, label, got[label], lines)
			}
		}
		for label := range got {
			if _, ok := want[label]; !ok {
				t.Errorf("section %d: unexpected program %q", i+1, label)
			}
		}
		if len(sections[i].summary) != 1 {
			t.Errorf("section %d: summary %q, want one line", i+1, sections[i].summary)
		}
	}

	// Work queues: who did what depends on timing; fair dispatch bounds it.
	work := sections[1]
	tasks := []string{"A long task..........", "Quick task 1.", "Quick task 2.", "Quick task 3.", "Quick task 4."}
	var sent []string
	for _, task := range tasks {
		sent = append(sent, "[x] Sent "+task)
	}
	if !slices.Equal(work.lines["new_task"], sent) {
		t.Errorf("new_task printed %q, want %q", work.lines["new_task"], sent)
	}
	received := map[string][]string{}
	for _, worker := range []string{"worker 1", "worker 2"} {
		lines := work.lines[worker]
		if len(lines)%2 != 0 {
			t.Fatalf("%s printed %q: want a Received and a Done line per task", worker, lines)
		}
		for i := 0; i < len(lines); i += 2 {
			task, ok := strings.CutPrefix(lines[i], "[x] Received ")
			if !ok || lines[i+1] != "[x] Done" {
				t.Fatalf("%s printed %q, %q: want a Received and a Done line per task", worker, lines[i], lines[i+1])
			}
			received[worker] = append(received[worker], task)
		}
	}
	if len(received["worker 1"]) == 0 || received["worker 1"][0] != tasks[0] {
		t.Errorf("worker 1 did %q, want the long task first", received["worker 1"])
	}
	all := slices.Sorted(slices.Values(slices.Concat(received["worker 1"], received["worker 2"])))
	if !slices.Equal(all, tasks) {
		t.Errorf("the workers did %q, want each of %q once", all, tasks)
	}
	// Worker 2 starts while worker 1 works 500ms on the long task: at
	// prefetch 1 the quick tasks are still in the queue for it (a worker
	// that hoarded would have taken them all with the long one).
	if len(received["worker 2"]) == 0 {
		t.Errorf("worker 1 did %q, worker 2 nothing: the busy worker hoarded tasks", received["worker 1"])
	}
	if len(work.summary) != 2 || !strings.HasPrefix(work.summary[0], "Worker 1 did ") || !strings.HasPrefix(work.summary[1], "Fair dispatch: ") {
		t.Errorf("work queues summary %q", work.summary)
	}
}

// TestTourTwiceOnOneBroker runs the tour again on a broker that already
// holds its exchanges and left-over messages: it empties the tutorials'
// queues first and passes again.
func TestTourTwiceOnOneBroker(t *testing.T) {
	const url = "memory://tour-twice"
	runTour(t, "-url", url)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := transport.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for _, task := range []string{"left over.", "left over too."} {
		if err := tutorials.NewTask(ctx, tr, io.Discard, task); err != nil {
			t.Fatal(err)
		}
	}

	out := runTour(t, "-url", url)
	if !strings.Contains(out, "(dropped 2 messages that earlier runs left in the queues hello and task_queue)") {
		t.Errorf("second tour did not report the messages it dropped:\n%s", out)
	}
	if n := len(parseTour(t, out)); n != len(tourSections(tourOptions{})) {
		t.Errorf("second tour has %d sections, want %d", n, len(tourSections(tourOptions{})))
	}
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string
		wantStderr []string
	}{
		{name: "no command", wantCode: 2, wantStderr: []string{"no command given", "Usage: switchyard <command>", "tour"}},
		{name: "unknown command", args: []string{"nope"}, wantCode: 2, wantStderr: []string{`unknown command "nope"`, "Commands:"}},
		{name: "help", args: []string{"help"}, wantStdout: []string{"Usage: switchyard <command>", "  tour ", "  help "}},
		{name: "-h", args: []string{"-h"}, wantStdout: []string{"Usage: switchyard <command>"}},
		{name: "help tour", args: []string{"help", "tour"}, wantStdout: []string{"Usage: switchyard tour [flags]", "-url URL", "-work", "-timeout"}},
		{name: "help unknown", args: []string{"help", "nope"}, wantCode: 2, wantStderr: []string{`unknown command "nope"`}},
		{name: "tour -h", args: []string{"tour", "-h"}, wantStderr: []string{"Usage: switchyard tour"}},
		{name: "tour with arguments", args: []string{"tour", "extra"}, wantCode: 2, wantStderr: []string{`unexpected arguments ["extra"]`, "Usage: switchyard tour"}},
		{name: "tour negative work", args: []string{"tour", "-work", "-1s"}, wantCode: 2, wantStderr: []string{"-work -1s is negative"}},
		{name: "tour zero timeout", args: []string{"tour", "-timeout", "0s"}, wantCode: 2, wantStderr: []string{"-timeout 0s is not positive"}},
		{name: "tour bad flag", args: []string{"tour", "-nope"}, wantCode: 2, wantStderr: []string{"flag provided but not defined: -nope"}},
		{name: "tour unknown scheme", args: []string{"tour", "-url", "nope://"}, wantCode: 1,
			wantStderr: []string{"switchyard tour:", `no driver for scheme "nope"`, "(registered: ", " memory, "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var stdout, stderr bytes.Buffer
			if code := run(ctx, tt.args, &stdout, &stderr); code != tt.wantCode {
				t.Errorf("exit status %d, want %d; stderr:\n%s", code, tt.wantCode, stderr.String())
			}
			for _, want := range tt.wantStdout {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
				}
			}
			for _, want := range tt.wantStderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
				}
			}
		})
	}
}

// TestTourRPCAndNotifications checks the sections after the tutorials:
// what each call, cast and notification produced.
func TestTourRPCAndNotifications(t *testing.T) {
	out := runTour(t, "-url", "memory://tour-rpc-notify")
	_, rpcPart, ok := strings.Cut(out, "\n6. RPC")
	if !ok {
		t.Fatalf("no RPC section:\n%s", out)
	}
	rpcPart, notifyPart, ok := strings.Cut(rpcPart, "\n7. Notifications")
	if !ok {
		t.Fatalf("no notifications section:\n%s", out)
	}
	for _, want := range []string{
		"call add(a=2, b=40)                        -> 42\n",
		"on server host2      -> host2: hi\n",
		"on server host1      -> host1: hi\n",
		"map[request_id:req-tour-1 user_id:alice]",
		"-> remote error ZeroDivisionError: division by zero\n",
		"-> remote error NoSuchMethod: Endpoint does not support RPC method reboot\n",
		"with a 200ms timeout -> rpc call sleep to compute: timed out",
		"-> host1 recorded cast to host1\n",
		"-> host1 recorded fanout\n",
		"-> host2 recorded fanout\n",
	} {
		if !strings.Contains(rpcPart, want) {
			t.Errorf("RPC section lacks %q:\n%s", want, rpcPart)
		}
	}
	if n := strings.Count(rpcPart, "recorded"); n != 3 {
		t.Errorf("RPC section shows %d casts run, want 3:\n%s", n, rpcPart)
	}
	sections := parseTour(t, "7. Notifications"+notifyPart)
	want := map[string][]string{
		"billing":   {`got  info compute.instance.create.end {"id":"vm-1"}`},
		"audit-log": {`got  info compute.instance.create.end {"id":"vm-1"}`, `got  info network.port.create.end {"id":"port-7"}`, `got  warn compute.instance.slow {"id":"vm-1"}`},
	}
	for label, lines := range want {
		if got := sections[0].lines[label]; !slices.Equal(got, lines) {
			t.Errorf("%s got %q, want %q", label, got, lines)
		}
	}
}
