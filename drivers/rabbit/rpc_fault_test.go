package rabbit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/internal/brokertest"
	"github.com/switchyard-mq/switchyard/internal/faultproxy"
	"github.com/switchyard-mq/switchyard/internal/oslo"
	"github.com/switchyard-mq/switchyard/internal/rabbitnode"
	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

// RPC through broker faults: a stream of concurrent calls (and casts) runs
// while the connection of the client or of the server is closed by the
// broker, cut mid-frame by a proxy, or the broker application restarts.
// What must hold: every call returns, successfully or with an error that
// says what ran out (ErrTimeout, ErrClosed or the context's deadline),
// within its timeout and a small margin, never later; once the fault is
// over, calls succeed again without help; and a cast whose Cast returned
// nil reaches the server (at least once).

const (
	// rpcFaultCallers is how many goroutines call at once.
	rpcFaultCallers = 8
	// rpcFaultCasters is how many goroutines cast at once.
	rpcFaultCasters = 2
	// rpcFaultMaxCalls bounds each caller's calls, and each caster's casts.
	rpcFaultMaxCalls = 20000
	// rpcCallTimeout is every call's and cast's timeout.
	rpcCallTimeout = 5 * time.Second
	// rpcTimeoutMargin is how late past its timeout a call may return: the
	// time to notice the deadline and unwind, on a loaded machine.
	rpcTimeoutMargin = time.Second
	// rpcCallsBefore is how many calls succeed before the fault.
	rpcCallsBefore = 200
	// rpcCallsAfter is how many calls started after the fault must succeed
	// before the stream stops.
	rpcCallsAfter = 200
)

// faultService is the RPC endpoint of the fault tests: Echo answers
// calls, Record counts casts by token.
type faultService struct {
	mu   sync.Mutex
	seen map[string]int // cast tokens, with how often they ran
}

// faultArgs is about 100 bytes of arguments.
type faultArgs struct {
	Token string `json:"token"`
	Pad   string `json:"pad"`
}

func (s *faultService) Echo(_ context.Context, args faultArgs) (faultArgs, error) { return args, nil }

func (s *faultService) Record(_ context.Context, args faultArgs) error {
	s.mu.Lock()
	s.seen[args.Token]++
	s.mu.Unlock()
	return nil
}

func (s *faultService) count(token string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[token]
}

// callResult is one call or cast of the stream.
type callResult struct {
	start time.Time
	took  time.Duration
	err   error
}

// rpcStream runs calls and casts from several goroutines until stopped,
// and records every outcome.
type rpcStream struct {
	t   *testing.T
	svc *faultService

	stopCh chan struct{}
	done   chan struct{} // closed when every caller and caster returned
	// faultOver is when the fault ended (UnixNano), 0 before.
	faultOver   atomic.Int64
	okBefore    atomic.Int64 // calls that succeeded before the fault ended
	okAfter     atomic.Int64 // calls started after the fault ended that succeeded
	inFlight    sync.Map     // *callResult → struct{}: calls and casts not yet returned
	castsOK     atomic.Int64
	castsFailed atomic.Int64

	mu        sync.Mutex
	calls     []callResult
	casts     []callResult
	castsSent []string // tokens of casts that Cast reported sent
}

// startRPCStream starts the callers and casters.
func startRPCStream(t *testing.T, client *rpc.Client, target transport.Target, svc *faultService) *rpcStream {
	return startRPCStreamN(t, client, target, svc, rpcFaultCallers, rpcFaultCasters)
}

