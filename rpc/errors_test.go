package rpc_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

// failer's methods fail as a test asks.
type failer struct{ errs map[string]error }

type nameArgs struct {
	Name string `json:"name"`
}

// Raise returns the error named in the request.
func (f *failer) Raise(ctx context.Context, args nameArgs) error { return f.errs[args.Name] }

// Explode panics, one call below the method.
func (f *failer) Explode(ctx context.Context, args nameArgs) error {
	explode(args.Name)
	return nil
}

func explode(name string) {
	if name == "error" {
		panic(fmt.Errorf("exploding: %w", fs.ErrClosed))
	}
	panic("kaboom")
}

// Nothing returns a nil result: null on the wire.
func (f *failer) Nothing(ctx context.Context, _ struct{}) (any, error) { return nil, nil }

// Done returns only an error, so its reply's result is null.
func (f *failer) Done(ctx context.Context, _ struct{}) error { return nil }

// quotaError is an endpoint's own error type.
type quotaError struct{ limit int }

func (e *quotaError) Error() string { return fmt.Sprintf("over quota (limit %d)", e.limit) }

func startFailer(t *testing.T, errs map[string]error) (*rpc.Client, transport.Target) {
	t.Helper()
	tr := open(t)
	startServer(t, tr, "failer", &failer{errs: errs})
	return newClient(t, tr, rpc.WithTimeout(5*time.Second)), transport.Target{Topic: "failer"}
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestRemoteErrorArgsAndKwargs: the args and kwargs an endpoint raises
// with reach a Go caller decoded, numbers as json.Number.
func TestRemoteErrorArgsAndKwargs(t *testing.T) {
	tests := []struct {
		name       string
		raise      error
		wantArgs   []any
		wantKwargs map[string]any
	}{
		{"default_args_are_the_message",
			&rpc.RemoteError{Module: "svc.errors", Class: "QuotaExceeded", Message: "over quota"},
			[]any{"over quota"}, nil},
		{"kwargs",
			&rpc.RemoteError{Module: "svc.errors", Class: "QuotaExceeded", Message: "over quota",
				Kwargs: map[string]any{"code": 42, "ratio": json.Number("2.0"), "limits": map[string]any{"cores": 8}, "none": nil}},
			[]any{"over quota"},
			map[string]any{"code": json.Number("42"), "ratio": json.Number("2.0"), "limits": map[string]any{"cores": json.Number("8")}, "none": nil}},
		{"no_args",
			&rpc.RemoteError{Module: "svc.errors", Class: "InstanceNotFound", Message: "Instance i-1 could not be found.",
				Args: []any{}, Kwargs: map[string]any{"instance_id": "i-1"}},
			[]any{}, map[string]any{"instance_id": "i-1"}},
		{"several_args",
			&rpc.RemoteError{Module: "svc.errors", Class: "Conflict", Message: "conflict", Args: []any{"conflict", 409, true}},
			[]any{"conflict", json.Number("409"), true}, nil},
		{"wrapped",
			fmt.Errorf("proxying: %w", &rpc.RemoteError{Module: "svc.errors", Class: "Gone", Message: "gone",
				Kwargs: map[string]any{"id": "x"}}),
			[]any{"gone"}, map[string]any{"id": "x"}},
		{"go_error",
			fmt.Errorf("checking: %w", &quotaError{limit: 2}),
			[]any{"checking: over quota (limit 2)"}, nil},
	}
	errs := map[string]error{}
	for _, tt := range tests {
		errs[tt.name] = tt.raise
	}
	client, target := startFailer(t, errs)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := client.Call(testCtx(t), target, "raise", nameArgs{tt.name}, nil)
			var re *rpc.RemoteError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not a *rpc.RemoteError", err)
			}
			if !reflect.DeepEqual(re.Args, tt.wantArgs) {
				t.Errorf("Args = %#v, want %#v", re.Args, tt.wantArgs)
			}
			if !reflect.DeepEqual(re.Kwargs, tt.wantKwargs) {
				t.Errorf("Kwargs = %#v, want %#v", re.Kwargs, tt.wantKwargs)
			}
		})
	}
}

