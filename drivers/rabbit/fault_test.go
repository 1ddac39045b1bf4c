package rabbit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/internal/brokertest"
	"github.com/switchyard-mq/switchyard/internal/faultproxy"
	"github.com/switchyard-mq/switchyard/internal/rabbitnode"
	"github.com/switchyard-mq/switchyard/transport"
)

// stream is a fault test's traffic: persistent messages with ids,
// published with confirms to a durable queue and consumed with manual
// acks. It checks the promises that must hold through a fault: every
// confirmed message is received, a message received twice is marked
// redelivered the second time, and settling fails only with ErrClosed.
type stream struct {
	x  *tester
	tr *transport.Transport
	q  string
	// ctr, when set, is the consumer's transport (tr publishes).
	ctr *transport.Transport
	// retry makes a failed publish try again (counted in pubFailed) until
	// it is confirmed or the test's context ends, as an application
	// would: a publish the broker nacks fails.
	retry     bool
	pubFailed atomic.Int64
	// retried are the ids published again after a failed publish, and
	// pubErrs the first errors: the broker may have taken the failed copy
	// (a quorum queue may nack what it enqueued), and the copy published
	// again is a new message, not marked redelivered.
	retried     map[string]bool
	pubErrs     []string
	retriedDups int // duplicates of retried ids not marked redelivered

	// faultAt is when the fault began (UnixNano, 0 before); pubResumed and
	// recvResumed when the first publish started after it was confirmed,
	// and when the first such message was received.
	faultAt, pubResumed, recvResumed atomic.Int64

	confirmed atomic.Int64 // publishes confirmed
	received  atomic.Int64 // distinct messages received

	mu        sync.Mutex
	ok        map[string]bool // confirmed message ids
	after     map[string]bool // ids of confirmed publishes started after faultAt
	seen      map[string]int  // received message ids, with how often
	problems  []string
	ackClosed int // acks refused because the delivery's channel was gone
	// consumerEnded is set when the consumer's Receive failed.
	consumerEnded bool
}

func newStream(x *tester, tr *transport.Transport) *stream {
	return &stream{
		x: x, tr: tr,
		q:     x.queue(tr, transport.Queue{Name: uniq("stream"), Durable: true}),
		ok:    map[string]bool{},
		after: map[string]bool{},
		seen:  map[string]int{},
	}
}

// resumed is how long after the fault both a publish started after it was
// confirmed and such a message received; 0 while not both happened.
func (s *stream) resumed() time.Duration {
	at, p, r := s.faultAt.Load(), s.pubResumed.Load(), s.recvResumed.Load()
	if at == 0 || p == 0 || r == 0 {
		return 0
	}
	return time.Duration(max(p, r) - at)
}

func (s *stream) problem(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.problems) < 20 {
		s.problems = append(s.problems, fmt.Sprintf(format, args...))
	}
}

// publish publishes n messages from parallel goroutines, each waiting for
// its confirm, at most perSecond a second if that is not 0, and closes
// trigger once at messages have been confirmed. It returns when every
// publish returned.
func (s *stream) publish(n, parallel, perSecond, at int, trigger chan<- struct{}) {
	var next atomic.Int64
	var once sync.Once
	var wg sync.WaitGroup
	var pace <-chan time.Time
	if perSecond > 0 {
		tick := time.NewTicker(time.Second / time.Duration(perSecond))
		defer tick.Stop()
		pace = tick.C
	}
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if pace != nil {
					<-pace
				}
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				id := strconv.FormatInt(i, 10)
				start := time.Now().UnixNano()
				ctx, cancel := context.WithTimeout(s.x.ctx, 30*time.Second)
				err := s.tr.Publish(ctx, "", s.q, transport.Message{Body: []byte("message " + id), MessageID: id, Persistent: true})
				for err != nil && s.retry && s.x.ctx.Err() == nil && ctx.Err() == nil {
					s.pubFailed.Add(1)
					s.mu.Lock()
					if s.retried == nil {
						s.retried = map[string]bool{}
					}
					s.retried[id] = true
					if len(s.pubErrs) < 3 {
						s.pubErrs = append(s.pubErrs, err.Error())
					}
					s.mu.Unlock()
					err = s.tr.Publish(ctx, "", s.q, transport.Message{Body: []byte("message " + id), MessageID: id, Persistent: true})
				}
				cancel()
				if err != nil {
					s.problem("publish %s: %v", id, err)
					continue
				}
				fault := s.faultAt.Load()
				after := fault != 0 && start > fault
				if after {
					s.pubResumed.CompareAndSwap(0, time.Now().UnixNano())
				}
				s.mu.Lock()
				s.ok[id] = true
				if after {
					s.after[id] = true
				}
				s.mu.Unlock()
				if s.confirmed.Add(1) >= int64(at) && trigger != nil {
					once.Do(func() { close(trigger) })
				}
			}
		}()
	}
	wg.Wait()
	once.Do(func() {
		if trigger != nil {
			close(trigger)
		}
	})
}

