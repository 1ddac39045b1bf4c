// Package worker runs a queue's deliveries through a handler: a worker is a
// function of a delivery that returns an error, and the loop settles each
// delivery by that result, as Watermill's router does for its handlers.
//
//	err := worker.Run(ctx, tr, "tasks", handle,
//		worker.WithConcurrency(4),
//		worker.WithMiddleware(
//			worker.Poison(tr, worker.PoisonOptions{Exchange: "poison", RoutingKey: "tasks"}),
//			worker.Retry(worker.RetryOptions{MaxAttempts: 3}),
//			worker.Timeout(30*time.Second),
//			worker.Recover(),
//		))
//
// # Settling
//
// A nil result acknowledges the delivery. An error gives it back: by
// default it is requeued (Nack with requeue), to be delivered again;
// WithRequeue(false) rejects it instead (Nack without requeue: the queue's
// dead-letter exchange gets it, or the backend drops it). Two markers
// override the policy for one error: Permanent(err) rejects without retry
// (no Retry attempts, poisoned at once by Poison), Requeue(err) gives the
// message back to its queue. The outermost marker in an error's chain wins.
// Every error is logged with the context (slog's WarnContext for a
// requeue, ErrorContext for a rejection), so that no message leaves its
// queue without a word.
//
// # Stopping
//
// Run returns when its context ends: it stops receiving, lets the handlers
// in flight finish within the grace period (WithGracePeriod, 10 s by
// default), then cancels their context. A handler that fails once the
// stop cut it off has its delivery go back to the queue, whatever the
// error and the requeue policy; so do the deliveries received but not yet
// handled, when Run closes its consumer. A handler must honour its
// context's end: Run waits for every handler to return.
//
// # Poison messages: Poison or the queue's dead-lettering
//
// The portable model has dead-lettering of its own: a queue declared with a
// DeadLetterExchange gets what is rejected (Permanent, or WithRequeue(false))
// and, with a DeliveryLimit, what was requeued too often. Use it when the
// backend has it (CapDeadLetter, CapDeliveryLimit) and the queue's
// declaration is yours: the broker does the counting and the moving, also
// for consumers that are not this worker, and RabbitMQ's x-death header
// says why. Use the Poison middleware when the queue is declared elsewhere
// or without those arguments, when the backend lacks them, or when the
// dead letter must say which error killed it: Poison publishes the message
// itself, with headers naming the reason, the original queue and the
// error's text, and acknowledges it only once that publish succeeded.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-mq/switchyard/transport"
)

// Handler handles one delivery. It returns nil when the message was
// handled, and must not settle the delivery itself: Run settles it by the
// result. ctx carries the delivery's trace context and ends when the
// worker stops (after the grace period) or a Timeout passes.
type Handler func(ctx context.Context, d *transport.Delivery) error

// Middleware wraps a Handler in another, to add behaviour around every
// delivery: retries, poison handling, panic recovery, a deadline.
type Middleware func(Handler) Handler

// DefaultGracePeriod is how long Run lets the handlers in flight finish
// once its context ends, unless WithGracePeriod says otherwise.
const DefaultGracePeriod = 10 * time.Second

// Option configures Run.
type Option func(*config)

type config struct {
	concurrency int
	consume     transport.ConsumeOptions
	grace       time.Duration
	requeue     bool
	middleware  []Middleware
	logger      *slog.Logger
	ready       func()
}

// WithConcurrency runs n handlers at once (1 by default). Unless
// WithConsumeOptions sets a prefetch, the consumer's prefetch is n where
// the backend bounds prefetch (CapPrefetch), so that the queue hands this
// worker no more than it is working on.
func WithConcurrency(n int) Option { return func(c *config) { c.concurrency = n } }

// WithConsumeOptions passes opts to Transport.Consume: a prefetch (zero
// is matched to the concurrency), an exclusive consumer. AutoAck is
// refused (ErrInvalid): the worker settles by the handler's result.
func WithConsumeOptions(opts transport.ConsumeOptions) Option {
	return func(c *config) { c.consume = opts }
}

// WithGracePeriod is how long the handlers in flight may run on once Run's
// context ends, before their own context is cancelled. Zero cancels them
// at once.
func WithGracePeriod(d time.Duration) Option { return func(c *config) { c.grace = d } }

