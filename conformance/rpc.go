package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/switchyard-mq/switchyard/internal/messaging"
	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

// rpcService is the endpoint every RPC case serves: its methods cover the
// shapes and outcomes a caller can see.
type rpcService struct {
	host    string
	records chan<- string // tokens of record calls, as they run
	started chan<- struct{}
	mu      sync.Mutex
	handled map[string]int // echo calls by token, to catch duplicates
}

func (s *rpcService) Echo(ctx context.Context, args map[string]any) (map[string]any, error) {
	if token, ok := args["token"].(string); ok {
		s.mu.Lock()
		s.handled[token]++
		s.mu.Unlock()
	}
	return args, nil
}

func (s *rpcService) Host(ctx context.Context, args struct{}) (string, error) { return s.host, nil }

func (s *rpcService) Record(ctx context.Context, args struct {
	Token string `json:"token"`
}) error {
	s.records <- s.host + ":" + args.Token
	return nil
}

func (s *rpcService) Fail(ctx context.Context, args struct {
	Message string `json:"message"`
}) error {
	return &rpc.RemoteError{Class: "ValueError", Module: "builtins", Message: args.Message}
}

func (s *rpcService) FailPlain(ctx context.Context, args struct{}) error {
	return errors.New("plain failure")
}

func (s *rpcService) Whoami(ctx context.Context, args struct{}) (rpc.RequestContext, error) {
	return rpc.RequestContextFrom(ctx), nil
}

func (s *rpcService) Sleep(ctx context.Context, args struct {
	Ms int `json:"ms"`
}) (string, error) {
	if s.started != nil {
		s.started <- struct{}{}
	}
	timer := time.NewTimer(time.Duration(args.Ms) * time.Millisecond)
	defer timer.Stop()
	select {
	case <-timer.C:
		return "slept", nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// rpcEnv is one RPC case's topic, exchange and transports.
type rpcEnv struct {
	*env
	tr      *transport.Transport
	target  transport.Target
	records chan string
}

func newRPCEnv(e *env) *rpcEnv {
	require(e.t, e.caps, transport.CapTopic, transport.CapFanout, transport.CapQueueBinding)
	r := &rpcEnv{env: e, tr: e.open(), records: make(chan string, 256)}
	r.target = transport.Target{Exchange: uniqueName("rpcx"), Topic: uniqueName("rpc")}
	e.t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		// Topic queues outlive their servers, as oslo's do.
		for _, q := range []string{r.target.Topic, r.target.Topic + ".s1", r.target.Topic + ".s2", r.target.Topic + ".s3"} {
			_, _ = e.admin.DeleteQueue(ctx, q)
		}
		_ = e.admin.DeleteExchange(ctx, r.target.Exchange)
	})
	return r
}

// server starts a server named host on the case's topic, stopped when the
// case ends.
func (r *rpcEnv) server(host string, eps ...rpc.Endpoint) *rpcService {
	r.t.Helper()
	svc := &rpcService{host: host, records: r.records, handled: map[string]int{}}
	if len(eps) == 0 {
		eps = []rpc.Endpoint{{Receiver: svc}}
	}
	r.serve(host, eps)
	return svc
}

// serve starts a server named host on the case's topic over eps, with
// opts, stopped when the case ends.
func (r *rpcEnv) serve(host string, eps []rpc.Endpoint, opts ...rpc.ServerOption) {
	r.t.Helper()
	target := r.target
	target.Server = host
	srv, err := rpc.NewServer(r.tr, target, eps, opts...)
	if err != nil {
		r.t.Fatalf("new server: %v", err)
	}
	if err := srv.Start(r.ctx); err != nil {
		r.t.Fatalf("start server %s: %v", host, err)
	}
	r.t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			r.t.Errorf("stop server %s: %v", host, err)
		}
	})
}

func (r *rpcEnv) client(opts ...rpc.Option) *rpc.Client {
	r.t.Helper()
	c, err := rpc.NewClient(r.tr, append([]rpc.Option{rpc.WithTimeout(deliveryTimeout)}, opts...)...)
	if err != nil {
		r.t.Fatalf("new client: %v", err)
	}
	r.t.Cleanup(func() {
		if err := c.Close(); err != nil {
			r.t.Errorf("close client: %v", err)
		}
	})
	return c
}

