package rabbit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-mq/switchyard/internal/backoff"
	"github.com/switchyard-mq/switchyard/internal/rabbitmq"
	"github.com/switchyard-mq/switchyard/transport/driver"
)

// maxMisattributedRetries bounds how often a publish is tried again
// because another publish's error closed the channel they shared. Every
// such retry is caused by a different failing publish, so the bound only
// stops a publish from starving behind a steady stream of bad ones.
const maxMisattributedRetries = 100

// trackedInFlight bounds the publishes in flight on a tracked channel, and
// sizes the buffer of its returns, so that amqp091-go, which drops a
// notification that waits longer than 5 s for room, always finds room.
const trackedInFlight = 256

// pubChannel is a channel that publishes.
type pubChannel struct {
	ch     *amqp.Channel
	closes chan *amqp.Error
	// tracker settles the publishes of a tracked channel; nil on others.
	tracker *confirmTracker

	reasonOnce sync.Once
	reason     *amqp.Error
}

// closeReason is why the broker closed the channel; nil when it was closed
// by the client or with its connection. Call it only once the channel is
// closed.
func (pc *pubChannel) closeReason() *amqp.Error {
	pc.reasonOnce.Do(func() { pc.reason = <-pc.closes })
	return pc.reason
}

// openPubChannel opens a publishing channel, in confirm mode if asked. A
// tracked channel (track) is in confirm mode, with a tracker that settles
// each publish by its confirm and its return.
func openPubChannel(c *conn, sess *session, confirm, track bool) (*pubChannel, error) {
	ch, err := sess.amqp.Channel()
	if err != nil {
		return nil, err
	}
	pc := &pubChannel{ch: ch, closes: ch.NotifyClose(make(chan *amqp.Error, 1))}
	if track {
		confirm = true
		pc.tracker = &confirmTracker{
			pending: map[uint64]*trackedPublish{}, slots: make(chan struct{}, trackedInFlight),
			returns: ch.NotifyReturn(make(chan amqp.Return, trackedInFlight)),
		}
	}
	if confirm {
		if err := ch.Confirm(false); err != nil {
			_ = ch.Close()
			return nil, err
		}
	}
	return pc, nil
}

// sharedChannel is a channel that many publishes of a session go through
// at once, as a raw amqp091-go program would publish: amqp091-go
// serialises the frames of concurrent publishes, and each publish waits
// for its own confirm without holding the channel (more channels only cost
// the broker more processes). A channel error closes it; the next publish
// opens another.
type sharedChannel struct {
	cur     atomic.Pointer[pubChannel]
	mu      sync.Mutex // serialises opening
	confirm bool
	track   bool // a tracked channel (see openPubChannel)
}

