package rpc_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

// recordHandler keeps the records logged through it.
type recordHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}

func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

// unexposedMethods returns method: reason for each "endpoint method not
// exposed" warning.
func (h *recordHandler) unexposedMethods() map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	got := map[string]string{}
	for _, r := range h.records {
		if r.Message != "endpoint method not exposed" || r.Level != slog.LevelWarn {
			continue
		}
		var method, reason string
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "method":
				method = a.Value.String()
			case "reason":
				reason = a.Value.String()
			}
			return true
		})
		got[method] = reason
	}
	return got
}

// The endpoints of TestNewServerReportsUnexposed: each has Ok, which is
// exposed, and one method that cannot be.
type (
	noContext     struct{}
	contextSecond struct{}
	twoArgs       struct{}
	variadic      struct{}
	noError       struct{}
	errorFirst    struct{}
	threeResults  struct{}
	scalarArgs    struct{}
	channelResult struct{}
	pointerMethod struct{}
	pointerHelper struct{}
	interfaceArgs struct{}
)

func (noContext) Ok(ctx context.Context) error                  { return nil }
func (noContext) String() string                                { return "helper" }
func (contextSecond) Ok(ctx context.Context) error              { return nil }
func (contextSecond) Get(id string, ctx context.Context) error  { return nil }
func (twoArgs) Ok(ctx context.Context) error                    { return nil }
func (twoArgs) Move(ctx context.Context, from, to string) error { return nil }
func (variadic) Ok(ctx context.Context) error                   { return nil }
func (variadic) Log(ctx context.Context, lines ...string) error { return nil }
func (noError) Ok(ctx context.Context) error                    { return nil }
func (noError) Ping(ctx context.Context) string                 { return "pong" }
func (errorFirst) Ok(ctx context.Context) error                 { return nil }

//lint:ignore ST1008 the shape under test
func (errorFirst) Get(ctx context.Context) (error, string)                       { return nil, "" }
func (threeResults) Ok(ctx context.Context) error                                { return nil }
func (threeResults) Get(ctx context.Context) (string, int, error)                { return "", 0, nil }
func (scalarArgs) Ok(ctx context.Context) error                                  { return nil }
func (scalarArgs) Get(ctx context.Context, id string) (string, error)            { return id, nil }
func (channelResult) Ok(ctx context.Context) error                               { return nil }
func (channelResult) Watch(ctx context.Context) (chan string, error)             { return nil, nil }
func (pointerMethod) Ok(ctx context.Context) error                               { return nil }
func (*pointerMethod) Ping(ctx context.Context) (string, error)                  { return "pong", nil }
func (pointerHelper) Ok(ctx context.Context) error                               { return nil }
func (*pointerHelper) Reset()                                                    {}
func (interfaceArgs) Ok(ctx context.Context) error                               { return nil }
func (interfaceArgs) Put(ctx context.Context, v interface{ Valid() bool }) error { return nil }

// TestNewServerReportsUnexposed: NewServer logs a warning for each
// exported method it cannot expose, saying why, and still serves the
// others.
func TestNewServerReportsUnexposed(t *testing.T) {
	tests := []struct {
		name     string
		receiver any
		method   string
		reason   string // the warning's reason holds it
	}{
		{"no_context", noContext{}, "String", "its first parameter is not a context.Context"},
		{"context_second", contextSecond{}, "Get", "its first parameter is not a context.Context"},
		{"two_args", twoArgs{}, "Move", "it takes 2 parameters after the context; put the arguments in one struct"},
		{"variadic", variadic{}, "Log", "it is variadic"},
		{"no_error", noError{}, "Ping", "it does not return an error last"},
		{"error_first", errorFirst{}, "Get", "it does not return an error last"},
		{"three_results", threeResults{}, "Get", "it returns 3 results"},
		{"scalar_args", scalarArgs{}, "Get", "its arguments type string cannot hold keyword arguments, a JSON object"},
		{"interface_args", interfaceArgs{}, "Put", "cannot hold keyword arguments, a JSON object"},
		{"channel_result", channelResult{}, "Watch", "its result type chan string does not encode as JSON"},
		{"pointer_receiver_on_value", pointerMethod{}, "Ping",
			"it has a pointer receiver and the endpoint's Receiver is a rpc_test.pointerMethod value: register a pointer (&rpc_test.pointerMethod{})"},
		// A pointer method that could not be exposed anyway says why,
		// not "register a pointer".
		{"pointer_helper_on_value", pointerHelper{}, "Reset", "its first parameter is not a context.Context"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &recordHandler{}
			tr, err := transport.Open(context.Background(), "memory://"+strings.ReplaceAll(t.Name(), "/", "-"), transport.WithLogger(slog.New(logs)))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tr.Close() })
			startServer(t, tr, "ep", tt.receiver)
			got := logs.unexposedMethods()
			if len(got) != 1 || !strings.Contains(got[tt.method], tt.reason) {
				t.Fatalf("warnings %q, want one for %s saying %q", got, tt.method, tt.reason)
			}
			client := newClient(t, tr, rpc.WithTimeout(5*time.Second))
			if err := client.Call(testCtx(t), transport.Target{Topic: "ep"}, "ok", nil, nil); err != nil {
				t.Errorf("ok: %v", err)
			}
			err = client.Call(testCtx(t), transport.Target{Topic: "ep"}, tt.method, nil, nil)
			if !errors.Is(err, rpc.ErrNoSuchMethod) {
				t.Errorf("%s: got %v, want ErrNoSuchMethod", tt.method, err)
			}
		})
	}
}

