package interop

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/internal/brokertest"
	"github.com/switchyard-mq/switchyard/rpc"
)

// TestPythonClientGoServer: an oslo.messaging RPCClient calls and casts to
// Go servers. Three Go servers serve one topic, as s1, s2 and s3.
func TestPythonClientGoServer(t *testing.T) {
	t.Parallel()
	forEachStack(t, func(t *testing.T, stack brokertest.Stack) {
		e := newEnv(t, stack)
		topic := uniqueName("py_go")
		events := newEventLog()
		servers := []string{"s1", "s2", "s3"}
		for _, name := range servers {
			startGoServer(t, e.tr, topic, name, events)
		}

		t.Run("call_echo_every_json_type", func(t *testing.T) {
			for _, v := range jsonValues {
				t.Run(v.name, func(t *testing.T) {
					ctx := testContext(t)
					// Python compares what came back with what it sent, types
					// included (2.0 stays a float, 2**63-1 an exact int).
					out := e.call(ctx, t, topic, "echo", map[string]any{"value": json.RawMessage(v.raw)},
						map[string]any{"expect": json.RawMessage(v.raw)}).mustSucceed(t)
					if out.Same == nil || !*out.Same {
						t.Fatalf("Python sent %s and got back %s", v.raw, out.Result)
					}
				})
			}
		})

		t.Run("cast", func(t *testing.T) {
			ctx := testContext(t)
			token := uniqueName("cast")
			before := len(events.get("record"))
			if err := e.peer.Do(ctx, "cast", map[string]any{"topic": topic, "method": "record", "args": map[string]any{"token": token}}, nil); err != nil {
				t.Fatal(err)
			}
			got, err := events.wait(ctx, "record", before+1)
			if err != nil {
				t.Fatal(err)
			}
			if r := got[before].(recorded); r.Token != token {
				t.Fatalf("recorded %+v, want token %s", r, token)
			}
		})

		t.Run("fanout_cast_reaches_three_go_servers", func(t *testing.T) {
			ctx := testContext(t)
			token := uniqueName("fanout")
			before := len(events.get("record"))
			if err := e.peer.Do(ctx, "cast", map[string]any{"topic": topic, "fanout": true, "method": "record",
				"args": map[string]any{"token": token}}, nil); err != nil {
				t.Fatal(err)
			}
			got, err := events.wait(ctx, "record", before+len(servers))
			if err != nil {
				t.Fatal(err)
			}
			var reached []string
			for _, ev := range got[before:] {
				r := ev.(recorded)
				if r.Token != token {
					t.Fatalf("unexpected record %+v", r)
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
			for range 6 {
				out := e.call(ctx, t, topic, "whoami", nil, map[string]any{"server": "s2"}).mustSucceed(t)
				if string(out.Result) != `"s2"` {
					t.Fatalf("a call to server s2 was answered by %s", out.Result)
				}
			}
		})

		t.Run("go_error_is_remote_error", func(t *testing.T) {
			ctx := testContext(t)
			r := e.call(ctx, t, topic, "fail", map[string]any{"message": "over quota: 3 > 2"}, nil).mustRaise(t)
			if !r.IsRemote || r.Class != "RemoteError" || r.Module != "oslo_messaging.rpc.client" {
				t.Fatalf("raised %s.%s, want oslo_messaging.RemoteError", r.Module, r.Class)
			}
			if r.ExcType == nil || *r.ExcType != "QuotaError" {
				t.Fatalf("exc_type %v, want QuotaError", r.ExcType)
			}
			if r.Value == nil || *r.Value != "handling fail: over quota: 3 > 2" {
				t.Fatalf("value %v, want the Go error's message", r.Value)
			}
			// Python's shape, the Go chain as causes: the wrapped QuotaError,
			// then the error the method returned, raised in the method.
			if err := pythonShapeError(r.Traceback); err != nil {
				t.Fatal(err)
			}
			const pkg = "github.com/switchyard-mq/switchyard/internal/interop"
			tb := r.Traceback
			if len(tb) != 5 || tb[0] != pkg+".QuotaError: over quota: 3 > 2\n" || tb[1] != tbSeparator || tb[2] != tbHeader ||
				!strings.HasSuffix(tb[3], ", in "+pkg+".(*service).Fail\n") || !strings.Contains(tb[3], "/internal/interop/helpers_test.go\", line ") ||
				tb[4] != pkg+".QuotaError: handling fail: over quota: 3 > 2\n" {
				t.Fatalf("traceback %q does not show the Go error chain as Python's causes", tb)
			}
			if !strings.Contains(r.Str, "Remote error: QuotaError handling fail: over quota") || !strings.Contains(r.Str, "Traceback (most recent call last):") {
				t.Fatalf("str() = %q", r.Str)
			}
		})

		t.Run("go_raises_python_class_with_kwargs", func(t *testing.T) {
			quota := map[string]any{"module": "peer_errors", "class": "QuotaExceeded", "message": "over quota",
				"kwargs": map[string]any{"code": 42, "limits": map[string]any{"cores": 8, "ram_gb": json.Number("2.5")}}}
			tests := []struct {
				name   string
				exmods []string
				raise  map[string]any
				check  func(t *testing.T, r *raised)
			}{
				{"rebuilt", []string{"peer_errors"}, quota, func(t *testing.T, r *raised) {
					// QuotaExceeded("over quota", code=42, limits=...), as
					// oslo rebuilds it: a subclass named *_Remote whose str()
					// is the message and the traceback.
					if r.Class != "QuotaExceeded_Remote" || r.Module != "peer_errors_Remote" || !slices.Contains(r.MRO, "peer_errors.QuotaExceeded") {
						t.Fatalf("raised %s.%s (%v), want a rebuilt peer_errors.QuotaExceeded", r.Module, r.Class, r.MRO)
					}
					checkJSON(t, "args", r.ArgsJSON, `["over quota"]`)
					checkJSON(t, "kwargs", r.Kwargs, `{"code": 42, "limits": {"cores": 8, "ram_gb": 2.5}}`)
					if !strings.HasPrefix(r.Str, "over quota\n") || !strings.Contains(r.Str, "peer_errors.QuotaExceeded: over quota\n") {
						t.Fatalf("str() = %q, want the message, then the traceback", r.Str)
					}
				}},
				{"message_made_from_kwargs", []string{"peer_errors"},
					map[string]any{"module": "peer_errors", "class": "InstanceNotFound", "message": "Instance i-1 could not be found.",
						"args": []any{}, "kwargs": map[string]any{"instance_id": "i-1"}},
					func(t *testing.T, r *raised) {
						// No args: InstanceNotFound(instance_id="i-1") made
						// its message from the kwargs.
						if r.Class != "InstanceNotFound_Remote" || !slices.Contains(r.MRO, "peer_errors.InstanceNotFound") {
							t.Fatalf("raised %s.%s, want a rebuilt peer_errors.InstanceNotFound", r.Module, r.Class)
						}
						checkJSON(t, "args", r.ArgsJSON, `["Instance i-1 could not be found."]`)
						checkJSON(t, "kwargs", r.Kwargs, `{"instance_id": "i-1"}`)
					}},
				{"module_not_allowed", nil, quota, func(t *testing.T, r *raised) {
					if !r.IsRemote || r.ExcType == nil || *r.ExcType != "QuotaExceeded" || r.Value == nil || *r.Value != "over quota" {
						t.Fatalf("raised %s.%s (exc_type %v), want RemoteError QuotaExceeded", r.Module, r.Class, r.ExcType)
					}
				}},
				{"builtin_refuses_kwargs", nil,
					map[string]any{"module": "builtins", "class": "ValueError", "message": "bad size", "kwargs": map[string]any{"code": 1}},
					func(t *testing.T, r *raised) {
						// ValueError(**kwargs) is a TypeError in Python: oslo
						// falls back to RemoteError.
						if !r.IsRemote || r.IsValueError || r.ExcType == nil || *r.ExcType != "ValueError" {
							t.Fatalf("raised %s.%s (exc_type %v), want RemoteError ValueError", r.Module, r.Class, r.ExcType)
						}
					}},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					fields := map[string]any{}
					if tt.exmods != nil {
						fields["allowed_remote_exmods"] = tt.exmods
					}
					tt.check(t, e.call(testContext(t), t, topic, "raise", tt.raise, fields).mustRaise(t))
				})
			}
		})

		t.Run("go_registered_error", func(t *testing.T) {
			// A Go server registering its error type as
			// peer_errors.QuotaExceeded sends what a Python server raising
			// QuotaExceeded(message, code=42, limits=...) sends.
			regTopic := uniqueName("py_go_reg")
			startGoServer(t, e.tr, regTopic, "r1", newEventLog(), rpc.WithServerErrors(peerErrors(t)))
			const msg = "handling: over quota"
			t.Run("rebuilt", func(t *testing.T) {
				r := e.call(testContext(t), t, regTopic, "fail_registered", map[string]any{"message": "over quota"},
					map[string]any{"allowed_remote_exmods": []string{"peer_errors"}}).mustRaise(t)
				if r.Class != "QuotaExceeded_Remote" || !slices.Contains(r.MRO, "peer_errors.QuotaExceeded") {
					t.Fatalf("raised %s.%s (%v), want a rebuilt peer_errors.QuotaExceeded", r.Module, r.Class, r.MRO)
				}
				checkJSON(t, "args", r.ArgsJSON, `["`+msg+`"]`)
				checkJSON(t, "kwargs", r.Kwargs, `{"code": 42, "limits": {"cores": 8, "ram_gb": 2.5}}`)
				// str() is the message, then the remote traceback naming
				// the registered class.
				if !strings.HasPrefix(r.Str, msg+"\n") || !strings.Contains(r.Str, "peer_errors.QuotaExceeded: "+msg+"\n") {
					t.Fatalf("str() = %q, want the message, then the traceback", r.Str)
				}
			})
			t.Run("module_not_allowed", func(t *testing.T) {
				r := e.call(testContext(t), t, regTopic, "fail_registered", map[string]any{"message": "over quota"}, nil).mustRaise(t)
				if !r.IsRemote || r.ExcType == nil || *r.ExcType != "QuotaExceeded" || r.Value == nil || *r.Value != msg {
					t.Fatalf("raised %s.%s (exc_type %v, value %v), want RemoteError QuotaExceeded", r.Module, r.Class, r.ExcType, r.Value)
				}
			})
		})

		t.Run("go_panic_traceback", func(t *testing.T) {
			r := e.call(testContext(t), t, topic, "explode", map[string]any{"message": "kaboom"}, nil).mustRaise(t)
			if !r.IsRemote || r.ExcType == nil || *r.ExcType != "Panic" {
				t.Fatalf("raised %s.%s (exc_type %v), want RemoteError Panic", r.Module, r.Class, r.ExcType)
			}
			if err := pythonShapeError(r.Traceback); err != nil {
				t.Fatal(err)
			}
			tb := r.Traceback
			if last := len(tb) - 1; tb[last] != "go.Panic: Explode panicked: kaboom\n" ||
				!strings.HasSuffix(tb[last-1], ", in github.com/switchyard-mq/switchyard/internal/interop.(*service).Explode\n") {
				t.Fatalf("traceback %q does not end in Explode's frame and the panic", tb)
			}
		})

		t.Run("go_error_reraised_as_value_error", func(t *testing.T) {
			ctx := testContext(t)
			r := e.call(ctx, t, topic, "fail_value", map[string]any{"message": "bad size"}, nil).mustRaise(t)
			if r.Class != "ValueError" || r.Module != "builtins" || !r.IsValueError || r.IsRemote {
				t.Fatalf("raised %s.%s, want builtins.ValueError", r.Module, r.Class)
			}
			if !strings.HasPrefix(r.Str, "bad size\n") {
				t.Fatalf("str() = %q, want the message then the traceback", r.Str)
			}
		})

		t.Run("no_such_method", func(t *testing.T) {
			ctx := testContext(t)
			r := e.call(ctx, t, topic, "no_such_method", nil, nil).mustRaise(t)
			if !r.IsRemote || r.ExcType == nil || *r.ExcType != "NoSuchMethod" {
				t.Fatalf("raised %s.%s (exc_type %v), want RemoteError NoSuchMethod", r.Module, r.Class, r.ExcType)
			}
			if *r.Value != "Endpoint does not support RPC method no_such_method" {
				t.Fatalf("value %q", *r.Value)
			}
		})

		t.Run("unsupported_version", func(t *testing.T) {
			for _, version := range []string{"2.0", "1.4"} {
				t.Run(version, func(t *testing.T) {
					ctx := testContext(t)
					r := e.call(ctx, t, topic, "echo", map[string]any{"value": 1}, map[string]any{"version": version}).mustRaise(t)
					if !r.IsRemote || r.ExcType == nil || *r.ExcType != "UnsupportedVersion" {
						t.Fatalf("raised %s.%s (exc_type %v), want RemoteError UnsupportedVersion", r.Module, r.Class, r.ExcType)
					}
					if want := "Endpoint does not support RPC version " + version + ". Attempted method: echo"; *r.Value != want {
						t.Fatalf("value %q, want %q", *r.Value, want)
					}
				})
			}
			ctx := testContext(t)
			e.call(ctx, t, topic, "echo", map[string]any{"value": 1}, map[string]any{"version": "1.2"}).mustSucceed(t)
		})

		t.Run("python_timeout_then_go_keeps_serving", func(t *testing.T) {
			ctx := testContext(t)
			r := e.call(ctx, t, topic, "sleep", map[string]any{"seconds": 3}, map[string]any{"timeout": 1}).mustRaise(t)
			if !r.IsTimeout || r.Class != "MessagingTimeout" {
				t.Fatalf("raised %s.%s: %s, want MessagingTimeout", r.Module, r.Class, r.Str)
			}
			out := e.call(ctx, t, topic, "echo", map[string]any{"value": "still here"}, nil).mustSucceed(t)
			if string(out.Result) != `"still here"` {
				t.Fatalf("after the timeout, echo returned %s", out.Result)
			}
		})

		t.Run("request_context_reaches_go_handler", func(t *testing.T) {
			ctx := testContext(t)
			ctxt := map[string]any{
				"request_id": "req-6c0f7a4e-0d4b-4c52-9f7e-1b2a3c4d5e6f", "user": "alice", "project": "demo",
				"roles": []string{"reader", "member"}, "is_admin": false, "user_id": "u-1", "project_id": "p-1",
				"extra": map[string]any{"nested": []any{1, "x", nil}},
			}
			before := len(events.get("context"))
			out := e.call(ctx, t, topic, "context", nil, map[string]any{"ctxt": ctxt}).mustSucceed(t)
			got, err := events.wait(ctx, "context", before+1)
			if err != nil {
				t.Fatal(err)
			}
			sent, _ := json.Marshal(ctxt)
			inHandler, _ := json.Marshal(got[before])
			if !sameJSON(t, sent, inHandler) {
				t.Fatalf("the Go handler saw context %s, Python sent %s", inHandler, sent)
			}
			if !sameJSON(t, sent, out.Result) {
				t.Fatalf("the context came back as %s, Python sent %s", out.Result, sent)
			}
		})

		t.Run("call_monitor_heartbeats_keep_call_alive", func(t *testing.T) {
			ctx := testContext(t)
			// The handler takes 4 s; without the Go server's heartbeats (every
			// second for call_monitor_timeout 2) the call would fail at 2 s.
			out := e.call(ctx, t, topic, "sleep", map[string]any{"seconds": 4},
				map[string]any{"timeout": 20, "call_monitor_timeout": 2}).mustSucceed(t)
			if string(out.Result) != `"slept 4"` {
				t.Fatalf("result %s", out.Result)
			}
			if out.Elapsed < 4 {
				t.Fatalf("the call took %.2fs, less than the handler's 4s", out.Elapsed)
			}
		})

		t.Run("call_monitor_without_heartbeats_times_out", func(t *testing.T) {
			// The control for the case above: a call_monitor_timeout shorter
			// than 2 s gets no heartbeats (oslo's rule), so Python gives up
			// at the monitor timeout, not the overall one.
			ctx := testContext(t)
			start := time.Now()
			r := e.call(ctx, t, topic, "sleep", map[string]any{"seconds": 3},
				map[string]any{"timeout": 20, "call_monitor_timeout": 1}).mustRaise(t)
			if !r.IsTimeout {
				t.Fatalf("raised %s.%s: %s, want MessagingTimeout", r.Module, r.Class, r.Str)
			}
			if elapsed := time.Since(start); elapsed > 10*time.Second {
				t.Fatalf("the call took %v: the monitor timeout did not apply", elapsed)
			}
		})

		t.Run("queues_follow_the_stack_options", func(t *testing.T) {
			checkStackQueues(t, e, topic, servers, "peer.py")
		})
	})
}
