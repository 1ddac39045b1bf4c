package interop

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/internal/brokertest"
	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

// TestGoClientPythonServer: a Go rpc.Client calls and casts to oslo.messaging
// RPC servers. Three Python servers serve one topic, as py1, py2 and py3.
func TestGoClientPythonServer(t *testing.T) {
	t.Parallel()
	forEachStack(t, func(t *testing.T, stack brokertest.Stack) {
		e := newEnv(t, stack)
		topic := uniqueName("go_py")
		servers := []string{"py1", "py2", "py3"}
		for _, name := range servers {
			e.startPyServer(t, topic, topic, name)
		}
		client, err := rpc.NewClient(e.tr, rpc.WithTimeout(20*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = client.Close() })
		target := transport.Target{Topic: topic}

		t.Run("call_echo_every_json_type", func(t *testing.T) {
			for _, v := range jsonValues {
				t.Run(v.name, func(t *testing.T) {
					ctx := testContext(t)
					var out struct {
						Value json.RawMessage `json:"value"`
						Type  string          `json:"type"`
						Same  bool            `json:"same"`
					}
					// raw lets Python check the value arrived with its exact
					// types; the reply shows it came back intact too.
					if err := client.Call(ctx, target, "echo", map[string]any{"value": json.RawMessage(v.raw), "raw": v.raw}, &out); err != nil {
						t.Fatal(err)
					}
					if !out.Same || out.Type != v.pyType {
						t.Fatalf("Python received a %s that is not what %s means (same=%v)", out.Type, v.raw, out.Same)
					}
					if !sameJSON(t, []byte(v.raw), out.Value) {
						t.Fatalf("sent %s, got back %s", v.raw, out.Value)
					}
				})
			}
		})

		t.Run("cast", func(t *testing.T) {
			ctx := testContext(t)
			token := uniqueName("cast")
			before := len(e.peer.Events(topic))
			if err := client.Cast(ctx, target, "record", map[string]any{"token": token}); err != nil {
				t.Fatal(err)
			}
			got, err := e.peer.WaitEvents(ctx, topic, before+1)
			if err != nil {
				t.Fatal(err)
			}
			var r recorded
			if err := json.Unmarshal(got[before], &r); err != nil || r.Token != token {
				t.Fatalf("recorded %s (%v), want token %s", got[before], err, token)
			}
		})

		t.Run("fanout_cast_reaches_three_python_servers", func(t *testing.T) {
			ctx := testContext(t)
			token := uniqueName("fanout")
			before := len(e.peer.Events(topic))
			if err := client.Prepare(rpc.WithFanout(true)).Cast(ctx, target, "record", map[string]any{"token": token}); err != nil {
				t.Fatal(err)
			}
			got, err := e.peer.WaitEvents(ctx, topic, before+len(servers))
			if err != nil {
				t.Fatal(err)
			}
			var reached []string
			for _, raw := range got[before:] {
				var r recorded
				if err := json.Unmarshal(raw, &r); err != nil || r.Token != token {
					t.Fatalf("unexpected record %s", raw)
				}
				reached = append(reached, r.Server)
			}
			slices.Sort(reached)
			if !slices.Equal(reached, servers) {
				t.Fatalf("the fanout cast reached %v, want each of %v once", reached, servers)
			}
		})

		t.Run("call_named_server", func(t *testing.T) {
			ctx := testContext(t)
			named := client.Prepare(rpc.WithServer("py2"))
			for range 6 {
				var who string
				if err := named.Call(ctx, target, "whoami", nil, &who); err != nil {
					t.Fatal(err)
				}
				if who != "py2" {
					t.Fatalf("a call to server py2 was answered by %s", who)
				}
			}
		})

		t.Run("python_exception_is_remote_error", func(t *testing.T) {
			ctx := testContext(t)
			err := client.Call(ctx, target, "fail", map[string]any{"message": "over quota"}, nil)
			var re *rpc.RemoteError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not a *rpc.RemoteError", err)
			}
			if re.Class != "QuotaExceeded" || re.Module != "peer_errors" || re.Message != "over quota" {
				t.Fatalf("remote error %s.%s %q, want peer_errors.QuotaExceeded \"over quota\"", re.Module, re.Class, re.Message)
			}
			if len(re.Traceback) < 2 || re.Traceback[0] != "Traceback (most recent call last):\n" ||
				re.Traceback[len(re.Traceback)-1] != "peer_errors.QuotaExceeded: over quota\n" ||
				!strings.Contains(strings.Join(re.Traceback, ""), "in fail") {
				t.Fatalf("traceback is not Python's: %q", re.Traceback)
			}
			// The shape check that Go's tracebacks pass accepts Python's own.
			if err := pythonShapeError(re.Traceback); err != nil {
				t.Fatal(err)
			}
			// QuotaExceeded(message, code=42, limits={...}): args and kwargs
			// reach Go decoded, numbers as json.Number.
			wantKwargs := map[string]any{"code": json.Number("42"),
				"limits": map[string]any{"cores": json.Number("8"), "ram_gb": json.Number("2.5")}}
			if !reflect.DeepEqual(re.Args, []any{"over quota"}) || !reflect.DeepEqual(re.Kwargs, wantKwargs) {
				t.Fatalf("args %#v and kwargs %#v, want [\"over quota\"] and %#v", re.Args, re.Kwargs, wantKwargs)
			}
		})

		t.Run("python_exception_kwargs", func(t *testing.T) {
			// InstanceNotFound(instance_id=...) makes its message from its
			// kwargs, as nova's exceptions do.
			ctx := testContext(t)
			err := client.Call(ctx, target, "fail_not_found", map[string]any{"instance_id": "i-1"}, nil)
			var re *rpc.RemoteError
			if !errors.As(err, &re) || re.Module != "peer_errors" || re.Class != "InstanceNotFound" {
				t.Fatalf("error %v, want peer_errors.InstanceNotFound", err)
			}
			const msg = "Instance i-1 could not be found."
			if re.Message != msg || !reflect.DeepEqual(re.Args, []any{msg}) || !reflect.DeepEqual(re.Kwargs, map[string]any{"instance_id": "i-1"}) {
				t.Fatalf("message %q, args %#v, kwargs %#v; want %q, [%[4]q], instance_id i-1", re.Message, re.Args, re.Kwargs, msg)
			}
		})

		t.Run("python_exception_registered", func(t *testing.T) {
			// A client registering peer_errors' classes gets the Go errors
			// back from the Python exceptions, the *RemoteError beside them.
			regClient, err := rpc.NewClient(e.tr, rpc.WithTimeout(20*time.Second), rpc.WithErrors(peerErrors(t)))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = regClient.Close() })
			err = regClient.Call(testContext(t), target, "fail", map[string]any{"message": "over quota"}, nil)
			var quota *quotaExceeded
			if !errors.As(err, &quota) {
				t.Fatalf("errors.As(%v, *quotaExceeded) is false", err)
			}
			wantLimits := map[string]json.Number{"cores": "8", "ram_gb": "2.5"}
			if quota.Code != 42 || !reflect.DeepEqual(quota.Limits, wantLimits) {
				t.Fatalf("rebuilt %+v, want code 42 and limits %v", *quota, wantLimits)
			}
			var re *rpc.RemoteError
			if !errors.As(err, &re) || re.Module != "peer_errors" || re.Class != "QuotaExceeded" || pythonShapeError(re.Traceback) != nil {
				t.Fatalf("error %v does not hold the remote peer_errors.QuotaExceeded with its Python traceback", err)
			}
			err = regClient.Call(testContext(t), target, "fail_not_found", map[string]any{"instance_id": "i-1"}, nil)
			if !errors.Is(err, errInstanceNotFound) {
				t.Fatalf("errors.Is(%v, errInstanceNotFound) is false", err)
			}
		})

		t.Run("null_result_sets_nil", func(t *testing.T) {
			// The Python method returns None: an any, a map or a pointer
			// becomes nil, an int keeps its value, as encoding/json decodes
			// null.
			ctx := testContext(t)
			var v any = "previous"
			m := map[string]any{"k": "previous"}
			p := new(int)
			n := 7
			for _, result := range []any{&v, &m, &p, &n} {
				if err := client.Call(ctx, target, "nothing", nil, result); err != nil {
					t.Fatal(err)
				}
			}
			if v != nil || m != nil || p != nil || n != 7 {
				t.Fatalf("after None: any %#v, map %#v, pointer %v, int %d; want nil, nil, nil, 7", v, m, p, n)
			}
		})

		t.Run("python_value_error", func(t *testing.T) {
			ctx := testContext(t)
			err := client.Call(ctx, target, "fail_value", map[string]any{"message": "bad size"}, nil)
			var re *rpc.RemoteError
			if !errors.As(err, &re) || re.Class != "ValueError" || re.Module != "builtins" || re.Message != "bad size" {
				t.Fatalf("error %#v, want builtins.ValueError \"bad size\"", err)
			}
			if last := re.Traceback[len(re.Traceback)-1]; last != "ValueError: bad size\n" {
				t.Fatalf("traceback ends with %q", last)
			}
		})

		t.Run("no_such_method", func(t *testing.T) {
			ctx := testContext(t)
			err := client.Call(ctx, target, "no_such_method", nil, nil)
			var re *rpc.RemoteError
			if !errors.Is(err, rpc.ErrNoSuchMethod) || !errors.As(err, &re) ||
				re.Message != "Endpoint does not support RPC method no_such_method" {
				t.Fatalf("error %v, want NoSuchMethod", err)
			}
		})

		t.Run("unsupported_version", func(t *testing.T) {
			for _, version := range []string{"2.0", "1.4"} {
				t.Run(version, func(t *testing.T) {
					ctx := testContext(t)
					err := client.Prepare(rpc.WithVersion(version)).Call(ctx, target, "echo", map[string]any{"value": 1}, nil)
					var re *rpc.RemoteError
					if !errors.Is(err, rpc.ErrUnsupportedVersion) || !errors.As(err, &re) ||
						re.Message != "Endpoint does not support RPC version "+version+". Attempted method: echo" {
						t.Fatalf("error %v, want UnsupportedVersion", err)
					}
				})
			}
			if err := client.Prepare(rpc.WithVersion("1.2")).Call(testContext(t), target, "echo", map[string]any{"value": 1}, nil); err != nil {
				t.Fatalf("version 1.2 on a 1.3 server: %v", err)
			}
		})

		t.Run("go_timeout_then_python_keeps_serving", func(t *testing.T) {
			ctx := testContext(t)
			start := time.Now()
			err := client.Prepare(rpc.WithTimeout(time.Second)).Call(ctx, target, "sleep", map[string]any{"seconds": 3}, nil)
			if !isTimeout(err) {
				t.Fatalf("error %v, want transport.ErrTimeout", err)
			}
			if elapsed := time.Since(start); elapsed > 2900*time.Millisecond {
				t.Fatalf("the call timed out after %v, want about 1s (before the handler's 3s)", elapsed)
			}
			var out struct {
				Value string `json:"value"`
			}
			if err := client.Call(ctx, target, "echo", map[string]any{"value": "still here"}, &out); err != nil || out.Value != "still here" {
				t.Fatalf("after the timeout, echo returned %+v, %v", out, err)
			}
		})

		t.Run("request_context_reaches_python", func(t *testing.T) {
			rc := rpc.RequestContext{
				"request_id": "req-6c0f7a4e-0d4b-4c52-9f7e-1b2a3c4d5e6f", "user": "alice", "project": "demo",
				"roles": []any{"reader", "member"}, "is_admin": false, "user_id": "u-1", "project_id": "p-1",
				"extra": map[string]any{"nested": []any{json.Number("1"), "x", nil}},
			}
			ctx := rpc.WithRequestContext(testContext(t), rc)
			var got map[string]json.RawMessage
			if err := client.Call(ctx, target, "context", nil, &got); err != nil {
				t.Fatal(err)
			}
			// Python's ctxt also has client_timeout (the request's _timeout),
			// which never travels.
			if string(got["client_timeout"]) != "null" {
				t.Errorf("client_timeout = %s, want null", got["client_timeout"])
			}
			delete(got, "client_timeout")
			sent, _ := json.Marshal(rc)
			back, _ := json.Marshal(got)
			if !sameJSON(t, sent, back) {
				t.Fatalf("Python's ctxt is %s, Go sent %s", back, sent)
			}
		})

		t.Run("call_monitor_heartbeats_keep_call_alive", func(t *testing.T) {
			ctx := testContext(t)
			start := time.Now()
			var out string
			err := client.Prepare(rpc.WithCallMonitorTimeout(2*time.Second), rpc.WithTimeout(20*time.Second)).
				Call(ctx, target, "sleep", map[string]any{"seconds": 4}, &out)
			if err != nil || out != "slept 4" {
				t.Fatalf("call = %q, %v; want the Python server's heartbeats to keep it alive", out, err)
			}
			if elapsed := time.Since(start); elapsed < 4*time.Second {
				t.Fatalf("the call took %v, less than the handler's 4s", elapsed)
			}
		})

		t.Run("queues_follow_the_stack_options", func(t *testing.T) {
			checkStackQueues(t, e, topic, servers, filepath.Base(os.Args[0]))
		})
	})
}
