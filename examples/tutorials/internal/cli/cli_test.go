package cli

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRunArguments(t *testing.T) {
	tests := []struct {
		name       string
		command    string
		args       []string
		wantCode   int
		wantStdout string   // exact, when wantCode is 0
		wantStderr []string // substrings
	}{
		{name: "direct receiver without severities", command: "receive_logs_direct", wantCode: 1,
			wantStderr: []string{"receive_logs_direct: missing SEVERITY...", "Usage: receive_logs_direct [-url URL] SEVERITY..."}},
		{name: "direct receiver with only a flag", command: "receive_logs_direct", args: []string{"-url", "memory://cli-test"}, wantCode: 1,
			wantStderr: []string{"missing SEVERITY...", "Usage:"}},
		{name: "topic receiver without binding keys", command: "receive_logs_topic", wantCode: 1,
			wantStderr: []string{"receive_logs_topic: missing BINDING_KEY...", "Usage: receive_logs_topic [-url URL] BINDING_KEY..."}},
		{name: "receiver with arguments it does not take", command: "receive", args: []string{"extra"}, wantCode: 1,
			wantStderr: []string{`unexpected arguments ["extra"]`, "Usage: receive [-url URL]"}},
		{name: "help", command: "worker", args: []string{"-h"}, wantCode: 0,
			wantStderr: []string{"Usage: worker [-url URL]", "tutorial 2", "-url URL", "memory://", "go run ./examples/switchyard tour"}},
		{name: "unknown flag", command: "send", args: []string{"-nope"}, wantCode: 1,
			wantStderr: []string{"flag provided but not defined: -nope", "Usage: send"}},
		{name: "unknown scheme", command: "send", args: []string{"-url", "nope://"}, wantCode: 1,
			wantStderr: []string{"send:", `no driver for scheme "nope"`}},
		{name: "malformed URL", command: "send", args: []string{"-url", "memory"}, wantCode: 1,
			wantStderr: []string{"send:", "transport URL"}},
		{name: "unknown command", command: "nope", wantCode: 1, wantStderr: []string{`no tutorial command "nope"`}},

		{name: "send", command: "send", args: []string{"-url", "memory://cli-test"},
			wantStdout: " [x] Sent 'Hello World!'\n"},
		{name: "new_task default", command: "new_task", args: []string{"-url", "memory://cli-test"},
			wantStdout: " [x] Sent Hello World!\n"},
		{name: "new_task", command: "new_task", args: []string{"-url", "memory://cli-test", "Third", "message..."},
			wantStdout: " [x] Sent Third message...\n"},
		{name: "new_task empty", command: "new_task", args: []string{"-url", "memory://cli-test", ""},
			wantStdout: " [x] Sent Hello World!\n"},
		{name: "emit_log default", command: "emit_log", args: []string{"-url", "memory://cli-test"},
			wantStdout: " [x] Sent info: Hello World!\n"},
		{name: "emit_log", command: "emit_log", args: []string{"-url", "memory://cli-test", "warning:", "disk", "full"},
			wantStdout: " [x] Sent warning: disk full\n"},
		{name: "emit_log_direct default", command: "emit_log_direct", args: []string{"-url", "memory://cli-test"},
			wantStdout: " [x] Sent info:Hello World!\n"},
		{name: "emit_log_direct severity alone", command: "emit_log_direct", args: []string{"-url", "memory://cli-test", "error"},
			wantStdout: " [x] Sent info:Hello World!\n"},
		{name: "emit_log_direct", command: "emit_log_direct", args: []string{"-url", "memory://cli-test", "error", "Run.", "Run."},
			wantStdout: " [x] Sent error:Run. Run.\n"},
		{name: "emit_log_topic default", command: "emit_log_topic", args: []string{"-url", "memory://cli-test"},
			wantStdout: " [x] Sent anonymous.info:Hello World!\n"},
		{name: "emit_log_topic routing key alone", command: "emit_log_topic", args: []string{"-url", "memory://cli-test", "kern.critical"},
			wantStdout: " [x] Sent anonymous.info:Hello World!\n"},
		{name: "emit_log_topic", command: "emit_log_topic", args: []string{"-url", "memory://cli-test", "kern.critical", "A", "critical", "kernel", "error"},
			wantStdout: " [x] Sent kern.critical:A critical kernel error\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var stdout, stderr bytes.Buffer
			code := Run(ctx, tt.command, tt.args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit status %d, want %d; stderr:\n%s", code, tt.wantCode, stderr.String())
			}
			for _, want := range tt.wantStderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
				}
			}
			if tt.wantCode == 0 && stdout.String() != tt.wantStdout {
				t.Errorf("stdout %q, want %q", stdout.String(), tt.wantStdout)
			}
			if tt.wantCode != 0 && stdout.Len() > 0 {
				t.Errorf("a failed command printed on stdout: %q", stdout.String())
			}
		})
	}
}

