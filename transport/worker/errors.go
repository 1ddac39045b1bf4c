package worker

import (
	"errors"
	"fmt"
)

// settleError marks an error with what to do with its delivery, whatever
// the worker's requeue policy.
type settleError struct {
	err     error
	requeue bool
}

func (e *settleError) Error() string { return e.err.Error() }
func (e *settleError) Unwrap() error { return e.err }

// Permanent marks err as one that no retry can cure (a malformed message):
// Retry does not retry it, Poison poisons the message at once, and the
// worker rejects it. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &settleError{err: err}
}

// Requeue marks err as one after which the message must go back to its
// queue, even under WithRequeue(false): the handler could not decide its
// fate now (Poison could not publish it). Requeue(nil) is nil.
func Requeue(err error) error {
	if err == nil {
		return nil
	}
	return &settleError{err: err, requeue: true}
}

// IsPermanent reports whether err's outermost marker is Permanent.
func IsPermanent(err error) bool {
	requeue, marked := marker(err)
	return marked && !requeue
}

// marker reads err's outermost marker: whether it asks for a requeue, and
// whether there is one.
func marker(err error) (requeue, marked bool) {
	var se *settleError
	if errors.As(err, &se) {
		return se.requeue, true
	}
	return false, false
}

// PanicError is what Recover makes of a handler's panic.
type PanicError struct {
	// Value is what the handler panicked with.
	Value any
	// Stack is the panicking goroutine's stack.
	Stack []byte
}

// Error says the handler panicked, and with what.
func (e *PanicError) Error() string { return fmt.Sprintf("handler panicked: %v", e.Value) }

// Unwrap is the panic's value when it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}
