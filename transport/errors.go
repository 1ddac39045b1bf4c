package transport

import (
	"errors"

	"github.com/switchyard-mq/switchyard/transport/driver"
)

// Sentinel errors, shared with the drivers; test with errors.Is.
var (
	// ErrClosed: the transport or consumer is closed.
	ErrClosed = driver.ErrClosed
	// ErrNotFound: a queue or exchange does not exist.
	ErrNotFound = driver.ErrNotFound
	// ErrTimeout: an operation ran out of time, such as an RPC call that
	// got no reply.
	ErrTimeout = driver.ErrTimeout
	// ErrUnsupported: the backend lacks the capability asked for.
	ErrUnsupported = driver.ErrUnsupported
	// ErrUnroutable: a mandatory message reached no queue.
	ErrUnroutable = driver.ErrUnroutable
	// ErrInvalid: a malformed argument: a name, a URL, an option, a Target.
	ErrInvalid = driver.ErrInvalid
	// ErrPrecondition: an entity exists with other properties (AMQP's 406
	// PRECONDITION_FAILED).
	ErrPrecondition = driver.ErrPrecondition
	// ErrInUse: an exclusive queue is owned by another connection.
	ErrInUse = driver.ErrInUse
	// ErrSettled: a delivery was already settled, or came from an auto-ack
	// consumer.
	ErrSettled = driver.ErrSettled
)

// wrapsSentinel reports whether err wraps one of the sentinel errors.
func wrapsSentinel(err error) bool {
	for _, sentinel := range []error{ErrClosed, ErrNotFound, ErrTimeout, ErrUnsupported, ErrUnroutable,
		ErrInvalid, ErrPrecondition, ErrInUse, ErrSettled} {
		if errors.Is(err, sentinel) {
			return true
		}
	}
	return false
}