// startRPCStreamN starts callers and casters goroutines.
func startRPCStreamN(t *testing.T, client *rpc.Client, target transport.Target, svc *faultService, callers, casters int) *rpcStream {
	s := &rpcStream{t: t, svc: svc, stopCh: make(chan struct{}), done: make(chan struct{})}
	pad := strings.Repeat("p", 60) // with the token, about 100 bytes of arguments
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rpcFaultMaxCalls {
				if s.stopped() {
					return
				}
				args := faultArgs{Token: fmt.Sprintf("call-%d-%d", c, i), Pad: pad}
				var got faultArgs
				r := s.begin()
				err := s.withTimeout(func(ctx context.Context) error {
					return client.Call(ctx, target, "echo", args, &got)
				})
				if err == nil && got != args {
					err = fmt.Errorf("echo returned %+v for %+v", got, args)
				}
				s.end(r, err, true)
			}
		}()
	}
	for c := range casters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rpcFaultMaxCalls {
				if s.stopped() {
					return
				}
				// Half to the topic, half to this server.
				tgt := target
				if i%2 == 1 {
					tgt.Server = "s1"
				}
				token := fmt.Sprintf("cast-%d-%d-%s", c, i, oslo.NewID()[:6])
				r := s.begin()
				err := s.withTimeout(func(ctx context.Context) error {
					return client.Cast(ctx, tgt, "record", faultArgs{Token: token, Pad: pad})
				})
				s.end(r, err, false)
				if err == nil {
					s.mu.Lock()
					s.castsSent = append(s.castsSent, token)
					s.mu.Unlock()
				}
				// Casts cost little; a cast a millisecond is plenty.
				select {
				case <-time.After(time.Millisecond):
				case <-s.stopCh:
				}
			}
		}()
	}
	go func() {
		wg.Wait()
		close(s.done)
	}()
	return s
}

func (s *rpcStream) stopped() bool {
	select {
	case <-s.stopCh:
		return true
	default:
		return false
	}
}

// withTimeout runs op with rpcCallTimeout as its context's deadline, as
// the client's WithTimeout also says.
func (s *rpcStream) withTimeout(op func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), rpcCallTimeout)
	defer cancel()
	return op(ctx)
}

func (s *rpcStream) begin() *callResult {
	r := &callResult{start: time.Now()}
	s.inFlight.Store(r, struct{}{})
	return r
}

// end records the outcome of a call (isCall) or cast.
func (s *rpcStream) end(r *callResult, err error, isCall bool) {
	r.took, r.err = time.Since(r.start), err
	s.inFlight.Delete(r)
	switch {
	case !isCall && err == nil:
		s.castsOK.Add(1)
	case !isCall:
		s.castsFailed.Add(1)
	case err == nil && s.faultOver.Load() == 0:
		s.okBefore.Add(1)
	case err == nil && r.start.UnixNano() > s.faultOver.Load():
		s.okAfter.Add(1)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if isCall {
		s.calls = append(s.calls, *r)
	} else {
		s.casts = append(s.casts, *r)
	}
}

// markFaultOver notes that the fault has ended.
func (s *rpcStream) markFaultOver() { s.faultOver.Store(time.Now().UnixNano()) }

// waitOK waits until n calls succeeded before the fault (after false) or
// after it (after true).
func (s *rpcStream) waitOK(n int64, after bool, within time.Duration) {
	s.t.Helper()
	counter, what := &s.okBefore, "calls succeeded before the fault"
	if after {
		counter, what = &s.okAfter, "calls started after the fault succeeded"
	}
	poll(s.t, within, fmt.Sprintf("%d %s (%d so far)", n, what, counter.Load()), func() bool {
		select {
		case <-s.done:
			s.t.Fatalf("the stream ended (every caller made %d calls) before %d %s", rpcFaultMaxCalls, n, what)
		default:
		}
		return counter.Load() >= n
	})
}

// stop stops the stream and waits for every call and cast to return; a
// call still running well past its timeout is a hang.
func (s *rpcStream) stop() {
	s.t.Helper()
	close(s.stopCh)
	select {
	case <-s.done:
	case <-time.After(rpcCallTimeout + 10*time.Second):
		var hung []string
		s.inFlight.Range(func(k, _ any) bool {
			hung = append(hung, fmt.Sprintf("started %v ago", time.Since(k.(*callResult).start).Round(time.Millisecond)))
			return true
		})
		s.t.Fatalf("calls or casts hang: %d still running: %v", len(hung), hung)
	}
}

// figures counts the calls that succeeded, failed, and took longer than
// their timeout and its margin (hung), and the casts that failed.
func (s *rpcStream) figures() (ok, failed, hung, castsFailed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.calls {
		switch {
		case r.took > rpcCallTimeout+rpcTimeoutMargin:
			hung++
		case r.err == nil:
			ok++
		default:
			failed++
		}
	}
	for _, r := range s.casts {
		if r.err != nil {
			castsFailed++
		}
	}
	return ok, failed, hung, castsFailed
}

// check verifies every outcome: successes, or errors that say what ran
// out, each within the timeout and its margin.
func (s *rpcStream) check() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var problems []string
	failures := map[string]int{}
	var slowest time.Duration
	checkOne := func(kind string, r callResult) {
		slowest = max(slowest, r.took)
		if r.took > rpcCallTimeout+rpcTimeoutMargin {
			problems = append(problems, fmt.Sprintf("%s took %v, past its timeout %v (err: %v)", kind, r.took.Round(time.Millisecond), rpcCallTimeout, r.err))
		}
		if r.err == nil {
			return
		}
		switch {
		case r.err.Error() == "":
			problems = append(problems, fmt.Sprintf("%s failed with an empty message: %#v", kind, r.err))
		case errors.Is(r.err, transport.ErrTimeout):
			failures[kind+": ErrTimeout"]++
		case errors.Is(r.err, transport.ErrClosed):
			failures[kind+": ErrClosed"]++
		case errors.Is(r.err, context.DeadlineExceeded):
			failures[kind+": context deadline"]++
		default:
			problems = append(problems, fmt.Sprintf("%s failed with an unexpected error: %v", kind, r.err))
		}
	}
	for _, r := range s.calls {
		checkOne("call", r)
	}
	for _, r := range s.casts {
		checkOne("cast", r)
	}
	for i, p := range problems {
		if i == 20 {
			s.t.Errorf("... and %d more problems", len(problems)-i)
			break
		}
		s.t.Error(p)
	}
	s.t.Logf("%d calls (%d ok before the fault, %d ok after it), %d casts (%d sent, %d failed); slowest %v; failures %v",
		len(s.calls), s.okBefore.Load(), s.okAfter.Load(), len(s.casts), s.castsOK.Load(), s.castsFailed.Load(),
		slowest.Round(time.Millisecond), failures)
}

