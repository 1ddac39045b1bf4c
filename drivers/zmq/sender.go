package zmq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/switchyard-mq/switchyard/drivers/zmq/matchmaker"
	"github.com/switchyard-mq/switchyard/router"
	"github.com/switchyard-mq/switchyard/transport/driver"
)

// The sending side. A node holds every message it published until the
// consumer it chose settles it. Per destination queue it keeps the
// messages waiting for a consumer (pending, in publish order) and the
// consumers' credit; each message goes to one consumer with credit, round
// robin; an ack frees the message and the credit, a requeue or a lost
// consumer puts it back in order for another consumer.

type heldState uint8

const (
	statePending heldState = iota
	stateInflight
	stateDone
)

// held is one message for one queue, held by its sender.
type held struct {
	seq         uint64
	q           *outQueue
	props, body []byte // shared by the copies for other queues
	count       int    // returns counted so far
	redelivered bool
	state       heldState
	target      *target // while in flight
	avoid       *target // the consumer that timed out on it: others first
	via         *peer   // connection it was sent on, while in flight
	sentAt      time.Time
	since       time.Time // when published
	expires     time.Time // zero: no TTL
}

// targetKey names a consumer: its node and its ID there.
type targetKey struct {
	node string
	id   uint64
}

// target is the sender's account of one consumer.
type target struct {
	key      targetKey
	window   int // credit: the consumer's prefetch, or defaultWindow
	inflight int
	gone     bool // closed or vanished: never sent to again
}

// outQueue is the sending side of one destination queue.
type outQueue struct {
	name    string
	decl    matchmaker.Queue
	pending []*held // by sequence; entries may be done (skipped)
	head    int
	live    int // pending entries not done
	targets []*target
	rr      int
	space   chan struct{} // closed when live drops below the bound; nil when nobody waits
	// mayExpire is set when a pending message has a TTL, so that the sweep
	// looks at this queue.
	mayExpire bool
}

func (q *outQueue) push(h *held) {
	h.state = statePending
	q.live++
	if !h.expires.IsZero() {
		q.mayExpire = true
	}
	if n := len(q.pending); n == q.head || q.pending[n-1].seq < h.seq {
		q.pending = append(q.pending, h)
		return
	}
	// A returned message goes back in publish order.
	i := q.head + sort.Search(len(q.pending)-q.head, func(i int) bool { return q.pending[q.head+i].seq > h.seq })
	q.pending = slices.Insert(q.pending, i, h)
}

// front returns the oldest pending message, dropping done entries.
func (q *outQueue) front() *held {
	for q.head < len(q.pending) {
		if h := q.pending[q.head]; h.state == statePending && h.q == q {
			return h
		}
		q.pending[q.head] = nil
		q.head++
	}
	q.pending, q.head = q.pending[:0], 0
	return nil
}

// pop removes the front message (as returned by front).
func (q *outQueue) pop() {
	q.pending[q.head] = nil
	q.head++
	q.live--
	if q.head > 64 && q.head > len(q.pending)/2 {
		q.pending = append(q.pending[:0], q.pending[q.head:]...)
		q.head = 0
	}
}

func (q *outQueue) hasLiveTarget() bool {
	for _, t := range q.targets {
		if !t.gone {
			return true
		}
	}
	return false
}

// bound is how many messages may wait for the queue.
func (c *conn) bound(q *outQueue) int {
	if q.hasLiveTarget() {
		return max(c.opts.bufferSize, 1)
	}
	return c.opts.bufferSize
}

func (c *conn) signalSpaceLocked(q *outQueue) {
	if q.space != nil && q.live < c.bound(q) {
		close(q.space)
		q.space = nil
	}
}

// post is work to do once c.mu is released.
type post struct {
	flushes []*peer
	ended   []*consumer
}

func (c *conn) takeFlushesLocked() post {
	p := post{flushes: c.flushes}
	c.flushes = nil
	p.ended, c.ended = c.ended, nil
	return p
}

func flushAll(p post) {
	for i, peer := range p.flushes {
		if !slices.Contains(p.flushes[:i], peer) {
			peer.flush()
		}
	}
	for _, cons := range p.ended {
		cons.cancel()
	}
}

