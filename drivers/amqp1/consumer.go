package amqp1

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/switchyard-mq/switchyard/transport/driver"
)

// consumer reads one queue through a receiving link on a session of its
// own. When the link, its session or the connection is lost, the next
// Receive attaches a new link; deliveries of the old one can no longer be
// settled (ErrClosed), and the broker hands them out again.
//
// Credit (the prefetch) is managed by the driver, never by go-amqp, and is
// topped up only once every credit granted so far has been used: see
// "Flow control" in the package documentation for why anything earlier
// can stall a RabbitMQ 3.10 link for good.
type consumer struct {
	c       *conn
	queue   string
	address string
	autoAck bool
	credit  int
	// stopped ends with the consumer: it cuts short every wait of Receive.
	stopped context.Context
	stop    context.CancelFunc

	attachMu sync.Mutex // one (re)attach at a time

	mu      sync.Mutex
	link    *recvLink // nil before the first attach and after a loss
	closed  bool
	ended   error               // what Receive returns once closed: ErrClosed and why
	pending map[uint64]*pending // unsettled deliveries by tag
	nextTag uint64
	// reattach is set once a link was attached: a later attach that the
	// broker refuses ends the consumer.
	reattach bool
}

// recvLink is one attached receiving link and its credit accounting.
type recvLink struct {
	sess *amqp.Session
	rcv  *amqp.Receiver
	dead bool
	// issued is the credit granted so far, received the messages taken
	// from go-amqp, unsettled those handed out and not yet settled.
	issued, received uint64
	unsettled        int
}

// pending is a delivery handed out and not yet settled.
type pending struct {
	link  *recvLink
	msg   *amqp.Message
	count int // returns so far, for a driver-side requeue
}

// Consume implements driver.Conn: it attaches the first link now, so that
// a missing queue is reported here.
func (c *conn) Consume(ctx context.Context, queue string, opts driver.ConsumeOptions) (driver.Consumer, error) {
	if opts.Exclusive {
		return nil, fmt.Errorf("%w: exclusive consumers (AMQP 1.0 links cannot ask for one on %s)", driver.ErrUnsupported, c.fl.name())
	}
	address, err := c.fl.consumeAddress(queue)
	if err != nil {
		return nil, err
	}
	k := &consumer{
		c: c, queue: queue, address: address, autoAck: opts.AutoAck,
		credit: c.s.prefetch, pending: map[uint64]*pending{},
	}
	k.stopped, k.stop = context.WithCancel(context.Background())
	if k.credit == 0 {
		k.credit = defaultPrefetch
		if !c.fl.rabbit() {
			k.credit = defaultProtonPrefetch
		}
	}
	if opts.Prefetch > 0 {
		k.credit = min(opts.Prefetch, maxPrefetch)
	}
	if _, err := k.attached(ctx); err != nil {
		k.stop()
		return nil, err
	}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		_ = k.Close()
		return nil, driver.ErrClosed
	}
	c.consumers[k] = struct{}{}
	c.mu.Unlock()
	return k, nil
}