// consume runs a consumer until the test's context ends or stop is
// called; at closes trigger once that many distinct messages arrived.
func (s *stream) consume(prefetch, at int, trigger chan<- struct{}) (stop func()) {
	tr := s.tr
	if s.ctr != nil {
		tr = s.ctr
	}
	c, err := tr.Consume(s.x.ctx, s.q, transport.ConsumeOptions{Prefetch: prefetch})
	if err != nil {
		s.x.t.Fatalf("consume: %v", err)
	}
	ctx, cancel := context.WithCancel(s.x.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var once sync.Once
		for {
			d, err := c.Receive(ctx)
			if err != nil {
				if ctx.Err() == nil {
					s.problem("receive: %v", err)
					s.mu.Lock()
					s.consumerEnded = true
					s.mu.Unlock()
				}
				return
			}
			s.mu.Lock()
			n := s.seen[d.MessageID]
			s.seen[d.MessageID] = n + 1
			if n == 0 && s.after[d.MessageID] {
				s.recvResumed.CompareAndSwap(0, time.Now().UnixNano())
			}
			if n > 0 && !d.Redelivered && s.retried[d.MessageID] {
				s.retriedDups++
			} else if n > 0 && !d.Redelivered {
				s.mu.Unlock()
				s.problem("message %s received %d times, not marked redelivered", d.MessageID, n+1)
				s.mu.Lock()
			}
			s.mu.Unlock()
			if n == 0 && s.received.Add(1) >= int64(at) && trigger != nil {
				once.Do(func() { close(trigger) })
			}
			switch err := d.Ack(); {
			case err == nil:
			case errors.Is(err, transport.ErrClosed):
				s.mu.Lock()
				s.ackClosed++
				s.mu.Unlock()
			default:
				s.problem("ack %s: %v", d.MessageID, err)
			}
		}
	}()
	return func() {
		cancel()
		<-done
		_ = c.Close()
	}
}

// waitReceived waits until every confirmed message was received, and
// fails at once, with the problems seen, if the consumer gave up.
func (s *stream) waitReceived(within time.Duration) {
	s.x.t.Helper()
	poll(s.x.t, within, "every confirmed message received", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.consumerEnded {
			s.x.t.Fatalf("the consumer ended: %v", s.problems)
		}
		for id := range s.ok {
			if s.seen[id] == 0 {
				return false
			}
		}
		return true
	})
}

// check reports the problems seen, and the numbers.
func (s *stream) check(n int) {
	s.x.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.problems {
		s.x.t.Error(p)
	}
	if len(s.ok) != n {
		s.x.t.Errorf("%d of %d publishes confirmed", len(s.ok), n)
	}
	dups := 0
	for _, k := range s.seen {
		dups += k - 1
	}
	s.x.t.Logf("%d confirmed, %d received, %d redelivered duplicates, %d acks refused across the fault", len(s.ok), len(s.seen), dups, s.ackClosed)
}

// wait waits for trigger, failing the test if it does not come.
func wait(t *testing.T, trigger <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-trigger:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: never reached", what)
	}
}

// TestFaultCloseAllConnections: the broker closes the connection in the
// middle of a 10 000-message stream with confirms and manual acks.
func TestFaultCloseAllConnections(t *testing.T) {
	const n = 10000
	x := newTester(t)
	tr := x.open(fastRetry)
	s := newStream(x, tr)
	trigger := make(chan struct{})
	stop := s.consume(100, 0, nil)
	defer stop()
	published := make(chan struct{})
	// Paced to 2 000 a second so that the stream (5 s) outlasts
	// rabbitmqctl's start-up, which takes 2 s and more on a loaded 2-core
	// machine, and the connections close in its middle.
	go func() {
		defer close(published)
		s.publish(n, 16, 2000, n/5, trigger)
	}()
	wait(t, trigger, "a fifth of the stream confirmed")
	x.vh.CloseConnections(t)
	if c := s.confirmed.Load(); c >= n {
		t.Errorf("the stream was over (%d confirmed) when the connections closed", c)
	}
	<-published
	s.waitReceived(30 * time.Second)
	stop()
	s.check(n)
	poll(t, 5*time.Second, "a reconnection logged", func() bool { return strings.Contains(x.logs.String(), "rabbit: reconnected") })
}

