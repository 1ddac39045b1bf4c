package zmq

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/switchyard-mq/switchyard/drivers/zmq/internal/matchmaker"
	"github.com/switchyard-mq/switchyard/transport/driver"
)

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

// sender is the sending side of a node: the messages it holds, per
// destination queue, and the credit of each queue's consumers. It follows
// a registry view (which queues exist, who consumes them) and writes to
// the peer pool's connections. What may block, writing a connection out
// or dialling a node, it does once its lock is released (see unlock).
type sender struct {
	life       *lifecycle
	pool       *peerPool
	logger     *slog.Logger
	bufferSize int
	bufferTime time.Duration
	ackTimeout time.Duration
	// connect dials a node in a goroutine of its own.
	connect func(matchmaker.Node)

	// mu guards the fields below. Every critical section ends with
	// unlock, which does what it left to do.
	mu      sync.Mutex
	view    *view // the registry the queues and targets follow
	queues  map[string]*outQueue
	held    map[uint64]*held // by sequence
	seq     uint64
	targets map[targetKey]*target
	flushes []*peer           // connections written to under mu, to flush once it is released
	dials   []matchmaker.Node // nodes to dial once mu is released
}

func newSender(opts options, logger *slog.Logger, life *lifecycle, pool *peerPool, connect func(matchmaker.Node)) *sender {
	return &sender{
		life: life, pool: pool, logger: logger, connect: connect,
		bufferSize: opts.bufferSize, bufferTime: opts.bufferTime, ackTimeout: opts.ackTimeout,
		queues: map[string]*outQueue{}, held: map[uint64]*held{}, targets: map[targetKey]*target{},
	}
}

// unlock releases s.mu, then flushes the connections the critical section
// wrote to and dials the nodes it claimed.
func (s *sender) unlock() {
	var buf [8]*peer
	flushes := append(buf[:0], s.flushes...)
	clear(s.flushes)
	s.flushes = s.flushes[:0]
	dials := s.dials
	s.dials = nil
	s.mu.Unlock()
	for i, p := range flushes {
		if !slices.Contains(flushes[:i], p) {
			p.flush()
		}
	}
	for _, node := range dials {
		s.connect(node)
	}
}

// flushLater has p flushed once s.mu is released.
func (s *sender) flushLater(p *peer) {
	if n := len(s.flushes); n == 0 || s.flushes[n-1] != p {
		s.flushes = append(s.flushes, p)
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
	queues, err := c.registry.route(ctx, exchange, key, buf[:0])
	if err != nil {
		return err
	}
	if len(queues) == 0 {
		if msg.Mandatory {
			return fmt.Errorf("%w: no queue bound to exchange %q matches key %q", driver.ErrUnroutable, exchange, key)
		}
		return nil
	}
	return c.sender.hold(ctx, queues, props, bytes.Clone(msg.Body), msg.Expiration)
}

// hold holds one copy of a message per queue and sends each to a
// consumer with credit, waiting while a queue with consumers already has
// buffer_size messages waiting for credit.
func (s *sender) hold(ctx context.Context, queues []string, props, body []byte, expiration time.Duration) error {
	for {
		s.mu.Lock()
		if s.life.closing.Load() {
			s.unlock()
			return driver.ErrClosed
		}
		wait, err := s.roomLocked(queues)
		if err != nil {
			s.unlock()
			return err
		}
		if wait != nil {
			s.unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return ctx.Err()
			case <-s.life.stop:
				return driver.ErrClosed
			}
		}
		now := time.Now()
		for _, name := range queues {
			q := s.outQueueLocked(name)
			if q == nil {
				continue // deleted meanwhile
			}
			s.addLocked(&held{q: q, props: props, body: body, since: now, expires: expiry(now, expiration, q.decl.MessageTTL)}, now)
		}
		s.unlock()
		return nil
	}
}

