package rabbit

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-mq/switchyard/internal/rabbitmq"
	"github.com/switchyard-mq/switchyard/transport/driver"
)

// Headers the driver reads or writes.
const (
	// headerQuorumCount is where quorum queues count returns.
	headerQuorumCount = "x-delivery-count"
	// headerReturns counts the returns of a message on a classic queue with
	// a delivery limit; it rides on the copy the driver publishes in place
	// of a returned message, with the exchange and routing key the
	// original was published with. Consumers never see the driver's
	// headers.
	headerReturns    = "x-switchyard-returns"
	headerExchange   = "x-switchyard-exchange"
	headerRoutingKey = "x-switchyard-routing-key"
	// headerResent marks a message the publisher sent again after its
	// connection dropped before the broker's confirm: the broker may hold
	// an earlier copy, so consumers see this one as redelivered.
	headerResent = "x-switchyard-resent"
)

// stripDriverHeaders removes the driver's headers from h.
func stripDriverHeaders(h amqp.Table) {
	delete(h, headerReturns)
	delete(h, headerExchange)
	delete(h, headerRoutingKey)
	delete(h, headerResent)
}

// republishTimeout bounds the republish of a returned message, which a
// Nack without a context of its own waits for.
const republishTimeout = 30 * time.Second

// consumersPerChannel bounds the consumers that share a channel: enough
// that a thousand RPC servers (three consumers each) stay far below
// RabbitMQ's channel_max (2047 by default) on one connection, few enough
// that a channel error, which ends every consumer of the channel, takes
// few consumers with it.
const consumersPerChannel = 64

// spreadChannels is how many channels a session's consumers spread over
// before two share one. RabbitMQ handles a channel's methods one at a
// time, and a basic.consume on a queue whose leader is on a frozen node
// stalls until the node answers or its peers give it up: it holds up
// every consume behind it on its channel, as after a reconnection, when
// all start again at once. A service with a few consumers keeps each on a
// channel of its own; a thousand RPC servers still fit in about fifty.
const spreadChannels = 16

// consumerChannel is a channel that consumers share, up to
// consumersPerChannel, or that one consumer owns (see consumer.shared).
type consumerChannel struct {
	ch *amqp.Channel
	// consumeMu serialises basic.qos and basic.consume: a basic.qos with
	// global=false sets the prefetch of the consumers started after it on
	// the channel, so each consume sets its own first. prefetch is the
	// one set last (0, unlimited, on a new channel).
	consumeMu sync.Mutex
	prefetch  int
	closes    chan *amqp.Error
	members   int // consumers started on the channel and not released; guarded by consumerChannels.mu
}

// consumerChannels are a session's shared consumer channels.
type consumerChannels struct {
	mu   sync.Mutex
	open []*consumerChannel // shared, not known closed
	// spread is spreadChannels; tests lower it to share at once.
	spread int
}

// acquire returns a shared channel for one more consumer and counts the
// consumer in: a new one while fewer than spread are open, else the one
// with the fewest consumers, or a new one if all have
// consumersPerChannel.
func (p *consumerChannels) acquire(sess *session) (*consumerChannel, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.open = slices.DeleteFunc(p.open, func(cc *consumerChannel) bool { return cc.ch.IsClosed() })
	if len(p.open) >= p.spread {
		var least *consumerChannel
		for _, cc := range p.open {
			if cc.members < consumersPerChannel && (least == nil || cc.members < least.members) {
				least = cc
			}
		}
		if least != nil {
			least.members++
			return least, nil
		}
	}
	cc, err := openConsumerChannel(sess)
	if err != nil {
		return nil, err
	}
	cc.members = 1
	p.open = append(p.open, cc)
	return cc, nil
}

// release counts a consumer out of cc; it reports whether it was the last,
// in which case the caller closes cc.
func (p *consumerChannels) release(cc *consumerChannel) (last bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cc.members--
	if cc.members > 0 {
		return false
	}
	p.open = slices.DeleteFunc(p.open, func(o *consumerChannel) bool { return o == cc })
	return true
}

func openConsumerChannel(sess *session) (*consumerChannel, error) {
	ch, err := sess.amqp.Channel()
	if err != nil {
		return nil, err
	}
	return &consumerChannel{ch: ch, closes: ch.NotifyClose(make(chan *amqp.Error, 1))}, nil
}

// consume sets the consumer's prefetch on cc, if it differs from the one
// set last, and starts the consumer.
func (cc *consumerChannel) consume(cons *consumer, manualAck bool, args amqp.Table) (<-chan amqp.Delivery, error) {
	cc.consumeMu.Lock()
	defer cc.consumeMu.Unlock()
	// RabbitMQ ignores basic.qos for auto-ack consumers.
	if manualAck && cc.prefetch != cons.prefetch {
		if err := cc.ch.Qos(cons.prefetch, 0, false); err != nil {
			return nil, err
		}
		cc.prefetch = cons.prefetch
	}
	return cc.ch.Consume(cons.queue, cons.tag, !manualAck, cons.opts.Exclusive, false, false, args)
}