// pinger has methods without arguments.
type pinger struct{ resets int }

func (p *pinger) Ping(ctx context.Context) (string, error) { return "pong", nil }

func (p *pinger) Reset(ctx context.Context) error {
	p.resets++
	return nil
}

// Close is exposed as well: the access policy keeps it out.
func (p *pinger) Close(ctx context.Context) error { return errors.New("must not be called remotely") }

// TestMethodWithoutArgs: a method taking only a context is exposed; the
// request's keyword arguments are ignored, as an Args struct ignores those
// it lacks.
func TestMethodWithoutArgs(t *testing.T) {
	logs := &recordHandler{}
	tr, err := transport.Open(context.Background(), "memory://"+strings.ReplaceAll(t.Name(), "/", "-"), transport.WithLogger(slog.New(logs)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	p := &pinger{}
	startServer(t, tr, "pinger", p, rpc.WithAccessPolicy(rpc.ExposeOnly("Ping", "Reset")))
	if got := logs.unexposedMethods(); len(got) != 0 {
		t.Errorf("warnings %q for a method the access policy excludes", got)
	}
	client := newClient(t, tr, rpc.WithTimeout(5*time.Second))
	target := transport.Target{Topic: "pinger"}
	var pong string
	if err := client.Call(testCtx(t), target, "ping", map[string]any{"ignored": 1}, &pong); err != nil || pong != "pong" {
		t.Errorf("ping: %q, %v", pong, err)
	}
	if err := client.Call(testCtx(t), target, "reset", nil, nil); err != nil || p.resets != 1 {
		t.Errorf("reset: %v, %d resets", err, p.resets)
	}
	if err := client.Call(testCtx(t), target, "close", nil, nil); !errors.Is(err, rpc.ErrNoSuchMethod) {
		t.Errorf("close: got %v, want ErrNoSuchMethod", err)
	}
}

type onlyHelpers struct{}

func (onlyHelpers) String() string                            { return "helpers" }
func (*onlyHelpers) Ping(ctx context.Context) (string, error) { return "pong", nil }

// noMethods has no exported method.
type noMethods struct{}

// TestNewServerRejects: an endpoint exposing nothing, or Names mapping to
// a method that is not exposed, fails NewServer with the reasons.
func TestNewServerRejects(t *testing.T) {
	tests := []struct {
		name     string
		endpoint rpc.Endpoint
		opts     []rpc.ServerOption
		want     []string
	}{
		{"nothing_exposed", rpc.Endpoint{Receiver: onlyHelpers{}}, nil, []string{
			"endpoint rpc_test.onlyHelpers exposes no method",
			"Ping: it has a pointer receiver and the endpoint's Receiver is a rpc_test.onlyHelpers value: register a pointer",
			"String: its first parameter is not a context.Context"}},
		{"no_exported_method", rpc.Endpoint{Receiver: noMethods{}}, nil, []string{
			"endpoint rpc_test.noMethods exposes no method: it has no exported method the access policy allows"}},
		{"policy_allows_none", rpc.Endpoint{Receiver: &pinger{}}, []rpc.ServerOption{rpc.WithAccessPolicy(rpc.ExposeOnly("Other"))}, []string{
			"exposes no method: it has no exported method the access policy allows"}},
		{"names_unexposable", rpc.Endpoint{Receiver: &noError{}, Names: map[string]string{"ping_me": "Ping"}}, nil, []string{
			`Names maps "ping_me" to Ping, which cannot be exposed: it does not return an error last`}},
		{"names_missing", rpc.Endpoint{Receiver: &pinger{}, Names: map[string]string{"x": "Missing"}}, nil, []string{
			`Names maps "x" to Missing, which is not an exported method`}},
		{"names_excluded", rpc.Endpoint{Receiver: &pinger{}, Names: map[string]string{"shut": "Close"}},
			[]rpc.ServerOption{rpc.WithAccessPolicy(rpc.ExposeOnly("Ping"))}, []string{
				`Names maps "shut" to Close, which the access policy does not allow`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := rpc.NewServer(open(t), transport.Target{Topic: "ep", Server: "s1"}, []rpc.Endpoint{tt.endpoint}, tt.opts...)
			if srv != nil || !errors.Is(err, transport.ErrInvalid) {
				t.Fatalf("got %v, %v; want an ErrInvalid", srv, err)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}
