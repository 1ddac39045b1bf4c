package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/config"
	"github.com/switchyard-mq/switchyard/internal/brokertest"
	"github.com/switchyard-mq/switchyard/internal/interop"
)

// testTimeout bounds each test on each stack.
const testTimeout = time.Minute

// modernConf is the oslo.config file of the README's sequence for RabbitMQ 4
// and oslo.messaging 18.
const modernConf = "modern.conf"

// readme is how the README's "Try it" runs both sides on one stack, for a
// test's own virtual host: on Debian 12's stack (oslo's defaults) the
// transport URL alone, given to Go with -url and to Python in
// OS_DEFAULT__TRANSPORT_URL; on the sid stack (the options oslo.messaging
// recommends for RabbitMQ 4) modern.conf, given to Go with -config-file and
// to Python with --config-file, its transport_url naming the virtual host.
type readme struct {
	python []string // the stack's python3 command
	goArgs []string // the Go program's flags, after serve or call
	pyArgs []string // the Python script's arguments
	pyEnv  []string // the Python script's environment

	vhost  *brokertest.RabbitVHost
	modern bool // modern.conf's settings
}

// goEnv is the Go program's environment in the tests: none, so that a
// SWITCHYARD_URL or SWITCHYARD_CONFIG_FILE of the caller's changes nothing.
func goEnv(string) (string, bool) { return "", false }

// pythonEnv is interop.Env without oslo.config's variables
// (OS_<GROUP>__<OPTION>), so that only what the README sets reaches Python.
func pythonEnv(extra ...string) []string {
	var env []string
	for _, kv := range interop.Env() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "OS_") && strings.Contains(name, "__") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// newReadme gives t a virtual host on the stack's broker and returns the
// README's way of running both sides on it.
func newReadme(t *testing.T, stack brokertest.Stack) readme {
	t.Helper()
	python := interop.RequireStackPython(t, stack)
	vhost := stack.NewVHost(t)
	if stack.Query == "" {
		return readme{
			python: python, vhost: vhost,
			goArgs: []string{"-url", vhost.URL},
			pyEnv:  pythonEnv("OS_DEFAULT__TRANSPORT_URL=" + vhost.URL),
		}
	}
	checkModernConf(t, stack)
	conf := confFor(t, vhost.URL)
	return readme{
		python: python, vhost: vhost, modern: true,
		goArgs: []string{"-config-file", conf},
		pyArgs: []string{"--config-file", conf},
		pyEnv:  pythonEnv(),
	}
}

// transportURLLine is modern.conf's transport_url line.
var transportURLLine = regexp.MustCompile(`(?m)^transport_url = .*$`)

