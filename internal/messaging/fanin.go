package messaging

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-mq/switchyard/internal/backoff"
	"github.com/switchyard-mq/switchyard/transport"
)

// FanIn receives from several consumers into one stream: a receive loop
// per consumer hands on, one at a time, what it accepts of the
// deliveries. The FanIn owns the loops: Close stops them.
type FanIn[T any] struct {
	out   chan T
	loops sync.WaitGroup
	// closing ends the loops' attempts to resume a consumer.
	closing     chan struct{}
	closeOnce   sync.Once
	lost        atomic.Uint64 // consumers that ended unasked
	unconsumed  atomic.Int64  // queues not consumed right now
	consumersMu sync.Mutex
	consumers   []*transport.Consumer // the current one of each queue
}

// FanInConfig says what a FanIn does with its consumers' deliveries.
type FanInConfig[T any] struct {
	// Accept turns a delivery into what is handed on, on the delivery's
	// receive loop; false drops it (Accept settles it).
	Accept func(*transport.Delivery) (T, bool)
	// Stopping, once closed, makes the loops hand nothing more on: a
	// delivery that no one has taken goes back to its queue, and its loop
	// returns.
	Stopping <-chan struct{}
	// Resume consumes a queue again after its consumer ended while the
	// fan-in was not stopping (a broker cancelled it, its queue was
	// deleted): it declares what the queue needs and returns a new
	// consumer. It is tried with a growing backoff, each failure logged at
	// error level, until it succeeds, it fails with ErrClosed (the
	// transport closed), or the fan-in stops. Nil: such a queue is no
	// longer served, which is logged at error level.
	Resume func(ctx context.Context, queue string) (*transport.Consumer, error)
	// Logger gets the loops' failures; What names the deliveries in its
	// messages ("requests").
	Logger *slog.Logger
	What   string
}

// NewFanIn starts a receive loop on each consumer, handing what they
// accept on to Out; it owns the consumers from then on.
func NewFanIn[T any](consumers []*transport.Consumer, cfg FanInConfig[T]) *FanIn[T] {
	f := &FanIn[T]{out: make(chan T), closing: make(chan struct{}), consumers: consumers}
	for i := range consumers {
		f.loops.Go(func() { f.receive(i, cfg) })
	}
	return f
}

// Out is the stream. It is unbuffered: a loop holds at most one accepted
// delivery that nobody has taken, unsettled, so that what the reader has
// no room for stays in the queue (and its consumer's prefetch), where
// another consumer of the queue can take it. Close closes Out.
func (f *FanIn[T]) Out() <-chan T { return f.out }

// Lost counts the consumers that ended while the fan-in was not stopping.
func (f *FanIn[T]) Lost() uint64 { return f.lost.Load() }

// Unconsumed counts the queues not consumed right now: their consumer
// ended and has not been resumed (yet).
func (f *FanIn[T]) Unconsumed() int { return int(f.unconsumed.Load()) }

func (f *FanIn[T]) consumer(i int) *transport.Consumer {
	f.consumersMu.Lock()
	defer f.consumersMu.Unlock()
	return f.consumers[i]
}

// receive hands on what consumer i delivers until it ends for good or
// stopping closes.
func (f *FanIn[T]) receive(i int, cfg FanInConfig[T]) {
	for {
		c := f.consumer(i)
		d, err := c.Receive(context.Background())
		if err != nil {
			if f.stopped(cfg) {
				return
			}
			if !f.resume(i, c, err, cfg) {
				return
			}
			continue
		}
		v, ok := cfg.Accept(d)
		if !ok {
			continue
		}
		select {
		case f.out <- v:
		case <-cfg.Stopping:
			// Not taken: back to the queue for another consumer (closing
			// the consumer returns it too, if that came first).
			if err := d.Nack(true); err != nil && !errors.Is(err, transport.ErrClosed) {
				cfg.Logger.WarnContext(d.TraceContext(context.Background()), "returning a delivery to its queue failed; the broker will redeliver it", "queue", c.Queue(), "err", err)
			}
			return
		}
	}
}

// stopped reports whether the fan-in is stopping or closing.
func (f *FanIn[T]) stopped(cfg FanInConfig[T]) bool {
	select {
	case <-cfg.Stopping:
		return true
	case <-f.closing:
		return true
	default:
		return false
	}
}

// resume replaces consumer i, which ended unasked with cause, through
// cfg.Resume; it reports whether the loop goes on with the new one.
func (f *FanIn[T]) resume(i int, ended *transport.Consumer, cause error, cfg FanInConfig[T]) bool {
	queue := ended.Queue()
	f.lost.Add(1)
	f.unconsumed.Add(1)
	if cfg.Resume == nil {
		cfg.Logger.Error("receiving "+cfg.What+" failed; this queue is no longer served", "queue", queue, "err", cause)
		return false
	}
	cfg.Logger.Error("the consumer of a queue of "+cfg.What+" ended; consuming it again", "queue", queue, "err", cause)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-cfg.Stopping:
		case <-f.closing:
		case <-ctx.Done():
		}
		cancel()
	}()
	// Spaced out: the queue may be gone for a while (a broker node's loss).
	wait := backoff.Backoff{Initial: 100 * time.Millisecond, Multiplier: 2, Max: 5 * time.Second, Jitter: 0.5}
	for attempt := 0; ; attempt++ {
		if wait.Wait(ctx, attempt) != nil {
			return false
		}
		c, err := cfg.Resume(ctx, queue)
		if err == nil {
			f.consumersMu.Lock()
			f.consumers[i] = c
			f.consumersMu.Unlock()
			if f.stopped(cfg) {
				// Close may have closed the consumers before this one
				// took its place.
				_ = c.Close()
				return false
			}
			f.unconsumed.Add(-1)
			cfg.Logger.Info("consuming the queue of "+cfg.What+" again", "queue", queue, "attempts", attempt+1)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if errors.Is(err, transport.ErrClosed) {
			cfg.Logger.Error("cannot consume the queue of "+cfg.What+" again: the transport closed; this queue is no longer served", "queue", queue, "err", err)
			return false
		}
		cfg.Logger.Error("cannot consume the queue of "+cfg.What+" again; trying again", "queue", queue, "attempt", attempt+1, "err", err)
	}
}

// Close closes the consumers, so that what they deliver unsettled goes
// back to the queues, waits for the loops to return, and closes Out. A
// loop waiting to hand a delivery on returns once Stopping is closed or
// Out read: close Stopping first, or keep reading Out until Close returns.
func (f *FanIn[T]) Close() {
	f.closeOnce.Do(func() { close(f.closing) })
	f.consumersMu.Lock()
	consumers := append([]*transport.Consumer(nil), f.consumers...)
	f.consumersMu.Unlock()
	for _, c := range consumers {
		_ = c.Close()
	}
	f.loops.Wait()
	// A consumer resumed while the others closed: its loop closed it.
	close(f.out)
}
