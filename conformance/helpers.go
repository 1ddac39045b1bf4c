package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchyard-mq/switchyard/transport"
)

// Time bounds of a case. caseTimeout bounds everything a case waits for, so
// that a broken backend fails the case with a message instead of hanging
// the test binary; quietPeriod is how long a case listens to conclude that
// a message does NOT arrive (it cannot wait for a signal that never comes,
// so it waits a bounded time: long enough for an in-process or loopback
// broker to have delivered, short enough to keep the suite fast).
const (
	caseTimeout    = 30 * time.Second
	quietPeriod    = 250 * time.Millisecond
	cleanupTimeout = 10 * time.Second
	// deliveryTimeout bounds the wait for one expected delivery, so that a
	// lost message fails its case in seconds, not at the case deadline.
	deliveryTimeout = 5 * time.Second
	pollInterval    = 10 * time.Millisecond
)

// env is one running case: the test, a context bound by caseTimeout, the
// URL every transport of the case opens (so they share one broker), and the
// capabilities in force.
type env struct {
	t    *testing.T
	ctx  context.Context
	url  string
	caps transport.Capabilities
	// admin is a transport of the case's own, used by cleanups to delete
	// what the case declared even when the case closed its transports.
	admin *transport.Transport
}

// newEnv prepares a case. It registers the goroutine leak check first, so
// that it runs after every other cleanup (cleanups run last-in first-out),
// that is, after the case's transports are closed.
func newEnv(t *testing.T, h Harness, caps transport.Capabilities) *env {
	t.Helper()
	checkLeaks(t, h.IgnoreGoroutines)
	ctx, cancel := context.WithTimeout(t.Context(), caseTimeout)
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx, url: h.URL(t), caps: caps}
	e.admin = e.open()
	return e
}

// run runs f as a subtest of the case, sharing the case's context, URL,
// capabilities and leak check; it is for tables of rows within one case,
// so that a row can fail or be skipped on its own (require).
func (e *env) run(name string, f func(e *env)) {
	e.t.Helper()
	e.t.Run(name, func(t *testing.T) {
		sub := *e
		sub.t = t
		f(&sub)
	})
}

// checkLeaks registers a cleanup that fails t if a goroutine started after
// this call is still running when the cleanup runs. goleak retries for a
// while, so goroutines that are ending (a closed consumer's) may finish.
// ignore names the top functions of process-wide goroutines to ignore.
func checkLeaks(t *testing.T, ignore []string) {
	t.Helper()
	opts := []goleak.Option{goleak.IgnoreCurrent()}
	for _, fn := range ignore {
		opts = append(opts, goleak.IgnoreTopFunction(fn))
	}
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
}

// require skips t, saying which capability is missing, unless caps holds
// every capability in need. An unsupported case is reported, never
// silently passed.
func require(t testing.TB, caps transport.Capabilities, need ...transport.Capability) {
	t.Helper()
	for _, c := range need {
		if !caps.Has(c) {
			t.Skipf("not supported: the backend (capabilities %q) lacks capability %q", caps, c)
		}
	}
}

// uniqueName returns prefix followed by a random suffix, so that cases can
// share a broker with each other and with earlier runs.
func uniqueName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + "." + hex.EncodeToString(b[:])
}

// cleanupContext bounds a cleanup; the case's own context is already
// cancelled when cleanups run.
func cleanupContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), cleanupTimeout)
}

// open opens a transport on the case's URL and closes it when the case
// ends. Closing it earlier in the case is fine: Close is idempotent.
func (e *env) open() *transport.Transport {
	e.t.Helper()
	tr, err := transport.Open(e.ctx, e.url)
	if err != nil {
		e.t.Fatalf("open %s: %v", e.url, err)
	}
	e.t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			e.t.Errorf("close transport %s: %v", tr, err)
		}
	})
	return tr
}

// declareQueue declares q on tr and deletes it when the case ends. It
// returns the queue's name (the broker's choice when q.Name is empty).
// Where the backend lacks transient queues (CapTransientQueue: a RabbitMQ
// 4 broker that denies them), a queue neither durable nor exclusive is
// declared durable instead: the cases are about routing and settling,
// not about surviving a restart.
func (e *env) declareQueue(tr *transport.Transport, q transport.Queue) string {
	e.t.Helper()
	q = e.orDurable(q)
	name, err := tr.DeclareQueue(e.ctx, q)
	if err != nil {
		e.t.Fatalf("declare queue %+v: %v", q, err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		// An exclusive queue is deleted with its owner instead (ErrInUse
		// here); one that auto-deleted or expired is already gone.
		if _, err := e.admin.DeleteQueue(ctx, name); err != nil && !errors.Is(err, transport.ErrInUse) {
			e.t.Errorf("cleanup: %v", err)
		}
	})
	return name
}

