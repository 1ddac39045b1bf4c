package rabbit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// tester is one test's broker context: its own virtual host and logs.
type tester struct {
	t    *testing.T
	ctx  context.Context
	vh   *brokertest.RabbitVHost
	logs *logBuffer
}

func newTester(t *testing.T) *tester {
	t.Helper()
	return setupTester(t, brokertest.NewRabbitVHost(t))
}

// setupTester prepares the test: a goroutine leak check that runs after
// every other cleanup, a bounded context, and the logs shown on failure.
func setupTester(t *testing.T, vh *brokertest.RabbitVHost) *tester {
	t.Helper()
	opts := goleak.IgnoreCurrent()
	x := &tester{t: t, vh: vh, logs: &logBuffer{}}
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

// open opens a transport on the test's virtual host with extra query
// options, and closes it when the test ends.
func (x *tester) open(query string) *transport.Transport {
	x.t.Helper()
	return x.openURL(withQuery(x.vh.URL, query))
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

func (x *tester) queue(tr *transport.Transport, q transport.Queue) string {
	x.t.Helper()
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
	cfg *transport.URL // the broker's URL
}

func newProxy(t *testing.T, vh *brokertest.RabbitVHost) *proxy {
	t.Helper()
	cfg, err := transport.ParseURL(vh.URL)
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
	return &proxy{Proxy: p, cfg: cfg}
}

// url is the virtual host's URL through the proxy, with query options.
func (p *proxy) url(vh *brokertest.RabbitVHost, query string) string {
	return withQuery(fmt.Sprintf("%s://%s:%s@%s/%s", p.cfg.Scheme, p.cfg.User, p.cfg.Password, p.Addr(), vh.Name), query)
}