// WithRequeue chooses what an error without a marker does: true (the
// default) requeues the delivery, false rejects it, to the queue's
// dead-letter exchange if it has one.
func WithRequeue(requeue bool) Option { return func(c *config) { c.requeue = requeue } }

// WithMiddleware wraps the handler in mw, the first outermost: in
// WithMiddleware(Poison(...), Retry(...)), Poison sees what Retry returns
// once its attempts are spent.
// It may be given several times; later middleware goes inside earlier.
func WithMiddleware(mw ...Middleware) Option {
	return func(c *config) { c.middleware = append(c.middleware, mw...) }
}

// WithLogger sends the worker's logs (and its middleware's) to l instead of
// the transport's logger.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithReady calls ready once the worker consumes its queue: a message
// published from then on reaches it.
func WithReady(ready func()) Option { return func(c *config) { c.ready = ready } }

// Run consumes queue on tr and hands each delivery to handle, wrapped in
// the options' middleware, settling each by its result (see the package
// documentation). It returns nil once ctx ends and the handlers in flight
// are done; an error if the options are invalid (ErrInvalid), the queue
// cannot be consumed, or the consumer ends unasked (the queue deleted, the
// transport closed): then Run stops as it does at ctx's end, and returns
// the consumer's error.
func Run(ctx context.Context, tr *transport.Transport, queue string, handle Handler, opts ...Option) error {
	if tr == nil {
		return fmt.Errorf("worker on queue %q: %w: nil transport", queue, transport.ErrInvalid)
	}
	cfg := config{concurrency: 1, grace: DefaultGracePeriod, requeue: true, logger: tr.Logger()}
	for _, opt := range opts {
		opt(&cfg)
	}
	if err := cfg.check(handle); err != nil {
		return fmt.Errorf("worker on queue %q: %w", queue, err)
	}
	if cfg.consume.Prefetch == 0 && tr.Capabilities().Has(transport.CapPrefetch) {
		cfg.consume.Prefetch = cfg.concurrency
	}
	for i := len(cfg.middleware) - 1; i >= 0; i-- {
		handle = cfg.middleware[i](handle)
	}
	c, err := tr.Consume(ctx, queue, cfg.consume)
	if err != nil {
		return fmt.Errorf("worker on queue %q: %w", queue, err)
	}
	r := &run{cfg: cfg, handle: handle, queue: queue}
	return r.serve(ctx, c)
}

func (c *config) check(handle Handler) error {
	switch {
	case handle == nil:
		return fmt.Errorf("%w: nil handler", transport.ErrInvalid)
	case c.concurrency < 1:
		return fmt.Errorf("%w: concurrency %d (want 1 or more)", transport.ErrInvalid, c.concurrency)
	case c.grace < 0:
		return fmt.Errorf("%w: negative grace period %v", transport.ErrInvalid, c.grace)
	case c.consume.AutoAck:
		return fmt.Errorf("%w: an auto-ack consumer (the worker settles each delivery by its handler's result)", transport.ErrInvalid)
	case c.logger == nil:
		return fmt.Errorf("%w: nil logger", transport.ErrInvalid)
	}
	for i, mw := range c.middleware {
		if mw == nil {
			return fmt.Errorf("%w: middleware %d is nil", transport.ErrInvalid, i)
		}
	}
	return nil
}

// run is one Run: its handler, chained, and the context its handlers run
// in, cancelled a grace period after Run's own ends.
type run struct {
	cfg    config
	handle Handler
	queue  string
	// base is the handlers' context: Run's values without its end, which
	// comes to it a grace period later.
	base context.Context
	// inFlight counts the deliveries being handled, for the stop's log.
	inFlight atomic.Int32
}

// runInfo is what a worker puts in its handlers' context for middleware.
type runInfo struct {
	queue  string
	logger *slog.Logger
}

type runInfoKey struct{}

// Queue is the queue consumed by the worker running the handler that ctx
// was given to, for middleware; empty outside a worker.
func Queue(ctx context.Context) string {
	info, _ := ctx.Value(runInfoKey{}).(*runInfo)
	if info == nil {
		return ""
	}
	return info.queue
}