// orDurable is q, durable where the backend lacks transient queues and q
// would be one.
func (e *env) orDurable(q transport.Queue) transport.Queue {
	if !e.caps.Has(transport.CapTransientQueue) && !q.Exclusive {
		q.Durable = true
	}
	return q
}

// simpleQueue declares a plain queue with a unique name made from prefix.
func (e *env) simpleQueue(tr *transport.Transport, prefix string) string {
	e.t.Helper()
	return e.declareQueue(tr, transport.Queue{Name: uniqueName(prefix)})
}

// declareExchange declares an exchange of kind with a unique name made
// from prefix, deletes it when the case ends, and returns its name.
func (e *env) declareExchange(tr *transport.Transport, prefix string, kind transport.ExchangeKind) string {
	e.t.Helper()
	ex := transport.Exchange{Name: uniqueName(prefix), Kind: kind}
	if err := tr.DeclareExchange(e.ctx, ex); err != nil {
		e.t.Fatalf("declare exchange: %v", err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		if err := e.admin.DeleteExchange(ctx, ex.Name); err != nil {
			e.t.Errorf("cleanup: %v", err)
		}
	})
	return ex.Name
}

// bind binds queue to exchange with each key, failing the case on error.
func (e *env) bind(tr *transport.Transport, exchange, queue string, keys ...string) {
	e.t.Helper()
	for _, key := range keys {
		if err := tr.Bind(e.ctx, transport.Binding{Exchange: exchange, Queue: queue, Key: key}); err != nil {
			e.t.Fatalf("%v", err)
		}
	}
}

// publish publishes a message with body to exchange and key, failing the
// case on error.
func (e *env) publish(tr *transport.Transport, exchange, key string, msg transport.Message) {
	e.t.Helper()
	if err := tr.Publish(e.ctx, exchange, key, msg); err != nil {
		e.t.Fatalf("%v", err)
	}
}

// publishBodies publishes one message per body to exchange and key.
func (e *env) publishBodies(tr *transport.Transport, exchange, key string, bodies ...string) {
	e.t.Helper()
	for _, b := range bodies {
		e.publish(tr, exchange, key, transport.Message{Body: []byte(b)})
	}
}

// consume starts a consumer on queue that is closed when the case ends.
func (e *env) consume(tr *transport.Transport, queue string, opts transport.ConsumeOptions) *transport.Consumer {
	e.t.Helper()
	c, err := tr.Consume(e.ctx, queue, opts)
	if err != nil {
		e.t.Fatalf("%v", err)
	}
	e.t.Cleanup(func() { _ = c.Close() })
	return c
}

// receive returns the next delivery of c, failing the case if none comes
// within deliveryTimeout.
func (e *env) receive(c *transport.Consumer) *transport.Delivery {
	e.t.Helper()
	d, err := e.tryReceive(c)
	if err != nil {
		e.t.Fatalf("expected a delivery from queue %q: %v", c.Queue(), err)
	}
	return d
}

// tryReceive returns the next delivery of c, or an error if none comes
// within deliveryTimeout.
func (e *env) tryReceive(c *transport.Consumer) (*transport.Delivery, error) {
	ctx, cancel := context.WithTimeout(e.ctx, deliveryTimeout)
	defer cancel()
	d, err := c.Receive(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("none within %v: %w", deliveryTimeout, err)
	}
	return d, err
}

// receiveUpTo receives up to n deliveries from c, acknowledging each, and
// returns their bodies; it stops early, without failing, when one does not
// come within deliveryTimeout, so that the caller's comparison reports
// exactly what was missing.
func (e *env) receiveUpTo(c *transport.Consumer, n int) []string {
	e.t.Helper()
	bodies := make([]string, 0, n)
	for range n {
		d, err := e.tryReceive(c)
		if err != nil {
			e.t.Logf("queue %q: received %d of %d expected: %v", c.Queue(), len(bodies), n, err)
			break
		}
		e.ack(d)
		bodies = append(bodies, string(d.Body))
	}
	return bodies
}

// receiveBodies receives n deliveries from c, acknowledging each unless
// the consumer auto-acks, and returns their bodies in arrival order.
func (e *env) receiveBodies(c *transport.Consumer, n int, autoAck bool) []string {
	e.t.Helper()
	bodies := make([]string, 0, n)
	for range n {
		d := e.receive(c)
		if !autoAck {
			e.ack(d)
		}
		bodies = append(bodies, string(d.Body))
	}
	return bodies
}