// reportClosed logs, once per channel, the error that closed it while its
// connection stands: every consumer on it starts again on another
// channel, a disruption an operator should see (their unsettled
// deliveries go back to their queues, and come again marked redelivered).
func (cc *consumerChannel) reportClosed(ctx context.Context, logger *slog.Logger, queue string) {
	// amqp091-go sends the reason before it closes the consumers'
	// delivery channels: the first consumer to look takes it, so it is
	// logged once. A connection's loss (a hard error) is logged as such
	// elsewhere.
	var reason *amqp.Error
	select {
	case reason = <-cc.closes:
	default:
	}
	if reason == nil || !reason.Server || !reason.Recover {
		return
	}
	logger.WarnContext(ctx, "rabbit: the broker closed a consumer channel; its consumers consume again on another",
		"queue", queue, "err", rabbitmq.MapError(reason))
}

// consumer is a basic.consume on a channel it shares with other consumers
// of the connection (see shared). After a reconnection, a channel error or
// a broker's cancel it starts again (a new incarnation); Receive reads
// straight from the current incarnation's delivery channel.
type consumer struct {
	c        *conn
	queue    string
	opts     driver.ConsumeOptions
	prefetch int
	// limit is the delivery limit the driver counts (classic queues
	// declared through this transport); 0: none. dlx and dlrk are the
	// queue's dead-letter exchange and routing key, for messages past it.
	limit     int
	dlx, dlrk string
	tag       string
	// shared says the consumer shares a channel with others. It does
	// unless the broker may refuse its basic.consume, which would close
	// the channel of every consumer on it: a consumer of a queue not
	// declared through this transport (it may not exist), an exclusive
	// one (the queue may have a consumer already) and one of a stream
	// (its offset may be refused) have a channel of their own.
	shared bool
	// declared says the queue was declared through this transport when
	// the consumer started: if the broker cancels the consumer and the
	// queue is no longer recorded, it was deleted through this transport
	// and the consumer ends with it; otherwise the consumer re-declares
	// the queue (if recorded) and consumes it again.
	declared bool
	// stream is set for a stream queue declared through this transport:
	// the consumer tracks nextOffset, the stream offset after the last
	// delivery it saw, and starts there again after a reconnection
	// ("next" before its first delivery, so that it reads only what comes
	// after it started). RabbitMQ takes no auto-ack consumer on a stream:
	// the driver acks each delivery as it hands it out instead.
	stream     bool
	nextOffset atomic.Int64 // -1: none seen yet

	// resent remembers the message ids of the last resentMemory
	// deliveries handed out marked resent, so that a copy of one of them
	// that comes after it, unmarked, is marked redelivered too.
	resent resentIDs

	cur     atomic.Pointer[incarnation]
	done    chan struct{} // closed when the consumer ends
	startMu sync.Mutex    // serialises restarts

	mu      sync.Mutex
	changed chan struct{} // closed and replaced when cur changes or the consumer stalls
	ended   bool
	endErr  error // why it ended; read after done is closed
	// stalled is why the consumer is not consuming though the connection
	// stands (the broker cancelled it, or it could not start again);
	// nil while it consumes. Healthy reports it.
	stalled error
}

// incarnation is one life of a consumer on one channel. It settles the
// deliveries it handed out; once its channel is gone, settling fails with
// ErrClosed and the broker delivers those messages again.
type incarnation struct {
	cons       *consumer
	sess       *session
	cc         *consumerChannel
	deliveries <-chan amqp.Delivery
	// cancelled is set once the consumer is known not to consume on cc
	// any more, its channel open: the broker cancelled it, or it stopped.
	cancelled   atomic.Bool
	releaseOnce sync.Once

	mu      sync.Mutex
	pending map[uint64]pendingDelivery // limit > 0 only: for Nack's republish
	// unsettled holds the tags of the deliveries taken from the channel
	// and not settled yet (manual acknowledgement only). A channel shared
	// with other consumers does not give them back when this consumer
	// stops, so stop does, and settling one that stop gave back must not
	// reach the broker: an unknown delivery tag closes the channel of
	// every consumer on it. stopped: stop has given them back.
	unsettled map[uint64]struct{}
	stopped   bool
}

// pendingDelivery is an unsettled delivery from a queue whose delivery
// limit the driver counts.
type pendingDelivery struct {
	d                  amqp.Delivery
	returns            int // returns counted before this delivery
	exchange, routeKey string
}