// attached returns the consumer's live link, attaching one if needed.
func (k *consumer) attached(ctx context.Context) (*recvLink, error) {
	if l, err := k.liveLink(); l != nil || err != nil {
		return l, err
	}
	k.attachMu.Lock()
	defer k.attachMu.Unlock()
	for {
		if l, err := k.liveLink(); l != nil || err != nil {
			return l, err
		}
		sess, _, err := k.c.newSession(ctx, k.stopped.Done())
		if err != nil {
			if isLinkGone(err) && !isRemoteRefusal(err) {
				continue // the connection went while beginning; wait for the next
			}
			return nil, err
		}
		opts := &amqp.ReceiverOptions{Credit: -1} // manual: see the type's comment
		if k.autoAck && k.c.fl.rabbit() {
			// Pre-settled deliveries; other brokers answer "mixed", which
			// go-amqp refuses, and the driver accepts each as it comes.
			settled := amqp.SenderSettleModeSettled
			opts.RequestedSenderSettleMode = &settled
		}
		hctx, cancel := handshakeContext(ctx)
		rcv, err := sess.NewReceiver(hctx, k.address, opts)
		cancel()
		if err != nil {
			closeSession(sess)
			if isLinkGone(err) && !isRemoteRefusal(err) {
				continue
			}
			err = fmt.Errorf("attach a receiving link to %s: %w", k.address, mapError(err))
			if k.reattach {
				// The queue went away (or was refused) after the consumer
				// started: the consumer ends, as on a queue deletion.
				err = fmt.Errorf("%w: consumer of %s ended: %w", driver.ErrClosed, k.queue, err)
				_ = k.end(err)
			}
			return nil, err
		}
		l := &recvLink{sess: sess, rcv: rcv}
		k.mu.Lock()
		if k.closed {
			k.mu.Unlock()
			closeSession(sess)
			return nil, driver.ErrClosed
		}
		k.link = l
		k.reattach = true
		k.topUp(l)
		k.mu.Unlock()
		return l, nil
	}
}

// liveLink returns the current link if it is usable, nil if one must be
// attached, or ErrClosed.
func (k *consumer) liveLink() (*recvLink, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil, k.ended
	}
	if k.link != nil && !k.link.dead {
		return k.link, nil
	}
	return nil, nil
}

// lost marks l dead: its unsettled deliveries can no longer be settled.
func (k *consumer) lost(l *recvLink, err error) {
	k.mu.Lock()
	if l.dead {
		k.mu.Unlock()
		return
	}
	l.dead = true
	if k.link == l {
		k.link = nil
	}
	for tag, p := range k.pending {
		if p.link == l {
			delete(k.pending, tag)
		}
	}
	k.mu.Unlock()
	k.c.logger.DebugContext(k.c.ctx, "amqp1: receiving link lost; attaching a new one", "queue", k.queue, "err", err)
	k.c.endLink(l.sess, l.rcv)
}

// topUp grants credit up to the prefetch, but only when every credit
// granted before has been used (received == issued). Granting while
// deliveries are in flight lets RabbitMQ 3.10 send more than was granted,
// which wedges go-amqp's credit counter; with nothing in flight the
// broker's credit is exactly what this grants. Called with k.mu held.
func (k *consumer) topUp(l *recvLink) {
	if l.dead || l.received != l.issued {
		return
	}
	grant := k.credit - l.unsettled
	if grant <= 0 {
		return
	}
	l.issued += uint64(grant)
	_ = l.rcv.IssueCredit(uint32(grant)) // fails only while draining, which the driver never does
}

// idleCheck is how long Receive waits for a delivery before it checks
// that its queue still exists (flavours that can tell): a queue deleted by
// another connection can leave RabbitMQ's plugin with a session that
// neither delivers nor ends.
const idleCheck = 10 * time.Second

// Receive implements driver.Consumer. It returns when ctx ends, when the
// consumer closes (even if the broker does not answer the closing of its
// session), or with the next delivery.
func (k *consumer) Receive(ctx context.Context) (driver.Delivery, error) {
	for {
		l, err := k.attached(ctx)
		if err != nil {
			return driver.Delivery{}, k.receiveError(ctx, err)
		}
		m := l.rcv.Prefetched() // the fast path: no wait, no context to make
		if m == nil {
			var idle bool
			if m, idle, err = k.wait(ctx, l); idle {
				if err := k.c.fl.checkQueue(ctx, k.queue); errors.Is(err, driver.ErrNotFound) {
					_ = k.end(fmt.Errorf("%w: consumer of %s ended: %w", driver.ErrClosed, k.queue, err))
				}
				continue
			}
		}
		if err != nil {
			if err := k.receiveError(ctx, nil); err != nil {
				return driver.Delivery{}, err
			}
			k.lost(l, err)
			continue
		}
		d, ok, err := k.deliver(l, m)
		if err != nil {
			return driver.Delivery{}, k.receiveError(ctx, err)
		}
		if ok {
			return d, nil
		}
	}
}