// checkCasts waits until every cast reported sent reached the server.
func (s *rpcStream) checkCasts(within time.Duration) {
	s.t.Helper()
	if m := s.missingCasts(within); len(m) > 0 {
		s.t.Fatalf("%d casts that Cast reported sent never reached the server, e.g. %v", len(m), m[:min(len(m), 5)])
	}
}

// missingCasts waits until every cast reported sent reached the server,
// or within passed, and returns those that did not.
func (s *rpcStream) missingCasts(within time.Duration) []string {
	s.t.Helper()
	s.mu.Lock()
	sent := append([]string(nil), s.castsSent...)
	s.mu.Unlock()
	missing := func() []string {
		var m []string
		for _, token := range sent {
			if s.svc.count(token) == 0 {
				m = append(m, token)
			}
		}
		return m
	}
	deadline := time.Now().Add(within)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		m := missing()
		if len(m) == 0 {
			break
		}
		if time.Now().After(deadline) {
			s.t.Logf("%d of %d casts that Cast reported sent never reached the server, e.g. %v", len(m), len(sent), m[:min(len(m), 5)])
			return m
		}
		<-tick.C
	}
	twice := 0
	for _, token := range sent {
		if s.svc.count(token) > 1 {
			twice++
		}
	}
	s.t.Logf("all %d casts reported sent reached the server (%d of them more than once)", len(sent), twice)
	return nil
}

// rpcFaultSetup is an RPC server and a client, each on a transport of its
// own (so a fault can hit one and not the other).
type rpcFaultSetup struct {
	x        *tester
	svc      *faultService
	server   *rpc.Server
	client   *rpc.Client
	target   transport.Target
	srvTr    *transport.Transport
	clientTr *transport.Transport
}

// newRPCFaultSetup starts the server on serverURL and the client on
// clientURL.
func newRPCFaultSetup(x *tester, serverURL, clientURL string) *rpcFaultSetup {
	t := x.t
	t.Helper()
	f := &rpcFaultSetup{x: x, svc: &faultService{seen: map[string]int{}}, target: transport.Target{Topic: "fault_" + oslo.NewID()[:8]}}
	f.srvTr = x.openURL(serverURL)
	f.clientTr = x.openURL(clientURL)
	var err error
	f.server, err = rpc.NewServer(f.srvTr, transport.Target{Topic: f.target.Topic, Server: "s1"}, []rpc.Endpoint{{Receiver: f.svc}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.server.Start(x.ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := f.server.Stop(ctx); err != nil {
			t.Errorf("stop the server: %v", err)
		}
	})
	f.client, err = rpc.NewClient(f.clientTr, rpc.WithTimeout(rpcCallTimeout))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.client.Close() })
	return f
}