func (s *sharedChannel) get(c *conn, sess *session) (*pubChannel, error) {
	if pc := s.cur.Load(); pc != nil && !pc.ch.IsClosed() {
		return pc, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if pc := s.cur.Load(); pc != nil && !pc.ch.IsClosed() {
		return pc, nil
	}
	pc, err := openPubChannel(c, sess, s.confirm, s.track)
	if err != nil {
		return nil, err
	}
	s.cur.Store(pc)
	return pc, nil
}

// retire stops handing out pc after the broker nacked a publish on it, and
// closes it: its publishes still in flight are sent again on the next
// channel, marked resent. After a quorum queue's leader moved, RabbitMQ
// may nack everything on a channel opened during the election until the
// old leader's node returns, while a channel opened after it is acked.
func (s *sharedChannel) retire(c *conn, pc *pubChannel) {
	if s.cur.CompareAndSwap(pc, nil) {
		c.spawn(func() { _ = pc.ch.Close() })
	}
}

// confirmTracker settles the publishes of a tracked channel: those that
// wait for their confirm whatever the confirms option says (mandatory
// ones, and the driver's own republishing), and must learn whether the
// broker returned them. Each publish waits for its own deferred
// confirmation, which amqp091-go's reader settles as it reads the confirm
// (or nacks when the channel closes). RabbitMQ handles a channel's
// publishes in order and returns an unroutable mandatory message as it
// routes it, before that message's confirm; amqp091-go's reader puts the
// return in the buffered returns before it reads the confirm. So a
// publish whose confirmation is done reads the returns that are there,
// under mu, and its own, if any, has been matched by then. A return
// carries no delivery tag: it goes to the earliest unsettled mandatory
// publish with the same exchange, routing key and body (returns come in
// publish order, and earlier matching publishes that were routed are told
// apart from it only if their bodies differ: copies that are byte for
// byte the same have outcomes nobody can tell apart).
type confirmTracker struct {
	// pubMu holds the channel's next delivery tag from its reservation to
	// its publication, so that a publish is recorded under the tag the
	// channel gives it.
	pubMu sync.Mutex
	// slots holds one token per publish until it is settled, even if its
	// publisher stopped waiting: trackedInFlight at most, so that the
	// returns always have room.
	slots   chan struct{}
	returns <-chan amqp.Return // read under mu

	mu      sync.Mutex
	pending map[uint64]*trackedPublish // by delivery tag
}

// trackedPublish is one publish on a tracked channel, until settled.
type trackedPublish struct {
	exchange, key string
	body          []byte // a mandatory publish's, to match its return
	mandatory     bool
	tag           uint64
	returned      *amqp.Return // set under the tracker's mu
}

// publish publishes p on ch and records it for its confirm, once fewer
// than trackedInFlight publishes are in flight or when ctx ends.
func (t *confirmTracker) publish(ctx context.Context, ch *amqp.Channel, p *trackedPublish, pub *amqp.Publishing) (*amqp.DeferredConfirmation, error) {
	select {
	case t.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for room among the %d publishes in flight: %w", trackedInFlight, ctx.Err())
	}
	t.pubMu.Lock()
	defer t.pubMu.Unlock()
	p.tag = ch.GetNextPublishSeqNo()
	t.mu.Lock()
	t.pending[p.tag] = p
	t.mu.Unlock()
	dc, err := ch.PublishWithDeferredConfirm(p.exchange, p.key, p.mandatory, false, *pub)
	if err == nil && dc == nil {
		err = fmt.Errorf("%w: the tracked channel is not in confirm mode", driver.ErrClosed)
	}
	if err != nil {
		t.settle(p)
		return nil, err
	}
	return dc, nil
}

// settle reads the returns amqp091-go has put by, matching each to its
// publish, and settles p, whose confirmation is done (or which was never
// sent): its return, if any, is matched.
func (t *confirmTracker) settle(p *trackedPublish) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for drained := false; !drained; {
		select {
		case r, ok := <-t.returns:
			if !ok {
				drained = true
				break
			}
			t.matchLocked(r)
		default:
			drained = true
		}
	}
	delete(t.pending, p.tag)
	<-t.slots
}

// abandon settles p once its confirmation is done, for a publisher that
// stopped waiting. p keeps a copy of its body, to match a return: the
// publisher may reuse its own once Publish returns.
func (t *confirmTracker) abandon(p *trackedPublish, dc *amqp.DeferredConfirmation) {
	t.mu.Lock()
	p.body = bytes.Clone(p.body)
	t.mu.Unlock()
	go func() {
		<-dc.Done() // confirmed, or nacked as the channel closes
		t.settle(p)
	}()
}

// matchLocked gives a return to the earliest unsettled mandatory publish
// of the same message.
func (t *confirmTracker) matchLocked(r amqp.Return) {
	var first uint64
	for tag, p := range t.pending {
		if (first == 0 || tag < first) && p.mandatory && p.returned == nil &&
			p.exchange == r.Exchange && p.key == r.RoutingKey && bytes.Equal(p.body, r.Body) {
			first = tag
		}
	}
	if first != 0 {
		t.pending[first].returned = &r
	}
}

// publishOutcome says what to do after a publish attempt.
type publishOutcome int

const (
	published      publishOutcome = iota // done: the error, if any, is final
	retryNow                             // another publish's error closed the shared channel
	retryReconnect                       // the connection dropped: again on the next one
	retryNacked                          // the broker nacked it: again on a new channel, after a pause
)

// maxNackRetries bounds how often a nacked publish is sent again, on a
// new channel and marked resent (the broker may have taken it on some
// queues), waiting 50 ms doubling to 1 s between tries (about 3 s in
// all): a quorum queue's leader election nacks for a moment, and the
// caller should not see it. Past the bound the nack is the publish's
// error: a queue that rejects publishes when full says no for longer.
const maxNackRetries = 6