// Publish implements driver.Conn: it resolves the queues the message
// reaches, then holds one copy per queue and sends each to a consumer. It
// returns once the copies are held (and, where a consumer had credit,
// written to it): the sender, not a broker, is responsible for them.
func (c *conn) Publish(ctx context.Context, exchange, key string, msg driver.Message) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	if len(msg.Body) > maxFrame {
		return fmt.Errorf("%w: body of %d bytes exceeds zmq://'s limit of %d", driver.ErrInvalid, len(msg.Body), maxFrame)
	}
	// Encoded before routing: a message no backend could carry is an
	// error even when no queue takes it.
	props, err := encodeProps(exchange, key, &msg)
	if err != nil {
		return err
	}
	var buf [4]string
	queues, err := c.route(ctx, exchange, key, buf[:0])
	if err != nil {
		return err
	}
	if len(queues) == 0 {
		if msg.Mandatory {
			return fmt.Errorf("%w: no queue bound to exchange %q matches key %q", driver.ErrUnroutable, exchange, key)
		}
		return nil
	}
	return c.enqueue(ctx, queues, props, bytes.Clone(msg.Body), msg.Expiration)
}

// route resolves the queues a publish reaches, checking the matchmaker's
// store before concluding that there is none (a declaration made by
// another node may not have reached this one yet).
func (c *conn) route(ctx context.Context, exchange, key string, buf []string) ([]string, error) {
	for _, fresh := range []bool{false, true} {
		v, err := c.currentView(ctx, fresh)
		if err != nil {
			return nil, err
		}
		queues, err := routeIn(v, exchange, key, buf[:0])
		if (err == nil && len(queues) > 0) || fresh {
			return queues, err
		}
	}
	panic("unreachable")
}

func routeIn(v *view, exchange, key string, buf []string) ([]string, error) {
	if exchange == "" {
		if _, ok := v.reg.Queues[key]; ok {
			return append(buf, key), nil
		}
		return buf, nil
	}
	queues, err := v.routes.Route(exchange, key, buf)
	if errors.Is(err, router.ErrExchangeNotFound) {
		return nil, fmt.Errorf("%w: no exchange %q", driver.ErrNotFound, exchange)
	}
	return queues, err
}

// enqueue holds one copy per queue, waiting while a queue with consumers
// has buffer_size messages waiting for credit.
func (c *conn) enqueue(ctx context.Context, queues []string, props, body []byte, expiration time.Duration) error {
	for {
		c.mu.Lock()
		if c.life.closing.Load() {
			c.mu.Unlock()
			return driver.ErrClosed
		}
		var wait chan struct{}
		for _, name := range queues {
			q := c.outQueueLocked(name)
			if q == nil || q.live < c.bound(q) {
				continue
			}
			if !q.hasLiveTarget() {
				c.mu.Unlock()
				return fmt.Errorf("%w: queue %q: this sender already holds %d messages for it (buffer_size)", ErrBufferFull, name, q.live)
			}
			if q.space == nil {
				q.space = make(chan struct{})
			}
			wait = q.space
			break
		}
		if wait != nil {
			c.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return ctx.Err()
			case <-c.life.stop:
				return driver.ErrClosed
			}
		}
		now := time.Now()
		for _, name := range queues {
			q := c.outQueueLocked(name)
			if q == nil {
				continue // deleted meanwhile
			}
			c.seq++
			h := &held{seq: c.seq, q: q, props: props, body: body, since: now}
			ttl := expiration
			if t := q.decl.MessageTTL; t > 0 && (ttl == 0 || t < ttl) {
				ttl = t
			}
			if ttl > 0 {
				h.expires = now.Add(ttl)
			}
			c.held[h.seq] = h
			q.push(h)
			c.dispatchLocked(q, now)
		}
		p := c.takeFlushesLocked()
		c.mu.Unlock()
		flushAll(p)
		return nil
	}
}

// outQueueLocked returns the sending side of a queue in the view, or nil.
func (c *conn) outQueueLocked(name string) *outQueue {
	if q := c.queues[name]; q != nil {
		return q
	}
	decl, ok := c.view.reg.Queues[name]
	if !ok {
		return nil
	}
	q := &outQueue{name: name, decl: decl}
	c.queues[name] = q
	c.refreshTargetsLocked(q)
	return q
}