// run runs the stream through inject, which causes the fault and returns
// once it is over, and checks the promises.
func (f *rpcFaultSetup) run(inject func()) {
	t := f.x.t
	t.Helper()
	s := startRPCStream(t, f.client, f.target, f.svc)
	stopped := false
	defer func() {
		if !stopped { // a failed wait: let the goroutines end before the leak check
			close(s.stopCh)
			<-s.done
		}
	}()
	s.waitOK(rpcCallsBefore, false, 30*time.Second)
	inject()
	s.markFaultOver()
	s.waitOK(rpcCallsAfter, true, 60*time.Second)
	stopped = true
	s.stop()
	s.check()
	s.checkCasts(30 * time.Second)
	f.checkResumed()
}

// checkResumed: after the stream, fresh calls and casts on the same
// client succeed at once, each within its timeout.
func (f *rpcFaultSetup) checkResumed() {
	t := f.x.t
	t.Helper()
	for i := range 10 {
		ctx, cancel := context.WithTimeout(f.x.ctx, rpcCallTimeout)
		args := faultArgs{Token: fmt.Sprintf("after-%d", i)}
		var got faultArgs
		err := f.client.Call(ctx, f.target, "echo", args, &got)
		if err == nil {
			err = f.client.Cast(ctx, f.target, "record", args)
		}
		cancel()
		if err != nil || got != args {
			t.Fatalf("call %d after the fault: %+v, %v", i, got, err)
		}
	}
	poll(t, 10*time.Second, "the casts after the fault reached the server", func() bool {
		return f.svc.count("after-9") > 0
	})
}

// reconnections counts the driver's reconnections in the logs.
func (x *tester) reconnections() int { return strings.Count(x.logs.String(), "rabbit: reconnected") }

// TestRPCFault: calls and casts through a fault on the client's or the
// server's connection.
func TestRPCFault(t *testing.T) {
	for _, tc := range []struct {
		name string
		// proxied is whose connection goes through the fault proxy:
		// "client", "server" or "" (neither).
		proxied string
		// inject causes the fault and returns once it is over.
		inject func(t *testing.T, x *tester, p *proxy)
		// reconnections is how many transports reconnect.
		reconnections int
	}{
		{"close_all_connections", "", func(t *testing.T, x *tester, _ *proxy) {
			x.vh.CloseConnections(t)
		}, 2},
		// The client's upstream is mostly requests: the cut falls inside
		// one, before its confirm.
		{"cut during a request publish", "client", func(t *testing.T, _ *tester, p *proxy) {
			wait(t, p.CutAfter(faultproxy.Upstream, 2_003), "the cut")
		}, 1},
		// The server's downstream carries requests and the confirms of its
		// replies: the cut falls while replies wait for their confirms.
		{"cut during a reply confirm", "server", func(t *testing.T, _ *tester, p *proxy) {
			wait(t, p.CutAfter(faultproxy.Downstream, 2_003), "the cut")
		}, 1},
		// The server's upstream is mostly replies: the cut falls inside
		// one being published.
		{"cut during a reply publish", "server", func(t *testing.T, _ *tester, p *proxy) {
			wait(t, p.CutAfter(faultproxy.Upstream, 2_003), "the cut")
		}, 1},
		// The client's downstream is mostly replies being delivered.
		{"cut during a reply delivery", "client", func(t *testing.T, _ *tester, p *proxy) {
			wait(t, p.CutAfter(faultproxy.Downstream, 2_003), "the cut")
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			onStacks(t, func(t *testing.T, x *tester) {
				p := newProxy(t, x)
				direct, proxied := x.url(fastRetry), p.url(fastRetry)
				serverURL, clientURL := direct, direct
				switch tc.proxied {
				case "client":
					clientURL = proxied
				case "server":
					serverURL = proxied
				}
				f := newRPCFaultSetup(x, serverURL, clientURL)
				f.run(func() { tc.inject(t, x, p) })
				poll(t, 10*time.Second, fmt.Sprintf("%d reconnections logged", tc.reconnections), func() bool {
					return x.reconnections() >= tc.reconnections
				})
			})
		})
	}
}