// records waits for n recorded casts and returns them sorted.
func (r *rpcEnv) waitRecords(n int) []string {
	r.t.Helper()
	var got []string
	timer := time.NewTimer(deliveryTimeout)
	defer timer.Stop()
	for len(got) < n {
		select {
		case rec := <-r.records:
			got = append(got, rec)
		case <-timer.C:
			r.t.Fatalf("got %d of %d casts: %v", len(got), n, got)
		}
	}
	sort.Strings(got)
	return got
}

func rpcCases() []testCase {
	return []testCase{
		{"call", rpcCall},
		{"cast", rpcCast},
		{"fanout-cast", rpcFanout},
		{"call-one-server", rpcCallServer},
		{"timeout", rpcTimeout},
		{"call-nobody-serves", rpcCallNobodyServes},
		{"call-request-lost", rpcCallRequestLost},
		{"remote-error", rpcRemoteError},
		{"typed-errors", rpcTypedErrors},
		{"unknown-method", rpcUnknownMethod},
		{"version-negotiation", rpcVersions},
		{"request-context", rpcRequestContext},
		{"concurrent-64", rpcConcurrent},
		{"stop-drains", rpcStopDrains},
		{"call-monitor", rpcCallMonitor},
	}
}

// rpcCall: every JSON type survives the round trip, numbers with their
// exact text.
func rpcCall(e *env) {
	r := newRPCEnv(e)
	r.server("s1")
	c := r.client()
	args := map[string]any{
		"s": "héllo 😀 \x00\n", "big": json.Number("9007199254740993"), "max": json.Number("9223372036854775807"),
		"neg": json.Number("-12345678901234567890"), "float": json.Number("2.0"), "small": json.Number("1e-07"),
		"t": true, "f": false, "null": nil, "list": []any{json.Number("1"), "x", nil, []any{}},
		"dict": map[string]any{"nested": map[string]any{"k": "v"}},
	}
	var got json.RawMessage
	if err := c.Call(r.ctx, r.target, "echo", args, &got); err != nil {
		r.t.Fatalf("call: %v", err)
	}
	want, _ := json.Marshal(args)
	if !jsonEqualExact(got, want) {
		r.t.Errorf("echo returned\n%s\nwant\n%s", got, want)
	}
}

// jsonEqualExact compares JSON values with numbers compared by text.
func jsonEqualExact(a, b []byte) bool {
	var va, vb any
	da := json.NewDecoder(bytes.NewReader(a))
	da.UseNumber()
	db := json.NewDecoder(bytes.NewReader(b))
	db.UseNumber()
	if da.Decode(&va) != nil || db.Decode(&vb) != nil {
		return false
	}
	return fmt.Sprintf("%#v", va) == fmt.Sprintf("%#v", vb)
}

func rpcCast(e *env) {
	r := newRPCEnv(e)
	r.server("s1")
	c := r.client()
	for i := range 3 {
		if err := c.Cast(r.ctx, r.target, "record", map[string]string{"token": fmt.Sprint(i)}); err != nil {
			r.t.Fatalf("cast: %v", err)
		}
	}
	if got, want := r.waitRecords(3), []string{"s1:0", "s1:1", "s1:2"}; fmt.Sprint(got) != fmt.Sprint(want) {
		r.t.Errorf("casts recorded %v, want %v", got, want)
	}
}

func rpcFanout(e *env) {
	r := newRPCEnv(e)
	for _, s := range []string{"s1", "s2", "s3"} {
		r.server(s)
	}
	c := r.client()
	if err := c.Prepare(rpc.WithFanout(true)).Cast(r.ctx, r.target, "record", map[string]string{"token": "f"}); err != nil {
		r.t.Fatalf("fanout cast: %v", err)
	}
	if got, want := r.waitRecords(3), []string{"s1:f", "s2:f", "s3:f"}; fmt.Sprint(got) != fmt.Sprint(want) {
		r.t.Errorf("fanout reached %v, want %v", got, want)
	}
	select {
	case extra := <-r.records:
		r.t.Errorf("fanout cast delivered twice: %s", extra)
	case <-time.After(quietPeriod):
	}
	err := c.Prepare(rpc.WithFanout(true)).Call(r.ctx, r.target, "host", nil, nil)
	r.wantErr("fanout call", err, transport.ErrInvalid)
}

