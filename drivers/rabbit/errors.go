package rabbit

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-mq/switchyard/transport/driver"
)

// mapError turns an amqp091-go error into one that wraps the model's
// sentinel for its reply code, keeping the broker's text (which says what
// was missing or mismatched). Errors that are not AMQP replies pass through.
func mapError(err error) error {
	var ae *amqp.Error
	if err == nil || !errors.As(err, &ae) {
		return err
	}
	return fmt.Errorf("%w: %s (AMQP reply %d)", sentinelFor(ae), ae.Reason, ae.Code)
}

// sentinelFor picks the sentinel of an AMQP reply code.
func sentinelFor(ae *amqp.Error) error {
	switch ae.Code {
	case amqp.NotFound:
		return driver.ErrNotFound
	case amqp.PreconditionFailed:
		return driver.ErrPrecondition
	case amqp.ResourceLocked:
		return driver.ErrInUse
	case amqp.AccessRefused:
		// RabbitMQ refuses a consumer with 403 when another one holds the
		// queue exclusively; the model calls that in use.
		if strings.Contains(ae.Reason, "in exclusive use") {
			return driver.ErrInUse
		}
		return driver.ErrInvalid
	case amqp.NotAllowed, amqp.SyntaxError, amqp.CommandInvalid, amqp.NotImplemented:
		return driver.ErrInvalid
	}
	return driver.ErrClosed // connection-level failures: forced close, frame errors, closed channel
}

// isChannelError reports whether err is a soft error: the broker closed one
// channel because of the request on it, and the connection carries on.
func isChannelError(err error) bool {
	var ae *amqp.Error
	if !errors.As(err, &ae) || !ae.Server {
		return false
	}
	switch ae.Code {
	case amqp.NotFound, amqp.PreconditionFailed, amqp.ResourceLocked, amqp.AccessRefused, amqp.ContentTooLarge, amqp.NoRoute, amqp.NoConsumers:
		return true
	}
	return false
}

// exchangeInReason extracts the exchange that a broker reply names, as in
// "NOT_FOUND - no exchange 'x' in vhost 'v'".
func exchangeInReason(reason string) (string, bool) {
	const marker = "exchange '"
	i := strings.Index(reason, marker)
	if i < 0 {
		return "", false
	}
	rest := reason[i+len(marker):]
	// The name may itself hold quotes; RabbitMQ follows it with "' in vhost".
	if j := strings.LastIndex(rest, "' in vhost"); j >= 0 {
		return rest[:j], true
	}
	if j := strings.IndexByte(rest, '\''); j >= 0 {
		return rest[:j], true
	}
	return "", false
}

// connectionFailing reports whether err, from a request on sess, means
// that the connection is going down: it is closed, or an I/O error hit its
// socket (amqp091-go then closes it; the supervisor will see that).
func connectionFailing(sess *session, err error) bool {
	if sess.amqp.IsClosed() {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}