// dispatchLocked sends pending messages to consumers with credit.
func (c *conn) dispatchLocked(q *outQueue, now time.Time) {
	for q.live > 0 {
		h := q.front()
		if h == nil {
			q.live = 0
			break
		}
		if !h.expires.IsZero() && !now.Before(h.expires) {
			q.pop()
			h.state = stateDone // popped: finishLocked must not count it again
			c.deadLetterLocked(h, reasonExpired)
			continue
		}
		t, p := c.pickTargetLocked(q, h.avoid)
		if t == nil {
			break
		}
		var ttl time.Duration
		if !h.expires.IsZero() {
			ttl = max(h.expires.Sub(now), 1)
		}
		hdr := deliverHeader{consumer: t.key.id, seq: h.seq, count: uint64(h.count), redelivered: h.redelivered, ttl: ttl}
		if !p.deliver(hdr, h.props, h.body) {
			break // the connection just failed; peerDown will redispatch
		}
		q.pop()
		h.state, h.target, h.via, h.sentAt = stateInflight, t, p, now
		t.inflight++
		c.flushes = append(c.flushes, p)
	}
	c.signalSpaceLocked(q)
}

// pickTargetLocked chooses the next consumer with credit, round robin.
// While a connection to some consumer's node is being made it chooses
// none, so that a backlog is shared among all consumers rather than
// poured onto the first one connected; a node that could not be reached
// is skipped until its backoff ends.
func (c *conn) pickTargetLocked(q *outQueue, avoid *target) (*target, *peer) {
	peers := c.pool.senders()
	n := len(q.targets)
	waiting := false
	for _, t := range q.targets {
		if !t.gone && t.inflight < t.window && peers[t.key.node] == nil && c.dialLocked(t.key.node) {
			waiting = true
		}
	}
	if waiting {
		return nil, nil
	}
	for _, skip := range []*target{avoid, nil} {
		for i := range n {
			t := q.targets[(q.rr+i)%n]
			if t == skip || t.gone || t.inflight >= t.window {
				continue
			}
			p := peers[t.key.node]
			if p == nil {
				continue
			}
			q.rr = (q.rr + i + 1) % n
			return t, p
		}
		if avoid == nil {
			break
		}
	}
	return nil, nil
}

// dialLocked has a node dialled unless a dial is under way or backing
// off, and reports whether dispatch should wait for it: a dial begun less
// than dialGrace ago.
func (c *conn) dialLocked(nodeID string) bool {
	if c.life.closing.Load() {
		return false
	}
	node, known := c.view.reg.Nodes[nodeID]
	start, wait := c.pool.claimDial(nodeID, known, time.Now())
	if start {
		c.connect(node)
	}
	return wait
}

// dispatchAll sends what every queue can send.
func (c *conn) dispatchAll() {
	c.mu.Lock()
	c.dispatchAllLocked()
	post := c.takeFlushesLocked()
	c.mu.Unlock()
	flushAll(post)
}

func (c *conn) dispatchAllLocked() {
	now := time.Now()
	for _, q := range c.queues {
		if q.live > 0 {
			c.dispatchLocked(q, now)
		}
	}
}

// lost returns what was sent on a failed connection and is not settled.
func (c *conn) lost(p *peer) {
	c.mu.Lock()
	for _, h := range c.held {
		if h.state == stateInflight && h.via == p {
			c.returnLocked(h, true)
		}
	}
	if !c.life.closing.Load() {
		c.dispatchAllLocked()
	}
	post := c.takeFlushesLocked()
	c.mu.Unlock()
	flushAll(post)
}

// returnLocked puts an in-flight message back in its queue; counted
// returns mark it redelivered and count towards the delivery limit.
func (c *conn) returnLocked(h *held, counted bool) {
	if h.state != stateInflight {
		return
	}
	h.target.inflight--
	h.target, h.via = nil, nil
	if counted {
		h.count++
		h.redelivered = true
		if limit := h.q.decl.DeliveryLimit; limit > 0 && h.count > limit {
			h.state = stateDone
			c.deadLetterLocked(h, reasonDeliveryLimit)
			return
		}
	}
	h.q.push(h)
}

