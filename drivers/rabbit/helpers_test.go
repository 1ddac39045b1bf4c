package rabbit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchyard-mq/switchyard/internal/brokertest"
	"github.com/switchyard-mq/switchyard/internal/faultproxy"
	"github.com/switchyard-mq/switchyard/transport"
)

// fastRetry makes reconnection quick enough for tests.
const fastRetry = "rabbit_retry_interval=0.05&rabbit_retry_backoff=0.05&rabbit_interval_max=0.5"

// testTimeout bounds each test's waits, so that a broken driver fails
// instead of hanging.
const testTimeout = 60 * time.Second

// withQuery appends query options to a URL.
func withQuery(url, query string) string {
	if query == "" {
		return url
	}
	if strings.Contains(url, "?") {
		return url + "&" + query
	}
	return url + "?" + query
}

// logBuffer collects a transport's logs for a test.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// tester is one test's broker context: a stack, its own virtual host on
// the stack's broker, and logs.
type tester struct {
	t     *testing.T
	ctx   context.Context
	stack brokertest.Stack
	vh    *brokertest.RabbitVHost
	logs  *logBuffer
}

func newTester(t *testing.T) *tester {
	t.Helper()
	return setupTester(t, brokertest.DebianStack(), brokertest.NewRabbitVHost(t))
}

// onStacks runs body once on each stack (brokertest.Stacks), in a
// subtest named after it, with a tester on a fresh virtual host of that
// stack's broker: on RabbitMQ 4.3 its transports carry the options
// oslo.messaging's guide recommends (quorum queues, stream fanout, the
// queue manager) and its queues are durable, as that broker denies
// transient ones.
func onStacks(t *testing.T, body func(t *testing.T, x *tester)) {
	brokertest.ForEachStack(t, func(t *testing.T, s brokertest.Stack) {
		body(t, setupTester(t, s, s.NewVHost(t)))
	})
}

