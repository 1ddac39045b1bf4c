package amqp1

import (
	"errors"
	"fmt"
	"strings"

	amqp "github.com/Azure/go-amqp"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-mq/switchyard/transport/driver"
)

// mapError wraps err with the model's sentinel for the AMQP 1.0 error
// condition it carries, keeping the broker's own text, which says what was
// missing or refused. Errors without a condition (a lost connection) pass
// through unchanged, so that callers may retry them.
func mapError(err error) error {
	var ae *amqp.Error
	if err == nil || !errors.As(err, &ae) {
		return err
	}
	sentinel := sentinelForCondition(ae.Condition)
	if sentinel == nil {
		return err
	}
	return fmt.Errorf("%w: %s (%s)", sentinel, ae.Description, ae.Condition)
}

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

// map091 does what mapError does for the AMQP 0-9-1 side connection that
// declares RabbitMQ topology.
func map091(err error) error {
	var ae *amqp091.Error
	if err == nil || !errors.As(err, &ae) {
		return err
	}
	var sentinel error
	switch ae.Code {
	case amqp091.NotFound:
		sentinel = driver.ErrNotFound
	case amqp091.PreconditionFailed:
		sentinel = driver.ErrPrecondition
	case amqp091.ResourceLocked:
		sentinel = driver.ErrInUse
	case amqp091.AccessRefused:
		if strings.Contains(ae.Reason, "in exclusive use") {
			sentinel = driver.ErrInUse
		} else {
			sentinel = driver.ErrInvalid
		}
	case amqp091.NotAllowed, amqp091.SyntaxError, amqp091.CommandInvalid, amqp091.NotImplemented:
		sentinel = driver.ErrInvalid
	default:
		return err
	}
	return fmt.Errorf("%w: %s (AMQP 0-9-1 reply %d)", sentinel, ae.Reason, ae.Code)
}

// isChannelError reports whether a 0-9-1 error closed only the channel.
func isChannelError(err error) bool {
	var ae *amqp091.Error
	if !errors.As(err, &ae) || !ae.Server {
		return false
	}
	switch ae.Code {
	case amqp091.NotFound, amqp091.PreconditionFailed, amqp091.ResourceLocked, amqp091.AccessRefused:
		return true
	}
	return false
}