// finishLocked forgets a message: settled, dead-lettered or dropped.
func (c *conn) finishLocked(h *held) {
	switch h.state {
	case stateInflight:
		h.target.inflight--
	case statePending:
		h.q.live-- // its entry in pending is skipped as done
	}
	h.state = stateDone
	h.target, h.via = nil, nil
	delete(c.held, h.seq)
	c.signalSpaceLocked(h.q)
}

// onSettle applies a consumer's settlements. Only the node a message was
// sent to may return it; an ack from a node that had it earlier still
// counts (the message was handled).
func (c *conn) onSettle(p *peer, ss []settlement) {
	c.mu.Lock()
	now := time.Now()
	touched := map[*outQueue]struct{}{}
	for _, s := range ss {
		h := c.held[s.seq]
		if h == nil {
			continue
		}
		fromTarget := h.state == stateInflight && h.target.key.node == p.id
		switch s.op {
		case opAck:
			c.finishLocked(h)
		case opReject, opExpired:
			if h.state == stateInflight && !fromTarget {
				continue
			}
			reason := reasonRejected
			if s.op == opExpired {
				reason = reasonExpired
			}
			c.deadLetterLocked(h, reason)
		case opRequeue, opRelease, opReturn:
			if !fromTarget {
				continue
			}
			if s.op != opRequeue {
				h.target.gone = true
			}
			c.returnLocked(h, s.op != opReturn)
		}
		touched[h.q] = struct{}{}
	}
	for q := range touched {
		c.dispatchLocked(q, now)
	}
	post := c.takeFlushesLocked()
	c.mu.Unlock()
	flushAll(post)
}

// purgeLocked drops the messages held for a queue that no consumer has.
func (c *conn) purgeLocked(name string) int {
	q := c.queues[name]
	if q == nil {
		return 0
	}
	n := 0
	for h := q.front(); h != nil; h = q.front() {
		q.pop()
		h.state = stateDone
		delete(c.held, h.seq)
		n++
	}
	c.signalSpaceLocked(q)
	return n
}

// applyViewLocked switches to a new registry: new routes, each queue's
// current consumers, and the end of local consumers of deleted queues.
func (c *conn) applyViewLocked(reg *matchmaker.Registry) {
	c.view = newView(reg)
	now := time.Now()
	for name, q := range c.queues {
		decl, ok := reg.Queues[name]
		if !ok {
			c.dropQueueLocked(q)
			delete(c.queues, name)
			continue
		}
		q.decl = decl
		c.refreshTargetsLocked(q)
		c.dispatchLocked(q, now)
	}
	c.ended = append(c.ended, c.consumers.ofDeletedQueues(reg)...)
}

// dropQueueLocked forgets every message held for a deleted queue.
func (c *conn) dropQueueLocked(q *outQueue) {
	for _, h := range c.held {
		if h.q == q {
			c.finishLocked(h)
		}
	}
	if q.space != nil {
		close(q.space)
		q.space = nil
	}
}

// refreshTargetsLocked sets a queue's consumers from the view. A consumer
// that vanished is never sent to again; what it holds comes back through
// its node's returns, or at once if its node is not connected (it died).
func (c *conn) refreshTargetsLocked(q *outQueue) {
	cs := c.view.reg.Consumers[q.name]
	next := make([]*target, 0, len(cs))
	for _, rec := range cs {
		key := targetKey{node: rec.Node, id: rec.ID}
		t := c.targets[key]
		if t == nil {
			t = &target{key: key, window: defaultWindow}
			if rec.Prefetch > 0 {
				t.window = rec.Prefetch
			}
			c.targets[key] = t
		}
		next = append(next, t)
	}
	for _, t := range q.targets {
		if slices.Contains(next, t) {
			continue
		}
		t.gone = true
		delete(c.targets, t.key)
		if c.pool.senders()[t.key.node] == nil && t.inflight > 0 {
			for _, h := range c.held {
				if h.state == stateInflight && h.target == t {
					c.returnLocked(h, true)
				}
			}
		}
	}
	q.targets = next
	if q.rr >= len(next) {
		q.rr = 0
	}
}