func (c *conn) Consume(ctx context.Context, queue string, opts driver.ConsumeOptions) (driver.Consumer, error) {
	cons := &consumer{
		c:        c,
		queue:    queue,
		opts:     opts,
		prefetch: cmp.Or(opts.Prefetch, c.s.prefetch),
		tag:      "switchyard-" + randomName(),
		done:     make(chan struct{}),
		changed:  make(chan struct{}),
	}
	cons.nextOffset.Store(-1)
	rq, declared := c.topo.queue(queue)
	if !declared && !opts.AutoAck {
		// Said at Consume, not found out after thousands of requeues.
		c.logger.WarnContext(ctx, "rabbit: consuming a queue this transport did not declare: if it is a classic queue with a delivery limit, "+
			"the driver cannot enforce the limit nor count returns (DeliveryCount is 1 for any redelivery); declare the queue through this transport too, or make it a quorum queue",
			"queue", queue)
	}
	if declared {
		cons.declared = true
		cons.shared = !opts.Exclusive && rq.q.Type != driver.StreamQueue
		if !opts.AutoAck {
			cons.limit = rq.decl.countedLimit
			cons.dlx, cons.dlrk = rq.q.DeadLetterExchange, rq.q.DeadLetterRoutingKey
		}
		if opts.Exclusive && (rq.decl.Quorum || rq.q.Type == driver.StreamQueue) {
			// RabbitMQ accepts the flag on these queues and ignores it: a
			// second consumer would quietly share the queue.
			return nil, fmt.Errorf("%w: an exclusive consumer of %q: RabbitMQ does not enforce exclusive consumers on quorum and stream queues (declare it with Type ClassicQueue)",
				driver.ErrUnsupported, queue)
		}
		if cons.stream = rq.q.Type == driver.StreamQueue; cons.stream && cons.prefetch == 0 {
			return nil, fmt.Errorf("%w: a consumer of the stream queue %q needs a prefetch (ConsumeOptions.Prefetch, or the URL's %s)",
				driver.ErrInvalid, queue, rabbitmq.Prefetch.Spec().Name)
		}
	}
	// Registered first, so that a reconnection from now on resumes it.
	c.mu.Lock()
	if c.closing.Load() {
		c.mu.Unlock()
		return nil, driver.ErrClosed
	}
	c.consumers[cons] = struct{}{}
	c.mu.Unlock()
	for {
		sess, err := c.session(ctx)
		if err == nil {
			err = c.async(ctx, func() error { return cons.restart(sess) })
			if err == nil {
				return cons, nil
			}
		}
		if ctx.Err() == nil && !c.closing.Load() && sess != nil && connectionFailing(sess, err) {
			select { // the connection dropped: again on the next one
			case <-sess.lost:
				continue
			case <-ctx.Done():
				err = ctx.Err()
			case <-c.ctx.Done():
				err = driver.ErrClosed
			}
		}
		cons.end(err, true)
		return nil, rabbitmq.MapError(err)
	}
}

// restart starts the consumer on sess unless it already runs there. The
// requests run under startMu only, so that end never waits for them; a
// restart that finds the consumer ended meanwhile closes its channel.
func (cons *consumer) restart(sess *session) error {
	cons.startMu.Lock()
	defer cons.startMu.Unlock()
	select {
	case <-cons.done:
		return cons.endErr
	default:
	}
	cur := cons.cur.Load()
	if cur != nil && cur.sess == sess && !cur.cc.ch.IsClosed() && !cur.cancelled.Load() {
		return nil
	}
	var cc *consumerChannel
	var err error
	if cons.shared {
		cc, err = sess.consumerChannels.acquire(sess)
	} else if cc, err = openConsumerChannel(sess); err == nil {
		cc.members = 1
	}
	if err != nil {
		return err
	}
	inc := &incarnation{cons: cons, sess: sess, cc: cc}
	if cons.limit > 0 {
		inc.pending = map[uint64]pendingDelivery{}
	}
	if cons.manualAck() {
		inc.unsettled = map[uint64]struct{}{}
	}
	var args amqp.Table
	if cons.stream {
		args = amqp.Table{"x-stream-offset": "next"}
		if next := cons.nextOffset.Load(); next >= 0 {
			args["x-stream-offset"] = next
		}
	}
	// RabbitMQ takes no auto-ack consumer on a stream: the driver acks
	// as it hands out (Receive).
	if inc.deliveries, err = cc.consume(cons, cons.manualAck() || cons.stream, args); err != nil {
		inc.cancelled.Store(true)
		inc.release()
		return err
	}
	cons.mu.Lock()
	if cons.ended {
		cons.mu.Unlock()
		inc.stop()
		return cons.endErr
	}
	cons.cur.Store(inc)
	close(cons.changed)
	cons.changed = make(chan struct{})
	cons.mu.Unlock()
	if cur != nil {
		cur.release()
	}
	return nil
}

// manualAck says the user settles the deliveries.
func (cons *consumer) manualAck() bool { return !cons.opts.AutoAck }

// release counts inc out of its channel once, closing the channel if it
// was the last consumer on it (the broker then gives back what it
// delivered on the channel unsettled).
func (inc *incarnation) release() {
	inc.releaseOnce.Do(func() {
		last := true
		if inc.cons.shared {
			last = inc.sess.consumerChannels.release(inc.cc)
		}
		if last {
			inc.cons.c.closeChannel(inc.cc.ch)
		}
	})
}

