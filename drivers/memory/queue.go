package memory

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/switchyard-mq/switchyard/transport/driver"
)

// message is one published message; the copies routed to several queues
// share it, read-only.
type message struct {
	msg      driver.Message
	exchange string
	key      string
	// amqp holds the AMQP properties the portable model lacks, for a
	// message published over AMQP; nil otherwise.
	amqp *amqpProperties
}

// smallBody is the largest body stored in its message's own allocation:
// one allocation per message instead of two for the common small message.
const smallBody = 128

// messageWithBody is a message and the storage of a small body.
type messageWithBody struct {
	message
	body [smallBody]byte
}

// newMessage copies what Publish hands over: the caller may reuse the body
// and headers once Publish returns.
func newMessage(msg driver.Message, exchange, key string) *message {
	var m *message
	if n := len(msg.Body); n > 0 && n <= smallBody {
		mb := new(messageWithBody)
		copy(mb.body[:], msg.Body)
		msg.Body = mb.body[:n:n]
		m = &mb.message
	} else {
		msg.Body = slices.Clone(msg.Body)
		m = new(message)
	}
	if msg.Headers != nil {
		msg.Headers = maps.Clone(msg.Headers)
	}
	msg.Mandatory = false
	*m = message{msg: msg, exchange: exchange, key: key}
	return m
}

// entry is one message in one queue.
type entry struct {
	m           *message
	redelivered bool
	returns     int   // times returned to the queue unsettled
	expiresAt   int64 // monotonic nanoseconds (see now); 0 never
}

// deadLetter is a message leaving a queue for its dead-letter exchange.
type deadLetter struct {
	queue, reason, exchange, key string
	msg                          *message
}

// Dead-letter reasons, as RabbitMQ writes them in x-death.
const (
	reasonRejected      = "rejected"
	reasonExpired       = "expired"
	reasonMaxLen        = "maxlen"
	reasonDeliveryLimit = "delivery_limit"
)

// batchSize bounds how many messages a consumer takes from its queue at
// once when its prefetch allows more: enough to amortise the queue lock,
// small enough to keep competing consumers fed.
const batchSize = 64

// queue is one queue of a broker.
type queue struct {
	b     *broker
	decl  driver.Queue
	owner *conn // non-nil for an exclusive queue

	mu          sync.Mutex
	ready       ring[entry]
	readyBytes  int64 // the bodies in ready, for the AMQP server's flow control
	consumers   []*consumer
	waiters     []*consumer // consumers blocked in Receive with credit, FIFO
	hadConsumer bool
	deleted     bool
	ttlTimer    *time.Timer
	ttlAt       int64 // when ttlTimer fires; 0 when not armed
	idleTimer   *time.Timer
	idleSince   int64 // when the queue was last used (see now), for Expires
}

func newQueue(b *broker, decl driver.Queue) *queue {
	return &queue{b: b, decl: decl}
}

// isDeadLetterCycle reports whether m already died in q for a reason other
// than rejection; RabbitMQ drops such a message rather than loop forever.
func (q *queue) isDeadLetterCycle(m *message) bool {
	deaths, _ := m.msg.Headers["x-death"].([]any)
	for _, d := range deaths {
		if h, ok := d.(driver.Headers); ok && h["queue"] == q.decl.Name && h["reason"] != reasonRejected {
			return true
		}
	}
	return false
}

func (q *queue) expiryFor(m *message, t int64) int64 {
	ttl := q.decl.MessageTTL
	if e := m.msg.Expiration; e > 0 && (ttl == 0 || e < ttl) {
		ttl = e
	}
	if ttl == 0 {
		return 0
	}
	return t + int64(ttl)
}

