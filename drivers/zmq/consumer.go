package zmq

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-mq/switchyard/drivers/zmq/internal/matchmaker"
	"github.com/switchyard-mq/switchyard/transport/driver"
)

// The receiving side. Deliveries arrive on a connection's reader goroutine
// and wait in their consumer's buffer until Receive hands them out; the
// consumer's settlements go back to the node that sent each delivery.

// inbound is one delivery received from a sender.
type inbound struct {
	from     *peer
	consumer uint64 // the consumer it was sent to
	seq      uint64
	d        driver.Delivery
	expires  time.Time
}

// key identifies the delivery for deduplication.
func (in *inbound) key() dedupKey { return dedupKey{in.from.id, in.consumer, in.seq} }

// consumer implements driver.Consumer and driver.Settler.
type consumer struct {
	c        *conn
	id       uint64
	queue    string
	rec      matchmaker.Consumer
	autoAck  bool
	prefetch int
	wake     chan struct{} // capacity one: a wake-up is never lost
	done     chan struct{} // closed when the consumer ends

	mu      sync.Mutex
	closed  bool
	buf     []inbound // received, not handed out
	head    int
	unacked map[uint64]inbound
	nextTag uint64
}

// consumerTable is the receiving side of a node: its consumers by ID, the
// duplicate filter over what they received, and the connections whose
// settlements wait to be sent in a batch.
type consumerTable struct {
	mu     sync.RWMutex // guards byID; taken after the sender's lock, never before
	byID   map[uint64]*consumer
	nextID atomic.Uint64

	dedup  dedup
	unsent unsentSettlements
}

func newConsumerTable() *consumerTable {
	return &consumerTable{
		byID:   map[uint64]*consumer{},
		dedup:  newDedup(),
		unsent: unsentSettlements{peers: map[*peer]struct{}{}, kick: make(chan struct{}, 1)},
	}
}

// add registers a consumer under its ID.
func (t *consumerTable) add(cons *consumer) {
	t.mu.Lock()
	t.byID[cons.id] = cons
	t.mu.Unlock()
}

// remove forgets a consumer.
func (t *consumerTable) remove(id uint64) {
	t.mu.Lock()
	delete(t.byID, id)
	t.mu.Unlock()
}

// get returns the consumer with an ID, or nil.
func (t *consumerTable) get(id uint64) *consumer {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.byID[id]
}

// all returns every consumer.
func (t *consumerTable) all() []*consumer {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return slices.Collect(maps.Values(t.byID))
}

// ofDeletedQueues returns the consumers of queues reg does not have.
func (t *consumerTable) ofDeletedQueues(reg *matchmaker.Registry) []*consumer {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var gone []*consumer
	for _, cons := range t.byID {
		if _, ok := reg.Queues[cons.queue]; !ok {
			gone = append(gone, cons)
		}
	}
	return gone
}

// unsentSettlements is the connections with settlements queued and not yet
// written: a busy consumer's settlements wait for more to ride along, at
// most ackDelay (the flusher goroutine sees to it), or until the consumer
// waits for its next delivery.
type unsentSettlements struct {
	mu    sync.Mutex
	peers map[*peer]struct{}
	kick  chan struct{} // capacity one: wakes the flusher
}