// TestRemoteErrorNotEncodable: args or kwargs that JSON cannot hold make
// the failure a TypeError that says so, rather than a broken reply.
func TestRemoteErrorNotEncodable(t *testing.T) {
	tests := []struct {
		name  string
		raise *rpc.RemoteError
		want  string
	}{
		{"kwarg", &rpc.RemoteError{Module: "m", Class: "E", Message: "x", Kwargs: map[string]any{"ch": make(chan int)}}, `kwarg "ch"`},
		{"arg", &rpc.RemoteError{Module: "m", Class: "E", Message: "x", Args: []any{func() {}}}, "arg 0"},
	}
	errs := map[string]error{}
	for _, tt := range tests {
		errs[tt.name] = tt.raise
	}
	client, target := startFailer(t, errs)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := client.Call(testCtx(t), target, "raise", nameArgs{tt.name}, nil)
			var re *rpc.RemoteError
			if !errors.As(err, &re) || re.Class != "TypeError" || re.Module != "builtins" || !strings.Contains(re.Message, tt.want) {
				t.Fatalf("error %#v, want a builtins.TypeError naming %s", err, tt.want)
			}
		})
	}
}

// pythonFrame is a frame line of a Python traceback, with or without the
// source line (and, from Python 3.11, the line of carets under the part
// that failed).
var pythonFrame = regexp.MustCompile(`^  File "[^"\n]+", line [0-9]+, in [^\n]+\n(    [^\n]*\n(    [ ~^]+\n)?)?$`)

const (
	header    = "Traceback (most recent call last):\n"
	separator = "\nThe above exception was the direct cause of the following exception:\n\n"
)

// checkPythonShape fails t unless tb has the shape of Python's
// traceback.format_exception (see pythonShapeError).
func checkPythonShape(t *testing.T, tb []string) {
	t.Helper()
	if err := pythonShapeError(tb); err != nil {
		t.Fatal(err)
	}
}

// pythonShapeError reports how tb departs from the shape of Python's
// traceback.format_exception: blocks joined by the cause separator, each
// an exception line, preceded by the header and frames when it was raised.
func pythonShapeError(tb []string) error {
	if len(tb) == 0 {
		return errors.New("empty traceback")
	}
	inBlock := false // after a header, before the exception line
	for i, line := range tb {
		switch {
		case line == header && !inBlock:
			inBlock = true
			if i+1 >= len(tb) || !pythonFrame.MatchString(tb[i+1]) {
				return fmt.Errorf("line %d: a header without a frame after it: %q", i, tb)
			}
		case inBlock && pythonFrame.MatchString(line):
		case line == separator && i > 0 && !inBlock && i+1 < len(tb):
		case line != header && line != separator && strings.HasSuffix(line, "\n") && !pythonFrame.MatchString(line):
			inBlock = false // an exception line
			if i+1 < len(tb) && tb[i+1] != separator {
				return fmt.Errorf("line %d: an exception line followed by %q, not a cause separator: %q", i, tb[i+1], tb)
			}
		default:
			return fmt.Errorf("line %d (%q) out of place in %q", i, line, tb)
		}
	}
	if inBlock {
		return fmt.Errorf("no exception line after the frames: %q", tb)
	}
	return nil
}