// wait blocks for l's next message until ctx ends, the consumer closes, or
// idleCheck passes (idle set).
func (k *consumer) wait(ctx context.Context, l *recvLink) (m *amqp.Message, idle bool, err error) {
	wctx, cancel := context.WithTimeout(ctx, idleCheck)
	defer cancel()
	defer context.AfterFunc(k.stopped, cancel)()
	m, err = l.rcv.Receive(wctx, nil)
	idle = err != nil && errors.Is(wctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil && k.stopped.Err() == nil
	return m, idle, err
}

// receiveError is what Receive returns for err: ctx's own error when ctx
// ended, why the consumer ended when it did, and err otherwise (nil when
// err is nil and neither ended).
func (k *consumer) receiveError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if _, ended := k.liveLink(); ended != nil {
		return ended
	}
	return err
}

// deliver turns m into a delivery, or settles and skips it if it is one of
// the driver's queue markers (ok false).
func (k *consumer) deliver(l *recvLink, m *amqp.Message) (driver.Delivery, bool, error) {
	marker := isMarker(m)
	if marker || k.autoAck {
		// Auto-ack: the broker pre-settles where it honours the request
		// (RabbitMQ; AcceptMessage then does nothing); elsewhere accept now.
		err := l.rcv.AcceptMessage(k.stopped, m)
		k.mu.Lock()
		l.received++
		k.topUp(l)
		k.mu.Unlock()
		if err != nil && !marker {
			return driver.Delivery{}, false, fmt.Errorf("auto-acknowledge a delivery from %s: %w", k.queue, k.settleError(err))
		}
		if marker {
			return driver.Delivery{}, false, nil
		}
		return fromAMQP(m, k.c.fl.rabbit(), k.c.fl.addressV2()), true, nil
	}
	d := fromAMQP(m, k.c.fl.rabbit(), k.c.fl.addressV2())
	k.mu.Lock()
	l.received++
	if k.closed {
		ended := k.ended
		k.mu.Unlock()
		// RabbitMQ takes it back with the session; a broker that forgets
		// what it sent gets a copy.
		if k.c.fl.requeueByCopy() {
			sctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
			defer cancel()
			_ = k.c.send(sctx, k.address, m)
		}
		return driver.Delivery{}, false, ended
	}
	k.nextTag++
	k.pending[k.nextTag] = &pending{link: l, msg: m, count: d.DeliveryCount}
	l.unsettled++
	k.topUp(l)
	d.Settler, d.Tag = k, k.nextTag
	k.mu.Unlock()
	return d, true, nil
}

// outcome is how a delivery is settled.
type outcome int

const (
	accept outcome = iota
	reject
	requeue
)

// Ack implements driver.Settler.
func (k *consumer) Ack(tag uint64) error { return k.settle(tag, accept) }

// Nack implements driver.Settler: requeue releases the message (RabbitMQ
// puts it back, marked redelivered), or, where the broker would drop a
// released message, publishes a copy marked redelivered and accepts the
// original; without requeue it rejects the message, which the broker
// dead-letters or drops.
func (k *consumer) Nack(tag uint64, requeueIt bool) error {
	if requeueIt {
		return k.settle(tag, requeue)
	}
	return k.settle(tag, reject)
}

func (k *consumer) settle(tag uint64, o outcome) error {
	k.mu.Lock()
	p, ok := k.pending[tag]
	if ok {
		delete(k.pending, tag)
	}
	k.mu.Unlock()
	if !ok {
		// Settled already (the transport stops that), or its link or the
		// consumer is gone: the broker hands the message out again.
		return fmt.Errorf("%w: the delivery's link to %s has ended; the broker redelivers the message", driver.ErrClosed, k.queue)
	}
	// A disposition only waits to be handed to the connection's writer,
	// which the link's end or the consumer's unblocks; a requeue by copy
	// also waits for the broker, so it gets a deadline.
	ctx := k.stopped
	if o == requeue && k.c.fl.requeueByCopy() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, settleTimeout)
		defer cancel()
	}
	err := k.dispose(ctx, p, o)
	k.mu.Lock()
	p.link.unsettled--
	k.topUp(p.link)
	k.mu.Unlock()
	if err != nil {
		return fmt.Errorf("settle a delivery from %s: %w", k.queue, k.settleError(err))
	}
	return nil
}