// Publish sends msg and, with confirms (or when mandatory), returns once
// the broker confirmed it. A publish whose connection drops before the
// confirm is published again on the next connection (at-least-once: the
// broker may have taken the first copy), so a confirmed message is never
// lost and an unconfirmed one is never reported as sent.
func (c *conn) Publish(ctx context.Context, exchange, key string, msg driver.Message) error {
	headers, err := toTable(msg.Headers)
	if err != nil {
		return err
	}
	// AMQP short strings: a longer one would make the client fail the
	// whole connection rather than this publish.
	for _, f := range [...]struct{ name, value string }{
		{"content type", msg.ContentType}, {"content encoding", msg.ContentEncoding}, {"message id", msg.MessageID},
		{"correlation id", msg.CorrelationID}, {"reply-to", msg.ReplyTo},
	} {
		if len(f.value) > maxShortString {
			return fmt.Errorf("%w: %s is %d bytes, more than AMQP's %d", driver.ErrInvalid, f.name, len(f.value), maxShortString)
		}
	}
	pub := amqp.Publishing{
		Headers:         headers,
		ContentType:     msg.ContentType,
		ContentEncoding: msg.ContentEncoding,
		MessageId:       msg.MessageID,
		CorrelationId:   msg.CorrelationID,
		ReplyTo:         msg.ReplyTo,
		Expiration:      expiration(msg.Expiration),
		Timestamp:       msg.Timestamp,
		Body:            msg.Body,
	}
	if msg.Persistent {
		pub.DeliveryMode = amqp.Persistent
	}
	var flags publishFlags
	switch {
	case msg.Mandatory:
		flags = publishMandatory | publishConfirmed
	}
	return c.publish(ctx, exchange, key, flags, &pub)
}

// publishFlags choose how a message is published.
type publishFlags uint8

const (
	// publishMandatory: an unroutable message fails with ErrUnroutable.
	publishMandatory publishFlags = 1 << iota
	// publishConfirmed: wait for the broker's confirm even with
	// confirms=false, on the tracked channel (the driver's own
	// republishing and dead-lettering, and mandatory publishes).
	publishConfirmed
)

func (c *conn) publish(ctx context.Context, exchange, key string, flags publishFlags, pub *amqp.Publishing) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	misattributed, nacks := 0, 0
	mandatory := flags&publishMandatory != 0
	for attempt := 0; ; attempt++ {
		if attempt == 1 {
			markResent(pub)
		}
		sess, err := c.session(ctx)
		if err != nil {
			return err
		}
		var outcome publishOutcome
		if flags&publishConfirmed != 0 {
			outcome, err = c.publishTracked(ctx, sess, exchange, key, mandatory, pub)
		} else {
			outcome, err = c.publishShared(ctx, sess, &sess.pub, exchange, key, pub)
		}
		switch outcome {
		case published:
			return err
		case retryNow:
			if misattributed++; misattributed > maxMisattributedRetries {
				return fmt.Errorf("not sent after %d attempts: other publishes' errors kept closing the shared channel; last: %w",
					misattributed, rabbitmq.MapError(err))
			}
		case retryNacked:
			if nacks++; nacks > maxNackRetries {
				return err
			}
			pause := backoff.Backoff{Initial: 50 * time.Millisecond, Multiplier: 2, Max: time.Second}
			t := time.NewTimer(pause.Delay(nacks - 1))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("%w (waiting to publish again: %w)", err, ctx.Err())
			case <-c.ctx.Done():
				t.Stop()
				return fmt.Errorf("%w: the transport closed; the broker had nacked the message", driver.ErrClosed)
			}
		case retryReconnect:
			// Wait until the supervisor has seen the loss, so that the
			// next session is a new one.
			select {
			case <-sess.lost:
			case <-ctx.Done():
				return fmt.Errorf("the connection dropped before the broker confirmed the message (%v); waiting for it to come back: %w", err, ctx.Err())
			case <-c.ctx.Done():
				return fmt.Errorf("%w: the transport closed before the broker confirmed the message", driver.ErrClosed)
			}
		}
	}
}

// publishShared makes one attempt on one of the session's untracked
// channels.
func (c *conn) publishShared(ctx context.Context, sess *session, shared *sharedChannel, exchange, key string, pub *amqp.Publishing) (publishOutcome, error) {
	pc, err := shared.get(c, sess)
	if err != nil {
		return c.notSent(sess, nil, err)
	}
	dc, err := pc.ch.PublishWithDeferredConfirm(exchange, key, false, false, *pub)
	if err != nil {
		return c.notSent(sess, pc, err)
	}
	if dc == nil { // no confirms: the broker took it as far as we can know
		return published, nil
	}
	select {
	case <-dc.Done():
	case <-ctx.Done():
		return published, fmt.Errorf("waiting for the broker's confirm (the message may or may not have been taken): %w", ctx.Err())
	}
	switch {
	case dc.Acked():
		return published, nil
	case pc.ch.IsClosed():
		return c.failed(sess, pc, exchange)
	}
	shared.retire(c, pc)
	return retryNacked, errNack
}

