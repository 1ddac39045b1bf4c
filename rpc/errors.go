package rpc

import (
	"errors"
	"fmt"
	"reflect"

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
// returns when the server's method failed, reachable with errors.As.
//
// An endpoint method can also return one to choose the exception a Python
// caller sees: Module "builtins" and a built-in Class such as "ValueError"
// make oslo.messaging re-raise that Python exception; any other module
// arrives as oslo_messaging.RemoteError carrying Class and Message.
type RemoteError struct {
	// Class is the exception's class name, e.g. "ValueError".
	Class string
	// Module is where Class is defined, e.g. "builtins", or a Go package path.
	Module string
	// Message is the exception's text.
	Message string
	// Traceback holds the remote traceback's lines, each ending in "\n".
	Traceback []string
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

const dispatcherModule = "oslo_messaging.rpc.dispatcher"

func remoteErrorFromFailure(f *oslo.Failure) *RemoteError {
	return &RemoteError{Class: f.Class, Module: f.Module, Message: f.Message, Traceback: f.Traceback}
}

// failureFromError turns what an endpoint returned into the failure sent to
// the caller. A *RemoteError in the chain names the class; any other error
// is named by its Go type, with the chain of wrapped messages as the
// traceback.
func failureFromError(err error) *oslo.Failure {
	var re *RemoteError
	if errors.As(err, &re) {
		f := oslo.NewFailure(re.Module, re.Class, re.Message)
		f.Traceback = re.Traceback
		if len(f.Traceback) == 0 {
			f.Traceback = []string{re.Class + ": " + re.Message + "\n"}
		}
		return f
	}
	class, module := goErrorClass(err)
	f := oslo.NewFailure(module, class, err.Error())
	for e := err; e != nil; e = errors.Unwrap(e) {
		f.Traceback = append(f.Traceback, fmt.Sprintf("%T: %s\n", e, e.Error()))
	}
	return f
}

// goErrorClass names an error by the first type in its chain that says
// more than "an error with a message": an error wrapping an *fs.PathError is
// class "PathError" in module "io/fs"; errors made by errors.New or
// fmt.Errorf alone are class "Error" in module "go".
func goErrorClass(err error) (class, module string) {
	for e := err; e != nil; e = errors.Unwrap(e) {
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
