// Package interop proves that Switchyard interoperates with Python
// oslo.messaging services over RabbitMQ, in both directions: its tests run
// real oslo.messaging programs beside Go clients, servers, notifiers and
// listeners on one broker, and check every cell of the interop matrix in
// the README, on each stack of brokertest.Stacks: Debian 12's RabbitMQ 3.10
// and oslo.messaging 14 with oslo's defaults, and RabbitMQ 4.3 and
// oslo.messaging 18 with the options oslo's RabbitMQ guide recommends
// (quorum queues, stream fanout, the queue manager), both sides opening the
// same URL.
//
// The Python side is testdata/peer.py, a long-lived process that a test
// drives over its stdin and stdout (Peer): one JSON command per line, one
// JSON answer per command, and events for what its servers and listeners
// receive. A peer runs on either stack of brokertest.Stacks
// (StartStackPeer): Debian 12's /usr/bin/python3 with oslo.messaging 14, or
// the Debian sid chroot's python3 with oslo.messaging 18 (.ci/sid-python3).
package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/internal/brokertest"
)

// PythonPath is the interpreter that has Debian's python3-oslo.messaging;
// a pyenv or virtualenv python on PATH usually does not.
const PythonPath = "/usr/bin/python3"

// peerStartTimeout bounds a peer's start: importing oslo.messaging and
// connecting to the broker.
const peerStartTimeout = 30 * time.Second

// RequirePython returns PythonPath if it can import oslo_messaging, and
// otherwise skips t, or fails it under SWITCHYARD_BROKERS=required, saying
// how to install it: RequireStackPython for brokertest.DebianStack.
func RequirePython(t testing.TB) string {
	t.Helper()
	return RequireStackPython(t, brokertest.DebianStack())[0]
}

// RequireStackPython returns the command that runs the stack's python3
// (stack.Python) if it can import oslo_messaging, and otherwise skips t, or
// fails it under SWITCHYARD_BROKERS=required, saying how to get it.
func RequireStackPython(t testing.TB, stack brokertest.Stack) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), peerStartTimeout)
	defer cancel()
	args := append(append([]string(nil), stack.Python[1:]...), "-c", "import oslo_messaging")
	check := exec.CommandContext(ctx, stack.Python[0], args...)
	check.Env = Env()
	out, err := check.CombinedOutput()
	if err == nil {
		return append([]string(nil), stack.Python...)
	}
	msg := fmt.Sprintf("%s (%s) cannot import oslo_messaging (%v: %s); %s",
		strings.Join(stack.Python, " "), stack.Name, err, strings.TrimSpace(string(out)), stack.HowToGetPython)
	if brokertest.Required() {
		t.Fatal(msg + " [SWITCHYARD_BROKERS=required]")
	}
	t.Skip(msg)
	return nil
}

// LockPath is the [oslo_concurrency] lock_path of the Python peers: one
// directory under os.TempDir(), which .ci/sid-python3 shares with the
// chroot, for every peer on the machine.
func LockPath() string { return filepath.Join(os.TempDir(), "switchyard-oslo-locks") }

// script returns the absolute path of a file in this package's testdata
// directory, wherever the test runs from.
func script(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata", name)
}

// Peer is a running testdata/peer.py: an oslo.messaging process on one
// transport URL. Its methods are safe for concurrent use. It is stopped,
// and killed by pid if it does not exit, when the test ends.
type Peer struct {
	t      testing.TB
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *lockedBuffer
	exited chan struct{} // closed when the process has exited and stdout is drained

	writeMu sync.Mutex
	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan answer
	streams map[string][]json.RawMessage
	changed chan struct{} // closed and replaced when a stream grows
}

type answer struct {
	Result json.RawMessage `json:"result"`
	Error  *string         `json:"error"`
}

// line is one line the peer writes: an answer (ID), an event (Event) or
// the ready signal.
type line struct {
	ID    *int64          `json:"id"`
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
	Ready bool            `json:"ready"`
	answer
}

// StartPeer starts testdata/peer.py on url with Debian 12's oslo.messaging
// 14 and waits until it is connected: StartStackPeer for
// brokertest.DebianStack.
func StartPeer(t testing.TB, url string) *Peer {
	t.Helper()
	return StartStackPeer(t, brokertest.DebianStack(), url)
}

// StartStackPeer starts testdata/peer.py on url with the stack's Python and
// waits until it is connected. It skips (or fails) t when that Python
// cannot import oslo_messaging. Every peer has the same [oslo_concurrency]
// lock_path (LockPath), as the services of one host do: oslo.messaging 18's
// use_queue_manager needs it to number the reply queues of a host's
// processes.
func StartStackPeer(t testing.TB, stack brokertest.Stack, url string) *Peer {
	t.Helper()
	python := RequireStackPython(t, stack)
	args := append(append([]string(nil), python[1:]...), "-u", script("peer.py"), "--url", url)
	cmd := exec.Command(python[0], args...)
	cmd.Dir = filepath.Dir(script("peer.py"))
	cmd.Env = append(Env(), "OS_OSLO_CONCURRENCY__LOCK_PATH="+LockPath())
	p := &Peer{
		t: t, cmd: cmd, stderr: &lockedBuffer{}, exited: make(chan struct{}),
		pending: map[int64]chan answer{}, streams: map[string][]json.RawMessage{}, changed: make(chan struct{}),
	}
	cmd.Stderr = p.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("interop: peer stdin: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("interop: peer stdout: %v", err)
	}
	p.stdin = stdin
	if err := cmd.Start(); err != nil {
		t.Fatalf("interop: start %s: %v", cmd, err)
	}
	ready := make(chan struct{})
	go p.read(stdout, ready)
	t.Cleanup(p.stop)
	select {
	case <-ready:
	case <-p.exited:
		t.Fatalf("interop: peer exited before it was ready: %s", p.stderr)
	case <-time.After(peerStartTimeout):
		t.Fatalf("interop: peer not ready within %v: %s", peerStartTimeout, p.stderr)
	}
	return p
}