// stop ends inc for Close: its deliveries not settled yet go back to the
// queue. On a channel of its own or the last consumer of its channel, that
// is closing the channel; on a channel shared with others, it cancels the
// consumer and gives back, one by one, what it delivered unsettled.
func (inc *incarnation) stop() {
	if inc.cons.shared && !inc.cc.ch.IsClosed() {
		// After basic.cancel-ok nothing more comes: what is given back
		// now is not delivered to this consumer again. (A consumer the
		// broker cancelled needs none.)
		if inc.cancelled.Swap(true) || inc.cc.ch.Cancel(inc.cons.tag, false) == nil {
			inc.giveBackUnsettled()
		}
	}
	inc.release()
}

// giveBackUnsettled returns to their queues the deliveries of a consumer
// no longer consuming on its shared channel that were not settled: those
// handed out (settling one later fails with ErrClosed) and those
// amqp091-go still buffers for it (its delivery channel closes once they
// are read).
func (inc *incarnation) giveBackUnsettled() {
	inc.mu.Lock()
	inc.stopped = true
	tags := slices.Collect(maps.Keys(inc.unsettled))
	clear(inc.unsettled)
	inc.mu.Unlock()
	for _, tag := range tags {
		inc.giveBack(tag)
	}
	for d := range inc.deliveries {
		inc.giveBack(d.DeliveryTag)
	}
}

// hold records a delivery taken from the channel as unsettled; it reports
// false, and gives the delivery back, once stop has given back the
// others.
func (inc *incarnation) hold(tag uint64) bool {
	if inc.unsettled == nil {
		return true
	}
	inc.mu.Lock()
	stopped := inc.stopped
	if !stopped {
		inc.unsettled[tag] = struct{}{}
	}
	inc.mu.Unlock()
	if stopped {
		inc.giveBack(tag)
	}
	return !stopped
}

// giveBack returns a delivery that was never handed out to its queue.
func (inc *incarnation) giveBack(tag uint64) {
	if inc.unsettled != nil {
		_ = inc.cc.ch.Reject(tag, true)
	}
}

// settle removes tag from the unsettled deliveries; false: it is not
// there, stop gave it back.
func (inc *incarnation) settle(tag uint64) bool {
	if inc.unsettled == nil {
		return true
	}
	inc.mu.Lock()
	defer inc.mu.Unlock()
	if _, ok := inc.unsettled[tag]; !ok {
		return false
	}
	delete(inc.unsettled, tag)
	return true
}

// Receive returns the next delivery. Across a reconnection it waits for
// the consumer to resume and goes on.
func (cons *consumer) Receive(ctx context.Context) (driver.Delivery, error) {
	for {
		inc := cons.cur.Load()
		select {
		case d, ok := <-inc.deliveries:
			if !ok {
				if err := cons.lost(ctx, inc); err != nil {
					return driver.Delivery{}, err
				}
				continue
			}
			if cons.limit > 0 {
				if cons.counted(inc, d) {
					continue
				}
			}
			if !inc.hold(d.DeliveryTag) {
				continue
			}
			if cons.stream {
				if off, ok := intHeader(d.Headers, "x-stream-offset"); ok {
					cons.nextOffset.Store(off + 1)
				}
				if cons.opts.AutoAck {
					// Auto-ack as the model means it: settled as handed out.
					if err := inc.cc.ch.Ack(d.DeliveryTag, false); err != nil {
						cons.c.logger.DebugContext(ctx, "rabbit: acking a stream delivery failed; the stream keeps it", "queue", cons.queue, "err", err)
					}
				}
			}
			return cons.delivery(inc, &d), nil
		case <-cons.done:
			return driver.Delivery{}, cons.endErr
		case <-ctx.Done():
			return driver.Delivery{}, ctx.Err()
		}
	}
}