// add marks p as holding batched settlements.
func (b *unsentSettlements) add(p *peer) {
	b.mu.Lock()
	b.peers[p] = struct{}{}
	b.mu.Unlock()
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// flush writes every batched settlement now.
func (b *unsentSettlements) flush() {
	b.mu.Lock()
	if len(b.peers) == 0 {
		b.mu.Unlock()
		return
	}
	peers := slices.Collect(maps.Keys(b.peers))
	clear(b.peers)
	b.mu.Unlock()
	for _, p := range peers {
		p.flush()
	}
}

// Consume implements driver.Conn.
func (c *conn) Consume(ctx context.Context, queue string, opts driver.ConsumeOptions) (driver.Consumer, error) {
	if err := c.check(ctx); err != nil {
		return nil, err
	}
	if _, err := c.registry.usableQueue(ctx, queue); err != nil {
		return nil, err
	}
	reg, err := c.mm.Refresh(ctx)
	if err != nil {
		return nil, fmt.Errorf("zmq: matchmaker: %w", err)
	}
	for _, other := range reg.Consumers[queue] {
		if opts.Exclusive || other.Exclusive {
			return nil, fmt.Errorf("%w: queue %q has an exclusive consumer, or asked for one while in use", driver.ErrInUse, queue)
		}
	}
	cons := &consumer{
		c: c, id: c.consumers.nextID.Add(1), queue: queue, autoAck: opts.AutoAck, prefetch: opts.Prefetch,
		wake: make(chan struct{}, 1), done: make(chan struct{}), unacked: map[uint64]inbound{},
	}
	cons.rec = matchmaker.Consumer{Queue: queue, Node: c.id, ID: cons.id, Prefetch: opts.Prefetch, Exclusive: opts.Exclusive}
	if opts.AutoAck {
		cons.rec.Prefetch = 0 // auto-ack settles on hand-out: the window bounds its buffer
	}
	c.consumers.add(cons)
	if err := c.mm.AddConsumer(ctx, cons.rec); err != nil {
		c.consumers.remove(cons.id)
		// The record may have been written before the failure: a sender
		// must not count on a consumer that is not there.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.sendTimeout)
		defer cancel()
		if rerr := c.mm.RemoveConsumer(rctx, cons.rec); rerr != nil {
			c.logger.WarnContext(ctx, "zmq: removing the record of a consumer that failed to start failed", "queue", queue, "err", rerr)
		}
		return nil, err
	}
	if c.isClosing() {
		cons.end(false)
		return nil, driver.ErrClosed
	}
	return cons, nil
}

// Receive implements driver.Consumer.
func (cons *consumer) Receive(ctx context.Context) (driver.Delivery, error) {
	c := cons.c
	for {
		cons.mu.Lock()
		if cons.closed {
			cons.mu.Unlock()
			return driver.Delivery{}, cons.errClosed()
		}
		credit := cons.autoAck || cons.prefetch == 0 || len(cons.unacked) < cons.prefetch
		if credit && cons.head < len(cons.buf) {
			in := cons.buf[cons.head]
			cons.buf[cons.head] = inbound{}
			cons.head++
			if cons.head == len(cons.buf) {
				cons.buf, cons.head = cons.buf[:0], 0
			}
			more := cons.head < len(cons.buf)
			if !in.expires.IsZero() && !time.Now().Before(in.expires) {
				cons.mu.Unlock()
				c.settle(in, opExpired, false)
				continue
			}
			d := in.d
			if cons.autoAck {
				cons.mu.Unlock()
				c.settle(in, opAck, false)
			} else {
				cons.nextTag++
				d.Settler, d.Tag = cons, cons.nextTag
				cons.unacked[d.Tag] = in
				cons.mu.Unlock()
			}
			if more {
				cons.signal() // another Receive may take the next one
			}
			return d, nil
		}
		cons.mu.Unlock()
		// About to wait: batched settlements go now, so that senders are
		// never kept waiting on an idle consumer.
		c.consumers.unsent.flush()
		select {
		case <-cons.wake:
		case <-cons.done:
		case <-ctx.Done():
			return driver.Delivery{}, ctx.Err()
		}
	}
}

func (cons *consumer) signal() {
	select {
	case cons.wake <- struct{}{}:
	default:
	}
}

func (cons *consumer) errClosed() error {
	return fmt.Errorf("%w: consumer of queue %q ended", driver.ErrClosed, cons.queue)
}

// Ack implements driver.Settler.
func (cons *consumer) Ack(tag uint64) error { return cons.settleTag(tag, opAck) }

// Nack implements driver.Settler: requeue sends the message back to its
// sender, which redelivers it; otherwise the sender dead-letters or drops
// it.
func (cons *consumer) Nack(tag uint64, requeue bool) error {
	if requeue {
		return cons.settleTag(tag, opRequeue)
	}
	return cons.settleTag(tag, opReject)
}

func (cons *consumer) settleTag(tag uint64, op settleOp) error {
	cons.mu.Lock()
	if cons.closed {
		cons.mu.Unlock()
		return fmt.Errorf("%w: consumer of queue %q ended and its unsettled deliveries went back to their senders", driver.ErrClosed, cons.queue)
	}
	// The transport settles a tag once: one the consumer does not hold
	// was never handed out by it.
	in, ok := cons.unacked[tag]
	if !ok {
		cons.mu.Unlock()
		return fmt.Errorf("%w: consumer of queue %q handed out no delivery tag %d", driver.ErrInvalid, cons.queue, tag)
	}
	delete(cons.unacked, tag)
	// An idle consumer's sender may be waiting for this credit: send now.
	// A busy one's settlements are batched until it waits or ackDelay.
	urgent := cons.head == len(cons.buf)
	atLimit := cons.prefetch > 0 && len(cons.unacked)+1 == cons.prefetch && !urgent
	cons.mu.Unlock()
	if atLimit {
		cons.signal() // a Receive held back by prefetch may go on
	}
	cons.c.settle(in, op, urgent)
	return nil
}

// Close implements driver.Consumer: buffered deliveries go back to their
// senders as they were, unsettled ones marked redelivered.
func (cons *consumer) Close() error {
	if !cons.end(true) {
		return nil
	}
	c := cons.c
	if !c.isClosing() {
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.sendTimeout)
		defer cancel()
		c.autoDeleteQueue(ctx, cons.queue)
	}
	return nil
}