// read routes the peer's output until it exits.
func (p *Peer) read(stdout io.Reader, ready chan<- struct{}) {
	defer func() {
		_ = p.cmd.Wait()
		p.mu.Lock()
		for id, ch := range p.pending {
			msg := "peer exited: " + p.stderr.String()
			ch <- answer{Error: &msg}
			delete(p.pending, id)
		}
		p.mu.Unlock()
		close(p.exited)
	}()
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			p.stderr.WriteString("interop: unreadable peer output: " + sc.Text() + "\n")
			continue
		}
		switch {
		case l.Ready:
			close(ready)
		case l.ID != nil:
			p.mu.Lock()
			ch := p.pending[*l.ID]
			delete(p.pending, *l.ID)
			p.mu.Unlock()
			if ch != nil {
				ch <- l.answer
			}
		case l.Event != "":
			p.mu.Lock()
			p.streams[l.Event] = append(p.streams[l.Event], l.Data)
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
		}
	}
}

// stop ends the peer: end of stdin asks it to stop its servers and
// listeners and exit; if it has not within the bound, it is killed by pid.
func (p *Peer) stop() {
	_ = p.stdin.Close()
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	if p.t.Failed() {
		p.t.Logf("interop: peer stderr:\n%s", p.stderr)
	}
}

// Do runs one command (op and its fields) and decodes its result into out
// (nil discards it). A command the peer could not run returns an error.
func (p *Peer) Do(ctx context.Context, op string, fields map[string]any, out any) error {
	cmd := map[string]any{"op": op}
	for k, v := range fields {
		cmd[k] = v
	}
	ch := make(chan answer, 1)
	p.mu.Lock()
	p.nextID++
	id := p.nextID
	p.pending[id] = ch
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.pending, id)
		p.mu.Unlock()
	}()
	cmd["id"] = id
	b, err := json.Marshal(cmd)
	if err != nil {
		return fmt.Errorf("interop: encode %s command: %w", op, err)
	}
	p.writeMu.Lock()
	_, err = p.stdin.Write(append(b, '\n'))
	p.writeMu.Unlock()
	if err != nil {
		return fmt.Errorf("interop: send %s command: %w", op, err)
	}
	select {
	case a := <-ch:
		if a.Error != nil {
			return fmt.Errorf("interop: peer %s: %s", op, *a.Error)
		}
		if out == nil {
			return nil
		}
		dec := json.NewDecoder(bytes.NewReader(a.Result))
		dec.UseNumber()
		if err := dec.Decode(out); err != nil {
			return fmt.Errorf("interop: decode %s result %s: %w", op, a.Result, err)
		}
		return nil
	case <-p.exited:
		return fmt.Errorf("interop: peer %s: the peer exited: %s", op, p.stderr)
	case <-ctx.Done():
		return fmt.Errorf("interop: peer %s: %w", op, ctx.Err())
	}
}

// Events returns what stream has received so far.
func (p *Peer) Events(stream string) []json.RawMessage {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]json.RawMessage(nil), p.streams[stream]...)
}

// EventsChanged returns what stream has received so far and a channel
// closed when any stream receives more.
func (p *Peer) EventsChanged(stream string) ([]json.RawMessage, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]json.RawMessage(nil), p.streams[stream]...), p.changed
}

// WaitEvents waits until stream has received at least n events and
// returns them all.
func (p *Peer) WaitEvents(ctx context.Context, stream string, n int) ([]json.RawMessage, error) {
	for {
		p.mu.Lock()
		events, changed := p.streams[stream], p.changed
		p.mu.Unlock()
		if len(events) >= n {
			return append([]json.RawMessage(nil), events...), nil
		}
		select {
		case <-changed:
		case <-p.exited:
			return events, errors.New("interop: peer exited")
		case <-ctx.Done():
			return events, fmt.Errorf("interop: %d of %d events on %s: %w", len(events), n, stream, ctx.Err())
		}
	}
}

// lockedBuffer collects a process's stderr.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) WriteString(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.WriteString(s)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Env returns os.Environ without variables that would point
// /usr/bin/python3 at another installation's modules, and with bytecode
// caching off, so that no __pycache__ appears beside the scripts.
func Env() []string {
	env := []string{"PYTHONDONTWRITEBYTECODE=1"}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PYTHONPATH=") || strings.HasPrefix(kv, "PYTHONHOME=") || strings.HasPrefix(kv, "PYTHONDONTWRITEBYTECODE=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}
