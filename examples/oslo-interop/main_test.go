package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/internal/brokertest"
	"github.com/switchyard-mq/switchyard/internal/interop"
)

// testTimeout bounds each test.
const testTimeout = time.Minute

// python returns a command running one of this example's scripts with
// the transport URL in oslo.config's environment variable.
func python(ctx context.Context, t *testing.T, url, script string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, interop.RequirePython(t), script)
	cmd.Env = append(interop.Env(), "OS_DEFAULT__TRANSPORT_URL="+url)
	return cmd
}

// TestDocumentedPythonClientCallsGoService runs oslo.messaging's documented
// RPC client (client.py) against the Go service, as a new user would.
func TestDocumentedPythonClientCallsGoService(t *testing.T) {
	interop.RequirePython(t)
	vhost := brokertest.NewRabbitVHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	serveCtx, stopServing := context.WithCancel(ctx)
	ready := make(chan struct{})
	served := make(chan error, 1)
	go func() {
		served <- serve(serveCtx, vhost.URL, "go-1", slog.New(slog.DiscardHandler), func() { close(ready) })
	}()
	t.Cleanup(func() {
		stopServing()
		if err := <-served; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("serve: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-served:
		t.Fatalf("serve: %v", err)
	case <-ctx.Done():
		t.Fatal("the Go service did not start")
	}

	cmd := python(ctx, t, vhost.URL, "client.py")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("client.py: %v\n%s", err, stderr.String())
	}
	if got, want := string(out), "Go got: Hello from Python\n"; got != want {
		t.Fatalf("client.py printed %q, want %q", got, want)
	}
}

// TestGoCallsPythonServer runs server.py and calls it from Go.
func TestGoCallsPythonServer(t *testing.T) {
	interop.RequirePython(t)
	vhost := brokertest.NewRabbitVHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	cmd := python(context.Background(), t, vhost.URL, "server.py")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
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
			t.Logf("server.py stderr:\n%s", stderr.String())
		}
	})
	select {
	case line := <-started:
		if !strings.HasPrefix(line, "serving") {
			t.Fatalf("server.py did not start: %q\n%s", line, stderr.String())
		}
	case <-ctx.Done():
		t.Fatal("server.py did not start in time")
	}

	var out bytes.Buffer
	if err := callHello(ctx, vhost.URL, "Gopher", &out); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "Hello, Gopher, from Python\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
