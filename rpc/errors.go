package rpc

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"

	"github.com/switchyard-mq/switchyard/internal/messaging"
	"github.com/switchyard-mq/switchyard/internal/oslo"
)

// Errors a caller can test for with errors.Is on what Call returns. Both
// arrive as a *RemoteError too, with the class and message a Python server
// would send.
var (
	// ErrNoSuchMethod: no endpoint on the server has the method (oslo's
	// NoSuchMethod).
	ErrNoSuchMethod = errors.New("no such RPC method")
	// ErrUnsupportedVersion: no endpoint serves the requested version in
	// the requested namespace (oslo's UnsupportedVersion).
	ErrUnsupportedVersion = errors.New("unsupported RPC version")
)

// RemoteError is an error raised by the remote side of a call: what Call
// returns when the server's method failed, reachable with errors.As. It
// carries the six parts of an oslo.messaging failure.
//
// An endpoint method can also return one to choose the exception a Python
// caller sees. oslo.messaging rebuilds the exception as Module.Class(*Args,
// **Kwargs) when Module is "builtins" or is listed in the caller's
// allowed_remote_exmods (and the class accepts those arguments), appending
// the traceback to its message; otherwise the caller gets
// oslo_messaging.RemoteError with Class as exc_type and Message as value.
// Python's built-in exceptions take no keyword arguments: give them none.
type RemoteError struct {
	// Class is the exception's class name, e.g. "ValueError".
	Class string
	// Module is where Class is defined, e.g. "builtins", a Python module,
	// or a Go package path.
	Module string
	// Message is the exception's text, str() of it in Python.
	Message string
	// Traceback holds the remote traceback's lines, each ending in "\n",
	// as Python's traceback.format_exception writes them. Sending, none
	// makes one: see the package documentation.
	Traceback []string
	// Args are the exception's positional arguments (Python's
	// exception.args), decoded as Call decodes a result into an any:
	// strings, bools, nil, json.Number, []any and map[string]any. Sending,
	// they are encoded with encoding/json; nil sends [Message], the args
	// of an exception made from its message alone, and a non-nil empty
	// slice sends none (for a class that makes its message from Kwargs).
	Args []any
	// Kwargs are the exception's keyword arguments (the kwargs attribute
	// oslo.messaging's exceptions keep), decoded and encoded as Args; nil
	// when there are none.
	Kwargs map[string]any

	// local is the Go error a client's ErrorRegistry rebuilt from
	// Module and Class, what Unwrap returns.
	local error
}

// Error reads like oslo.messaging's RemoteError: "Remote error: <class> <message>".
func (e *RemoteError) Error() string {
	return fmt.Sprintf("remote error: %s %s", e.Class, e.Message)
}

// Is lets errors.Is match oslo's dispatcher failures by their class.
func (e *RemoteError) Is(target error) bool {
	switch target {
	case ErrNoSuchMethod:
		return e.Class == "NoSuchMethod" && e.Module == dispatcherModule
	case ErrUnsupportedVersion:
		return e.Class == "UnsupportedVersion" && e.Module == dispatcherModule
	}
	return false
}

// Unwrap returns the Go error registered under Module and Class in the
// ErrorRegistry of the client that received e (see WithErrors), so that
// errors.Is and errors.As find it; nil without one.
func (e *RemoteError) Unwrap() error { return e.local }

const dispatcherModule = "oslo_messaging.rpc.dispatcher"

// maxChain bounds how many wrapped errors a traceback follows.
const maxChain = 64

func remoteErrorFromFailure(f *oslo.Failure) *RemoteError {
	re := &RemoteError{Class: f.Class, Module: f.Module, Message: f.Message, Traceback: f.Traceback,
		// Never nil, so that a server passing the error on sends the
		// args it received, even none.
		Args: make([]any, len(f.Args))}
	for i, a := range f.Args {
		re.Args[i] = decodeValue(a)
	}
	if len(f.Kwargs) > 0 {
		re.Kwargs = make(map[string]any, len(f.Kwargs))
		for k, v := range f.Kwargs {
			re.Kwargs[k] = decodeValue(v)
		}
	}
	return re
}

// decodeValue decodes a JSON value that the oslo decoder has validated,
// numbers as json.Number.
func decodeValue(raw json.RawMessage) any {
	var v any
	if err := messaging.DecodeJSON(raw, &v); err != nil {
		return raw // unreachable: raw is valid JSON
	}
	return v
}

// failureFromError turns what an endpoint returned into the failure sent to
// the caller; frame is the traceback frame of the endpoint's method ("" if
// unknown). A *RemoteError in the chain names the class; then an error
// registered in errs (nil for none), with a type's fields as kwargs; any
// other error is named by its Go type. The chain of wrapped errors becomes
// the chain of causes of a Python traceback, each named as the failure
// would be.
func failureFromError(err error, frame string, errs *ErrorRegistry) *oslo.Failure {
	var re *RemoteError
	if errors.As(err, &re) {
		return re.failure(frame)
	}
	var class, module string
	var kwargs map[string]json.RawMessage
	if entry, matched := errs.find(err); entry != nil {
		class, module = entry.name.class, entry.name.module
		var kerr error
		if kwargs, kerr = entry.kwargs(matched); kerr != nil {
			f := oslo.NewFailure("builtins", "TypeError",
				fmt.Sprintf("%s.%s %q does not encode as JSON: %v", module, class, err.Error(), kerr))
			f.Traceback = raisedTraceback(nil, frame, f)
			return f
		}
	} else {
		class, module = goErrorClass(err)
	}
	f := oslo.NewFailure(module, class, err.Error())
	f.Kwargs = kwargs
	var tb []string
	chain := wrapped(errors.Unwrap(err))
	for i := len(chain) - 1; i >= 0; i-- {
		line := errs.exceptionLine(chain[i])
		if line == "" {
			line = goExceptionLine(chain[i])
		}
		tb = append(tb, line, oslo.CauseSeparator)
	}
	f.Traceback = raisedTraceback(tb, frame, f)
	return f
}