// enqueue appends m, enforcing the length limit, and wakes a waiting
// consumer. It reports false if the queue was deleted meanwhile.
func (q *queue) enqueue(m *message) bool {
	var dead []deadLetter
	q.mu.Lock()
	if q.deleted {
		q.mu.Unlock()
		return false
	}
	e := entry{m: m}
	if q.decl.MessageTTL > 0 || m.msg.Expiration > 0 {
		e.expiresAt = q.expiryFor(m, q.b.now())
		q.armTTLLocked(e.expiresAt)
	}
	q.pushBackLocked(e)
	if max := q.decl.MaxLength; max > 0 {
		for q.ready.len() > max {
			dead = q.appendDeadLocked(dead, q.popFrontLocked(), reasonMaxLen)
		}
	}
	q.wakeLocked()
	q.mu.Unlock()
	q.b.deadLetter(dead)
	return true
}

func (q *queue) pushBackLocked(e entry) {
	q.ready.pushBack(e)
	q.readyBytes += int64(len(e.m.msg.Body))
}

func (q *queue) popFrontLocked() entry {
	e := q.ready.popFront()
	q.readyBytes -= int64(len(e.m.msg.Body))
	return e
}

// wakeLocked wakes the longest-waiting consumer if a message is ready.
func (q *queue) wakeLocked() {
	if len(q.waiters) == 0 || q.ready.len() == 0 {
		return
	}
	c := q.waiters[0]
	q.waiters = q.waiters[1:]
	c.waiting = false
	c.signal()
}

// take moves up to n ready messages to dst, the consumer's buffer; expired
// ones are dead-lettered instead. With nothing to take it queues c as a
// waiter. It reports the dead letters and whether the queue is deleted.
func (q *queue) take(c *consumer, n int, dst *ring[entry]) (dead []deadLetter, deleted bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleted {
		return nil, true
	}
	if len(q.waiters) > 0 && !(len(q.waiters) == 1 && q.waiters[0] == c) {
		n = 1 // others are waiting too: take turns, as round-robin dispatch does
	}
	t := int64(0)
	for taken := 0; taken < n && q.ready.len() > 0; {
		e := q.popFrontLocked()
		if e.expiresAt != 0 {
			if t == 0 {
				t = q.b.now()
			}
			if e.expiresAt <= t {
				dead = q.appendDeadLocked(dead, e, reasonExpired)
				continue
			}
		}
		dst.pushBack(e)
		taken++
	}
	if dst.len() == 0 && !c.waiting {
		c.waiting = true
		q.waiters = append(q.waiters, c)
	}
	q.wakeLocked()
	return dead, false
}

// get takes the next ready message for basic.get, dead-lettering expired
// ones on the way, and reports how many remain ready.
func (q *queue) get() (e entry, remaining int, ok bool) {
	var dead []deadLetter
	q.mu.Lock()
	t := int64(0)
	for !q.deleted && q.ready.len() > 0 {
		e = q.popFrontLocked()
		if e.expiresAt != 0 {
			if t == 0 {
				t = q.b.now()
			}
			if e.expiresAt <= t {
				dead = q.appendDeadLocked(dead, e, reasonExpired)
				continue
			}
		}
		ok = true
		break
	}
	remaining = q.ready.len()
	q.armIdleLocked()
	q.mu.Unlock()
	q.b.deadLetter(dead)
	if !ok {
		return entry{}, remaining, false
	}
	return e, remaining, true
}

// counts reports how many messages are ready and how many consumers q has.
func (q *queue) counts() (ready, consumers int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.ready.len(), len(q.consumers)
}

// unwait removes c from the waiters, passing on a wake-up it may have
// consumed so that no ready message is left without a woken consumer.
// await registers c to be woken when the queue has messages (at once if
// it has some now), for the receivers waiting on c.
func (q *queue) await(c *consumer) {
	q.mu.Lock()
	if q.deleted {
		q.mu.Unlock()
		c.signal() // a receiver finds the queue gone
		return
	}
	if !c.waiting {
		c.waiting = true
		q.waiters = append(q.waiters, c)
	}
	q.wakeLocked()
	q.mu.Unlock()
}

func (q *queue) unwait(c *consumer) {
	q.mu.Lock()
	if c.waiting {
		c.waiting = false
		q.waiters = slices.DeleteFunc(q.waiters, func(w *consumer) bool { return w == c })
	}
	q.wakeLocked()
	q.mu.Unlock()
}

