package memory

import (
	"fmt"

	"github.com/switchyard-mq/switchyard/drivers/memory/internal/amqp091"
)

// AMQP reply codes the server closes channels and connections with, as
// RabbitMQ uses them.
const (
	replySuccess          = 200
	replyNoRoute          = 312
	replyConnectionForced = 320
	replyAccessRefused    = 403
	replyNotFound         = 404
	replyResourceLocked   = 405
	replyPrecondition     = 406
	replyFrameError       = 501
	replyCommandInvalid   = 503
	replyChannelError     = 504
	replyUnexpectedFrame  = 505
	replyNotAllowed       = 530
	replyNotImplemented   = 540
	replyInternalError    = 541
)

var replyNames = map[uint16]string{
	replySuccess: "OK", replyNoRoute: "NO_ROUTE", replyConnectionForced: "CONNECTION_FORCED",
	replyAccessRefused: "ACCESS_REFUSED", replyNotFound: "NOT_FOUND", replyResourceLocked: "RESOURCE_LOCKED",
	replyPrecondition: "PRECONDITION_FAILED", replyFrameError: "FRAME_ERROR",
	replyCommandInvalid: "COMMAND_INVALID", replyChannelError: "CHANNEL_ERROR", replyUnexpectedFrame: "UNEXPECTED_FRAME",
	replyNotAllowed: "NOT_ALLOWED", replyNotImplemented: "NOT_IMPLEMENTED", replyInternalError: "INTERNAL_ERROR",
}

// amqpError is an error the server reports to a client: a channel error
// closes the channel, a connection error (hard) the connection.
type amqpError struct {
	code          uint16
	text          string // with RabbitMQ's "NAME - " prefix
	class, method uint16 // of the method that failed, or zero
	hard          bool
}

func (e *amqpError) Error() string { return fmt.Sprintf("%d %s", e.code, e.text) }

func newAMQPError(hard bool, code uint16, m amqp091.Method, format string, args ...any) *amqpError {
	e := &amqpError{code: code, text: replyNames[code] + " - " + fmt.Sprintf(format, args...), hard: hard}
	if len(e.text) > 255 {
		e.text = e.text[:255]
	}
	if m != nil {
		e.class, e.method = m.ClassID(), m.MethodID()
	}
	return e
}

// channelError closes the channel m arrived on.
func channelError(code uint16, m amqp091.Method, format string, args ...any) *amqpError {
	return newAMQPError(false, code, m, format, args...)
}

// connectionError closes the connection.
func connectionError(code uint16, m amqp091.Method, format string, args ...any) *amqpError {
	return newAMQPError(true, code, m, format, args...)
}
