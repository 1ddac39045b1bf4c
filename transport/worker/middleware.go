package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime/debug"
	"sync"
	"time"

	"github.com/switchyard-mq/switchyard/internal/backoff"
	"github.com/switchyard-mq/switchyard/transport"
)

// RetryOptions tune Retry. Zero values take the defaults given.
type RetryOptions struct {
	// MaxAttempts is how many times the handler runs at most for one
	// delivery, the first included (default 3).
	MaxAttempts int
	// InitialInterval is the wait before the first retry (default 100 ms).
	InitialInterval time.Duration
	// Multiplier grows each next wait (default 2).
	Multiplier float64
	// MaxInterval caps the waits (default 10 s).
	MaxInterval time.Duration
	// Jitter shortens each wait by a random fraction of it, up to Jitter
	// (default 0: none).
	Jitter float64
}

// Retry runs the handler again, in process and on the same delivery,
// while it fails, up to MaxAttempts times in all, waiting between attempts
// on an exponential schedule; it returns the last error. It does not retry
// a Permanent error, nor once the handler's context has ended (the worker
// stopping, an outer Timeout). The delivery stays unsettled meanwhile: it
// holds a prefetch slot, and is redelivered if the worker dies.
func Retry(opts RetryOptions) Middleware {
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 3
	}
	wait := backoff.Backoff{
		Initial:    cmpOr(opts.InitialInterval, 100*time.Millisecond),
		Multiplier: cmpOr(opts.Multiplier, 2),
		Max:        cmpOr(opts.MaxInterval, 10*time.Second),
		Jitter:     max(opts.Jitter, 0),
	}
	return func(next Handler) Handler {
		return func(ctx context.Context, d *transport.Delivery) error {
			for attempt := 1; ; attempt++ {
				err := next(ctx, d)
				if err == nil || IsPermanent(err) || attempt >= opts.MaxAttempts || ctx.Err() != nil {
					return err
				}
				logger(ctx).WarnContext(ctx, "handler failed; retrying",
					"queue", Queue(ctx), "message_id", d.MessageID, "attempt", attempt, "max_attempts", opts.MaxAttempts, "err", err)
				if wait.Wait(ctx, attempt-1) != nil {
					return err
				}
			}
		}
	}
}