// setupTester prepares the test: a goroutine leak check that runs after
// every other cleanup, a bounded context, and the logs shown on failure.
func setupTester(t *testing.T, stack brokertest.Stack, vh *brokertest.RabbitVHost) *tester {
	t.Helper()
	opts := goleak.IgnoreCurrent()
	x := &tester{t: t, stack: stack, vh: vh, logs: &logBuffer{}}
	t.Cleanup(func() {
		goleak.VerifyNone(t, opts)
		if t.Failed() {
			t.Logf("driver logs:\n%s", x.logs)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	x.ctx = ctx
	return x
}

// url is the test's virtual host's URL with the stack's options and
// extra query options.
func (x *tester) url(query string) string {
	return withQuery(x.stack.URL(x.vh), query)
}

// open opens a transport on the test's virtual host with the stack's
// options and extra query options, and closes it when the test ends.
func (x *tester) open(query string) *transport.Transport {
	x.t.Helper()
	return x.openURL(x.url(query))
}

func (x *tester) openURL(url string) *transport.Transport {
	x.t.Helper()
	logger := slog.New(slog.NewTextHandler(x.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tr, err := transport.Open(x.ctx, url, transport.WithLogger(logger))
	if err != nil {
		x.t.Fatalf("open %s: %v", url, err)
	}
	x.t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			x.t.Errorf("close: %v", err)
		}
	})
	return tr
}

// queue declares q, durable where the stack's broker denies transient
// queues and q would be one.
func (x *tester) queue(tr *transport.Transport, q transport.Queue) string {
	x.t.Helper()
	if x.stack.DeniesTransientQueues && !q.Exclusive {
		q.Durable = true
	}
	name, err := tr.DeclareQueue(x.ctx, q)
	if err != nil {
		x.t.Fatalf("declare queue %+v: %v", q, err)
	}
	return name
}

func (x *tester) exchange(tr *transport.Transport, name string, kind transport.ExchangeKind) string {
	x.t.Helper()
	if err := tr.DeclareExchange(x.ctx, transport.Exchange{Name: name, Kind: kind}); err != nil {
		x.t.Fatalf("declare exchange %s: %v", name, err)
	}
	return name
}

func (x *tester) bind(tr *transport.Transport, exchange, queue, key string) {
	x.t.Helper()
	if err := tr.Bind(x.ctx, transport.Binding{Exchange: exchange, Queue: queue, Key: key}); err != nil {
		x.t.Fatalf("bind: %v", err)
	}
}

func (x *tester) publish(tr *transport.Transport, exchange, key string, msg transport.Message) {
	x.t.Helper()
	if err := tr.Publish(x.ctx, exchange, key, msg); err != nil {
		x.t.Fatalf("publish to %q key %q: %v", exchange, key, err)
	}
}

func (x *tester) consume(tr *transport.Transport, queue string, opts transport.ConsumeOptions) *transport.Consumer {
	x.t.Helper()
	c, err := tr.Consume(x.ctx, queue, opts)
	if err != nil {
		x.t.Fatalf("consume %s: %v", queue, err)
	}
	x.t.Cleanup(func() { _ = c.Close() })
	return c
}

// receive waits up to 10 s for the next delivery.
func (x *tester) receive(c *transport.Consumer) *transport.Delivery {
	x.t.Helper()
	ctx, cancel := context.WithTimeout(x.ctx, 10*time.Second)
	defer cancel()
	d, err := c.Receive(ctx)
	if err != nil {
		x.t.Fatalf("receive from %s: %v", c.Queue(), err)
	}
	return d
}

// expectNone checks that nothing arrives within a quarter of a second:
// absence has no signal to wait for.
func (x *tester) expectNone(c *transport.Consumer) {
	x.t.Helper()
	ctx, cancel := context.WithTimeout(x.ctx, 250*time.Millisecond)
	defer cancel()
	if d, err := c.Receive(ctx); err == nil {
		x.t.Fatalf("unexpected delivery %q from %s", d.Body, c.Queue())
	} else if !errors.Is(err, context.DeadlineExceeded) {
		x.t.Fatalf("receive from %s: %v", c.Queue(), err)
	}
}

// wantErr checks that err wraps want and carries the broker's text.
func wantErr(t *testing.T, what string, err, want error, text string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got %v, want an error wrapping %v", what, err, want)
	}
	if text != "" && !strings.Contains(err.Error(), text) {
		t.Fatalf("%s: error %q lacks the broker's text %q", what, err, text)
	}
}

// queueArguments are the arguments of a queue as the management API
// shows it, less the x-queue-type=classic that RabbitMQ 4 records on a
// queue declared without a type.
func queueArguments(info map[string]any) map[string]any {
	args, _ := info["arguments"].(map[string]any)
	if args["x-queue-type"] == "classic" {
		args = maps.Clone(args)
		delete(args, "x-queue-type")
	}
	return args
}

// poll checks cond every 10 ms until it holds or the deadline passes.
func poll(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		<-tick.C
	}
}

func uniq(prefix string) string {
	return fmt.Sprintf("%s.%s", prefix, randomName()[:10])
}

// proxy is a fault proxy in front of the test's broker.
type proxy struct {
	*faultproxy.Proxy
	cfg   *transport.URL // the broker's URL
	vhost string
	query string // the stack's options
}

func newProxy(t *testing.T, x *tester) *proxy {
	t.Helper()
	cfg, err := transport.ParseURL(x.vh.URL)
	if err != nil {
		t.Fatal(err)
	}
	host := cfg.Hosts[0]
	if host.Port == 0 {
		host.Port = 5672
	}
	p, err := faultproxy.New(host.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return &proxy{Proxy: p, cfg: cfg, vhost: x.vh.Name, query: x.stack.Query}
}

// url is the virtual host's URL through the proxy, with the stack's
// options and extra query options.
func (p *proxy) url(query string) string {
	return withQuery(withQuery(fmt.Sprintf("%s://%s:%s@%s/%s", p.cfg.Scheme, p.cfg.User, p.cfg.Password, p.Addr(), p.vhost), p.query), query)
}