func rpcCallServer(e *env) {
	r := newRPCEnv(e)
	r.server("s1")
	r.server("s2")
	c := r.client().Prepare(rpc.WithServer("s2"))
	for range 10 {
		var host string
		if err := c.Call(r.ctx, r.target, "host", nil, &host); err != nil {
			r.t.Fatalf("call: %v", err)
		}
		if host != "s2" {
			r.t.Fatalf("call to server s2 answered by %q", host)
		}
	}
}

func rpcTimeout(e *env) {
	r := newRPCEnv(e)
	r.server("s1")
	c := r.client()
	start := time.Now()
	err := c.Prepare(rpc.WithTimeout(200*time.Millisecond)).Call(r.ctx, r.target, "sleep", map[string]int{"ms": 1000}, nil)
	r.wantErr("slow call", err, transport.ErrTimeout)
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		r.t.Errorf("a 200ms timeout took %v", elapsed)
	}
	// The late reply is dropped and the client keeps working.
	var host string
	if err := c.Call(r.ctx, r.target, "host", nil, &host); err != nil || host != "s1" {
		r.t.Errorf("call after a timeout: %q, %v", host, err)
	}
	ctx, cancel := context.WithCancel(r.ctx)
	cancel()
	err = c.Call(ctx, r.target, "host", nil, nil)
	r.wantErr("call with a cancelled context", err, context.Canceled)
}

// rpcCallNobodyServes: where the backend can tell that no queue takes a
// request (CapMandatory), a call to a topic, or a server, that nobody
// serves fails at once with ErrUnroutable rather than at its timeout;
// elsewhere it times out.
func rpcCallNobodyServes(e *env) {
	r := newRPCEnv(e)
	r.server("s1")
	c := r.client(rpc.WithTimeout(30 * time.Second))
	for _, target := range []transport.Target{
		{Exchange: r.target.Exchange, Topic: uniqueName("nobody")},         // a mistyped topic
		{Exchange: r.target.Exchange, Topic: r.target.Topic, Server: "s9"}, // a server that is not running
		{Exchange: uniqueName("rpcx"), Topic: r.target.Topic},              // a mistyped exchange
	} {
		if !e.caps.Has(transport.CapMandatory) {
			target := target
			err := c.Prepare(rpc.WithTimeout(200*time.Millisecond)).Call(r.ctx, target, "host", nil, nil)
			r.wantErr("call to "+target.String()+" without mandatory publishing", err, transport.ErrTimeout)
			continue
		}
		start := time.Now()
		err := c.Call(r.ctx, target, "host", nil, nil)
		r.wantErr("call to "+target.String(), err, transport.ErrUnroutable)
		if elapsed := time.Since(start); elapsed > 5*time.Second {
			r.t.Errorf("call to %s failed after %v, want at once (its timeout is 30s)", target, elapsed)
		}
		if target.Exchange != r.target.Exchange {
			ctx, cancel := cleanupContext()
			_ = e.admin.DeleteExchange(ctx, target.Exchange) // declared by the client, as oslo's do
			cancel()
		}
	}
	var host string
	if err := c.Call(r.ctx, r.target, "host", nil, &host); err != nil || host != "s1" {
		r.t.Errorf("call to the served topic after the failures: %q, %v", host, err)
	}
}