// requeue returns entries to the front of the queue in their original
// order. Returned ones count a delivery attempt and are dead-lettered past
// the delivery limit.
func (q *queue) requeue(es []entry, returned bool) {
	var dead []deadLetter
	q.mu.Lock()
	if q.deleted {
		q.mu.Unlock()
		return
	}
	for i := len(es) - 1; i >= 0; i-- {
		e := es[i]
		if returned {
			e.redelivered = true
			e.returns++
			if limit := q.decl.DeliveryLimit; limit > 0 && e.returns > limit {
				dead = q.appendDeadLocked(dead, e, reasonDeliveryLimit)
				continue
			}
		}
		if e.expiresAt != 0 {
			q.armTTLLocked(e.expiresAt)
		}
		q.ready.pushFront(e)
		q.readyBytes += int64(len(e.m.msg.Body))
	}
	q.wakeLocked()
	q.mu.Unlock()
	q.b.deadLetter(dead)
}

// reject dead-letters a message its consumer refused.
func (q *queue) reject(e entry) {
	q.mu.Lock()
	dead := q.appendDeadLocked(nil, e, reasonRejected)
	q.mu.Unlock()
	q.b.deadLetter(dead)
}

// appendDeadLocked prepares e's dead letter, if q has a dead-letter
// exchange, adding the x-death history as RabbitMQ does.
func (q *queue) appendDeadLocked(dead []deadLetter, e entry, reason string) []deadLetter {
	if q.decl.DeadLetterExchange == "" {
		q.b.logger.DebugContext(context.Background(), "message dropped", "queue", q.decl.Name, "reason", reason)
		return dead
	}
	key := e.m.key
	if q.decl.DeadLetterRoutingKey != "" {
		key = q.decl.DeadLetterRoutingKey
	}
	msg := e.m.msg
	headers := maps.Clone(msg.Headers)
	if headers == nil {
		headers = driver.Headers{}
	}
	death := driver.Headers{
		"queue":        q.decl.Name,
		"reason":       reason,
		"count":        int64(1),
		"exchange":     e.m.exchange,
		"routing-keys": []any{e.m.key},
		"time":         time.Now().UTC().Truncate(time.Second),
	}
	if msg.Expiration > 0 {
		death["original-expiration"] = fmt.Sprint(msg.Expiration.Milliseconds())
	}
	deaths, _ := headers["x-death"].([]any)
	merged := []any{death}
	for _, d := range deaths {
		if h, ok := d.(driver.Headers); ok && h["queue"] == q.decl.Name && h["reason"] == reason {
			count, _ := h["count"].(int64)
			death["count"] = count + 1
			continue
		}
		merged = append(merged, d)
	}
	headers["x-death"] = merged
	for k, v := range map[string]string{"x-first-death-queue": q.decl.Name, "x-first-death-reason": reason, "x-first-death-exchange": e.m.exchange} {
		if _, ok := headers[k]; !ok {
			headers[k] = v
		}
	}
	msg.Headers = headers
	msg.Expiration = 0 // so it does not expire again where it lands
	return append(dead, deadLetter{
		queue: q.decl.Name, reason: reason, exchange: q.decl.DeadLetterExchange, key: key,
		msg: &message{msg: msg, exchange: q.decl.DeadLetterExchange, key: key, amqp: e.m.amqp},
	})
}

// armTTLLocked makes sure the expiry sweep runs by time at.
func (q *queue) armTTLLocked(at int64) {
	if q.ttlAt != 0 && q.ttlAt <= at {
		return
	}
	q.ttlAt = at
	d := time.Duration(at - q.b.now())
	if q.ttlTimer == nil {
		q.ttlTimer = time.AfterFunc(d, q.expire)
	} else {
		q.ttlTimer.Reset(d)
	}
}