// failure returns the failure that sends e; frame is as for
// failureFromError. Args or kwargs that do not encode as JSON make it a
// TypeError saying so.
func (e *RemoteError) failure(frame string) *oslo.Failure {
	f := oslo.NewFailure(e.Module, e.Class, e.Message)
	var err error
	if e.Args != nil {
		f.Args = make([]json.RawMessage, len(e.Args))
		for i, a := range e.Args {
			if f.Args[i], err = json.Marshal(a); err != nil {
				err = fmt.Errorf("arg %d: %w", i, err)
				break
			}
		}
	}
	if err == nil && len(e.Kwargs) > 0 {
		f.Kwargs = make(map[string]json.RawMessage, len(e.Kwargs))
		for k, v := range e.Kwargs {
			if f.Kwargs[k], err = json.Marshal(v); err != nil {
				err = fmt.Errorf("kwarg %q: %w", k, err)
				break
			}
		}
	}
	if err != nil {
		f = oslo.NewFailure("builtins", "TypeError",
			fmt.Sprintf("%s.%s %q does not encode as JSON: %v", e.Module, e.Class, e.Message, err))
		f.Traceback = raisedTraceback(nil, frame, f)
		return f
	}
	f.Traceback = e.Traceback
	if len(f.Traceback) == 0 {
		f.Traceback = raisedTraceback(nil, frame, f)
	}
	return f
}

// raisedTraceback appends to tb the traceback of f raised in frame: the
// header, the frame and f's exception line; only the exception line
// without a frame, as Python writes an exception that was never raised.
func raisedTraceback(tb []string, frame string, f *oslo.Failure) []string {
	if frame != "" {
		tb = append(tb, oslo.TracebackHeader, frame)
	}
	return append(tb, oslo.ExceptionLine(f.Module, f.Class, f.Message))
}

// wrapped returns err and the errors it wraps, outermost first, following
// errors.Unwrap (at most maxChain of them).
func wrapped(err error) []error {
	var chain []error
	for e := err; e != nil && len(chain) < maxChain; e = errors.Unwrap(e) {
		chain = append(chain, e)
	}
	return chain
}

// goExceptionLine is the exception line of one error of a chain, named by
// its Go type: "<package path>.<type name>: <message>", pointers
// dereferenced.
func goExceptionLine(err error) string {
	t := reflect.TypeOf(err)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Name() == "" {
		return oslo.ExceptionLine("", fmt.Sprintf("%T", err), err.Error())
	}
	return oslo.ExceptionLine(t.PkgPath(), t.Name(), err.Error())
}

// goErrorClass names an error by the first type in its chain that says
// more than "an error with a message": an error wrapping an *fs.PathError is
// class "PathError" in module "io/fs"; errors made by errors.New or
// fmt.Errorf alone are class "Error" in module "go".
func goErrorClass(err error) (class, module string) {
	for _, e := range wrapped(err) {
		t := reflect.TypeOf(e)
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Name() != "" && t.PkgPath() != "errors" && t.PkgPath() != "fmt" {
			return t.Name(), t.PkgPath()
		}
	}
	return "Error", "go"
}

// maxPanicFrames bounds the frames of a panic's traceback: the innermost
// ones are kept.
const maxPanicFrames = 64

// panicFailure is the failure of a method that panicked with p; it must be
// called from the function deferred to recover p, whose stack still holds
// the panicking frames. Its traceback has those frames, outermost first as
// in Python, down to the one that panicked (the runtime's own left out);
// an error p comes first as the cause, with its chain.
func panicFailure(method string, p any) *oslo.Failure {
	f := oslo.NewFailure("go", "Panic", fmt.Sprintf("%s panicked: %v", method, p))
	var tb []string
	if err, ok := p.(error); ok {
		chain := wrapped(err)
		for i := len(chain) - 1; i >= 0; i-- {
			tb = append(tb, goExceptionLine(chain[i]), oslo.CauseSeparator)
		}
	}
	tb = append(tb, oslo.TracebackHeader)
	tb = append(tb, panicFrames()...)
	f.Traceback = append(tb, oslo.ExceptionLine(f.Module, f.Class, f.Message))
	return f
}

// panicFrames returns the traceback frames of the panicking goroutine
// below runtime.gopanic, outermost first, without the runtime's.
func panicFrames() []string {
	pcs := make([]uintptr, maxPanicFrames+16)
	pcs = pcs[:runtime.Callers(2, pcs)]
	var frames []runtime.Frame
	inPanic, below := false, false
	it := runtime.CallersFrames(pcs)
	for {
		fr, more := it.Next()
		switch {
		case fr.Function == "runtime.gopanic":
			inPanic, below = true, false
		case inPanic && !below && isRuntime(fr.Function):
			// How the runtime came to panic: sigpanic, panicIndex, ...
		case inPanic && fr.Function != "runtime.goexit":
			below = true
			if len(frames) < maxPanicFrames {
				frames = append(frames, fr)
			}
		}
		if !more {
			break
		}
	}
	lines := make([]string, len(frames))
	for i, fr := range frames {
		lines[len(frames)-1-i] = oslo.TracebackFrame(fr.File, fr.Line, fr.Function)
	}
	return lines
}

func isRuntime(function string) bool {
	return strings.HasPrefix(function, "runtime.") || strings.HasPrefix(function, "internal/runtime/")
}
