package messaging

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/switchyard-mq/switchyard/transport"
)

// FanIn receives from several consumers into one stream: a receive loop
// per consumer hands on, one at a time, what it accepts of the
// deliveries. The FanIn owns the loops: Close stops them.
type FanIn[T any] struct {
	out       chan T
	consumers []*transport.Consumer
	loops     sync.WaitGroup
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
	// Logger gets the loops' failures; What names the deliveries in its
	// messages ("requests").
	Logger *slog.Logger
	What   string
}

// NewFanIn starts a receive loop on each consumer, handing what they
// accept on to Out; it owns the consumers from then on.
func NewFanIn[T any](consumers []*transport.Consumer, cfg FanInConfig[T]) *FanIn[T] {
	f := &FanIn[T]{out: make(chan T), consumers: consumers}
	receiveFailed := "receiving " + cfg.What + " failed; this queue is no longer served"
	for _, c := range consumers {
		f.loops.Go(func() { f.receive(c, cfg, receiveFailed) })
	}
	return f
}

// Out is the stream. It is unbuffered: a loop holds at most one accepted
// delivery that nobody has taken, unsettled, so that what the reader has
// no room for stays in the queue (and its consumer's prefetch), where
// another consumer of the queue can take it. Close closes Out.
func (f *FanIn[T]) Out() <-chan T { return f.out }

// receive hands on what c delivers until c ends or stopping closes.
func (f *FanIn[T]) receive(c *transport.Consumer, cfg FanInConfig[T], receiveFailed string) {
	for {
		d, err := c.Receive(context.Background())
		if err != nil {
			if !errors.Is(err, transport.ErrClosed) {
				cfg.Logger.Error(receiveFailed, "queue", c.Queue(), "err", err)
			}
			return
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
				cfg.Logger.Warn("returning a delivery to its queue failed; the broker will redeliver it", "queue", c.Queue(), "err", err)
			}
			return
		}
	}
}

// Close closes the consumers, so that what they deliver unsettled goes
// back to the queues, waits for the loops to return, and closes Out. A
// loop waiting to hand a delivery on returns once Stopping is closed or
// Out read: close Stopping first, or keep reading Out until Close returns.
func (f *FanIn[T]) Close() {
	for _, c := range f.consumers {
		_ = c.Close()
	}
	f.loops.Wait()
	close(f.out)
}
