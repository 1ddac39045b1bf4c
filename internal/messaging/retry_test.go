package messaging

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/internal/backoff"
	"github.com/switchyard-mq/switchyard/transport"
)

var errConnectionLost = errors.New("connection lost")

// failing returns a publisher whose publishes fail with errs in turn, then
// succeed, and counts them in attempts. Its waits are a microsecond.
func failing(attempts *int, errs ...error) *Publisher {
	return &Publisher{
		publish: func(context.Context, string, string, transport.Message) error {
			*attempts++
			if *attempts <= len(errs) {
				return errs[*attempts-1]
			}
			return nil
		},
		logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		retrying: "publish failed; retrying",
		backoff:  backoff.Backoff{Initial: time.Microsecond},
	}
}

func TestPublishRetries(t *testing.T) {
	lost := []error{errConnectionLost, errConnectionLost, errConnectionLost}
	tests := []struct {
		name         string
		errs         []error
		retries      int
		wantAttempts int
		wantErr      error
	}{
		{"success at once", nil, -1, 1, nil},
		{"success after failures, no limit", lost, -1, 4, nil},
		{"success within the limit", lost, 3, 4, nil},
		{"the limit reached", lost, 2, 3, errConnectionLost},
		{"no retries", lost, 0, 1, errConnectionLost},
		{"a permanent error is not retried", []error{fmt.Errorf("wrapped: %w", transport.ErrNotFound)}, -1, 1, transport.ErrNotFound},
		{"a permanent error after a lost connection", []error{errConnectionLost, transport.ErrClosed}, -1, 2, transport.ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			attempts := 0
			err := failing(&attempts, tt.errs...).Publish(context.Background(), "x", "k", transport.Message{}, tt.retries)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Errorf("Publish: %v, want %v", err, tt.wantErr)
			}
			if attempts != tt.wantAttempts {
				t.Errorf("%d attempts, want %d", attempts, tt.wantAttempts)
			}
		})
	}
}

// TestPublishGivesUpWhenTheContextEnds: the context's end is the error,
// the last failure told in its text.
func TestPublishGivesUpWhenTheContextEnds(t *testing.T) {
	attempts := 0
	p := failing(&attempts, errConnectionLost, errConnectionLost)
	p.backoff = backoff.Backoff{Initial: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	p.logger = slog.New(cancelOnLog{cancel})
	err := p.Publish(ctx, "x", "k", transport.Message{}, -1)
	if !errors.Is(err, context.Canceled) || errors.Is(err, errConnectionLost) || !strings.Contains(err.Error(), errConnectionLost.Error()) {
		t.Errorf("Publish: %v, want context.Canceled telling %q", err, errConnectionLost)
	}
	if attempts != 1 {
		t.Errorf("%d attempts, want 1", attempts)
	}
}

// cancelOnLog is a slog handler that cancels a context when a record is
// logged: here, as the publisher starts waiting to retry.
type cancelOnLog struct{ cancel context.CancelFunc }

func (h cancelOnLog) Enabled(context.Context, slog.Level) bool { return true }

func (h cancelOnLog) Handle(context.Context, slog.Record) error { h.cancel(); return nil }

func (h cancelOnLog) WithAttrs([]slog.Attr) slog.Handler { return h }

func (h cancelOnLog) WithGroup(string) slog.Handler { return h }

// TestPublishLogsEachRetry: a warning per retry, in the caller's words.
func TestPublishLogsEachRetry(t *testing.T) {
	var logged strings.Builder
	attempts := 0
	p := failing(&attempts, errConnectionLost, errConnectionLost)
	p.logger = slog.New(slog.NewTextHandler(&logged, nil))
	if err := p.Publish(context.Background(), "x", "k", transport.Message{}, -1); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logged.String(), `level=WARN msg="publish failed; retrying" exchange=x key=k attempt=`); n != 2 {
		t.Errorf("%d retry warnings, want 2:\n%s", n, logged.String())
	}
}

func TestPublishBackoff(t *testing.T) {
	p := NewPublisher(nil, slog.Default(), "retrying")
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond,
		800 * time.Millisecond, 1600 * time.Millisecond, 2 * time.Second, 2 * time.Second}
	for n, w := range want {
		if got := p.backoff.Delay(n); got != w {
			t.Errorf("wait before retry %d: %v, want %v", n+1, got, w)
		}
	}
}

func TestPermanent(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{transport.ErrInvalid, true},
		{transport.ErrNotFound, true},
		{transport.ErrPrecondition, true},
		{transport.ErrUnsupported, true},
		{transport.ErrUnroutable, true},
		{transport.ErrClosed, true},
		{transport.ErrInUse, true},
		{fmt.Errorf("publish: %w", transport.ErrClosed), true},
		{transport.ErrTimeout, false},
		{errConnectionLost, false},
		{context.DeadlineExceeded, false},
	}
	for _, tt := range tests {
		if got := Permanent(tt.err); got != tt.want {
			t.Errorf("Permanent(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