// logger is the worker's logger, for middleware; slog.Default() outside a
// worker.
func logger(ctx context.Context) *slog.Logger {
	if info, _ := ctx.Value(runInfoKey{}).(*runInfo); info != nil {
		return info.logger
	}
	return slog.Default()
}

func (r *run) serve(ctx context.Context, c *transport.Consumer) error {
	base, cutOff := context.WithCancel(context.WithoutCancel(ctx))
	defer cutOff()
	r.base = context.WithValue(base, runInfoKey{}, &runInfo{queue: r.queue, logger: r.cfg.logger})
	// receiving ends at ctx's end or at the first receive error.
	receiving, stopReceiving := context.WithCancel(ctx)
	defer stopReceiving()
	if r.cfg.ready != nil {
		r.cfg.ready()
	}
	var (
		loops    sync.WaitGroup
		errMu    sync.Mutex
		firstErr error
	)
	for range r.cfg.concurrency {
		loops.Go(func() {
			if err := r.loop(receiving, c); err != nil {
				errMu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				errMu.Unlock()
				stopReceiving()
			}
		})
	}
	loopsDone := make(chan struct{})
	go func() {
		loops.Wait()
		close(loopsDone)
	}()
	select {
	case <-loopsDone:
	case <-receiving.Done():
		// Stopping: the handlers in flight have the grace period, then
		// their context ends.
		grace := time.NewTimer(r.cfg.grace)
		select {
		case <-loopsDone:
		case <-grace.C:
			if n := r.inFlight.Load(); n > 0 {
				r.cfg.logger.WarnContext(ctx, "worker stopping: grace period over, cancelling the handlers still running",
					"queue", r.queue, "grace", r.cfg.grace, "handlers", n)
			}
			cutOff()
			<-loopsDone
		}
		grace.Stop()
	}
	// Deliveries received but not handled (none, unless a loop failed)
	// and any prefetched go back to the queue.
	if err := c.Close(); err != nil && !errors.Is(err, transport.ErrClosed) && firstErr == nil {
		firstErr = fmt.Errorf("worker on queue %q: %w", r.queue, err)
	}
	return firstErr
}

// loop receives and handles deliveries until ctx ends (nil) or receiving
// fails (the error).
func (r *run) loop(ctx context.Context, c *transport.Consumer) error {
	for ctx.Err() == nil {
		d, err := c.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("worker on queue %q: %w", r.queue, err)
		}
		r.handleOne(d)
	}
	return nil
}

// handleOne runs the handler on d and settles d by its result.
func (r *run) handleOne(d *transport.Delivery) {
	r.inFlight.Add(1)
	defer r.inFlight.Add(-1)
	ctx := d.TraceContext(r.base)
	if err := r.base.Err(); err != nil {
		// Received as the worker was cut off: back to the queue unhandled.
		r.settle(ctx, d, err)
		return
	}
	r.settle(ctx, d, r.handle(ctx, d))
}

// settle acknowledges, requeues or rejects d by err (see the package
// documentation) and logs what happened to a failed delivery.
func (r *run) settle(ctx context.Context, d *transport.Delivery, err error) {
	log := r.cfg.logger
	attrs := []any{"queue", r.queue, "message_id", d.MessageID}
	var settleErr error
	switch requeue, marked := marker(err); {
	case err == nil:
		settleErr = d.Ack()
	case r.base.Err() != nil:
		log.WarnContext(ctx, "worker stopped before its handler finished; requeueing the delivery", append(attrs, "err", err)...)
		settleErr = d.Nack(true)
	case (marked && requeue) || (!marked && r.cfg.requeue):
		log.WarnContext(ctx, "handler failed; requeueing the delivery", append(attrs, "err", err)...)
		settleErr = d.Nack(true)
	default:
		log.ErrorContext(ctx, "handler failed; rejecting the delivery (to the queue's dead-letter exchange, if it has one)",
			append(attrs, "permanent", marked, "err", err)...)
		settleErr = d.Reject()
	}
	if settleErr != nil {
		log.ErrorContext(ctx, "settling a delivery failed; the backend will deliver it again if it is still queued",
			append(attrs, "err", settleErr)...)
	}
}
