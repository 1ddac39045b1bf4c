package memory

import (
	"context"
	"fmt"
	"sync"

	"github.com/switchyard-mq/switchyard/transport/driver"
)

// consumer takes messages from its queue in batches its prefetch allows,
// hands them out one per Receive, and keeps the unsettled ones until they
// are acked, requeued or rejected.
type consumer struct {
	q         *queue
	conn      *conn
	autoAck   bool
	prefetch  int // 0: unbounded
	exclusive bool
	wake      chan struct{} // capacity 1: a pending wake-up is never lost
	done      chan struct{} // closed when the consumer ends

	// waiting is guarded by q.mu: c is in q.waiters.
	waiting bool

	mu       sync.Mutex
	closed   bool
	detached bool        // see detach
	buffer   ring[entry] // taken from the queue, not yet handed out
	unacked  window      // handed out, not yet settled
	starving bool        // Receive waits for an ack to free credit
	blocked  int         // receivers waiting in Receive
}

func newConsumer(q *queue, c *conn, opts driver.ConsumeOptions) *consumer {
	return &consumer{
		q: q, conn: c, autoAck: opts.AutoAck, prefetch: opts.Prefetch, exclusive: opts.Exclusive,
		wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
}

func (c *consumer) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// credit is how many more messages c may take from the queue.
func (c *consumer) creditLocked() int {
	if c.autoAck || c.prefetch == 0 {
		return batchSize
	}
	return min(batchSize, c.prefetch-c.unacked.len()-c.buffer.len())
}

// Receive hands out the next message, taking a batch from the queue when
// its buffer is empty, and otherwise waits for a publish or an ack.
//
// Several goroutines may wait at once. The queue wakes a consumer once per
// registration, and a receiver that takes a message does not register
// again; so whoever hands out a message while others wait wakes one of
// them to hand out what is left in the buffer, or, with the buffer empty,
// registers the consumer anew for them.
func (c *consumer) Receive(ctx context.Context) (driver.Delivery, error) {
	d, _, err := c.receive(ctx)
	return d, err
}

// receive is Receive, also returning the delivered message.
func (c *consumer) receive(ctx context.Context) (driver.Delivery, *message, error) {
	waited := false
	for {
		c.mu.Lock()
		if waited {
			c.blocked--
			waited = false
		}
		if c.closed {
			c.mu.Unlock()
			return driver.Delivery{}, nil, c.errClosed()
		}
		var dead []deadLetter
		if c.buffer.len() == 0 {
			if credit := c.creditLocked(); credit > 0 {
				var deleted bool
				if dead, deleted = c.q.take(c, credit, &c.buffer); deleted {
					c.mu.Unlock()
					c.cancel()
					return driver.Delivery{}, nil, c.errClosed()
				}
			} else {
				c.starving = true
			}
		}
		if c.buffer.len() > 0 {
			e := c.buffer.popFront()
			d := c.handOutLocked(e)
			othersWaiting, buffered := c.blocked > 0, c.buffer.len() > 0
			c.mu.Unlock()
			switch {
			case othersWaiting && buffered:
				c.signal()
			case othersWaiting:
				// Nothing left here for them: the queue wakes one when
				// it has something, rather than one waking now to find
				// nothing and register.
				c.q.await(c)
			}
			c.q.b.deadLetter(dead)
			return d, e.m, nil
		}
		c.blocked++
		waited = true
		c.mu.Unlock()
		c.q.b.deadLetter(dead)

		select {
		case <-c.wake:
		case <-c.done:
		case <-ctx.Done():
			c.mu.Lock()
			c.blocked--
			if c.blocked == 0 {
				c.q.unwait(c)
			} else {
				// The others still need the registration; pass on a
				// wake-up this receiver may have been meant to take.
				c.signal()
			}
			c.mu.Unlock()
			return driver.Delivery{}, nil, ctx.Err()
		}
	}
}

// receiveBuffered hands out the next message c already took from its
// queue, without waiting, if it has one.
func (c *consumer) receiveBuffered() (driver.Delivery, *message, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.buffer.len() == 0 {
		return driver.Delivery{}, nil, false
	}
	e := c.buffer.popFront()
	return c.handOutLocked(e), e.m, true
}

func (c *consumer) errClosed() error {
	return fmt.Errorf("%w: consumer of queue %q ended", driver.ErrClosed, c.q.decl.Name)
}

func (c *consumer) handOutLocked(e entry) driver.Delivery {
	d := driver.Delivery{
		Message:       e.m.msg,
		Exchange:      e.m.exchange,
		RoutingKey:    e.m.key,
		Redelivered:   e.redelivered,
		DeliveryCount: e.returns,
	}
	if !c.autoAck {
		d.Settler = c
		d.Tag = c.unacked.push(e)
	}
	return d
}

// settle removes tag from the unsettled deliveries.
func (c *consumer) settle(tag uint64) (entry, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return entry{}, fmt.Errorf("%w: consumer of queue %q ended and its unsettled deliveries were requeued", driver.ErrClosed, c.q.decl.Name)
	}
	e, ok := c.unacked.remove(tag)
	if !ok {
		// The transport settles each tag it was handed once: a tag the
		// open consumer does not hold was never its own.
		return entry{}, fmt.Errorf("%w: delivery tag %d was not handed out by the consumer of queue %q", driver.ErrInvalid, tag, c.q.decl.Name)
	}
	if c.starving {
		c.starving = false
		c.signal()
	}
	return e, nil
}