// expire dead-letters every expired ready message, as RabbitMQ does for
// queues with a message TTL, and re-arms for the next one.
func (q *queue) expire() {
	var dead []deadLetter
	q.mu.Lock()
	q.ttlAt = 0
	if q.deleted {
		q.mu.Unlock()
		return
	}
	t, next := q.b.now(), int64(0)
	q.ready.filter(func(e *entry) bool {
		switch {
		case e.expiresAt == 0:
			return true
		case e.expiresAt <= t:
			dead = q.appendDeadLocked(dead, *e, reasonExpired)
			q.readyBytes -= int64(len(e.m.msg.Body))
			return false
		case next == 0 || e.expiresAt < next:
			next = e.expiresAt
		}
		return true
	})
	if next != 0 {
		q.armTTLLocked(next)
	}
	q.mu.Unlock()
	q.b.deadLetter(dead)
}

// touch restarts the unused-queue countdown (Queue.Expires).
func (q *queue) touch() {
	q.mu.Lock()
	q.armIdleLocked()
	q.mu.Unlock()
}

func (q *queue) armIdleLocked() {
	if q.decl.Expires == 0 || q.deleted {
		return
	}
	if len(q.consumers) > 0 {
		if q.idleTimer != nil {
			q.idleTimer.Stop()
		}
		return
	}
	q.idleSince = q.b.now()
	if q.idleTimer == nil {
		q.idleTimer = time.AfterFunc(q.decl.Expires, q.expireIdle)
	} else {
		q.idleTimer.Reset(q.decl.Expires)
	}
}

// expireIdle deletes the queue if it is still unused for Expires: the
// timer may fire just as the queue is used again, and then the use wins
// (it re-armed or stopped the timer).
func (q *queue) expireIdle() {
	_, deleted := q.b.deleteQueue(q, func() bool {
		return q.unusedLocked() && q.b.now()-q.idleSince >= int64(q.decl.Expires)
	})
	if deleted {
		q.b.logger.DebugContext(context.Background(), "queue expired unused", "queue", q.decl.Name, "expires", q.decl.Expires)
	}
}

// unusedLocked reports whether q has no consumer. q.mu must be held.
func (q *queue) unusedLocked() bool { return len(q.consumers) == 0 }

func (q *queue) addConsumer(c *consumer) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.deleted:
		return q.b.errNoQueue(q.decl.Name)
	case len(q.consumers) > 0 && (c.exclusive || q.consumers[0].exclusive):
		return fmt.Errorf("%w: queue %q has an exclusive consumer, or asked for one while in use", driver.ErrInUse, q.decl.Name)
	}
	q.consumers = append(q.consumers, c)
	q.hadConsumer = true
	q.armIdleLocked()
	return nil
}

// removeConsumer forgets c and reports whether the queue should now be
// auto-deleted.
func (q *queue) removeConsumer(c *consumer) (autoDelete bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.consumers = slices.DeleteFunc(q.consumers, func(x *consumer) bool { return x == c })
	if c.waiting {
		c.waiting = false
		q.waiters = slices.DeleteFunc(q.waiters, func(w *consumer) bool { return w == c })
	}
	q.wakeLocked()
	q.armIdleLocked()
	return q.decl.AutoDelete && q.hadConsumer && len(q.consumers) == 0 && !q.deleted
}

func (q *queue) purge() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := q.ready.len()
	q.ready.clear()
	q.readyBytes = 0
	return n
}

// markDeleted empties the queue and hands back its consumers to cancel,
// unless onlyIf (called with q.mu held) is not nil and returns false.
func (q *queue) markDeleted(onlyIf func() bool) (n int, consumers []*consumer, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleted || onlyIf != nil && !onlyIf() {
		return 0, nil, false
	}
	q.deleted = true
	n = q.ready.len()
	q.ready.clear()
	q.readyBytes = 0
	for _, t := range []*time.Timer{q.ttlTimer, q.idleTimer} {
		if t != nil {
			t.Stop()
		}
	}
	consumers = q.consumers
	q.consumers, q.waiters = nil, nil
	return n, consumers, true
}