// lost handles the end of inc's delivery channel: the consumer closed,
// the broker cancelled it, its channel failed while the connection stands
// (start again now), or the connection dropped (wait for the supervisor
// to resume it). It returns nil when there is a new incarnation to read
// from.
//
// A consumer the broker cancels (its queue was deleted, or the queue's
// node went away) is consumed again: the queue and its bindings are
// declared again where this transport declared them, with the
// reconnection's backoff between attempts, each failure logged at error
// level and reported by Healthy until it consumes again. Only a queue
// deleted through this transport ends its consumer.
func (cons *consumer) lost(ctx context.Context, inc *incarnation) error {
	for attempt := 0; ; {
		cons.mu.Lock()
		ended, changed := cons.ended, cons.changed
		cons.mu.Unlock()
		if ended {
			return cons.endErr
		}
		if cons.cur.Load() != inc {
			return nil
		}
		// amqp091-go marks a channel closed before it closes its
		// consumers' delivery channels: one that ends on a channel still
		// open was cancelled by the broker.
		redeclare := false
		if !inc.cc.ch.IsClosed() && !inc.cancelled.Swap(true) {
			if cons.declared && cons.c.topo.deletedHere(cons.queue) {
				err := fmt.Errorf("%w: the consumer of queue %q ended: the queue was deleted", driver.ErrClosed, cons.queue)
				cons.end(err, true)
				return err
			}
			// Its unsettled deliveries go back to the queue, as they do
			// when a channel of its own closes, and its slot is free.
			if cons.shared {
				inc.giveBackUnsettled()
			}
			inc.release()
			cons.stall(ctx, fmt.Errorf("the broker cancelled the consumer of queue %q", cons.queue))
			redeclare = true
		}
		sess := cons.c.cur.Load()
		if sess != nil && !sess.amqp.IsClosed() {
			if inc.sess == sess && inc.cc.ch.IsClosed() {
				inc.cc.reportClosed(ctx, cons.c.logger, cons.queue)
				// The channel error may be its queue's absence: declared
				// first, so that the consume does not close the channel
				// of the consumers it shares a new one with.
				redeclare = redeclare || cons.shared
			}
			err := cons.c.async(ctx, func() error {
				if redeclare || cons.isStalled() {
					if err := cons.c.redeclareQueue(sess, cons.queue); err != nil {
						return err
					}
				}
				return cons.restart(sess)
			})
			switch {
			case err == nil:
				cons.resumed(ctx)
				return nil
			case ctx.Err() != nil:
				return ctx.Err()
			case !connectionFailing(sess, err):
				cons.stall(ctx, fmt.Errorf("the consumer of queue %q cannot start again: %w", cons.queue, rabbitmq.MapError(err)))
				if err := cons.waitRetry(ctx, attempt); err != nil {
					return err
				}
				attempt++
				continue
			}
		}
		// Until the supervisor resumes the consumer, or the connection
		// changes: then it is this loop's to try again.
		select {
		case <-changed:
		case <-cons.c.sessionChange(sess):
		case <-cons.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// stall records why the consumer is not consuming and logs it at error
// level: a queue no longer served is an outage, not a detail.
func (cons *consumer) stall(ctx context.Context, err error) {
	cons.mu.Lock()
	cons.stalled = err
	// Wake a Receive waiting in lost for the supervisor: it is up to
	// Receive now to try again.
	close(cons.changed)
	cons.changed = make(chan struct{})
	cons.mu.Unlock()
	cons.c.logger.ErrorContext(ctx, "rabbit: a consumer is not consuming; trying again", "queue", cons.queue, "err", err)
}

// resumed clears a stall once the consumer consumes again.
func (cons *consumer) resumed(ctx context.Context) {
	cons.mu.Lock()
	was := cons.stalled
	cons.stalled = nil
	cons.mu.Unlock()
	if was != nil {
		cons.c.logger.InfoContext(ctx, "rabbit: the consumer consumes again", "queue", cons.queue)
	}
}

func (cons *consumer) isStalled() bool {
	cons.mu.Lock()
	defer cons.mu.Unlock()
	return cons.stalled != nil
}

// stalledErr is why the consumer is not consuming, or nil.
func (cons *consumer) stalledErr() error {
	cons.mu.Lock()
	defer cons.mu.Unlock()
	return cons.stalled
}

// waitRetry waits the reconnection backoff's delay for attempt, or until
// the consumer, the transport or ctx ends.
func (cons *consumer) waitRetry(ctx context.Context, attempt int) error {
	t := time.NewTimer(cons.c.s.reconnect.Delay(attempt))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-cons.done:
		return cons.endErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// closeChannel closes a consumer channel, waiting at most closeTimeout:
// the deliveries unsettled on it go back to their queues.
func (c *conn) closeChannel(ch *amqp.Channel) {
	if ch.IsClosed() {
		return
	}
	c.bounded(func() { _ = ch.Close() })
}

// bounded runs f on a goroutine that the transport owns and waits for it
// at most closeTimeout: a dead peer must not hold up a Close.
func (c *conn) bounded(f func()) {
	done := make(chan struct{})
	if !c.spawn(func() {
		defer close(done)
		f()
	}) {
		return
	}
	t := time.NewTimer(closeTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// delivery converts d for the model. On a copy the driver republished to
// this queue it reads the count of returns and the original exchange and
// routing key; elsewhere it reads the quorum queue's count, and a broker
// redelivery counts as one return. The driver's headers never reach users.
func (cons *consumer) delivery(inc *incarnation, d *amqp.Delivery) driver.Delivery {
	out := driver.Delivery{
		Message: driver.Message{
			Body:            d.Body,
			ContentType:     d.ContentType,
			ContentEncoding: d.ContentEncoding,
			MessageID:       d.MessageId,
			CorrelationID:   d.CorrelationId,
			ReplyTo:         d.ReplyTo,
			Expiration:      parseExpiration(d.Expiration),
			Persistent:      d.DeliveryMode == amqp.Persistent,
			Timestamp:       d.Timestamp,
		},
		Exchange:    d.Exchange,
		RoutingKey:  d.RoutingKey,
		Redelivered: d.Redelivered,
	}
	if d.Redelivered {
		out.DeliveryCount = 1
	}
	if d.Headers != nil {
		o := cons.inspect(d)
		switch {
		case o.counted:
			out.Exchange, out.RoutingKey = o.exchange, o.key
			out.DeliveryCount = o.returns
			out.Redelivered = true
		case hasInt(d.Headers, headerQuorumCount):
			n, _ := intHeader(d.Headers, headerQuorumCount)
			out.DeliveryCount = int(n)
		}
		if o.resent {
			out.Redelivered = true
			cons.resent.add(d.MessageId)
		}
		if o.marked {
			stripDriverHeaders(d.Headers)
		}
		if len(d.Headers) > 0 || !o.marked {
			out.Headers = fromTable(d.Headers)
		}
	}
	if !out.Redelivered && cons.resent.has(d.MessageId) {
		// The first copy of a message published again, after the second:
		// a frozen node reads the publishes of a connection the driver
		// gave up on once it resumes, after their copies sent again.
		out.Redelivered = true
	}
	if !cons.opts.AutoAck {
		out.Settler = inc
		out.Tag = d.DeliveryTag
	}
	return out
}

// resentMemory is how many message ids of resent deliveries a consumer
// remembers.
const resentMemory = 4096

// resentIDs is a bounded set of message ids, the oldest forgotten first.
type resentIDs struct {
	mu    sync.Mutex
	ids   map[string]struct{}
	order []string // ring of ids, next is the oldest once full
	next  int
}

func (r *resentIDs) add(id string) {
	if id == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.ids[id]; ok {
		return
	}
	if r.ids == nil {
		r.ids = map[string]struct{}{}
	}
	if len(r.order) < resentMemory {
		r.order = append(r.order, id)
	} else {
		delete(r.ids, r.order[r.next])
		r.order[r.next] = id
		r.next = (r.next + 1) % resentMemory
	}
	r.ids[id] = struct{}{}
}

func (r *resentIDs) has(id string) bool {
	if id == "" {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.ids[id]
	return ok
}

func hasInt(t amqp.Table, key string) bool {
	_, ok := intHeader(t, key)
	return ok
}

// origin is what the driver's headers say about a delivery.
type origin struct {
	marked  bool // it carries the driver's headers
	resent  bool // its publisher sent it again: an earlier copy may exist
	counted bool // it is a copy the driver republished to this queue
	// returns counts the returns before this delivery, a broker
	// redelivery included.
	returns       int
	exchange, key string // where it was first published
}

// inspect reads the driver's headers on d. A copy dead-lettered elsewhere
// (expired, rejected, pushed out) still carries them, but its count and
// origin are another queue's: it is only marked.
func (cons *consumer) inspect(d *amqp.Delivery) origin {
	o := origin{exchange: d.Exchange, key: d.RoutingKey}
	n, counted := intHeader(d.Headers, headerReturns)
	_, o.resent = d.Headers[headerResent]
	_, hasExchange := d.Headers[headerExchange]
	o.marked = counted || o.resent || hasExchange
	if counted && d.Exchange == "" && d.RoutingKey == cons.queue {
		o.counted = true
		o.returns = int(n)
		if ex, ok := d.Headers[headerExchange].(string); ok {
			o.exchange = ex
			o.key, _ = d.Headers[headerRoutingKey].(string)
		}
	}
	if d.Redelivered {
		o.returns++
	}
	return o
}

// counted applies the driver-counted delivery limit to a new delivery.
// A broker redelivery (its consumer went away unsettled) is a return the
// driver has not counted yet: it republishes a copy that carries the new
// count and acks the original, or dead-letters it past the limit, so that
// a message that kills its consumers cannot loop forever. It reports true
// when d was dealt with and must not be handed out. Other deliveries are
// remembered until settled, for Nack.
func (cons *consumer) counted(inc *incarnation, d amqp.Delivery) bool {
	o := cons.inspect(&d)
	p := pendingDelivery{d: d, returns: o.returns, exchange: o.exchange, routeKey: o.key}
	if d.Redelivered {
		// Not bounded by Receive's context: the delivery is taken, and an
		// abandoned republish would leave a copy behind.
		ctx, cancel := context.WithTimeout(cons.c.ctx, republishTimeout)
		defer cancel()
		var err error
		if o.returns > cons.limit {
			err = cons.deadLetter(ctx, p)
		} else {
			err = cons.republish(ctx, p, o.returns)
		}
		if err == nil {
			_ = inc.cc.ch.Ack(d.DeliveryTag, false)
			return true
		}
		cons.c.logger.WarnContext(cons.c.ctx, "rabbit: could not count a returned message; handing it out as it is", "queue", cons.queue, "err", err)
	}
	inc.mu.Lock()
	inc.pending[d.DeliveryTag] = p
	inc.mu.Unlock()
	return false
}

// copyHeaders returns a copy of a delivery's headers that amqp091-go can
// publish, without the driver's own.
func copyHeaders(h amqp.Table, extra int) (amqp.Table, error) {
	headers, err := toTable(driver.Headers(h))
	if err != nil {
		return nil, err
	}
	copied := make(amqp.Table, len(headers)+extra)
	for k, v := range headers {
		copied[k] = v
	}
	stripDriverHeaders(copied)
	return copied, nil
}

// copyOf is a publishing with d's properties and body.
func copyOf(d *amqp.Delivery, headers amqp.Table) amqp.Publishing {
	return amqp.Publishing{
		Headers:         headers,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		DeliveryMode:    d.DeliveryMode,
		Priority:        d.Priority,
		CorrelationId:   d.CorrelationId,
		ReplyTo:         d.ReplyTo,
		Expiration:      d.Expiration,
		MessageId:       d.MessageId,
		Timestamp:       d.Timestamp,
		Type:            d.Type,
		AppId:           d.AppId,
		Body:            d.Body,
	}
}

// republish puts a copy of a returned message at the back of its queue,
// carrying its count of returns and where it was first published, and
// waits for the broker's confirm.
func (cons *consumer) republish(ctx context.Context, p pendingDelivery, returns int) error {
	headers, err := copyHeaders(p.d.Headers, 3)
	if err != nil {
		return err
	}
	headers[headerReturns] = int64(returns)
	headers[headerExchange] = p.exchange
	headers[headerRoutingKey] = p.routeKey
	pub := copyOf(&p.d, headers)
	return cons.c.publish(ctx, "", cons.queue, publishConfirmed|publishMandatory, &pub)
}

// deadLetter does what a quorum queue does with a message past its
// delivery limit: it publishes it to the queue's dead-letter exchange,
// with the dead-letter routing key if there is one, an x-death entry with
// reason delivery_limit and no expiration; without a dead-letter exchange
// the message is dropped. The broker cannot do it for a classic queue: a
// rejected message would say "rejected".
func (cons *consumer) deadLetter(ctx context.Context, p pendingDelivery) error {
	if cons.dlx == "" {
		cons.c.logger.DebugContext(ctx, "rabbit: delivery limit reached; message dropped", "queue", cons.queue)
		return nil
	}
	headers, err := copyHeaders(p.d.Headers, 4)
	if err != nil {
		return err
	}
	addDeath(headers, death{
		queue: cons.queue, reason: "delivery_limit", exchange: p.exchange, key: p.routeKey,
		expiration: p.d.Expiration, at: time.Now(),
	})
	pub := copyOf(&p.d, headers)
	pub.Expiration = ""
	key := cmp.Or(cons.dlrk, p.routeKey)
	err = cons.c.publish(ctx, cons.dlx, key, publishConfirmed, &pub)
	if errors.Is(err, driver.ErrNotFound) {
		// The broker drops dead letters to a missing exchange too.
		cons.c.logger.WarnContext(ctx, "rabbit: dead-letter exchange missing; message dropped", "queue", cons.queue, "exchange", cons.dlx)
		return nil
	}
	return err
}

// death is one entry of the x-death header.
type death struct {
	queue, reason, exchange, key, expiration string
	at                                       time.Time
}

// addDeath records a death in headers as RabbitMQ does: the x-death list,
// newest first, one entry per queue and reason with a count, and the
// x-first-death-* headers.
func addDeath(headers amqp.Table, dd death) {
	entry := amqp.Table{
		"count":        int64(1),
		"reason":       dd.reason,
		"queue":        dd.queue,
		"time":         dd.at.Truncate(time.Second),
		"exchange":     dd.exchange,
		"routing-keys": []any{dd.key},
	}
	if dd.expiration != "" {
		entry["original-expiration"] = dd.expiration
	}
	deaths, _ := headers["x-death"].([]any)
	merged := []any{entry}
	for _, d := range deaths {
		if t, ok := d.(amqp.Table); ok && t["queue"] == dd.queue && t["reason"] == dd.reason {
			n, _ := intHeader(t, "count")
			entry["count"] = n + 1
			continue
		}
		merged = append(merged, d)
	}
	headers["x-death"] = merged
	for k, v := range map[string]string{"x-first-death-queue": dd.queue, "x-first-death-reason": dd.reason, "x-first-death-exchange": dd.exchange} {
		if _, ok := headers[k]; !ok {
			headers[k] = v
		}
	}
}

// end stops the consumer for good, with err as what Receive returns. With
// giveBack, it stops the consumer on its channel and gives its unsettled
// deliveries back to the queue (see incarnation.stop); Close of the
// transport skips that, as closing the connection does the same.
func (cons *consumer) end(err error, giveBack bool) {
	cons.mu.Lock()
	if cons.ended {
		cons.mu.Unlock()
		return
	}
	cons.ended = true
	cons.endErr = err
	close(cons.done)
	inc := cons.cur.Load()
	cons.mu.Unlock()
	cons.c.forget(cons, inc != nil)
	if giveBack && inc != nil {
		cons.c.bounded(inc.stop)
	}
}

// Close stops the consumer; the broker returns its unsettled deliveries
// to the queue, marked redelivered.
func (cons *consumer) Close() error {
	cons.end(fmt.Errorf("%w: consumer of queue %q closed", driver.ErrClosed, cons.queue), true)
	return nil
}

// forget removes cons from the transport. When it was the last consumer
// of an auto-delete queue declared here, the broker deletes the queue, so
// the recorded topology forgets it too.
func (c *conn) forget(cons *consumer, started bool) {
	c.mu.Lock()
	delete(c.consumers, cons)
	others := false
	for other := range c.consumers {
		if other.queue == cons.queue {
			others = true
			break
		}
	}
	c.mu.Unlock()
	if rq, ok := c.topo.queue(cons.queue); started && !others && ok && rq.q.AutoDelete {
		c.topo.deleteQueue(cons.queue)
	}
}

// usable checks that a delivery of inc can still be settled.
func (inc *incarnation) usable() error {
	select {
	case <-inc.cons.done:
		return fmt.Errorf("%w: the consumer of queue %q is closed; its unsettled deliveries went back to the queue", driver.ErrClosed, inc.cons.queue)
	default:
	}
	if inc.cc.ch.IsClosed() {
		return inc.errGone()
	}
	return nil
}

// errGivenBack: the consumer stopped and gave the delivery back to its
// queue before it was settled.
func (inc *incarnation) errGivenBack() error {
	return fmt.Errorf("%w: the consumer of queue %q stopped; this delivery went back to the queue", driver.ErrClosed, inc.cons.queue)
}

func (inc *incarnation) errGone() error {
	return fmt.Errorf("%w: the channel of this delivery from queue %q closed (connection lost?); the broker delivers the message again", driver.ErrClosed, inc.cons.queue)
}

// settled maps the error of a settlement: a broker's channel error has its
// sentinel; anything else (a closed channel, a failed write) means the
// delivery's channel is gone.
func (inc *incarnation) settled(err error) error {
	if err == nil {
		return nil
	}
	if rabbitmq.IsChannelError(err) {
		return rabbitmq.MapError(err)
	}
	return fmt.Errorf("%w (%w)", inc.errGone(), err)
}

func (inc *incarnation) takePending(tag uint64) (pendingDelivery, bool) {
	if inc.pending == nil {
		return pendingDelivery{}, false
	}
	inc.mu.Lock()
	defer inc.mu.Unlock()
	p, ok := inc.pending[tag]
	delete(inc.pending, tag)
	return p, ok
}

// Ack settles a delivery as handled.
func (inc *incarnation) Ack(tag uint64) error {
	if err := inc.usable(); err != nil {
		return err
	}
	if !inc.settle(tag) {
		return inc.errGivenBack()
	}
	inc.takePending(tag)
	return inc.settled(inc.cc.ch.Ack(tag, false))
}

// Nack requeues a delivery, or dead-letters it. On a classic queue whose
// delivery limit the driver counts, a requeue is a republished copy with
// the count of returns, and the original is acked; past the limit the
// driver dead-letters it as a quorum queue would (see deadLetter).
func (inc *incarnation) Nack(tag uint64, requeue bool) error {
	if err := inc.usable(); err != nil {
		return err
	}
	if !inc.settle(tag) {
		return inc.errGivenBack()
	}
	p, counted := inc.takePending(tag)
	if !requeue || !counted {
		// basic.reject, not basic.nack: RabbitMQ 4.3's quorum queues count
		// a reject toward the delivery limit and a nack not, and the model's
		// Nack with requeue counts (oslo's requeue is a reject too).
		return inc.settled(inc.cc.ch.Reject(tag, requeue))
	}
	ctx, cancel := context.WithTimeout(inc.cons.c.ctx, republishTimeout)
	defer cancel()
	var err error
	if returns := p.returns + 1; returns > inc.cons.limit {
		err = inc.cons.deadLetter(ctx, p)
	} else {
		err = inc.cons.republish(ctx, p, returns)
	}
	if err != nil {
		// Not counted: let the broker requeue it; the redelivered flag
		// counts this return when it comes back.
		inc.cons.c.logger.WarnContext(inc.cons.c.ctx, "rabbit: could not count a returned message; requeued as it is", "queue", inc.cons.queue, "err", err)
		return inc.settled(inc.cc.ch.Reject(tag, true))
	}
	return inc.settled(inc.cc.ch.Ack(tag, false))
}

// randomName is 16 random bytes in base64 (URL alphabet), for consumer
// tags.
func randomName() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
