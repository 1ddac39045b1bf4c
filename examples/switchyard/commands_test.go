package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/internal/oslo"
)

// commandTimeout bounds each command test.
const commandTimeout = time.Minute

func uniqueURL(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "memory://" + prefix + "-" + hex.EncodeToString(b)
}

// outputBuffer is a command's output, written by one goroutine and
// watched by another.
type outputBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newOutputBuffer() *outputBuffer { return &outputBuffer{changed: make(chan struct{})} }

func (o *outputBuffer) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	close(o.changed)
	o.changed = make(chan struct{})
	return o.buf.Write(p)
}

func (o *outputBuffer) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// waitFor waits until the output holds substr.
func (o *outputBuffer) waitFor(ctx context.Context, t *testing.T, substr string) {
	t.Helper()
	for {
		o.mu.Lock()
		has, changed := strings.Contains(o.buf.String(), substr), o.changed
		o.mu.Unlock()
		if has {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("the output never showed %q:\n%s", substr, o.String())
		}
	}
}

// background is a command running in its own goroutine.
type background struct {
	stdout, stderr *outputBuffer
	cancel         context.CancelFunc
	done           chan int // its exit status
}

// start runs the tool with args in the background, as a second terminal
// would; t's cleanup interrupts it.
func start(t *testing.T, args ...string) *background {
	ctx, cancel := context.WithCancel(context.Background())
	b := &background{stdout: newOutputBuffer(), stderr: newOutputBuffer(), cancel: cancel, done: make(chan int, 1)}
	go func() { b.done <- run(ctx, args, b.stdout, b.stderr) }()
	t.Cleanup(func() {
		cancel()
		<-b.done
	})
	return b
}

// wait waits for the command to exit and returns its status.
func (b *background) wait(ctx context.Context, t *testing.T) int {
	t.Helper()
	select {
	case code := <-b.done:
		b.done <- code // for the cleanup
		return code
	case <-ctx.Done():
		t.Fatalf("the command did not exit; stdout:\n%s\nstderr:\n%s", b.stdout, b.stderr)
		return -1
	}
}