// confFor writes modern.conf, its transport_url replaced by url, to a
// temporary directory (which .ci/sid-python3 shares with its chroot) and
// returns its path.
func confFor(t *testing.T, url string) string {
	t.Helper()
	text, err := os.ReadFile(modernConf)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(transportURLLine.FindAll(text, -1)); n != 1 {
		t.Fatalf("%s has %d transport_url lines, want 1", modernConf, n)
	}
	text = transportURLLine.ReplaceAllLiteral(text, []byte("transport_url = "+url))
	path := filepath.Join(t.TempDir(), modernConf)
	if err := os.WriteFile(path, text, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkModernConf checks that modern.conf sets, as Switchyard reads it, the
// rabbit options of the stack's Query: the options the stack's other tests
// run with, and oslo.messaging's recommendation.
func checkModernConf(t *testing.T, stack brokertest.Stack) {
	t.Helper()
	cfg, err := config.Load(config.Sources{Files: []string{modernConf}})
	if err != nil {
		t.Fatal(err)
	}
	want, err := url.ParseQuery(stack.Query)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.TransportOptions, want) {
		t.Fatalf("%s sets %v; the %s stack runs with %v", modernConf, cfg.TransportOptions, stack.Name, want)
	}
}

// checkQueueTypes checks, with modern.conf's settings, that the virtual
// host has the queues of want with their types (quorum, stream), and a
// queue whose name matches each of the patterns of reply, quorum too: the
// settings took effect on the side that declared them.
func (r readme) checkQueueTypes(t *testing.T, want map[string]string, reply ...*regexp.Regexp) {
	t.Helper()
	if !r.modern {
		return
	}
	queues := r.vhost.Queues(t)
	var names []string
	for name, q := range queues {
		names = append(names, fmt.Sprintf("%s (%v)", name, q["type"]))
	}
	for name, typ := range want {
		if q, ok := queues[name]; !ok || q["type"] != typ {
			t.Errorf("no %s queue %q; the virtual host has %v", typ, name, names)
		}
	}
	for _, re := range reply {
		found := false
		for name, q := range queues {
			found = found || (re.MatchString(name) && q["type"] == "quorum")
		}
		if !found {
			t.Errorf("no quorum queue matching %v; the virtual host has %v", re, names)
		}
	}
}

// lockedBuffer is a bytes.Buffer that goroutines write to.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// python3 returns a command running one of this example's scripts as the
// README does.
func (r readme) python3(ctx context.Context, script string) *exec.Cmd {
	args := append(append(append([]string(nil), r.python[1:]...), script), r.pyArgs...)
	cmd := exec.CommandContext(ctx, r.python[0], args...)
	cmd.Env = r.pyEnv
	return cmd
}

// TestDocumentedPythonClientCallsGoService runs oslo.messaging's documented
// RPC client (client.py) against the Go service, on each stack as the
// README says a new user does.
func TestDocumentedPythonClientCallsGoService(t *testing.T) {
	brokertest.ForEachStack(t, func(t *testing.T, stack brokertest.Stack) {
		r := newReadme(t, stack)
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()

		serveCtx, stopServing := context.WithCancel(ctx)
		ready := make(chan struct{})
		served := make(chan error, 1)
		logs := &lockedBuffer{}
		go func() {
			served <- run(serveCtx, append([]string{"serve"}, r.goArgs...), goEnv, io.Discard, logs, func() { close(ready) })
		}()
		t.Cleanup(func() {
			stopServing()
			if err := <-served; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("serve: %v", err)
			}
			if t.Failed() {
				t.Logf("the Go service's log:\n%s", logs)
			}
		})
		select {
		case <-ready:
		case err := <-served:
			t.Fatalf("serve: %v", err)
		case <-ctx.Done():
			t.Fatal("the Go service did not start")
		}

		cmd := r.python3(ctx, "client.py")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("client.py: %v\n%s", err, stderr.String())
		}
		if got, want := string(out), "Go got: Hello from Python\n"; got != want {
			t.Fatalf("client.py printed %q, want %q\n%s", got, want, stderr.String())
		}
		// The Go service's queues, and client.py's reply queue named by
		// oslo's queue manager.
		r.checkQueueTypes(t, map[string]string{"test": "quorum", "test.go-1": "quorum", "test_fanout": "stream"},
			regexp.MustCompile(`^reply_.+:client\.py:[0-9]+$`))
	})
}

// TestGoCallsPythonServer runs server.py and calls it with the Go program's
// call command, on each stack as the README says a new user does.
func TestGoCallsPythonServer(t *testing.T) {
	brokertest.ForEachStack(t, func(t *testing.T, stack brokertest.Stack) {
		r := newReadme(t, stack)
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()

		startPythonServer(ctx, t, r)
		var out, logs bytes.Buffer
		args := append(append([]string{"call"}, r.goArgs...), "-name", "Gopher")
		if err := run(ctx, args, goEnv, &out, &logs, nil); err != nil {
			t.Fatalf("call: %v\n%s", err, logs.String())
		}
		if got, want := out.String(), "Hello, Gopher, from Python\n"; got != want {
			t.Fatalf("call printed %q, want %q\n%s", got, want, logs.String())
		}
		// server.py's queues.
		r.checkQueueTypes(t, map[string]string{"hello": "quorum", "hello.python-1": "quorum", "hello_fanout": "stream"})
	})
}

// startPythonServer starts server.py and waits until it says it serves, or
// ctx ends. It is stopped with SIGTERM, and killed if it does not exit in
// time, when t ends.
func startPythonServer(ctx context.Context, t *testing.T, r readme) {
	t.Helper()
	cmd := r.python3(context.Background(), "server.py")
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	started := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		started <- line
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		// SIGTERM lets server.py stop its server; kill it if it does not.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("server.py stderr:\n%s", stderr)
		}
	})
	select {
	case line := <-started:
		if !strings.HasPrefix(line, "serving") {
			t.Fatalf("server.py did not start: %q\n%s", line, stderr)
		}
	case <-ctx.Done():
		t.Fatal("server.py did not start in time")
	}
}
