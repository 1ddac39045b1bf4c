package rpc

import (
	"context"
	"sync"
	"time"

	"github.com/switchyard-mq/switchyard/internal/messaging"
)

// lazyContext is what context.WithDeadline and context.WithValue give a
// call or a handler, made cheap for the common case: nothing waits on
// Done. A timer and a channel cost several allocations per call, most
// handlers never look at them, and a call waits for its reply on its own
// timer; so they are made only on the first call to Done. Err tells
// the deadline by the clock until then.
type lazyContext struct {
	context.Context // the parent

	deadline time.Time // zero: none of its own
	rc       RequestContext
	// deadlineWatched: a timer of the caller's cancels the context at
	// its deadline, so Done needs none.
	deadlineWatched bool
	// self is the context as a context.Context, for a handler's
	// reflective call, which takes its arguments by pointer: pointing
	// here costs no allocation, as pointing at a copy would.
	self context.Context

	mu         sync.Mutex
	done       chan struct{}
	err        error
	timer      *time.Timer
	stopParent func() bool
}

// newLazyContext returns a child of parent ending at deadline (zero: when
// parent ends) and carrying rc (nil: parent's). Call end when the call or
// handler returns.
func newLazyContext(parent context.Context, deadline time.Time, rc RequestContext) *lazyContext {
	if d, ok := parent.Deadline(); ok && (deadline.IsZero() || d.Before(deadline)) {
		deadline = d
	}
	c := &lazyContext{Context: parent, deadline: deadline, rc: rc}
	c.self = c
	return c
}

// end cancels the context, as a context.CancelFunc does, and releases
// what it holds.
func (c *lazyContext) end() { c.cancel(context.Canceled) }

// Deadline implements context.Context.
func (c *lazyContext) Deadline() (time.Time, bool) { return c.deadline, !c.deadline.IsZero() }

// Value implements context.Context.
func (c *lazyContext) Value(key any) any {
	if _, ok := key.(messaging.RequestContextKey); ok && c.rc != nil {
		return c.rc
	}
	return c.Context.Value(key)
}

// Done implements context.Context: the first call starts watching the
// deadline and the parent.
func (c *lazyContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done != nil {
		return c.done
	}
	c.done = make(chan struct{})
	if c.err != nil {
		close(c.done)
		return c.done
	}
	if err := c.expiredLocked(); err != nil {
		c.endLocked(err)
		return c.done
	}
	if !c.deadline.IsZero() && !c.deadlineWatched {
		c.timer = time.AfterFunc(time.Until(c.deadline), func() { c.cancel(context.DeadlineExceeded) })
	}
	if c.Context.Done() != nil {
		c.stopParent = context.AfterFunc(c.Context, func() { c.cancel(c.Context.Err()) })
	}
	return c.done
}

// Err implements context.Context, consistently with Done: once it
// reports an error, Done is closed.
func (c *lazyContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		if err := c.expiredLocked(); err != nil {
			c.endLocked(err)
		}
	}
	return c.err
}

// expiredLocked reports why the context has ended without anyone
// having told it: the parent ended, or the deadline passed.
func (c *lazyContext) expiredLocked() error {
	if err := c.Context.Err(); err != nil {
		return err
	}
	// time.Until reads only the monotonic clock when the deadline has a
	// monotonic reading (time.Now's do), half of what time.Now reads.
	if !c.deadline.IsZero() && time.Until(c.deadline) <= 0 {
		return context.DeadlineExceeded
	}
	return nil
}

func (c *lazyContext) cancel(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.endLocked(err)
	}
}

// endLocked records err, closes Done if it was made, and releases the
// timer and the parent's callback.
func (c *lazyContext) endLocked(err error) {
	c.err = err
	if c.done != nil {
		close(c.done)
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.stopParent != nil {
		c.stopParent()
	}
}