// runTool runs the tool to completion.
func runTool(ctx context.Context, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestServeAndCall: serve and call, cast in one process on one memory://
// broker, as two terminals would on a real one.
func TestServeAndCall(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
	defer cancel()
	url := uniqueURL("serve")
	srv := start(t, "serve", "-url", url, "-topic", "echo", "-server", "s1", "-version", "1.2")
	srv.stdout.waitFor(ctx, t, `serving topic "echo" as server "s1"`)

	tests := []struct {
		name      string
		args      []string
		wantCode  int
		wantOut   string // the whole output, for code 0
		wantError string // a fragment of stderr, otherwise
	}{
		{"echo", []string{"call", "-topic", "echo", "echo", `{"x": 1, "big": 9007199254740993, "f": 2.0}`}, 0,
			"{\n  \"x\": 1,\n  \"big\": 9007199254740993,\n  \"f\": 2.0\n}\n", ""},
		{"echo without arguments", []string{"call", "-topic", "echo", "echo"}, 0, "{}\n", ""},
		{"to the server by name", []string{"call", "-topic", "echo", "-server", "s1", "-version", "1.1", "sleep", `{"seconds": 0}`}, 0,
			"{\n  \"slept\": 0\n}\n", ""},
		{"request context", []string{"call", "-topic", "echo", "-context", `{"user_id": "u1", "roles": ["admin"]}`, "context"}, 0,
			"{\n  \"roles\": [\n    \"admin\"\n  ],\n  \"user_id\": \"u1\"\n}\n", ""},
		{"remote failure", []string{"call", "-topic", "echo", "fail", `{"message": "it broke"}`}, 1, "", "it broke"},
		{"no such method", []string{"call", "-topic", "echo", "nosuch"}, 1, "", "NoSuchMethod"},
		{"newer version", []string{"call", "-topic", "echo", "-version", "1.3", "echo"}, 1, "", "UnsupportedVersion"},
		{"timeout", []string{"call", "-topic", "echo", "-timeout", "200ms", "sleep", `{"seconds": 5}`}, 1, "", "timed out"},
		{"nobody on the topic", []string{"call", "-topic", "nobody", "-timeout", "100ms", "echo"}, 1, "", "no server consumes nobody"},
		{"cast", []string{"cast", "-topic", "echo", "echo", `{"cast": true}`}, 0, "cast echo to echo\n", ""},
		{"fanout cast", []string{"cast", "-topic", "echo", "-fanout", "echo", `{"fanout": true}`}, 0, "cast echo to echo (fanout)\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{tt.args[0], "-url", url}, tt.args[1:]...)
			code, out, errOut := runTool(ctx, args...)
			if code != tt.wantCode {
				t.Fatalf("switchyard %s: exit %d, want %d; stdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, tt.wantCode, out, errOut)
			}
			if code == 0 && out != tt.wantOut {
				t.Errorf("switchyard %s printed\n%s\nwant\n%s", strings.Join(args, " "), out, tt.wantOut)
			}
			if code != 0 && !strings.Contains(errOut, tt.wantError) {
				t.Errorf("switchyard %s: stderr %q, want %q", strings.Join(args, " "), errOut, tt.wantError)
			}
		})
	}
	srv.stdout.waitFor(ctx, t, `echo {"cast":true}`)
	srv.stdout.waitFor(ctx, t, `echo {"fanout":true}`)
	srv.cancel()
	if code := srv.wait(ctx, t); code != 0 {
		t.Errorf("serve exited %d; stderr:\n%s", code, srv.stderr)
	}
	srv.stdout.waitFor(ctx, t, "stopped after")
}

// TestServeCount: serve -count stops after that many requests, answering
// them.
func TestServeCount(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
	defer cancel()
	url := uniqueURL("serve-count")
	srv := start(t, "serve", "-url", url, "-topic", "t", "-server", "s", "-count", "2")
	srv.stdout.waitFor(ctx, t, "serving")
	for i := range 2 {
		if code, _, errOut := runTool(ctx, "call", "-url", url, "-topic", "t", "echo", `{"i": 1}`); code != 0 {
			t.Fatalf("call %d: exit %d: %s", i, code, errOut)
		}
	}
	if code := srv.wait(ctx, t); code != 0 {
		t.Errorf("serve exited %d: %s", code, srv.stderr)
	}
	if !strings.Contains(srv.stdout.String(), "stopped after 2 requests") {
		t.Errorf("serve printed\n%s\nwant it to stop after 2 requests", srv.stdout)
	}
}

// TestSendAndListen: listen binds to an exchange with patterns and prints
// what send publishes there.
func TestSendAndListen(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
	defer cancel()
	url := uniqueURL("listen")
	l := start(t, "listen", "-url", url, "-exchange", "logs", "-declare", "topic", "-key", "kern.*", "-key", "*.critical", "-count", "3")
	l.stdout.waitFor(ctx, t, `listening on `+url+`: exchange "logs", keys kern.* *.critical, queue`)
	for _, m := range [][]string{
		{"-key", "kern.info", "The kernel booted."},
		{"-key", "cron.warning", "Nobody listens to this."},
		{"-key", "auth.critical", "-header", "user=root", "-header", "attempts=5", "Too many failed logins."},
		{"-key", "kern.critical", "-content-type", "application/octet-stream", "bin\x00ary"},
	} {
		args := append([]string{"send", "-url", url, "-exchange", "logs"}, m...)
		if code, _, errOut := runTool(ctx, args...); code != 0 {
			t.Fatalf("switchyard %q: exit %d: %s", args, code, errOut)
		}
	}
	if code := l.wait(ctx, t); code != 0 {
		t.Fatalf("listen exited %d: %s", code, l.stderr)
	}
	_, got, _ := strings.Cut(l.stdout.String(), "\n")
	want := `[1] exchange "logs" key "kern.info"
  body (text/plain, 18 bytes): The kernel booted.
[2] exchange "logs" key "auth.critical"
  body (text/plain, 23 bytes): Too many failed logins.
  header attempts: 5
  header user: root
[3] exchange "logs" key "kern.critical"
  body (application/octet-stream, 7 bytes): "bin\x00ary"
`
	if got != want {
		t.Errorf("listen printed\n%s\nwant\n%s", got, want)
	}
}

// TestSendToQueue: send -queue and listen -queue, through the default
// exchange.
func TestSendToQueue(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
	defer cancel()
	url := uniqueURL("queue")
	code, out, errOut := runTool(ctx, "send", "-url", url, "-queue", "hello", "-declare", "queue", "-count", "2", "Hello World!")
	if code != 0 || out != `sent 2 messages (12 bytes) to queue "hello" on `+url+"\n" {
		t.Fatalf("send: exit %d, %q, %s", code, out, errOut)
	}
	code, out, errOut = runTool(ctx, "listen", "-url", url, "-queue", "hello", "-count", "2")
	want := "listening on " + url + ": queue \"hello\"\n" +
		"[1] exchange \"\" key \"hello\"\n  body (text/plain, 12 bytes): Hello World!\n" +
		"[2] exchange \"\" key \"hello\"\n  body (text/plain, 12 bytes): Hello World!\n"
	if code != 0 || out != want {
		t.Errorf("listen: exit %d, printed\n%s\nwant\n%s\n%s", code, out, want, errOut)
	}
	if code, _, errOut := runTool(ctx, "send", "-url", url, "-queue", "nosuch", "-mandatory", "x"); code != 1 || !strings.Contains(errOut, "unroutable") {
		t.Errorf("mandatory send to a missing queue: exit %d, %s; want 1 and unroutable", code, errOut)
	}
	if code, _, errOut := runTool(ctx, "send", "-url", url, "-exchange", "nosuch", "x"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Errorf("send to a missing exchange: exit %d, %s; want 1 and not found", code, errOut)
	}
}

// TestListenDecodesOslo: listen on the control exchange shows RPC
// requests and notifications decoded.
func TestListenDecodesOslo(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
	defer cancel()
	url := uniqueURL("oslo")
	l := start(t, "listen", "-url", url, "-declare", "topic", "-count", "4")
	l.stdout.waitFor(ctx, t, `exchange "openstack", keys #`)
	srv := start(t, "serve", "-url", url, "-topic", "compute", "-server", "host1")
	srv.stdout.waitFor(ctx, t, "serving")
	for _, args := range [][]string{
		{"cast", "-topic", "compute", "-server", "host1", "-version", "1.0", "-context", `{"user_id": "u1"}`, "echo", `{"x": 1}`},
		{"call", "-topic", "compute", "-namespace", "", "echo", `{"y": [1, 2]}`},
		{"notify", "-publisher-id", "compute.host1", "compute.instance.create.end", `{"id": "vm-1"}`},
		{"notify", "-driver", "messaging", "-priority", "error", "-publisher-id", "p", "-topic", "alerts", "disk.failed", `"sda"`},
	} {
		a := append([]string{args[0], "-url", url}, args[1:]...)
		if code, _, errOut := runTool(ctx, a...); code != 0 {
			t.Fatalf("switchyard %q: exit %d: %s", a, code, errOut)
		}
	}
	if code := l.wait(ctx, t); code != 0 {
		t.Fatalf("listen exited %d: %s", code, l.stderr)
	}
	out := l.stdout.String()
	for _, want := range []string{
		"[1] exchange \"openstack\" key \"compute.host1\"\n  oslo cast echo (format 2.0) version 1.0\n    args: {\"x\":1}\n    context: {\"user_id\":\"u1\"}\n",
		"[2] exchange \"openstack\" key \"compute\"\n  oslo call echo (format 2.0)\n    args: {\"y\":[1,2]}\n    msg_id ",
		"[3] exchange \"openstack\" key \"notifications.info\"\n  oslo notification INFO compute.instance.create.end from compute.host1 (format 2.0)\n    payload: {\"id\":\"vm-1\"}\n    message_id ",
		"[4] exchange \"openstack\" key \"alerts.error\"\n  oslo notification ERROR disk.failed from p (format 1.0)\n    payload: \"sda\"\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("listen printed\n%s\nwant it to hold\n%s", out, want)
		}
	}
}