// Ack settles a delivery as handled.
func (c *consumer) Ack(tag uint64) error {
	_, err := c.settle(tag)
	return err
}

// Nack requeues a delivery, or dead-letters it.
func (c *consumer) Nack(tag uint64, requeue bool) error {
	e, err := c.settle(tag)
	if err != nil {
		return err
	}
	if requeue {
		c.q.requeue([]entry{e}, true)
	} else {
		c.q.reject(e)
	}
	return nil
}

// Close ends the consumer and returns its messages to the queue: the
// unsettled ones marked redelivered, the buffered ones as they were.
func (c *consumer) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.done)
	unacked := c.unacked.drain()
	buffered := make([]entry, 0, c.buffer.len())
	for c.buffer.len() > 0 {
		buffered = append(buffered, c.buffer.popFront())
	}
	c.mu.Unlock()

	// Leave the queue first, so that the requeued messages wake another
	// consumer rather than this one.
	autoDelete := c.q.removeConsumer(c)
	c.q.requeue(buffered, false)
	c.q.requeue(unacked, true)
	c.conn.forget(c)
	if autoDelete {
		c.q.b.deleteQueue(c.q, c.q.unusedLocked)
	}
	return nil
}

// detach stops c taking messages, as AMQP's basic.cancel does: its
// buffered messages go back to the queue, its unsettled deliveries stay
// to be settled until Close.
func (c *consumer) detach() {
	c.mu.Lock()
	if c.closed || c.detached {
		c.mu.Unlock()
		return
	}
	c.detached = true
	buffered := make([]entry, 0, c.buffer.len())
	for c.buffer.len() > 0 {
		buffered = append(buffered, c.buffer.popFront())
	}
	c.mu.Unlock()
	autoDelete := c.q.removeConsumer(c)
	c.q.requeue(buffered, false)
	if autoDelete {
		c.q.b.deleteQueue(c.q, c.q.unusedLocked)
	}
}

// closeIfSettled closes a detached consumer once none of its deliveries
// is left to settle, so that a connection that consumes and cancels
// often does not accumulate them.
func (c *consumer) closeIfSettled() {
	c.mu.Lock()
	settled := c.detached && !c.closed && c.unacked.len() == 0
	c.mu.Unlock()
	if settled {
		_ = c.Close()
	}
}

// cancel ends a consumer whose queue was deleted.
func (c *consumer) cancel() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.done)
		c.unacked.drain()
		c.buffer.clear()
	}
	c.mu.Unlock()
	c.conn.forget(c)
}

// window holds unsettled deliveries by tag. Tags are handed out in order
// and mostly settled in order, so a ring indexed from the oldest tag gives
// O(1) push and in-order removal with no allocation per message.
type window struct {
	slots ring[slot]
	base  uint64 // tag of slots.at(0); tags start at 1
	live  int
}

type slot struct {
	e    entry
	live bool
}

func (w *window) len() int { return w.live }

func (w *window) push(e entry) uint64 {
	if w.base == 0 {
		w.base = 1
	}
	w.slots.pushBack(slot{e: e, live: true})
	w.live++
	return w.base + uint64(w.slots.len()) - 1
}

func (w *window) remove(tag uint64) (entry, bool) {
	if tag < w.base || tag-w.base >= uint64(w.slots.len()) {
		return entry{}, false
	}
	s := w.slots.at(int(tag - w.base))
	if !s.live {
		return entry{}, false
	}
	e := s.e
	*s = slot{}
	w.live--
	for w.slots.len() > 0 && !w.slots.at(0).live {
		w.slots.popFront()
		w.base++
	}
	return e, true
}

// drain removes and returns every unsettled entry, oldest first.
func (w *window) drain() []entry {
	es := make([]entry, 0, w.live)
	for w.slots.len() > 0 {
		if s := w.slots.popFront(); s.live {
			es = append(es, s.e)
		}
		w.base++
	}
	w.live = 0
	return es
}