// rpcCallRequestLost: a request that a queue took but no server ever
// runs (its queue deleted before a server consumed it) fails the call
// with ErrTimeout at the call's timeout: a lost request is a timeout,
// never a hang.
func rpcCallRequestLost(e *env) {
	r := newRPCEnv(e)
	c := r.client()
	// The topic's queue, bound as a server would bind it, with nobody
	// consuming it: the request is routed there and waits.
	topo := transport.Target{Exchange: r.target.Exchange, Topic: r.target.Topic}
	declarations, err := messaging.NewTopology(r.tr)
	if err != nil {
		r.t.Fatalf("the transport's topology: %v", err)
	}
	if err := r.tr.DeclareExchange(r.ctx, declarations.Exchange(topo.Exchange)); err != nil {
		r.t.Fatalf("declare the exchange: %v", err)
	}
	q, err := r.tr.DeclareQueue(r.ctx, declarations.SharedQueue(r.target.Topic))
	if err != nil {
		r.t.Fatalf("declare the topic's queue: %v", err)
	}
	if err := r.tr.Bind(r.ctx, transport.Binding{Exchange: topo.Exchange, Queue: q, Key: r.target.Topic}); err != nil {
		r.t.Fatalf("bind the topic's queue: %v", err)
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- c.Prepare(rpc.WithTimeout(time.Second)).Call(r.ctx, topo, "host", nil, nil) }()
	// Once the request waits in the queue, purge it: it is lost. (On a
	// broker-less backend a queue nobody consumes holds nothing to purge;
	// there the request waits at its sender until the call gives up.)
	var callErr error
	ended := false
	r.eventually("the request purged from the topic's queue, or the call ended", func(ctx context.Context) error {
		select {
		case callErr = <-done:
			ended = true
			return nil
		default:
		}
		n, err := r.admin.PurgeQueue(ctx, q)
		if err == nil && n == 0 {
			err = errors.New("the queue is empty")
		}
		return err
	})
	if !ended {
		select {
		case callErr = <-done:
		case <-time.After(deliveryTimeout):
			r.t.Fatal("a call whose request was lost did not end at its timeout")
		}
	}
	r.wantErr("call whose request was lost", callErr, transport.ErrTimeout)
	if elapsed := time.Since(start); elapsed < 900*time.Millisecond {
		r.t.Errorf("a lost request failed after %v, before its 1s timeout: %v", elapsed, callErr)
	}
}

func rpcRemoteError(e *env) {
	r := newRPCEnv(e)
	r.server("s1")
	c := r.client()
	err := c.Call(r.ctx, r.target, "fail", map[string]string{"message": "bad size"}, nil)
	var re *rpc.RemoteError
	if !errors.As(err, &re) {
		r.t.Fatalf("fail: got %v, want a *rpc.RemoteError", err)
	}
	if re.Class != "ValueError" || re.Module != "builtins" || re.Message != "bad size" || len(re.Traceback) == 0 {
		r.t.Errorf("remote error %+v, want ValueError from builtins with message and traceback", re)
	}
	err = c.Call(r.ctx, r.target, "fail_plain", nil, nil)
	if !errors.As(err, &re) || re.Message != "plain failure" {
		r.t.Errorf("fail_plain: got %v, want a remote error with the Go error's message", err)
	}
	err = c.Call(r.ctx, r.target, "echo", "not an object", nil)
	r.wantErr("call with non-object args", err, transport.ErrInvalid)
}

func rpcUnknownMethod(e *env) {
	r := newRPCEnv(e)
	r.server("s1")
	c := r.client()
	err := c.Call(r.ctx, r.target, "no_such_method", nil, nil)
	r.wantErr("unknown method", err, rpc.ErrNoSuchMethod)
	var re *rpc.RemoteError
	if errors.As(err, &re) && re.Message != "Endpoint does not support RPC method no_such_method" {
		r.t.Errorf("NoSuchMethod message %q", re.Message)
	}
	err = c.Call(r.ctx, r.target, "_private", nil, nil)
	r.wantErr("underscore method", err, rpc.ErrNoSuchMethod)
}

