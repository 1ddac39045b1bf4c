package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/internal/brokertest"
	"github.com/switchyard-mq/switchyard/notify"
	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

// testTimeout bounds each test.
const testTimeout = 2 * time.Minute

func randomName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// logWatcher collects a service's log lines and lets a test wait for them.
type logWatcher struct {
	mu      sync.Mutex
	text    strings.Builder
	partial []byte
	lines   []string
	changed chan struct{} // closed and replaced on every new line
}

func newLogWatcher() *logWatcher { return &logWatcher{changed: make(chan struct{})} }

func (w *logWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.text.Write(p)
	w.partial = append(w.partial, p...)
	for {
		i := slices.Index(w.partial, '\n')
		if i < 0 {
			break
		}
		w.lines = append(w.lines, string(w.partial[:i]))
		w.partial = w.partial[i+1:]
		close(w.changed)
		w.changed = make(chan struct{})
	}
	return len(p), nil
}

// count returns how many lines hold substr, and a channel closed at the
// next line.
func (w *logWatcher) count(substr string) (int, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, l := range w.lines {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n, w.changed
}

// waitFor waits until n lines hold substr, or fails the test.
func (w *logWatcher) waitFor(ctx context.Context, t *testing.T, substr string, n int, exited <-chan struct{}) {
	t.Helper()
	for {
		got, changed := w.count(substr)
		if got >= n {
			return
		}
		select {
		case <-changed:
		case <-exited:
			t.Fatalf("the service exited before logging %q %d times; its log:\n%s", substr, n, w.String())
		case <-ctx.Done():
			t.Fatalf("the service logged %q %d times, want %d; its log:\n%s", substr, got, n, w.String())
		}
	}
}

func (w *logWatcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.text.String()
}

// service is a running fxservice: in this process or a child process.
type service struct {
	log    *logWatcher
	exited chan struct{} // closed when it has exited
	code   int           // its exit status, once exited
	stop   func()        // SIGTERM or its equivalent
}

// startInProcess runs the service's run function, as main does, with env
// as its environment; stopping it cancels its context, as SIGTERM does.
func startInProcess(t *testing.T, env map[string]string, args ...string) *service {
	ctx, cancel := context.WithCancel(context.Background())
	s := &service{log: newLogWatcher(), exited: make(chan struct{}), stop: cancel}
	go func() {
		defer close(s.exited)
		s.code = run(ctx, args, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, s.log)
	}()
	t.Cleanup(func() {
		cancel()
		<-s.exited
	})
	return s
}

// binDir holds the service binary the tests build; TestMain removes it.
var binDir string

func TestMain(m *testing.M) {
	var err error
	if binDir, err = os.MkdirTemp("", "fxservice-test-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(binDir)
	os.Exit(code)
}

// serviceBinary builds the service once per test process.
var serviceBinary = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(binDir, "fxservice")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// startChild runs the built service binary with env added to this
// process's environment (less its SWITCHYARD_ configuration variables).
func startChild(t *testing.T, env map[string]string, args ...string) *service {
	t.Helper()
	bin, err := serviceBinary()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k == "SWITCHYARD_URL" || k == "SWITCHYARD_CONFIG_FILE" {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	s := &service{log: newLogWatcher(), exited: make(chan struct{})}
	cmd.Stdout = s.log
	cmd.Stderr = s.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.stop = func() { _ = cmd.Process.Signal(syscall.SIGTERM) }
	go func() {
		defer close(s.exited)
		err := cmd.Wait()
		s.code = cmd.ProcessState.ExitCode()
		if err != nil && s.code == 0 {
			s.code = -1
		}
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			_ = cmd.Process.Kill()
			<-s.exited
		}
	})
	return s
}

// waitExit waits for the service to exit and checks its status is 0.
func (s *service) waitExit(ctx context.Context, t *testing.T) {
	t.Helper()
	select {
	case <-s.exited:
	case <-ctx.Done():
		t.Fatalf("the service did not exit; its log:\n%s", s.log)
	}
	if s.code != 0 {
		t.Errorf("the service exited with status %d, want 0; its log:\n%s", s.code, s.log)
	}
	if n, _ := s.log.count("fxservice stopped"); n != 1 {
		t.Errorf("the service did not log a clean stop; its log:\n%s", s.log)
	}
}

// peer is the test's side: a client and a notification listener on the
// service's backend.
type peer struct {
	client        *rpc.Client
	notifications chan *notify.Notification
}

func newPeer(ctx context.Context, t *testing.T, url string) *peer {
	t.Helper()
	tr, err := transport.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	client, err := rpc.NewClient(tr, rpc.WithTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	p := &peer{client: client, notifications: make(chan *notify.Notification, 100)}
	listener, err := notify.NewListener(tr, []transport.Target{{Topic: "notifications"}}, []notify.Endpoint{{
		Handle: func(_ context.Context, n *notify.Notification) error { p.notifications <- n; return nil },
	}}, notify.WithPool(randomName("fxservice-test")))
	if err != nil {
		t.Fatal(err)
	}
	if err := listener.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { listener.Stop(context.Background()) })
	return p
}

// notification waits for the next notification and checks its type.
func (p *peer) notification(ctx context.Context, t *testing.T, eventType string) {
	t.Helper()
	select {
	case n := <-p.notifications:
		if n.EventType != eventType {
			t.Errorf("notification %s, want %s", n.EventType, eventType)
		}
	case <-ctx.Done():
		t.Fatalf("no %s notification", eventType)
	}
}

// callsInFlightAnswered sends n work calls, waits until the service is
// handling all of them, stops it (SIGTERM) and checks that every call was
// answered, every call notified, and the service exited 0.
func callsInFlightAnswered(ctx context.Context, t *testing.T, s *service, p *peer, topic string, n int) {
	t.Helper()
	results := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			var r WorkResult
			err := p.client.Call(ctx, transport.Target{Topic: topic}, "work", WorkArgs{Millis: 500}, &r)
			if err == nil && r.Millis != 500 {
				err = fmt.Errorf("result %+v, want ms 500", r)
			}
			results <- err
		})
	}
	s.log.waitFor(ctx, t, `msg="work started"`, n, s.exited)
	s.stop()
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil {
			t.Errorf("a call in flight at SIGTERM: %v", err)
		}
	}
	for range n {
		p.notification(ctx, t, "fxservice.worked")
	}
	s.waitExit(ctx, t)
}