// TestGoTracebackShape: a Go failure's traceback has the shape of a
// Python one, and keeps the Go error chain: each wrapped error is a
// cause, the method is the frame, the failure's class and message the
// last line; a panic's frames run down to the function that panicked.
func TestGoTracebackShape(t *testing.T) {
	const pkg = "github.com/switchyard-mq/switchyard/rpc_test"
	methodFrame := regexp.MustCompile(`^  File "[^"]*/rpc/errors_test\.go", line [0-9]+, in ` +
		regexp.QuoteMeta(pkg+".(*failer).Raise") + "\n$")
	tests := []struct {
		name   string
		method string
		raise  error
		check  func(t *testing.T, tb []string)
	}{
		{"chain", "raise", fmt.Errorf("handling: %w", fmt.Errorf("checking: %w", &quotaError{limit: 2})),
			func(t *testing.T, tb []string) {
				want := []string{
					pkg + ".quotaError: over quota (limit 2)\n", separator,
					"fmt.wrapError: checking: over quota (limit 2)\n", separator,
					header, "", pkg + ".quotaError: handling: checking: over quota (limit 2)\n",
				}
				if len(tb) != len(want) || !methodFrame.MatchString(tb[5]) {
					t.Fatalf("traceback %q", tb)
				}
				want[5] = tb[5]
				if !reflect.DeepEqual(tb, want) {
					t.Fatalf("traceback\n%q\nwant\n%q", tb, want)
				}
			}},
		{"plain_error", "raise", errors.New("no luck"),
			func(t *testing.T, tb []string) {
				if len(tb) != 3 || tb[0] != header || !methodFrame.MatchString(tb[1]) || tb[2] != "go.Error: no luck\n" {
					t.Fatalf("traceback %q", tb)
				}
			}},
		{"remote_error_builtin", "raise", &rpc.RemoteError{Module: "builtins", Class: "ValueError", Message: "bad size"},
			func(t *testing.T, tb []string) {
				if len(tb) != 3 || tb[0] != header || !methodFrame.MatchString(tb[1]) || tb[2] != "ValueError: bad size\n" {
					t.Fatalf("traceback %q", tb)
				}
			}},
		{"remote_error_own_traceback", "raise", &rpc.RemoteError{Module: "m", Class: "E", Message: "x",
			Traceback: []string{header, "  File \"/srv/a.py\", line 3, in f\n", "m.E: x\n"}},
			func(t *testing.T, tb []string) {
				if want := []string{header, "  File \"/srv/a.py\", line 3, in f\n", "m.E: x\n"}; !reflect.DeepEqual(tb, want) {
					t.Fatalf("traceback %q, want the error's own %q", tb, want)
				}
			}},
		{"panic", "explode", nil,
			func(t *testing.T, tb []string) {
				last := len(tb) - 1
				if tb[last] != "go.Panic: Explode panicked: kaboom\n" {
					t.Fatalf("last line %q", tb[last])
				}
				inExplode := regexp.MustCompile(`^  File "[^"]*/rpc/errors_test\.go", line [0-9]+, in ` + regexp.QuoteMeta(pkg+".explode") + "\n$")
				if !inExplode.MatchString(tb[last-1]) || !strings.Contains(tb[last-2], pkg+".(*failer).Explode\n") {
					t.Fatalf("the innermost frames are not explode's and Explode's: %q", tb)
				}
				for _, line := range tb {
					if strings.Contains(line, "in runtime.") {
						t.Fatalf("the runtime's frame %q in %q", line, tb)
					}
				}
			}},
		{"panic_with_error", "explode", nil,
			func(t *testing.T, tb []string) {
				if len(tb) < 6 || tb[0] != "errors.errorString: file already closed\n" ||
					tb[1] != separator || tb[2] != "fmt.wrapError: exploding: file already closed\n" || tb[3] != separator ||
					tb[len(tb)-1] != "go.Panic: Explode panicked: exploding: file already closed\n" {
					t.Fatalf("traceback %q", tb)
				}
			}},
	}
	errs := map[string]error{}
	for _, tt := range tests {
		errs[tt.name] = tt.raise
	}
	client, target := startFailer(t, errs)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := tt.name
			if name == "panic_with_error" {
				name = "error"
			}
			err := client.Call(testCtx(t), target, tt.method, nameArgs{name}, nil)
			var re *rpc.RemoteError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not a *rpc.RemoteError", err)
			}
			checkPythonShape(t, re.Traceback)
			tt.check(t, re.Traceback)
		})
	}
}

// TestPythonTracebackShape: the shape check accepts what Python writes
// (captured from traceback.format_exception) and refuses what it never
// writes.
func TestPythonTracebackShape(t *testing.T) {
	python := []string{
		"KeyError: 'k'\n",
		separator,
		header,
		"  File \"/tmp/tb.py\", line 9, in fail\n    inner()\n",
		"  File \"/tmp/tb.py\", line 6, in inner\n    raise KeyError(\"k\")\n",
		"  File \"/srv/d.py\", line 229, in _do_dispatch\n    result = func(ctxt, **new_args)\n             ^^^^^^^^^^^^^^^^^^^^^^\n",
		"peer_errors.QuotaExceeded: over quota\n",
	}
	checkPythonShape(t, python)
	for _, bad := range [][]string{
		{header, "ValueError: x\n"},
		{"ValueError: x\n", "KeyError: y\n"},
		{separator, "ValueError: x\n"},
		{header, "  File \"/tmp/tb.py\", line 9, in fail\n"},
		{"ValueError: x"},
	} {
		if pythonShapeError(bad) == nil {
			t.Errorf("the shape check accepted %q", bad)
		}
	}
}