// dispose sends p's outcome. RabbitMQ 3.10 ends the session on a modified
// outcome, so the driver sends one only where the broker counts it
// (RabbitMQ 4: modified with delivery-failed requeues and counts the
// return in the header's delivery-count; released does not count).
func (k *consumer) dispose(ctx context.Context, p *pending, o outcome) error {
	switch {
	case o == requeue && k.c.fl.countReturns():
		return p.link.rcv.ModifyMessage(ctx, p.msg, &amqp.ModifyMessageOptions{DeliveryFailed: true})
	case o == accept:
		return p.link.rcv.AcceptMessage(ctx, p.msg)
	case o == reject:
		return p.link.rcv.RejectMessage(ctx, p.msg, nil)
	case k.c.fl.requeueByCopy():
		if err := k.c.send(ctx, k.address, requeueCopy(p.msg, p.count+1)); err != nil {
			return fmt.Errorf("requeue by publishing a copy (the original stays unsettled): %w", err)
		}
		return p.link.rcv.AcceptMessage(ctx, p.msg)
	}
	return p.link.rcv.ReleaseMessage(ctx, p.msg)
}

// settleError says ErrClosed when the link or the consumer has gone (the
// broker takes the delivery back), and maps a broker refusal otherwise.
func (k *consumer) settleError(err error) error {
	if (isLinkGone(err) && !isRemoteRefusal(err)) || k.stopped.Err() != nil {
		return fmt.Errorf("%w: %w", driver.ErrClosed, err)
	}
	return mapError(err)
}

// Close implements driver.Consumer. The session ends, and the broker
// returns unsettled deliveries to the queue; where it would drop them
// instead (the proton flavour), the driver first publishes copies marked
// redelivered. A Receive blocked meanwhile returns ErrClosed.
func (k *consumer) Close() error { return k.end(driver.ErrClosed) }

// end stops the consumer; Receive returns why from then on.
func (k *consumer) end(why error) error {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return nil
	}
	k.closed = true
	k.ended = why
	k.stop()
	l := k.link
	k.link = nil
	tags := make([]uint64, 0, len(k.pending))
	for tag := range k.pending {
		tags = append(tags, tag)
	}
	slices.Sort(tags)
	var unsettled []*pending
	for _, tag := range tags {
		if p := k.pending[tag]; p.link == l {
			unsettled = append(unsettled, p)
		}
	}
	k.pending = nil
	k.mu.Unlock()

	k.c.mu.Lock()
	delete(k.c.consumers, k)
	k.c.mu.Unlock()

	if l == nil {
		return nil
	}
	if !k.c.fl.requeueByCopy() {
		k.c.endLink(l.sess, l.rcv)
		return nil
	}
	// The broker forgets what it has sent. Detach first, so that nothing
	// more comes; then publish copies of what the application held (marked
	// redelivered) and of what arrived but was never handed out (as it was).
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	dctx, dcancel := context.WithTimeout(ctx, closeTimeout)
	_ = l.rcv.Close(dctx)
	dcancel()
	copies := make([]*amqp.Message, 0, len(unsettled))
	for _, p := range unsettled {
		copies = append(copies, requeueCopy(p.msg, p.count+1))
	}
	for m := l.rcv.Prefetched(); m != nil; m = l.rcv.Prefetched() {
		if !isMarker(m) {
			copies = append(copies, m)
		}
	}
	var err error
	for _, m := range copies {
		if e := k.c.send(ctx, k.address, m); e != nil {
			err = fmt.Errorf("return %d unsettled deliveries to %s: %w", len(copies), k.queue, e)
			break
		}
	}
	closeSession(l.sess)
	return err
}