// ack acknowledges d, failing the case on error.
func (e *env) ack(d *transport.Delivery) {
	e.t.Helper()
	if err := d.Ack(); err != nil {
		e.t.Fatalf("ack %q: %v", d.Body, err)
	}
}

// expectNone checks that nothing arrives on c during quietPeriod. This is
// the one place the suite waits a fixed time: absence has no signal.
func (e *env) expectNone(c *transport.Consumer) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, quietPeriod)
	defer cancel()
	d, err := c.Receive(ctx)
	switch {
	case err == nil:
		e.t.Errorf("queue %q: unexpected delivery %q (key %q, redelivered %v)", c.Queue(), truncate(d.Body), d.RoutingKey, d.Redelivered)
	case !errors.Is(err, context.DeadlineExceeded):
		e.t.Errorf("queue %q: expected no delivery for %v, got error %v", c.Queue(), quietPeriod, err)
	}
}

// eventually polls cond every pollInterval until it returns nil, failing
// the case with cond's last error if the case's deadline comes first. It
// is for broker-side effects that have no signal, such as a queue being
// deleted.
func (e *env) eventually(what string, cond func(ctx context.Context) error) {
	e.t.Helper()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		err := cond(e.ctx)
		if err == nil {
			return
		}
		select {
		case <-e.ctx.Done():
			e.t.Fatalf("%s: still not the case after %v: %v", what, caseTimeout, err)
		case <-tick.C:
		}
	}
}

// elapse waits until d has passed, for cases where the passage of time is
// itself the condition (a TTL running out), not a stand-in for a signal.
func (e *env) elapse(d time.Duration) {
	e.t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-e.ctx.Done():
		e.t.Fatalf("case deadline reached while waiting %v", d)
	}
}

// queueGone waits until queue no longer exists. PurgeQueue is the probe:
// it fails with ErrNotFound on a missing queue and, unlike a consumer,
// does not count as using the queue (RabbitMQ's x-expires lease).
func (e *env) queueGone(tr *transport.Transport, queue string) {
	e.t.Helper()
	e.eventually(fmt.Sprintf("queue %q deleted", queue), func(ctx context.Context) error {
		_, err := tr.PurgeQueue(ctx, queue)
		if errors.Is(err, transport.ErrNotFound) {
			return nil
		}
		return fmt.Errorf("purge still answers %v", err)
	})
}

// queueExists fails the case unless queue exists now.
func (e *env) queueExists(tr *transport.Transport, queue string) {
	e.t.Helper()
	if _, err := tr.PurgeQueue(e.ctx, queue); err != nil {
		e.t.Fatalf("queue %q should exist: %v", queue, err)
	}
}

// bodies returns "prefix-0" ... "prefix-(n-1)".
func bodies(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

// truncate shortens a body for error messages.
func truncate(b []byte) string {
	const max = 64
	if len(b) <= max {
		return string(b)
	}
	return fmt.Sprintf("%s... (%d bytes)", b[:max], len(b))
}

// wantErr fails the case unless err wraps target; what describes the call.
func (e *env) wantErr(what string, err, target error) {
	e.t.Helper()
	if !errors.Is(err, target) {
		e.t.Errorf("%s: got error %v, want one wrapping %q", what, err, target)
	}
}

// wantSameBodies checks that got and want hold the same bodies, each as
// often, in any order, and reports the difference.
func (e *env) wantSameBodies(where string, got, want []string) {
	e.t.Helper()
	count := map[string]int{}
	for _, b := range want {
		count[b]++
	}
	for _, b := range got {
		count[b]--
	}
	var missing, extra []string
	for _, b := range slices.Sorted(maps.Keys(count)) {
		for n := count[b]; n > 0; n-- {
			missing = append(missing, b)
		}
		for n := count[b]; n < 0; n++ {
			extra = append(extra, b)
		}
	}
	if len(missing) > 0 || len(extra) > 0 {
		e.t.Errorf("%s: got %d messages, want %d: missing %s, unexpected (or duplicated) %s",
			where, len(got), len(want), quoteAll(missing), quoteAll(extra))
	}
}

// quoteAll formats bodies for messages, eliding past the twentieth.
func quoteAll(ss []string) string {
	const shown = 20
	var b strings.Builder
	b.WriteByte('[')
	for i, s := range ss {
		if i == shown {
			fmt.Fprintf(&b, " ... %d more", len(ss)-shown)
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Quote(s))
	}
	b.WriteByte(']')
	return b.String()
}
