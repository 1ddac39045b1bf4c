package rabbitmq

import (
	"errors"
	"fmt"
	"strings"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-mq/switchyard/transport/driver"
)

// MapError reads an error of amqp091-go as the model's. When err holds an
// AMQP 0-9-1 reply (an *amqp091.Error), the result wraps both the model's
// sentinel for its code, for errors.Is, and err itself, so that the
// client's *amqp091.Error stays reachable with errors.As. Its text is the
// sentinel's, the broker's reason (which names what was missing or
// mismatched) and the code. A code that is not about the request (a
// connection forced closed, a frame error, a closed channel) is
// driver.ErrClosed. Errors without a reply, and errors MapError already
// mapped, come back as they are.
func MapError(err error) error {
	var mapped *replyError
	if err == nil || errors.As(err, &mapped) {
		return err
	}
	var reply *amqp091.Error
	if !errors.As(err, &reply) {
		return err
	}
	return &replyError{sentinel: sentinel(reply), reply: reply, err: err}
}

// replyError is a broker's AMQP 0-9-1 reply read as the model's error.
type replyError struct {
	sentinel error          // the model's sentinel for the reply code
	reply    *amqp091.Error // the reply, whose reason and code the text shows
	err      error          // what the client returned, which holds reply
}

func (e *replyError) Error() string {
	return fmt.Sprintf("%v: %s (AMQP reply %d)", e.sentinel, e.reply.Reason, e.reply.Code)
}

// Unwrap gives errors.Is and errors.As both the sentinel and the client's
// error.
func (e *replyError) Unwrap() []error { return []error{e.sentinel, e.err} }

// sentinel picks the model's sentinel for an AMQP reply.
func sentinel(reply *amqp091.Error) error {
	switch reply.Code {
	case amqp091.NotFound:
		return driver.ErrNotFound
	case amqp091.PreconditionFailed:
		return driver.ErrPrecondition
	case amqp091.ResourceLocked:
		return driver.ErrInUse
	case amqp091.AccessRefused:
		// RabbitMQ refuses a consumer with 403 when another one holds the
		// queue exclusively; the model calls that in use.
		if strings.Contains(reply.Reason, "in exclusive use") {
			return driver.ErrInUse
		}
		return driver.ErrInvalid
	case amqp091.NotAllowed, amqp091.SyntaxError, amqp091.CommandInvalid, amqp091.NotImplemented:
		return driver.ErrInvalid
	}
	if deniedFeature(reply) {
		return driver.ErrUnsupported
	}
	return driver.ErrClosed
}

// deniedFeature reports whether the broker refused a deprecated feature
// its configuration denies, as RabbitMQ 4 does with 541 INTERNAL_ERROR
// ("Feature `transient_nonexcl_queues` is deprecated. Its use is not
// permitted per the configuration").
func deniedFeature(reply *amqp091.Error) bool {
	return reply.Code == amqp091.InternalError && strings.Contains(reply.Reason, "is deprecated")
}

// RefusesRequest reports whether err is the broker closing the whole
// connection in answer to the request itself, a hard error: a deprecated
// feature its configuration denies (541), a command it does not allow
// (530) or implement (540), or a malformed one (503). The same request
// on a new connection would fail the same way, and close it too, so it is
// the request's error to return, not a lost connection to reconnect and
// try again.
func RefusesRequest(err error) bool {
	var reply *amqp091.Error
	if !errors.As(err, &reply) || !reply.Server {
		return false
	}
	switch reply.Code {
	case amqp091.NotAllowed, amqp091.NotImplemented, amqp091.CommandInvalid:
		return true
	}
	return deniedFeature(reply)
}

// IsChannelError reports whether err holds a soft error from the broker:
// it closed one channel because of the request made on it, and the
// connection carries on.
func IsChannelError(err error) bool {
	var reply *amqp091.Error
	if !errors.As(err, &reply) || !reply.Server {
		return false
	}
	switch reply.Code {
	case amqp091.NotFound, amqp091.PreconditionFailed, amqp091.ResourceLocked, amqp091.AccessRefused,
		amqp091.ContentTooLarge, amqp091.NoRoute, amqp091.NoConsumers:
		return true
	}
	return false
}
