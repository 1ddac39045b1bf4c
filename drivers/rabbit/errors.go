package rabbit

import (
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/switchyard-mq/switchyard/internal/rabbitmq"
)

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
// socket (amqp091-go then closes it; the supervisor will see that). A
// connection the broker closed because of the request itself is not: the
// request would close the next one too (see rabbitmq.RefusesRequest).
func connectionFailing(sess *session, err error) bool {
	if rabbitmq.RefusesRequest(err) {
		return false
	}
	if sess.amqp.IsClosed() {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}
