package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/switchyard-mq/switchyard/internal/backoff"
	"github.com/switchyard-mq/switchyard/transport"
)

// Publisher publishes with oslo's publish retry rule: a failure that may
// heal (a connection being re-established) is retried after 100 ms,
// doubling up to 2 s, as many times as the caller allows; one that cannot
// (see Permanent) is returned at once.
type Publisher struct {
	publish  func(ctx context.Context, exchange, key string, msg transport.Message) error
	logger   *slog.Logger
	retrying string
	backoff  backoff.Backoff
}

// NewPublisher returns a publisher on tr that logs each retry to logger,
// as a warning saying retrying: the caller's words for what failed and
// what comes next ("publish failed; retrying").
func NewPublisher(tr *transport.Transport, logger *slog.Logger, retrying string) Publisher {
	return Publisher{
		publish: tr.Publish, logger: logger, retrying: retrying,
		backoff: backoff.Backoff{Initial: 100 * time.Millisecond, Multiplier: 2, Max: 2 * time.Second},
	}
}

// Publish publishes msg to exchange with routing key, retrying a failure
// up to retries times (-1: until ctx ends).
func (p *Publisher) Publish(ctx context.Context, exchange, key string, msg transport.Message, retries int) error {
	for attempt := 0; ; attempt++ {
		err := p.publish(ctx, exchange, key, msg)
		if err == nil || Permanent(err) || ctx.Err() != nil || (retries >= 0 && attempt >= retries) {
			return err
		}
		p.logger.WarnContext(ctx, p.retrying, "exchange", exchange, "key", key, "attempt", attempt+1, "err", err)
		if werr := p.backoff.Wait(ctx, attempt); werr != nil {
			// The context's end is why the publish gave up, and what
			// errors.Is should find; the last failure is only told.
			return fmt.Errorf("%w (last error: %v)", werr, err)
		}
	}
}

// Permanent reports whether err is one that retrying cannot heal (an
// invalid argument, a missing or mismatched entity, a closed transport),
// as opposed to a lost connection.
func Permanent(err error) bool {
	for _, p := range []error{transport.ErrInvalid, transport.ErrNotFound, transport.ErrPrecondition,
		transport.ErrUnsupported, transport.ErrUnroutable, transport.ErrClosed, transport.ErrInUse} {
		if errors.Is(err, p) {
			return true
		}
	}
	return false
}