// TestRPCFaultBrokerRestart: calls and casts while the broker stops and
// starts again, cleanly (stop_app, start_app) or by a crash (kill -9 of
// its Erlang VM, and a restart on its data), on a RabbitMQ node of the
// test's own (rabbitnode), so that no other test sees it go. The queues
// are durable (amqp_durable_queues), as a deployment that must keep its
// casts through a broker restart has them: oslo's default transient
// queues, and the casts waiting in them, do not survive a restart.
func TestRPCFaultBrokerRestart(t *testing.T) {
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
			x := setupTester(t, stack, stack.NewVHost(t))
			url := withQuery(x.vh.URL, fastRetry+"&amqp_durable_queues=true")
			f := newRPCFaultSetup(x, url, url)
			f.run(func() {
				if err := tc.stop(x.ctx); err != nil {
					t.Fatal(err)
				}
				poll(t, 10*time.Second, "both transports notice the broker is gone", func() bool {
					return f.srvTr.Healthy(x.ctx) != nil && f.clientTr.Healthy(x.ctx) != nil
				})
				if err := tc.start(x.ctx); err != nil {
					t.Fatal(err)
				}
			})
			poll(t, 10*time.Second, "both transports reconnected", func() bool { return x.reconnections() >= 2 })
		})
	}
}

// TestRPCFaultTimeoutCoversOutage: a call's timeout (WithTimeout) bounds
// the whole call, the wait for a connection that is down included, not
// only the wait for the reply once the request is out. Without a context
// deadline, a call during an outage must still fail with ErrTimeout once
// its timeout has passed. (rpc.Client.Call applies its timeout to the wait
// for the reply only, so this fails until Call bounds the whole call.)
func TestRPCFaultTimeoutCoversOutage(t *testing.T) {
	onStacks(t, func(t *testing.T, x *tester) {
		const timeout = time.Second
		p := newProxy(t, x)
		f := newRPCFaultSetup(x, x.url(fastRetry), p.url(fastRetry))
		client := f.client.Prepare(rpc.WithTimeout(timeout))
		if err := client.Call(x.ctx, f.target, "echo", faultArgs{Token: "before"}, nil); err != nil {
			t.Fatal(err) // the reply queue exists: what follows is about the outage only
		}
		p.SetRefuse(true)
		p.CutAll()
		poll(t, 10*time.Second, "the client notices the outage", func() bool { return f.clientTr.Healthy(x.ctx) != nil })
		t.Cleanup(func() { p.SetRefuse(false) })

		// The test's context only keeps a broken client from hanging the
		// test; the call's own timeout must end the call first.
		ctx, cancel := context.WithTimeout(x.ctx, 10*timeout)
		defer cancel()
		start := time.Now()
		err := client.Call(ctx, f.target, "echo", faultArgs{Token: "during"}, nil)
		if took := time.Since(start); took > timeout+rpcTimeoutMargin || !errors.Is(err, transport.ErrTimeout) {
			t.Fatalf("call during the outage: %v after %v; want ErrTimeout within %v", err, took.Round(time.Millisecond), timeout)
		}
	})
}