// end stops the consumer; with returns, its messages go back to their
// senders. It reports whether this call ended it.
func (cons *consumer) end(returns bool) bool {
	cons.mu.Lock()
	if cons.closed {
		cons.mu.Unlock()
		return false
	}
	cons.closed = true
	close(cons.done)
	buffered := cons.buf[cons.head:]
	cons.buf, cons.head = nil, 0
	unacked := cons.unacked
	cons.unacked = nil
	cons.mu.Unlock()

	c := cons.c
	if returns {
		for _, in := range buffered {
			c.settle(in, opReturn, false)
		}
		for _, in := range unacked {
			c.settle(in, opRelease, false)
		}
		c.consumers.unsent.flush()
	} else {
		for _, in := range buffered {
			c.consumers.dedup.settled(in.key(), opReturn)
		}
		for _, in := range unacked {
			c.consumers.dedup.settled(in.key(), opReturn)
		}
	}
	c.consumers.remove(cons.id)
	if !c.isClosing() { // a closing node leaves the matchmaker, consumers and all
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.sendTimeout)
		defer cancel()
		if err := c.mm.RemoveConsumer(ctx, cons.rec); err != nil {
			c.logger.WarnContext(context.Background(), "zmq: removing a consumer from the matchmaker failed; it expires with this node", "queue", cons.queue, "err", err)
		}
	}
	return true
}

// cancel ends a consumer whose queue was deleted; its senders dropped
// what they held for it.
func (cons *consumer) cancel() { cons.end(false) }

// handle dispatches one message from a connection.
func (c *conn) handle(p *peer, frames [][]byte) error {
	typ, fields, err := checkHeader(frames[0])
	if err != nil {
		return err
	}
	switch typ {
	case typeDeliver:
		if len(frames) != 3 {
			return fmt.Errorf("DELIVER of %d frames, want 3", len(frames))
		}
		h, err := decodeDeliverHeader(fields)
		if err != nil {
			return err
		}
		return c.onDeliver(p, h, frames[1], frames[2])
	case typeHandoff:
		if len(frames) != 3 {
			return fmt.Errorf("HANDOFF of %d frames, want 3", len(frames))
		}
		h, err := decodeHandoffHeader(fields)
		if err != nil {
			return err
		}
		var msg driver.Message
		if _, _, err := decodeProps(frames[1], &msg); err != nil {
			return err
		}
		c.onHandoff(h, frames[1], frames[2])
		return nil
	case typeSettle:
		if len(frames) != 1 {
			return fmt.Errorf("SETTLE of %d frames, want 1", len(frames))
		}
		ss, err := decodeSettle(fields, nil)
		if err != nil {
			return err
		}
		c.sender.settle(p.id, ss)
		return nil
	}
	return fmt.Errorf("unknown message type %#x", typ)
}

// onDeliver hands a delivery to its consumer, unless it is a duplicate.
func (c *conn) onDeliver(p *peer, h deliverHeader, props, body []byte) error {
	var msg driver.Message
	exchange, key, err := decodeProps(props, &msg)
	if err != nil {
		return err
	}
	cons := c.consumers.get(h.consumer)
	if cons == nil {
		c.settleTo(p, settlement{h.seq, opReturn}, true)
		return nil
	}
	k := dedupKey{p.id, h.consumer, h.seq}
	if fresh, resend := c.consumers.dedup.arrive(k); !fresh {
		if resend != 0 {
			c.settleTo(p, settlement{h.seq, resend}, true)
		}
		return nil
	}
	msg.Body = body
	in := inbound{from: p, consumer: h.consumer, seq: h.seq, d: driver.Delivery{
		Message: msg, Exchange: exchange, RoutingKey: key, Redelivered: h.redelivered, DeliveryCount: int(h.count),
	}}
	if h.ttl > 0 {
		in.expires = time.Now().Add(h.ttl)
	}
	cons.mu.Lock()
	if cons.closed {
		cons.mu.Unlock()
		c.consumers.dedup.settled(k, opReturn)
		c.settleTo(p, settlement{h.seq, opReturn}, true)
		return nil
	}
	cons.buf = append(cons.buf, in)
	cons.mu.Unlock()
	cons.signal()
	return nil
}

// settle sends a consumer's settlement to the delivery's sender, now if
// urgent, else batched.
func (c *conn) settle(in inbound, op settleOp, urgent bool) {
	c.consumers.dedup.settled(in.key(), op)
	c.settleTo(in.from, settlement{in.seq, op}, urgent)
}

// settleTo queues a settlement on p, or on the node's current connection
// if p failed (the sender will have returned the message; the settlement
// may still spare a duplicate).
func (c *conn) settleTo(p *peer, s settlement, urgent bool) {
	if p.id == c.id { // this node sent it: settle without the round trip
		c.sender.settle(c.id, []settlement{s})
		return
	}
	full, ok := p.settle(s)
	if !ok {
		if p = c.pool.senders()[p.id]; p == nil {
			return
		}
		if full, ok = p.settle(s); !ok {
			return
		}
	}
	if urgent || full {
		p.flush()
	} else {
		c.consumers.unsent.add(p)
	}
}
