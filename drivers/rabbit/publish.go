package rabbit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-mq/switchyard/transport/driver"
)

const (
	// maxExclusiveChannels bounds the channels of mandatory publishes (and
	// of the driver's own republishing). Each carries one publish at a
	// time, from the write to the confirm: a basic.return names no
	// delivery tag, and one publish in flight per channel is what ties a
	// return to its publish for certain (RabbitMQ sends the return before
	// the confirm of the same publish).
	maxExclusiveChannels = 64
	// maxMisattributedRetries bounds how often a publish is tried again
	// because another publish's error closed the channel they shared.
	maxMisattributedRetries = 8
)

// pubChannel is a channel that publishes.
type pubChannel struct {
	ch      *amqp.Channel
	closes  chan *amqp.Error
	returns chan amqp.Return // exclusive channels only

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

// openPubChannel opens a publishing channel, in confirm mode if asked,
// listening for returns if exclusive.
func openPubChannel(sess *session, confirm, exclusive bool) (*pubChannel, error) {
	ch, err := sess.amqp.Channel()
	if err != nil {
		return nil, err
	}
	pc := &pubChannel{ch: ch, closes: ch.NotifyClose(make(chan *amqp.Error, 1))}
	if exclusive {
		pc.returns = ch.NotifyReturn(make(chan amqp.Return, 1))
	}
	if confirm {
		if err := ch.Confirm(false); err != nil {
			_ = ch.Close()
			return nil, err
		}
	}
	return pc, nil
}

// sharedChannel is the channel that every other publish of a session
// goes through, as a raw amqp091-go program would publish: amqp091-go
// serialises the frames of concurrent publishes, and each publish waits
// for its own confirm without holding the channel, so one channel carries
// many concurrent publishers (more channels only cost the broker more
// processes). A channel error closes it; the next publish opens another.
type sharedChannel struct {
	cur     atomic.Pointer[pubChannel]
	mu      sync.Mutex // serialises opening
	confirm bool
}

func (s *sharedChannel) get(sess *session) (*pubChannel, error) {
	if pc := s.cur.Load(); pc != nil && !pc.ch.IsClosed() {
		return pc, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if pc := s.cur.Load(); pc != nil && !pc.ch.IsClosed() {
		return pc, nil
	}
	pc, err := openPubChannel(sess, s.confirm, false)
	if err != nil {
		return nil, err
	}
	s.cur.Store(pc)
	return pc, nil
}

// chanPool holds a session's exclusive publishing channels, opened on
// demand; a publish checks one out until its confirm.
type chanPool struct {
	free chan *pubChannel
	mu   sync.Mutex
	open int
}

func (p *chanPool) init(size int) {
	p.free = make(chan *pubChannel, size)
}

// get takes a free channel, opens one if the pool may grow, or waits.
func (p *chanPool) get(ctx context.Context, sess *session) (*pubChannel, error) {
	for {
		select {
		case pc := <-p.free:
			if pc.ch.IsClosed() {
				p.drop()
				continue
			}
			return pc, nil
		default:
		}
		break
	}
	p.mu.Lock()
	if p.open < cap(p.free) {
		p.open++
		p.mu.Unlock()
		pc, err := openPubChannel(sess, true, true)
		if err != nil {
			p.drop()
		}
		return pc, err
	}
	p.mu.Unlock()
	select {
	case pc := <-p.free:
		return pc, nil // a closed one fails its publish, which tries again
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-sess.lost:
		return nil, amqp.ErrClosed
	}
}

// put gives a channel back, or forgets it if it closed.
func (p *chanPool) put(pc *pubChannel) {
	if pc.ch.IsClosed() {
		p.drop()
		return
	}
	p.free <- pc
}

// discard closes a channel whose state is unknown (a publish abandoned
// before its confirm could leave a return behind).
func (p *chanPool) discard(c *conn, pc *pubChannel) {
	p.drop()
	c.spawn(func() { _ = pc.ch.Close() })
}

func (p *chanPool) drop() {
	p.mu.Lock()
	p.open--
	p.mu.Unlock()
}

// publishOutcome says what to do after a publish attempt.
type publishOutcome int

const (
	published      publishOutcome = iota // done: the error, if any, is final
	retryNow                             // another publish's error closed the shared channel
	retryReconnect                       // the connection dropped: again on the next one
)

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
	if msg.Mandatory {
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
	// confirms=false, on a channel of its own (the driver's own
	// republishing and dead-lettering, and mandatory publishes).
	publishConfirmed
)

func (c *conn) publish(ctx context.Context, exchange, key string, flags publishFlags, pub *amqp.Publishing) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	misattributed := 0
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
			outcome, err = c.publishExclusive(ctx, sess, exchange, key, mandatory, pub)
		} else {
			outcome, err = c.publishShared(ctx, sess, exchange, key, pub)
		}
		switch outcome {
		case published:
			return err
		case retryNow:
			if misattributed++; misattributed > maxMisattributedRetries {
				return err
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

// publishShared makes one attempt on the session's shared channel.
func (c *conn) publishShared(ctx context.Context, sess *session, exchange, key string, pub *amqp.Publishing) (publishOutcome, error) {
	pc, err := sess.pub.get(sess)
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
	return published, errNack
}

// publishExclusive makes one attempt on a channel of the exclusive pool,
// which it keeps until the confirm, so that a basic.return on it can only
// be this publish's.
func (c *conn) publishExclusive(ctx context.Context, sess *session, exchange, key string, mandatory bool, pub *amqp.Publishing) (publishOutcome, error) {
	pc, err := sess.mand.get(ctx, sess)
	if err != nil {
		if ctx.Err() != nil {
			return published, err
		}
		return c.notSent(sess, nil, err)
	}
	dc, err := pc.ch.PublishWithDeferredConfirm(exchange, key, mandatory, false, *pub)
	if err != nil {
		sess.mand.put(pc)
		return c.notSent(sess, pc, err)
	}
	select {
	case <-dc.Done():
	case <-ctx.Done():
		sess.mand.discard(c, pc)
		return published, fmt.Errorf("waiting for the broker's confirm (the message may or may not have been taken): %w", ctx.Err())
	}
	var ret *amqp.Return
	select { // the return, if any, came before the confirm on this channel
	case r := <-pc.returns:
		ret = &r
	default:
	}
	sess.mand.put(pc)
	switch {
	case !dc.Acked() && pc.ch.IsClosed():
		return c.failed(sess, pc, exchange)
	case !dc.Acked():
		return published, errNack
	case ret != nil:
		return published, fmt.Errorf("%w: %s (AMQP reply %d) for exchange %q, key %q", driver.ErrUnroutable, ret.ReplyText, ret.ReplyCode, ret.Exchange, ret.RoutingKey)
	}
	return published, nil
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
	case pc != nil && pc.ch.IsClosed():
		return retryNow, err
	}
	return published, mapError(err)
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
	mapped := mapError(reason)
	if !isChannelError(reason) {
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