// TestProgramsMeetOnOneBroker runs every receiver as a command until it
// has printed what its producer sent, then interrupts it: it exits 0 and
// prints "Interrupted" if its original does.
// The commands run in one process, so memory:// is one broker for them.
func TestProgramsMeetOnOneBroker(t *testing.T) {
	const url = "memory://cli-meet"
	tests := []struct {
		receiver []string
		producer []string
		want     string   // the line the receiver must print
		after    []string // what it prints once interrupted
	}{
		{[]string{"receive"}, []string{"send"}, " [x] Received Hello World!", []string{"Interrupted"}},
		{[]string{"worker"}, []string{"new_task", "no dots"}, " [x] Done", nil},
		{[]string{"receive_logs"}, []string{"emit_log", "a", "log"}, " [x] a log", []string{"Interrupted"}},
		{[]string{"receive_logs_direct", "info", "error"}, []string{"emit_log_direct", "error", "boom"}, " [x] error:boom", []string{"Interrupted"}},
		{[]string{"receive_logs_topic", "kern.*"}, []string{"emit_log_topic", "kern.critical", "boom"}, " [x] kern.critical:boom", []string{"Interrupted"}},
	}
	for _, tt := range tests {
		t.Run(tt.receiver[0], func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			recvCtx, interrupt := context.WithCancel(ctx)
			defer interrupt()
			out, outW := io.Pipe()
			var stderr bytes.Buffer
			exit := make(chan int, 1)
			go func() {
				code := Run(recvCtx, tt.receiver[0], append([]string{"-url", url}, tt.receiver[1:]...), outW, &stderr)
				outW.Close()
				exit <- code
			}()
			lines := bufio.NewScanner(out)
			if !lines.Scan() || !strings.HasPrefix(lines.Text(), " [*] Waiting for ") {
				t.Fatalf("%s printed %q first, want the waiting line", tt.receiver[0], lines.Text())
			}
			var sent bytes.Buffer
			if code := Run(ctx, tt.producer[0], append([]string{"-url", url}, tt.producer[1:]...), &sent, io.Discard); code != 0 {
				t.Fatalf("%s exited %d", tt.producer[0], code)
			}
			var got []string
			for lines.Scan() {
				got = append(got, lines.Text())
				if lines.Text() == tt.want {
					break
				}
			}
			if len(got) == 0 || got[len(got)-1] != tt.want {
				t.Fatalf("%s printed %q, want the line %q", tt.receiver[0], got, tt.want)
			}
			interrupt()
			var after []string
			for lines.Scan() { // until Run returns and closes the pipe
				after = append(after, lines.Text())
			}
			if code := <-exit; code != 0 {
				t.Errorf("interrupted %s exited %d, want 0; stderr: %s", tt.receiver[0], code, stderr.String())
			}
			if !slices.Equal(after, tt.after) {
				t.Errorf("interrupted %s printed %q, want %q", tt.receiver[0], after, tt.after)
			}
		})
	}
}

func TestNames(t *testing.T) {
	want := []string{"send", "receive", "new_task", "worker", "emit_log", "receive_logs",
		"emit_log_direct", "receive_logs_direct", "emit_log_topic", "receive_logs_topic"}
	got := Names()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("Names() = %q, want %q", got, want)
	}
}