func rpcVersions(e *env) {
	r := newRPCEnv(e)
	svc := &rpcService{host: "s1", records: r.records, handled: map[string]int{}}
	r.server("s1", rpc.Endpoint{Receiver: svc, Version: "1.3"}, rpc.Endpoint{Receiver: svc, Namespace: "admin", Version: "2.0"})
	c := r.client()
	for _, tc := range []struct {
		version, namespace string
		want               error
	}{
		{"", "", nil}, {"1.0", "", nil}, {"1.3", "", nil},
		{"1.4", "", rpc.ErrUnsupportedVersion}, {"2.0", "", rpc.ErrUnsupportedVersion},
		{"2.0", "admin", nil}, {"1.0", "admin", rpc.ErrUnsupportedVersion}, {"1.0", "other", rpc.ErrUnsupportedVersion},
	} {
		err := c.Prepare(rpc.WithVersion(tc.version), rpc.WithNamespace(tc.namespace)).Call(r.ctx, r.target, "host", nil, nil)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			r.t.Errorf("version %q namespace %q: got %v, want %v", tc.version, tc.namespace, err, tc.want)
		}
	}
}

func rpcRequestContext(e *env) {
	r := newRPCEnv(e)
	r.server("s1")
	c := r.client()
	rc := rpc.RequestContext{"request_id": "req-42", "user": "alice", "project_id": "p1", "roles": []any{"admin", "member"}, "is_admin": true}
	var got json.RawMessage
	if err := c.Call(rpc.WithRequestContext(r.ctx, rc), r.target, "whoami", nil, &got); err != nil {
		r.t.Fatalf("call: %v", err)
	}
	if want, _ := json.Marshal(rc); !jsonEqualExact(got, want) {
		r.t.Errorf("handler saw context %s, want %s", got, want)
	}
}

// rpcConcurrent: 64 calls in flight, each answered exactly once with its
// own result.
func rpcConcurrent(e *env) {
	r := newRPCEnv(e)
	svc := r.server("s1")
	c := r.client()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			token := fmt.Sprint("t", i)
			var got map[string]any
			if err := c.Call(r.ctx, r.target, "echo", map[string]string{"token": token}, &got); err != nil {
				errs <- err
				return
			}
			if got["token"] != token {
				errs <- fmt.Errorf("call %s answered with %v", token, got)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		r.t.Error(err)
	}
	svc.mu.Lock()
	defer svc.mu.Unlock()
	for token, n := range svc.handled {
		if n != 1 {
			r.t.Errorf("call %s ran %d times", token, n)
		}
	}
	if len(svc.handled) != 64 {
		r.t.Errorf("%d distinct calls ran, want 64", len(svc.handled))
	}
}

// rpcStopDrains: Stop waits for calls in flight, which are answered.
func rpcStopDrains(e *env) {
	r := newRPCEnv(e)
	started := make(chan struct{}, 8)
	svc := &rpcService{host: "s1", records: r.records, started: started, handled: map[string]int{}}
	target := r.target
	target.Server = "s1"
	srv, err := rpc.NewServer(r.tr, target, []rpc.Endpoint{{Receiver: svc}})
	if err != nil {
		r.t.Fatal(err)
	}
	if err := srv.Start(r.ctx); err != nil {
		r.t.Fatal(err)
	}
	c := r.client()
	const n = 4
	results := make(chan error, n)
	for range n {
		go func() { results <- c.Call(r.ctx, r.target, "sleep", map[string]int{"ms": 300}, nil) }()
	}
	for range n {
		select {
		case <-started:
		case <-r.ctx.Done():
			r.t.Fatal("calls did not start")
		}
	}
	if err := srv.Stop(r.ctx); err != nil {
		r.t.Fatalf("stop: %v", err)
	}
	for range n {
		if err := <-results; err != nil {
			r.t.Errorf("call in flight during Stop: %v", err)
		}
	}
}

// rpcCallMonitor: a server sends heartbeats while it works, so a call
// outlives its call-monitor timeout.
func rpcCallMonitor(e *env) {
	r := newRPCEnv(e)
	r.server("s1")
	c := r.client(rpc.WithTimeout(10*time.Second), rpc.WithCallMonitorTimeout(2*time.Second))
	var got string
	if err := c.Call(r.ctx, r.target, "sleep", map[string]int{"ms": 3000}, &got); err != nil || got != "slept" {
		r.t.Errorf("a 3s call with a 2s call monitor: %q, %v", got, err)
	}
}