// roomLocked checks that every queue has room for one more message. It
// returns a channel to wait on for a queue whose consumers have not taken
// what waits, and ErrBufferFull for a queue without a live consumer.
func (s *sender) roomLocked(queues []string) (<-chan struct{}, error) {
	for _, name := range queues {
		q := s.outQueueLocked(name)
		if q == nil || q.live < s.bound(q) {
			continue
		}
		if !q.hasLiveTarget() {
			return nil, fmt.Errorf("%w: queue %q: this sender already holds %d messages for it (buffer_size)", ErrBufferFull, name, q.live)
		}
		if q.space == nil {
			q.space = make(chan struct{})
		}
		return q.space, nil
	}
	return nil, nil
}

// expiry is when a message published at now expires: after the shorter of
// its own expiration and its queue's message TTL; zero if neither is set.
func expiry(now time.Time, expiration, queueTTL time.Duration) time.Time {
	ttl := expiration
	if queueTTL > 0 && (ttl == 0 || queueTTL < ttl) {
		ttl = queueTTL
	}
	if ttl <= 0 {
		return time.Time{}
	}
	return now.Add(ttl)
}

// addLocked holds h, numbered after every message held so far, in its
// queue, and sends what the queue can send.
func (s *sender) addLocked(h *held, now time.Time) {
	s.seq++
	h.seq = s.seq
	s.held[h.seq] = h
	h.q.push(h)
	s.dispatchLocked(h.q, now)
}

// bound is how many messages may wait for the queue.
func (s *sender) bound(q *outQueue) int {
	if q.hasLiveTarget() {
		return max(s.bufferSize, 1)
	}
	return s.bufferSize
}

func (s *sender) signalSpaceLocked(q *outQueue) {
	if q.space != nil && q.live < s.bound(q) {
		close(q.space)
		q.space = nil
	}
}

// outQueueLocked returns the sending side of a queue in the view, or nil.
func (s *sender) outQueueLocked(name string) *outQueue {
	if q := s.queues[name]; q != nil {
		return q
	}
	decl, ok := s.view.reg.Queues[name]
	if !ok {
		return nil
	}
	q := &outQueue{name: name, decl: decl}
	s.queues[name] = q
	s.refreshTargetsLocked(q)
	return q
}

// dispatchLocked sends pending messages to consumers with credit.
func (s *sender) dispatchLocked(q *outQueue, now time.Time) {
	peers := s.pool.senders()
	for q.live > 0 {
		h := q.front()
		if h == nil {
			q.live = 0
			break
		}
		if !h.expires.IsZero() && !now.Before(h.expires) {
			q.pop()
			h.state = stateDone // popped: finishLocked must not count it again
			s.deadLetterLocked(h, reasonExpired)
			continue
		}
		t, p := s.pickTargetLocked(q, h.avoid, peers)
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
		s.flushLater(p)
	}
	s.signalSpaceLocked(q)
}

