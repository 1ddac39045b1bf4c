package driver

import "errors"

// Sentinel errors. Drivers return them (wrapped with %w and the broker's
// own text) so that users can test with errors.Is whatever the backend.
// Package transport re-exports each one under the same name.
var (
	// ErrClosed: the transport, consumer or delivery's channel is closed.
	ErrClosed = errors.New("closed")
	// ErrNotFound: a queue or exchange does not exist.
	ErrNotFound = errors.New("not found")
	// ErrTimeout: an operation ran out of time (an RPC call without reply).
	ErrTimeout = errors.New("timed out")
	// ErrUnsupported: the backend lacks the capability that was asked for.
	ErrUnsupported = errors.New("not supported by this driver")
	// ErrUnroutable: a mandatory message reached no queue.
	ErrUnroutable = errors.New("unroutable")
	// ErrInvalid: an argument is malformed (a name, a URL, an option).
	ErrInvalid = errors.New("invalid argument")
	// ErrPrecondition: an entity exists with other properties (AMQP 406), or
	// an operation's precondition does not hold (deleting a queue in use).
	ErrPrecondition = errors.New("precondition failed")
	// ErrInUse: an exclusive queue or consumer is held by another owner.
	ErrInUse = errors.New("resource locked")
	// ErrSettled: a delivery was already acknowledged, rejected or requeued,
	// or it came from an auto-ack consumer.
	ErrSettled = errors.New("delivery already settled")
)
