package amqp1

import (
	"errors"
	"fmt"

	amqp "github.com/Azure/go-amqp"

	"github.com/switchyard-mq/switchyard/transport/driver"
)

// mapError reads an error of go-amqp as the model's. When err carries an
// AMQP 1.0 error condition that the model has a sentinel for, the result
// wraps both that sentinel, for errors.Is, and err itself, so that the
// client's *amqp.Error (and the *amqp.LinkError or other that carried it)
// stays reachable with errors.As. Its text is the sentinel's, the broker's
// description (which says what was missing or refused) and the condition.
// Errors without such a condition (a lost connection) come back as they
// are, so that callers may retry them, as do errors mapError already
// mapped.
func mapError(err error) error {
	var mapped *conditionError
	if err == nil || errors.As(err, &mapped) {
		return err
	}
	var ae *amqp.Error
	if !errors.As(err, &ae) {
		return err
	}
	sentinel := sentinelForCondition(ae.Condition)
	if sentinel == nil {
		return err
	}
	return &conditionError{sentinel: sentinel, cond: ae, err: err}
}

// conditionError is a broker's AMQP 1.0 error condition read as the
// model's error.
type conditionError struct {
	sentinel error       // the model's sentinel for the condition
	cond     *amqp.Error // the condition, whose description the text shows
	err      error       // what the client returned, which holds cond
}

func (e *conditionError) Error() string {
	return fmt.Sprintf("%v: %s (%s)", e.sentinel, e.cond.Description, e.cond.Condition)
}

// Unwrap gives errors.Is and errors.As both the sentinel and the client's
// error.
func (e *conditionError) Unwrap() []error { return []error{e.sentinel, e.err} }

func sentinelForCondition(c amqp.ErrCond) error {
	switch c {
	case amqp.ErrCondNotFound:
		return driver.ErrNotFound
	case amqp.ErrCondPreconditionFailed:
		return driver.ErrPrecondition
	case amqp.ErrCondResourceLocked:
		return driver.ErrInUse
	case amqp.ErrCondNotImplemented:
		return driver.ErrUnsupported
	case amqp.ErrCondInvalidField, amqp.ErrCondNotAllowed, amqp.ErrCondDecodeError,
		amqp.ErrCondUnauthorizedAccess, amqp.ErrCondMessageSizeExceeded:
		return driver.ErrInvalid
	}
	return nil
}

// isRemoteRefusal reports whether err is the broker refusing a request (an
// error condition that retrying on a new connection cannot heal), as
// opposed to the connection or session going away.
func isRemoteRefusal(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && sentinelForCondition(ae.Condition) != nil
}