// publishTracked makes one attempt on the session's tracked channel and
// waits until the publish is settled by its confirm, with its return for a
// mandatory publish.
func (c *conn) publishTracked(ctx context.Context, sess *session, exchange, key string, mandatory bool, pub *amqp.Publishing) (publishOutcome, error) {
	p := &trackedPublish{exchange: exchange, key: key, mandatory: mandatory}
	if mandatory {
		p.body = pub.Body // copied if this publisher stops waiting (see abandon)
	}
	tracked := &sess.tracked
	pc, err := tracked.get(c, sess)
	if err != nil {
		return c.notSent(sess, nil, err)
	}
	dc, err := pc.tracker.publish(ctx, pc.ch, p, pub)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
			return published, err
		}
		return c.notSent(sess, pc, err)
	}
	select {
	case <-dc.Done():
		pc.tracker.settle(p)
	case <-ctx.Done():
		pc.tracker.abandon(p, dc)
		return published, fmt.Errorf("waiting for the broker's confirm (the message may or may not have been taken): %w", ctx.Err())
	}
	switch r := p.returned; {
	case r != nil:
		return published, fmt.Errorf("%w: %s (AMQP reply %d) for exchange %q, key %q", driver.ErrUnroutable, r.ReplyText, r.ReplyCode, r.Exchange, r.RoutingKey)
	case dc.Acked():
		return published, nil
	case pc.ch.IsClosed():
		return c.failed(sess, pc, exchange)
	}
	tracked.retire(c, pc)
	return retryNacked, errNack
}

// errNack is a broker's basic.nack: it could not take the message.
var errNack = errors.New("the broker refused the message (basic.nack)")

// notSent classifies a publish that could not be written (pc is nil when
// no channel could be had): the connection is going down, or the channel
// was closed by an earlier publish's error; either way it was not sent.
func (c *conn) notSent(sess *session, pc *pubChannel, err error) (publishOutcome, error) {
	switch {
	case connectionFailing(sess, err):
		return retryReconnect, err
	case pc != nil && pc.ch.IsClosed(), rabbitmq.IsChannelError(err), errors.Is(err, amqp.ErrClosed):
		// A write cannot itself close the channel: an earlier publish on
		// the shared channel did, and this message was not sent. The
		// closing may not be visible on the channel yet when the write
		// already fails (with the broker's reason, or amqp091's 504
		// "channel/connection is not open"), hence the other tests.
		return retryNow, err
	}
	return published, rabbitmq.MapError(err)
}

// failed classifies a publish whose channel closed before its confirm: a
// channel error about this publish's exchange is its error; one about
// another exchange (a publish sharing the channel) calls for another try;
// a lost connection, for a try on the next one.
func (c *conn) failed(sess *session, pc *pubChannel, exchange string) (publishOutcome, error) {
	if sess.amqp.IsClosed() {
		return retryReconnect, amqp.ErrClosed
	}
	reason := pc.closeReason()
	if reason == nil {
		if sess.amqp.IsClosed() {
			return retryReconnect, amqp.ErrClosed
		}
		return retryNow, fmt.Errorf("%w: publishing channel closed", driver.ErrClosed)
	}
	mapped := rabbitmq.MapError(reason)
	if !rabbitmq.IsChannelError(reason) {
		return retryReconnect, mapped
	}
	if name, ok := exchangeInReason(reason.Reason); ok && name != exchange {
		return retryNow, mapped
	}
	return published, mapped
}

// markResent marks a message published again because the broker may or
// may not have taken the first copy: its consumers see it as redelivered,
// the at-least-once promise that a duplicate is always flagged. The
// caller's header map is copied, not changed.
func markResent(pub *amqp.Publishing) {
	headers := make(amqp.Table, len(pub.Headers)+1)
	for k, v := range pub.Headers {
		headers[k] = v
	}
	headers[headerResent] = true
	pub.Headers = headers
}