// TestRPCMandatoryIdenticalCopies: RPC replies are mandatory publishes,
// and the driver matches each basic.return to its publish by content.
// Here byte-identical mandatory messages are published at once while a
// binding comes and goes, so that some copies are routed and others
// returned: as many publishes must fail with ErrUnroutable as copies were
// returned, and every publish reported sent must be in the queue.
func TestRPCMandatoryIdenticalCopies(t *testing.T) {
	onStacks(t, func(t *testing.T, x *tester) {
		const n = 600
		tr := x.open("")
		ex := x.exchange(tr, "copies", transport.Direct)
		q := x.queue(tr, transport.Queue{Name: uniq("copies")})
		other := x.open("") // binds and unbinds on a connection of its own

		stop := make(chan struct{})
		toggled := make(chan error, 1)
		go func() {
			var err error
			defer func() { toggled <- err }()
			for bound := false; ; bound = !bound {
				select {
				case <-stop:
					return
				default:
				}
				b := transport.Binding{Exchange: ex, Queue: q, Key: "k"}
				if bound {
					err = other.Unbind(x.ctx, b)
				} else {
					err = other.Bind(x.ctx, b)
				}
				if err != nil {
					return
				}
			}
		}()
		var sent, returned atomic.Int64
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range n / 16 {
					err := tr.Publish(x.ctx, ex, "k", transport.Message{Body: []byte("the same copy"), Mandatory: true})
					switch {
					case err == nil:
						sent.Add(1)
					case errors.Is(err, transport.ErrUnroutable):
						returned.Add(1)
					default:
						t.Errorf("publish: %v", err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(stop)
		if err := <-toggled; err != nil {
			t.Fatalf("toggling the binding: %v", err)
		}
		if sent.Load() == 0 || returned.Load() == 0 {
			t.Fatalf("%d sent, %d returned: want both, the binding coming and going under the publishes", sent.Load(), returned.Load())
		}
		// A confirmed message is in its queue: counting it needs no
		// waiting.
		inQueue, err := tr.PurgeQueue(x.ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if int64(inQueue) != sent.Load() {
			t.Fatalf("%d publishes reported sent, %d copies in the queue (%d returned)", sent.Load(), inQueue, returned.Load())
		}
		t.Logf("%d sent, %d returned", sent.Load(), returned.Load())
	})
}

// holdService's Hold runs until released, so that a test can cut the
// server's connection just as the reply is being published.
type holdService struct {
	started chan struct{}
	release chan struct{}
	runs    atomic.Int64
}

func (s *holdService) Hold(ctx context.Context, args faultArgs) (faultArgs, error) {
	s.runs.Add(1)
	s.started <- struct{}{}
	select {
	case <-s.release:
		return args, nil
	case <-ctx.Done():
		return faultArgs{}, ctx.Err()
	}
}

// TestRPCReplyResentAfterDrop: a reply is a mandatory publish that waits
// for its confirm. When the server's connection drops with the reply not
// yet confirmed, the cut falling inside the reply's frames, the driver
// publishes it again on the next connection:
// the caller gets it, once, within its timeout, and the method ran once.
func TestRPCReplyResentAfterDrop(t *testing.T) {
	for _, cutAfter := range []int64{1, 60} {
		t.Run(fmt.Sprintf("cut after %d bytes of the reply", cutAfter), func(t *testing.T) {
			onStacks(t, func(t *testing.T, x *tester) {
				p := newProxy(t, x)
				srvTr := x.openURL(p.url(fastRetry))
				clientTr := x.open(fastRetry)
				svc := &holdService{started: make(chan struct{}, 1), release: make(chan struct{})}
				target := transport.Target{Topic: "resend_" + oslo.NewID()[:8]}
				server, err := rpc.NewServer(srvTr, transport.Target{Topic: target.Topic, Server: "s1"}, []rpc.Endpoint{{Receiver: svc}})
				if err != nil {
					t.Fatal(err)
				}
				if err := server.Start(x.ctx); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					if err := server.Stop(ctx); err != nil {
						t.Errorf("stop the server: %v", err)
					}
				})
				client, err := rpc.NewClient(clientTr, rpc.WithTimeout(rpcCallTimeout))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = client.Close() })

				type outcome struct {
					got faultArgs
					err error
				}
				result := make(chan outcome, 1)
				go func() {
					var got faultArgs
					err := client.Call(x.ctx, target, "hold", faultArgs{Token: "held"}, &got)
					result <- outcome{got, err}
				}()
				wait(t, svc.started, "the method to start")
				// The request was acked before the method ran: the next
				// bytes the server sends are the reply's.
				cut := p.CutAfter(faultproxy.Upstream, cutAfter)
				close(svc.release)
				wait(t, cut, "the cut")
				select {
				case r := <-result:
					if r.err != nil || r.got.Token != "held" {
						t.Fatalf("call through the cut: %+v, %v", r.got, r.err)
					}
				case <-time.After(rpcCallTimeout + 5*time.Second):
					t.Fatal("the call did not end")
				}
				if n := svc.runs.Load(); n != 1 {
					t.Fatalf("the method ran %d times, want 1", n)
				}
			})
		})
	}
}