// TestStopAnswersCallsInFlight: the service, on memory:// in this
// process, answers the calls it holds when stopped (the equivalent of
// SIGTERM: its context ends), then exits 0.
func TestStopAnswersCallsInFlight(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	url, topic := "memory://"+randomName("fxservice"), randomName("topic")
	p := newPeer(ctx, t, url)
	s := startInProcess(t, map[string]string{"SWITCHYARD_URL": url}, "-topic", topic, "-server", "s1")
	s.log.waitFor(ctx, t, "fxservice ready", 1, s.exited)
	callsInFlightAnswered(ctx, t, s, p, topic, 8)
}

// TestSIGTERMAnswersCallsInFlight: the service binary, on RabbitMQ,
// answers the calls it holds when it gets SIGTERM, and exits 0.
func TestSIGTERMAnswersCallsInFlight(t *testing.T) {
	url := brokertest.NewRabbitVHost(t).URL
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	topic := randomName("topic")
	p := newPeer(ctx, t, url)
	s := startChild(t, map[string]string{"SWITCHYARD_URL": url}, "-topic", topic, "-server", "s1")
	s.log.waitFor(ctx, t, "fxservice ready", 1, s.exited)
	callsInFlightAnswered(ctx, t, s, p, topic, 8)
}

// backendURL returns a URL on which a service and this test can meet,
// for a registered scheme, and whether it must run in this process.
func backendURL(t *testing.T, scheme string) (url string, inProcess bool) {
	switch scheme {
	case "memory":
		return "memory://" + randomName("fxservice"), true
	case "rabbit":
		return brokertest.NewRabbitVHost(t).URL, false
	case "rabbits":
		return throughTLS(t, brokertest.NewRabbitVHost(t).URL, scheme), false
	case "amqp":
		// A virtual host of its own, as for rabbit://: what the service
		// declares (its queues, oslo's notifications.info) goes with it.
		return brokertest.AMQP1RabbitMQ().NewVHost(t).URL, false
	case "amqps":
		return throughTLS(t, brokertest.AMQP1RabbitMQ().NewVHost(t).URL, scheme), false
	case "zmq":
		return "zmq://" + randomName("fxservice") + "?matchmaker=" + brokertest.Redis().URL(t), false
	}
	t.Fatalf("no test URL for the registered scheme %s://: add one here", scheme)
	return "", false
}

