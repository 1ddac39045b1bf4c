package rabbitmq

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-mq/switchyard/transport/driver"
)

func TestMapError(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  *amqp091.Error
		want error
	}{
		{"404", &amqp091.Error{Code: amqp091.NotFound, Reason: "NOT_FOUND - no queue 'q' in vhost '/'", Server: true}, driver.ErrNotFound},
		{"406", &amqp091.Error{Code: amqp091.PreconditionFailed, Reason: "PRECONDITION_FAILED - inequivalent arg 'durable'", Server: true}, driver.ErrPrecondition},
		{"405", &amqp091.Error{Code: amqp091.ResourceLocked, Reason: "RESOURCE_LOCKED - cannot obtain exclusive access", Server: true}, driver.ErrInUse},
		{"403 in exclusive use", &amqp091.Error{Code: amqp091.AccessRefused, Reason: "ACCESS_REFUSED - queue 'q' in vhost '/' in exclusive use", Server: true}, driver.ErrInUse},
		{"403", &amqp091.Error{Code: amqp091.AccessRefused, Reason: "ACCESS_REFUSED - queue name 'amq.x' contains reserved prefix 'amq.*'", Server: true}, driver.ErrInvalid},
		{"530", &amqp091.Error{Code: amqp091.NotAllowed, Reason: "NOT_ALLOWED - vhost v not found", Server: true}, driver.ErrInvalid},
		{"502", &amqp091.Error{Code: amqp091.SyntaxError, Reason: "SYNTAX_ERROR", Server: true}, driver.ErrInvalid},
		{"503", &amqp091.Error{Code: amqp091.CommandInvalid, Reason: "COMMAND_INVALID", Server: true}, driver.ErrInvalid},
		{"540", &amqp091.Error{Code: amqp091.NotImplemented, Reason: "NOT_IMPLEMENTED", Server: true}, driver.ErrInvalid},
		{"541, a denied deprecated feature", &amqp091.Error{Code: amqp091.InternalError,
			Reason: "INTERNAL_ERROR - Feature `transient_nonexcl_queues` is deprecated.\nIts use is not permitted per the configuration", Server: true}, driver.ErrUnsupported},
		{"541", &amqp091.Error{Code: amqp091.InternalError, Reason: "INTERNAL_ERROR", Server: true}, driver.ErrClosed},
		{"320", &amqp091.Error{Code: amqp091.ConnectionForced, Reason: "CONNECTION_FORCED - broker forced connection closure", Server: true}, driver.ErrClosed},
		{"504 from the client", amqp091.ErrClosed, driver.ErrClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, in := range []error{tc.err, fmt.Errorf("declare: %w", tc.err)} {
				got := MapError(in)
				if !errors.Is(got, tc.want) {
					t.Errorf("MapError(%v) = %v, want it to wrap %v", in, got, tc.want)
				}
				var ae *amqp091.Error
				if !errors.As(got, &ae) || ae != tc.err {
					t.Errorf("MapError(%v) = %v lost the *amqp091.Error", in, got)
				}
				for _, text := range []string{tc.err.Reason, strconv.Itoa(tc.err.Code)} {
					if !strings.Contains(got.Error(), text) {
						t.Errorf("MapError(%v) = %q, want it to say %q", in, got, text)
					}
				}
				if again := MapError(got); again != got {
					t.Errorf("MapError of its own result = %v, want it unchanged", again)
				}
				if wrapped := fmt.Errorf("op: %w", got); MapError(wrapped) != wrapped {
					t.Errorf("MapError of a wrapped result changed it")
				}
			}
		})
	}
}

// TestRefusesRequest: a connection the broker closed in answer to the
// request itself is told apart from one that was lost.
func TestRefusesRequest(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&amqp091.Error{Code: amqp091.InternalError, Reason: "INTERNAL_ERROR - Feature `transient_nonexcl_queues` is deprecated.", Server: true}, true},
		{&amqp091.Error{Code: amqp091.NotAllowed, Reason: "NOT_ALLOWED", Server: true}, true},
		{&amqp091.Error{Code: amqp091.NotImplemented, Reason: "NOT_IMPLEMENTED", Server: true}, true},
		{&amqp091.Error{Code: amqp091.CommandInvalid, Reason: "COMMAND_INVALID", Server: true}, true},
		{&amqp091.Error{Code: amqp091.InternalError, Reason: "INTERNAL_ERROR", Server: true}, false},
		{&amqp091.Error{Code: amqp091.ConnectionForced, Reason: "CONNECTION_FORCED", Server: true}, false},
		{&amqp091.Error{Code: amqp091.NotAllowed, Reason: "from the client"}, false},
		{amqp091.ErrClosed, false},
		{io.EOF, false},
	} {
		if got := RefusesRequest(fmt.Errorf("declare: %w", tc.err)); got != tc.want {
			t.Errorf("RefusesRequest(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestMapErrorWithoutReply(t *testing.T) {
	for _, err := range []error{nil, io.EOF, fmt.Errorf("dial: %w", io.ErrUnexpectedEOF), driver.ErrClosed} {
		if got := MapError(err); got != err {
			t.Errorf("MapError(%v) = %v, want it unchanged", err, got)
		}
	}
}

func TestIsChannelError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&amqp091.Error{Code: amqp091.NotFound, Server: true}, true},
		{&amqp091.Error{Code: amqp091.PreconditionFailed, Server: true}, true},
		{&amqp091.Error{Code: amqp091.ResourceLocked, Server: true}, true},
		{&amqp091.Error{Code: amqp091.AccessRefused, Server: true}, true},
		{&amqp091.Error{Code: amqp091.ContentTooLarge, Server: true}, true},
		{&amqp091.Error{Code: amqp091.NoRoute, Server: true}, true},
		{&amqp091.Error{Code: amqp091.NoConsumers, Server: true}, true},
		{fmt.Errorf("bind: %w", &amqp091.Error{Code: amqp091.NotFound, Server: true}), true},
		{MapError(&amqp091.Error{Code: amqp091.NotFound, Server: true}), true},
		{&amqp091.Error{Code: amqp091.NotFound}, false}, // the client's own, not the broker's
		{&amqp091.Error{Code: amqp091.ConnectionForced, Server: true}, false},
		{&amqp091.Error{Code: amqp091.FrameError, Server: true}, false},
		{amqp091.ErrClosed, false},
		{io.EOF, false},
		{nil, false},
	} {
		if got := IsChannelError(tc.err); got != tc.want {
			t.Errorf("IsChannelError(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