// cmpOr is v, or def where v is zero or less.
func cmpOr[T int | float64 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Publisher is what Poison needs of a transport: *transport.Transport is
// one.
type Publisher interface {
	Publish(ctx context.Context, exchange, routingKey string, msg transport.Message) error
	Capabilities() transport.Capabilities
}

// PoisonOptions say where Poison sends poison messages and when.
type PoisonOptions struct {
	// Exchange and RoutingKey are where poison messages are published:
	// an exchange with a queue bound for them, or the default exchange
	// "" and a queue's name. They must not both be empty.
	Exchange   string
	RoutingKey string
	// MaxDeliveries poisons a failing message on its MaxDeliveries-th
	// delivery (Delivery.DeliveryCount+1); earlier failures are left to
	// the worker's policy (a requeue, by default). Zero or one poisons a
	// message at its first failure, and so does a backend that does not
	// count deliveries (without CapDeliveryCount).
	MaxDeliveries int
}

// The headers Poison adds to a poison message; the message keeps its own.
const (
	// HeaderPoisonReason is why the message was poisoned: ReasonPermanent
	// or ReasonMaxDeliveries.
	HeaderPoisonReason = "x-poison-reason"
	// HeaderPoisonQueue is the queue the message failed in.
	HeaderPoisonQueue = "x-poison-queue"
	// HeaderPoisonError is the text of the handler's last error.
	HeaderPoisonError = "x-poison-error"
	// HeaderPoisonExchange and HeaderPoisonRoutingKey are where the
	// message was published before it was poisoned.
	HeaderPoisonExchange   = "x-poison-exchange"
	HeaderPoisonRoutingKey = "x-poison-routing-key"
	// HeaderPoisonDeliveries is how many times the message was delivered,
	// where the backend counts (CapDeliveryCount).
	HeaderPoisonDeliveries = "x-poison-deliveries"
)

// The reasons HeaderPoisonReason gives.
const (
	// ReasonPermanent: the handler returned a Permanent error.
	ReasonPermanent = "permanent"
	// ReasonMaxDeliveries: the handler failed on the message's
	// MaxDeliveries-th delivery.
	ReasonMaxDeliveries = "max-deliveries"
)

// Poison takes a message that keeps failing out of its queue: when the
// handler returns a Permanent error, or fails on the message's
// MaxDeliveries-th delivery, Poison publishes the message to opts.Exchange
// with opts.RoutingKey (mandatory where the backend has CapMandatory, so
// that one routed nowhere is an error, not a loss), with the poison
// headers added, and returns nil: the worker acknowledges it. If that
// publish fails, it returns the failure marked Requeue: the message goes
// back to its queue, never dropped. An error after the worker's stop cut
// the handler off is passed on, not poisoned. Place Poison outside Retry,
// so that only a message that failed every attempt is poisoned.
func Poison(pub Publisher, opts PoisonOptions) Middleware {
	counts := pub.Capabilities().Has(transport.CapDeliveryCount)
	mandatory := pub.Capabilities().Has(transport.CapMandatory)
	return func(next Handler) Handler {
		return func(ctx context.Context, d *transport.Delivery) error {
			err := next(ctx, d)
			if err == nil || ctx.Err() != nil {
				return err
			}
			deliveries := d.DeliveryCount + 1
			var reason string
			switch {
			case IsPermanent(err):
				reason = ReasonPermanent
			case !counts || deliveries >= opts.MaxDeliveries:
				reason = ReasonMaxDeliveries
			default:
				return err
			}
			queue := Queue(ctx)
			msg := d.Message
			msg.Headers = maps.Clone(d.Headers)
			if msg.Headers == nil {
				msg.Headers = transport.Headers{}
			}
			msg.Headers[HeaderPoisonReason] = reason
			msg.Headers[HeaderPoisonQueue] = queue
			msg.Headers[HeaderPoisonError] = err.Error()
			msg.Headers[HeaderPoisonExchange] = d.Exchange
			msg.Headers[HeaderPoisonRoutingKey] = d.RoutingKey
			if counts {
				msg.Headers[HeaderPoisonDeliveries] = deliveries
			}
			msg.Expiration = 0 // its time to live was the work queue's
			msg.Mandatory = mandatory
			attrs := []any{"queue", queue, "message_id", d.MessageID, "reason", reason, "exchange", opts.Exchange, "routing_key", opts.RoutingKey}
			perr := publishPoison(ctx, pub, opts, msg)
			if perr != nil {
				logger(ctx).ErrorContext(ctx, "cannot publish a poison message; requeueing it", append(attrs, "err", err, "publish_err", perr)...)
				return Requeue(fmt.Errorf("poison message: %w (the handler failed with: %v)", perr, err))
			}
			logger(ctx).ErrorContext(ctx, "poisoned a message that cannot be handled", append(attrs, "err", err)...)
			return nil
		}
	}
}

func publishPoison(ctx context.Context, pub Publisher, opts PoisonOptions, msg transport.Message) error {
	if opts.Exchange == "" && opts.RoutingKey == "" {
		return fmt.Errorf("%w: PoisonOptions name neither an exchange nor a routing key", transport.ErrInvalid)
	}
	return pub.Publish(ctx, opts.Exchange, opts.RoutingKey, msg)
}

// Recover turns a panic of the handler into a *PanicError carrying the
// stack, logged with the context at error level, which the worker settles
// as any error. Place it innermost (last in WithMiddleware), so that Retry
// and Poison see a panic as the error it now is: a panic that no Recover
// catches ends the program, as any goroutine's does.
func Recover() Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, d *transport.Delivery) (err error) {
			defer func() {
				if v := recover(); v != nil {
					perr := &PanicError{Value: v, Stack: debug.Stack()}
					logger(ctx).ErrorContext(ctx, "handler panicked",
						"queue", Queue(ctx), "message_id", d.MessageID, "panic", fmt.Sprint(v), "stack", string(perr.Stack))
					err = perr
				}
			}()
			return next(ctx, d)
		}
	}
}