// TestDescribeReplies: replies, heartbeats and failures decode readably;
// what is not oslo's is left to the raw form.
func TestDescribeReplies(t *testing.T) {
	mustWrap := func(r *oslo.Reply) []byte {
		b, err := oslo.WrapReply(r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name string
		body []byte
		want string // "" when not oslo
	}{
		{"result", mustWrap(&oslo.Reply{Result: []byte(`{"a":1}`), Ending: true, MsgID: "m1", UniqueID: "u"}),
			"  oslo reply to msg_id m1 (format 2.0)\n    result: {\"a\":1}\n"},
		{"heartbeat", mustWrap(&oslo.Reply{MsgID: "m2", UniqueID: "u"}), "  oslo heartbeat to msg_id m2 (format 2.0)\n"},
		{"failure", mustWrap(&oslo.Reply{Failure: oslo.NewFailure("builtins", "ValueError", "bad size"), Ending: true, MsgID: "m3", UniqueID: "u"}),
			"  oslo reply to msg_id m3 (format 2.0)\n    failure: builtins.ValueError: bad size\n"},
		{"plain JSON", []byte(`{"hello": "world"}`), ""},
		{"not JSON", []byte("hello"), ""},
		{"bad envelope version", []byte(`{"oslo.version": "3.0", "oslo.message": "{}"}`), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			ok := describeOslo(&b, tt.body)
			if ok != (tt.want != "") || b.String() != tt.want {
				t.Errorf("describeOslo = %v,\n%s\nwant\n%s", ok, b.String(), tt.want)
			}
		})
	}
}