// TestFaultProxyCuts: the connection is cut in the middle of a frame:
// while publishing, while confirms come back (nothing else flows down),
// and while deliveries come (nothing else flows down).
func TestFaultProxyCuts(t *testing.T) {
	const n = 3000
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, s *stream, p *proxy) (cut <-chan struct{})
	}{
		{"during a publish", func(t *testing.T, s *stream, p *proxy) <-chan struct{} {
			stop := s.consume(100, 0, nil)
			defer stop()
			trigger := make(chan struct{})
			published := make(chan struct{})
			go func() {
				defer close(published)
				s.publish(n, 16, 0, n/3, trigger)
			}()
			wait(t, trigger, "a third of the stream confirmed")
			cut := p.CutAfter(faultproxy.Upstream, 10_003) // mid-frame, mostly publishes
			<-published
			s.waitReceived(30 * time.Second)
			return cut
		}},
		{"during a confirm", func(t *testing.T, s *stream, p *proxy) <-chan struct{} {
			trigger := make(chan struct{})
			published := make(chan struct{})
			go func() {
				defer close(published)
				s.publish(n, 16, 0, n/3, trigger)
			}()
			wait(t, trigger, "a third of the stream confirmed")
			cut := p.CutAfter(faultproxy.Downstream, 21*5+7) // inside a basic.ack
			<-published
			stop := s.consume(100, 0, nil)
			defer stop()
			s.waitReceived(30 * time.Second)
			return cut
		}},
		{"during a delivery", func(t *testing.T, s *stream, p *proxy) <-chan struct{} {
			s.publish(n, 16, 0, n, nil)
			trigger := make(chan struct{})
			stop := s.consume(100, n/3, trigger)
			defer stop()
			wait(t, trigger, "a third of the stream received")
			cut := p.CutAfter(faultproxy.Downstream, 5_013) // inside a delivery
			s.waitReceived(30 * time.Second)
			return cut
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			onStacks(t, func(t *testing.T, x *tester) {
				p := newProxy(t, x)
				tr := x.openURL(p.url(fastRetry))
				s := newStream(x, tr)
				cut := tc.run(t, s, p)
				select {
				case <-cut:
				default:
					t.Fatal("the armed cut never fired")
				}
				s.check(n)
			})
		})
	}
}

// TestFaultBrokerRestart: the broker stops and starts again in the middle
// of a stream, cleanly (stop_app and start_app: it closes its connections)
// or by a crash (kill -9 of its Erlang VM, and a restart on its data). The
// broker is a RabbitMQ node of the test's own (rabbitnode), so that no
// other test sees it go.
func TestFaultBrokerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a broker")
	}
	node := rabbitnode.StartNode(t)
	stack := brokertest.DebianStack()
	stack.Broker = node.Broker()
	for _, tc := range []struct {
		name        string
		stop, start func(context.Context) error
	}{
		{"stop_app", node.StopApp, node.StartApp},
		{"kill -9", node.Kill, node.Restart},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 2000
			x := setupTester(t, stack, stack.NewVHost(t))
			tr := x.open(fastRetry)
			s := newStream(x, tr)
			stop := s.consume(100, 0, nil)
			defer stop()
			trigger := make(chan struct{})
			published := make(chan struct{})
			go func() {
				defer close(published)
				s.publish(n, 16, 0, n/2, trigger)
			}()
			wait(t, trigger, "half the stream confirmed")
			if err := tc.stop(x.ctx); err != nil {
				t.Fatal(err)
			}
			poll(t, 10*time.Second, "the transport notices the broker is gone", func() bool { return tr.Healthy(x.ctx) != nil })
			if err := tc.start(x.ctx); err != nil {
				t.Fatal(err)
			}
			<-published
			s.waitReceived(30 * time.Second)
			stop()
			s.check(n)
		})
	}
}

// TestFaultHeartbeat: a connection that goes silent (nothing flows,
// nothing closes) is found dead by the heartbeats, and the transport
// reconnects once the network comes back; the consumer resumes.
func TestFaultHeartbeat(t *testing.T) {
	onStacks(t, func(t *testing.T, x *tester) {
		p := newProxy(t, x)
		tr := x.openURL(p.url(fastRetry + "&heartbeat_timeout_threshold=1"))
		q := x.queue(tr, transport.Queue{Name: uniq("q")})
		c := x.consume(tr, q, transport.ConsumeOptions{})
		p.Stall()
		start := time.Now()
		poll(t, 10*time.Second, "the silent connection found dead", func() bool { return tr.Healthy(x.ctx) != nil })
		t.Logf("found dead after %v", time.Since(start).Round(100*time.Millisecond))
		p.Resume()
		x.publish(tr, "", q, transport.Message{Body: []byte("after the silence")})
		if d := x.receive(c); string(d.Body) != "after the silence" {
			t.Fatalf("got %q", d.Body)
		} else if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
	})
}