// throughTLS turns a plain broker URL into one for scheme (its TLS form)
// that reaches the broker through a TLS terminator, with the client
// certificate the terminator requires.
func throughTLS(t *testing.T, plain, scheme string) string {
	u, err := neturl.Parse(plain)
	if err != nil {
		t.Fatal(err)
	}
	term := brokertest.NewTLSTerminator(t, u.Host)
	u.Scheme, u.Host, u.RawQuery = scheme, term.Addr, term.Query()
	return u.String()
}

// TestSameServiceOnEachBackend: the same service runs on every registered
// backend with only its environment changed (SWITCHYARD_URL), or only its
// configuration file (SWITCHYARD_CONFIG_FILE naming an oslo file whose
// transport_url differs): memory:// in this process (it cannot be reached
// from another), the others as a child process. It answers a call, emits
// its notification, and stops cleanly.
func TestSameServiceOnEachBackend(t *testing.T) {
	for _, scheme := range transport.Schemes() {
		for _, via := range []string{"environment", "config file"} {
			t.Run(scheme+"/"+via, func(t *testing.T) {
				url, inProcess := backendURL(t, scheme)
				ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
				defer cancel()
				env := map[string]string{"SWITCHYARD_URL": url}
				if via == "config file" {
					file := filepath.Join(t.TempDir(), "service.conf")
					text := "[DEFAULT]\ntransport_url = " + strings.ReplaceAll(url, "$", "$$") + "\n\n[oslo_messaging_notifications]\ndriver = messagingv2\n"
					if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
						t.Fatal(err)
					}
					env = map[string]string{"SWITCHYARD_CONFIG_FILE": file}
				}
				topic := randomName("topic")
				p := newPeer(ctx, t, url)
				var s *service
				if inProcess {
					s = startInProcess(t, env, "-topic", topic, "-server", "s1")
				} else {
					s = startChild(t, env, "-topic", topic, "-server", "s1")
				}
				s.log.waitFor(ctx, t, "fxservice ready", 1, s.exited)
				var greeting string
				if err := p.client.Call(ctx, transport.Target{Topic: topic}, "greet", GreetArgs{Name: "Ada"}, &greeting); err != nil {
					t.Fatalf("greet: %v; the service's log:\n%s", err, s.log)
				}
				if greeting != "Hello, Ada" {
					t.Errorf("greet = %q, want Hello, Ada", greeting)
				}
				p.notification(ctx, t, "fxservice.greeted")
				s.stop()
				s.waitExit(ctx, t)
			})
		}
	}
}

// TestBadCommandLineOrConfiguration: a bad command line exits 2, a bad
// configuration 1, with a message naming the problem.
func TestBadCommandLineOrConfiguration(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.conf")
	if err := os.WriteFile(bad, []byte("[oslo_messaging_rabbit]\nrabbit_qos_prefetch_cout = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string
	}{
		{"unknown flag", nil, []string{"-nosuch"}, 2, "flag provided but not defined: -nosuch"},
		{"argument", nil, []string{"extra"}, 2, `unexpected arguments ["extra"]`},
		{"bad flag value", nil, []string{"-rpc-response-timeout", "0"}, 2, `-rpc-response-timeout: "0" is not a duration of at least 1 seconds`},
		{"bad file", map[string]string{"SWITCHYARD_CONFIG_FILE": bad}, nil, 1, "bad.conf:2: [oslo_messaging_rabbit] rabbit_qos_prefetch_cout: unknown option"},
		{"bad variable", map[string]string{"SWITCHYARD_RPC_RESPONSE_TIMEOUT": "soon"}, nil, 1, `SWITCHYARD_RPC_RESPONSE_TIMEOUT: "soon" is not a duration`},
		{"unknown scheme", map[string]string{"SWITCHYARD_URL": "nosuch://"}, nil, 1, `no driver for scheme`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := newLogWatcher()
			code := run(t.Context(), tt.args, func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }, log)
			if code != tt.code || !strings.Contains(log.String(), tt.want) {
				t.Errorf("run = %d with output\n%s\nwant %d and %q", code, log, tt.code, tt.want)
			}
		})
	}
}