// Timeout gives each handler run at most d: its context's deadline. The
// handler must honour its context; an error it returns once the deadline
// passed says so (wrapping context.DeadlineExceeded). Inside Retry it
// bounds each attempt, outside it all of them.
func Timeout(d time.Duration) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, dl *transport.Delivery) error {
			tctx, cancel := context.WithTimeout(ctx, d)
			defer cancel()
			err := next(tctx, dl)
			if err != nil && ctx.Err() == nil && errors.Is(tctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("handler timed out after %v: %w", d, err)
			}
			return err
		}
	}
}

// DefaultDeduplicateWindow is how many message ids Deduplicate remembers
// unless told otherwise.
const DefaultDeduplicateWindow = 4096

// Deduplicate drops a message whose MessageID was handled successfully
// among the last window ids (DefaultDeduplicateWindow where window is zero
// or less): the worker acknowledges it without calling the handler. A copy
// that arrives while the first is being handled waits for it, and is
// handled only if the first failed. A message without an id is always
// handled. Place it outside Poison, so that a poisoned message counts as
// handled.
func Deduplicate(window int) Middleware {
	if window <= 0 {
		window = DefaultDeduplicateWindow
	}
	ids := &idWindow{size: window, done: map[string]struct{}{}, inFlight: map[string]chan struct{}{}}
	return func(next Handler) Handler {
		return func(ctx context.Context, d *transport.Delivery) error {
			if d.MessageID == "" {
				return next(ctx, d)
			}
			for {
				done, wait := ids.claim(d.MessageID)
				if done {
					logger(ctx).DebugContext(ctx, "dropping a duplicate message", "queue", Queue(ctx), "message_id", d.MessageID)
					return nil
				}
				if wait == nil {
					break
				}
				select {
				case <-wait:
				case <-ctx.Done():
					return Requeue(fmt.Errorf("waiting for a copy of message %q in flight: %w", d.MessageID, ctx.Err()))
				}
			}
			handled := false
			// Deferred, so that a panic (for an outer Recover) does not
			// leave the id claimed forever.
			defer func() { ids.release(d.MessageID, handled) }()
			err := next(ctx, d)
			handled = err == nil
			return err
		}
	}
}

// idWindow remembers the ids handled successfully, the last size of them,
// and the ids being handled. It is not internal/messaging's
// DuplicateFilter: that one stands a floor above (with the oslo layer),
// has oslo's fixed window, and cannot make a copy wait for the one in
// flight.
type idWindow struct {
	mu       sync.Mutex
	size     int
	ring     []string // handled ids, the oldest at next once full
	next     int
	done     map[string]struct{}
	inFlight map[string]chan struct{} // closed when the id's handler returns
}

// claim reports whether id was handled; if not, it claims id for the
// caller (wait nil), or returns a channel closed when the copy in flight
// is done.
func (w *idWindow) claim(id string) (done bool, wait <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.done[id]; ok {
		return true, nil
	}
	if ch, ok := w.inFlight[id]; ok {
		return false, ch
	}
	w.inFlight[id] = make(chan struct{})
	return false, nil
}

// release ends the caller's claim of id, remembering it if it was handled.
func (w *idWindow) release(id string, handled bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	close(w.inFlight[id])
	delete(w.inFlight, id)
	if !handled {
		return
	}
	if len(w.ring) < w.size {
		w.ring = append(w.ring, id)
	} else {
		delete(w.done, w.ring[w.next])
		w.ring[w.next] = id
		w.next = (w.next + 1) % w.size
	}
	w.done[id] = struct{}{}
}
