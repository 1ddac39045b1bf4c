package transport_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/switchyard-mq/switchyard/transport"
)

// TestMessagingSystem: the messaging.system of each scheme, the
// conventions' name where they list the system.
func TestMessagingSystem(t *testing.T) {
	for scheme, want := range map[string]string{
		"rabbit": "rabbitmq", "rabbits": "rabbitmq", "amqp": "amqp1", "amqps": "amqp1",
		"memory": "switchyard.memory", "zmq": "zeromq", "other": "other",
	} {
		if got := transport.MessagingSystem(scheme); got != want {
			t.Errorf("MessagingSystem(%q) = %q, want %q", scheme, got, want)
		}
	}
}

type customError struct{}

func (customError) Error() string { return "custom" }

// TestErrorType: error.type names the sentinel an error wraps, else its
// Go type.
func TestErrorType(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("publish: %w", transport.ErrTimeout), "timeout"},
		{fmt.Errorf("consume: %w", transport.ErrNotFound), "not_found"},
		{fmt.Errorf("ack: %w", transport.ErrClosed), "closed"},
		{transport.ErrUnroutable, "unroutable"},
		{fmt.Errorf("wait: %w", context.DeadlineExceeded), "context_deadline_exceeded"},
		{context.Canceled, "context_canceled"},
		{customError{}, "transport_test.customError"},
		{errors.New("plain"), "*errors.errorString"},
	}
	for _, tt := range tests {
		if got := transport.ErrorType(tt.err); got != tt.want {
			t.Errorf("ErrorType(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