// TestCommandsReadTheConfigFile: -config gives the transport URL and the
// control exchange, as an oslo file does; -url overrides its URL.
func TestCommandsReadTheConfigFile(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
	defer cancel()
	url := uniqueURL("config")
	file := filepath.Join(t.TempDir(), "nova.conf")
	text := "[DEFAULT]\ntransport_url = " + url + "\ncontrol_exchange = nova\n[database]\nconnection = mysql://nova@db/nova\n"
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	l := start(t, "listen", "-config", file, "-declare", "topic", "-key", "compute", "-count", "1")
	l.stdout.waitFor(ctx, t, `listening on `+url+`?control_exchange=nova: exchange "nova", keys compute`)
	if code, _, errOut := runTool(ctx, "cast", "-config", file, "-topic", "compute", "ping"); code != 0 {
		t.Fatalf("cast: exit %d: %s", code, errOut)
	}
	if code := l.wait(ctx, t); code != 0 || !strings.Contains(l.stdout.String(), "oslo cast ping") {
		t.Errorf("listen: exit %d, printed\n%s\nwant the cast through exchange nova", code, l.stdout)
	}
	other := uniqueURL("config-override")
	if code, out, errOut := runTool(ctx, "send", "-config", file, "-url", other, "-queue", "q", "-declare", "queue", "x"); code != 0 || !strings.Contains(out, other) {
		t.Errorf("send -url over -config: exit %d, %q, %s; want it sent on %s", code, out, errOut, other)
	}

	// -url's query options count, as SWITCHYARD_URL's do.
	withExchange := uniqueURL("url-query") + "?control_exchange=glance"
	if code, out, errOut := runTool(ctx, "notify", "-url", withExchange, "image.update", "{}"); code != 0 || !strings.Contains(out, `to exchange "glance"`) {
		t.Errorf("notify -url ...?control_exchange=glance: exit %d, %q, %s; want it sent to exchange glance", code, out, errOut)
	}

	bad := filepath.Join(t.TempDir(), "bad.conf")
	if err := os.WriteFile(bad, []byte("[oslo_messaging_rabbit]\nheartbeat_timeout_threshold = soon\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runTool(ctx, "call", "-config", bad, "-topic", "t", "m"); code != 1 || !strings.Contains(errOut, `bad.conf:2: [oslo_messaging_rabbit] heartbeat_timeout_threshold: "soon" is not a duration`) {
		t.Errorf("call with a bad file: exit %d, %s; want 1 and the file's line", code, errOut)
	}
}

// TestCommandUsageErrors: bad command lines exit 2 with a message naming
// the problem.
func TestCommandUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"send"}, "want one BODY argument"},
		{[]string{"send", "-queue", "q", "-exchange", "x", "b"}, "-queue cannot be combined"},
		{[]string{"send", "-declare", "ring", "-exchange", "x", "b"}, `-declare "ring"`},
		{[]string{"send", "-declare", "topic", "b"}, "-declare topic needs -exchange"},
		{[]string{"send", "-count", "0", "b"}, "-count 0"},
		{[]string{"send", "-header", "nokey", "b"}, `"nokey" is not key=value`},
		{[]string{"send", "-url", "rabbit:/h", "b"}, "-url: "},
		{[]string{"listen", "extra"}, "unexpected arguments"},
		{[]string{"listen", "-queue", "q", "-key", "k"}, "-queue cannot be combined"},
		{[]string{"listen", "-count", "-1"}, "-count -1"},
		{[]string{"call", "echo"}, "-topic is required"},
		{[]string{"call", "-topic", "t"}, "want METHOD"},
		{[]string{"call", "-topic", "t", "m", "[1]"}, `ARGS "[1]" is not a JSON object`},
		{[]string{"call", "-topic", "t", "-version", "one", "m"}, `version "one"`},
		{[]string{"call", "-topic", "t", "-context", "x", "m"}, `-context "x" is not a JSON object`},
		{[]string{"call", "-topic", "t", "-fanout", "m"}, "flag provided but not defined: -fanout"},
		{[]string{"cast", "-topic", "bad topic", "m"}, "contains a space"},
		{[]string{"serve"}, "-topic is required"},
		{[]string{"serve", "-topic", "t", "-version", "x"}, `-version: invalid argument: version "x"`},
		{[]string{"notify"}, "want EVENT_TYPE"},
		{[]string{"notify", "-priority", "warning", "e"}, `-priority "warning"`},
		{[]string{"notify", "e", "{bad"}, `PAYLOAD "{bad" is not JSON`},
		{[]string{"notify", "-driver", "kafka", "e"}, `unknown driver "kafka"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, errOut := runTool(t.Context(), tt.args...)
			if code != 2 || !strings.Contains(errOut, tt.want) {
				t.Errorf("switchyard %q: exit %d, stderr\n%s\nwant 2 and %q", tt.args, code, errOut, tt.want)
			}
		})
	}
}