// pickTargetLocked chooses the next consumer with credit, round robin,
// and the connection to its node. While a connection to some consumer's
// node is being made it chooses none, so that a backlog is shared among
// all consumers rather than poured onto the first one connected; a node
// that could not be reached is skipped until its backoff ends.
func (s *sender) pickTargetLocked(q *outQueue, avoid *target, peers map[string]*peer) (*target, *peer) {
	n := len(q.targets)
	waiting := false
	for _, t := range q.targets {
		if !t.gone && t.inflight < t.window && peers[t.key.node] == nil && s.dialLocked(t.key.node) {
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

// dialLocked has a node dialled, once s.mu is released, unless a dial is
// under way or backing off, and reports whether dispatch should wait for
// it: a dial begun less than dialGrace ago.
func (s *sender) dialLocked(nodeID string) bool {
	if s.life.closing.Load() {
		return false
	}
	node, known := s.view.reg.Nodes[nodeID]
	start, wait := s.pool.claimDial(nodeID, known, time.Now())
	if start {
		s.dials = append(s.dials, node)
	}
	return wait
}

// dispatchAll sends what every queue can send: a connection came up, or
// a node could not be reached and others can take its share.
func (s *sender) dispatchAll() {
	s.mu.Lock()
	s.dispatchAllLocked()
	s.unlock()
}

func (s *sender) dispatchAllLocked() {
	now := time.Now()
	for _, q := range s.queues {
		if q.live > 0 {
			s.dispatchLocked(q, now)
		}
	}
}

// lost returns what was sent on a failed connection and is not settled to
// its queues, counted as a delivery since the consumer may have seen it,
// and sends it again.
func (s *sender) lost(p *peer) {
	s.mu.Lock()
	for _, h := range s.held {
		if h.state == stateInflight && h.via == p {
			s.returnLocked(h, true)
		}
	}
	if !s.life.closing.Load() {
		s.dispatchAllLocked()
	}
	s.unlock()
}

// returnLocked puts an in-flight message back in its queue; counted
// returns mark it redelivered and count towards the delivery limit.
func (s *sender) returnLocked(h *held, counted bool) {
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
			s.deadLetterLocked(h, reasonDeliveryLimit)
			return
		}
	}
	h.q.push(h)
}

// finishLocked forgets a message: settled, dead-lettered or dropped.
func (s *sender) finishLocked(h *held) {
	switch h.state {
	case stateInflight:
		h.target.inflight--
	case statePending:
		h.q.live-- // its entry in pending is skipped as done
	}
	h.state = stateDone
	h.target, h.via = nil, nil
	delete(s.held, h.seq)
	s.signalSpaceLocked(h.q)
}

// settle applies the settlements a consumer's node sent. Only the node a
// message was sent to may return it; an ack from a node that had it
// earlier still counts (the message was handled).
func (s *sender) settle(node string, ss []settlement) {
	s.mu.Lock()
	var buf [4]*outQueue
	touched := buf[:0]
	for _, st := range ss {
		h := s.held[st.seq]
		if h == nil {
			continue
		}
		fromTarget := h.state == stateInflight && h.target.key.node == node
		switch st.op {
		case opAck:
			s.finishLocked(h)
		case opReject, opExpired:
			if h.state == stateInflight && !fromTarget {
				continue
			}
			reason := reasonRejected
			if st.op == opExpired {
				reason = reasonExpired
			}
			s.deadLetterLocked(h, reason)
		case opRequeue, opRelease, opReturn:
			if !fromTarget {
				continue
			}
			if st.op != opRequeue {
				h.target.gone = true
			}
			s.returnLocked(h, st.op != opReturn)
		}
		if !slices.Contains(touched, h.q) {
			touched = append(touched, h.q)
		}
	}
	now := time.Now()
	for _, q := range touched {
		s.dispatchLocked(q, now)
	}
	s.unlock()
}

// purge drops the messages held for a queue that no consumer has, and
// returns how many.
func (s *sender) purge(name string) int {
	s.mu.Lock()
	defer s.unlock()
	q := s.queues[name]
	if q == nil {
		return 0
	}
	n := 0
	for h := q.front(); h != nil; h = q.front() {
		q.pop()
		h.state = stateDone
		delete(s.held, h.seq)
		n++
	}
	s.signalSpaceLocked(q)
	return n
}

// follow makes reg the registry the queues and targets follow, unless the
// view is as new, and returns the view then followed. onChange runs under
// s.mu once a new view is in place, so that what it publishes is never
// ahead of the sender.
func (s *sender) follow(reg *matchmaker.Registry, onChange func(*view)) *view {
	s.mu.Lock()
	defer s.unlock()
	if !s.view.olderThan(reg) {
		return s.view
	}
	s.view = newView(reg)
	now := time.Now()
	for name, q := range s.queues {
		decl, ok := reg.Queues[name]
		if !ok {
			s.dropQueueLocked(q)
			delete(s.queues, name)
			continue
		}
		q.decl = decl
		s.refreshTargetsLocked(q)
		s.dispatchLocked(q, now)
	}
	onChange(s.view)
	return s.view
}

// dropQueueLocked forgets every message held for a deleted queue.
func (s *sender) dropQueueLocked(q *outQueue) {
	for _, h := range s.held {
		if h.q == q {
			s.finishLocked(h)
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
func (s *sender) refreshTargetsLocked(q *outQueue) {
	cs := s.view.reg.Consumers[q.name]
	next := make([]*target, 0, len(cs))
	for _, rec := range cs {
		key := targetKey{node: rec.Node, id: rec.ID}
		t := s.targets[key]
		if t == nil {
			t = &target{key: key, window: defaultWindow}
			if rec.Prefetch > 0 {
				t.window = rec.Prefetch
			}
			s.targets[key] = t
		}
		next = append(next, t)
	}
	peers := s.pool.senders()
	for _, t := range q.targets {
		if slices.Contains(next, t) {
			continue
		}
		t.gone = true
		delete(s.targets, t.key)
		if peers[t.key.node] == nil && t.inflight > 0 {
			for _, h := range s.held {
				if h.state == stateInflight && h.target == t {
					s.returnLocked(h, true)
				}
			}
		}
	}
	q.targets = next
	if q.rr >= len(next) {
		q.rr = 0
	}
}

// sweep returns messages whose consumer did not settle them within the
// ack timeout (when scanInflight), expires messages past their TTL, drops
// messages that waited longer than buffer_time for a consumer, and
// retries dispatch. Only queues that may hold such messages are scanned.
func (s *sender) sweep(now time.Time, scanInflight bool) {
	s.mu.Lock()
	if s.life.closing.Load() {
		s.unlock()
		return
	}
	timedOut, dropped := 0, 0
	if scanInflight && s.ackTimeout > 0 {
		for _, h := range s.held {
			if h.state == stateInflight && now.Sub(h.sentAt) >= s.ackTimeout {
				timedOut++
				h.avoid = h.target
				s.returnLocked(h, true)
			}
		}
	}
	for _, q := range s.queues {
		noConsumer := s.bufferTime > 0 && !q.hasLiveTarget()
		if q.live == 0 || !(q.mayExpire || noConsumer) {
			continue
		}
		dropped += s.expireLocked(q, now, noConsumer)
	}
	s.dispatchAllLocked()
	s.unlock()
	if timedOut > 0 {
		s.logger.WarnContext(context.Background(), "zmq: messages not settled within ack_timeout; sending them to another consumer", "messages", timedOut, "ack_timeout", s.ackTimeout)
	}
	if dropped > 0 {
		s.logger.WarnContext(context.Background(), "zmq: messages waited longer than buffer_time for a consumer; dropped", "messages", dropped, "buffer_time", s.bufferTime)
	}
}

// expireLocked dead-letters a queue's pending messages past their TTL
// and, if it has no consumer, drops those older than buffer_time,
// returning how many it dropped.
func (s *sender) expireLocked(q *outQueue, now time.Time, noConsumer bool) int {
	dropped := 0
	q.mayExpire = false
	for i := q.head; i < len(q.pending); i++ {
		h := q.pending[i]
		if h == nil || h.state != statePending || h.q != q {
			continue
		}
		switch {
		case !h.expires.IsZero() && !now.Before(h.expires):
			s.deadLetterLocked(h, reasonExpired)
		case noConsumer && now.Sub(h.since) >= s.bufferTime:
			dropped++
			s.finishLocked(h)
		case !h.expires.IsZero():
			q.mayExpire = true
		}
	}
	return dropped
}

// counts reports how many messages the sender holds that no consumer has
// (pending) and that a consumer has not settled (inflight).
func (s *sender) counts() (pending, inflight int) {
	s.mu.Lock()
	defer s.unlock()
	for _, h := range s.held {
		switch h.state {
		case statePending:
			pending++
		case stateInflight:
			inflight++
		}
	}
	return pending, inflight
}
