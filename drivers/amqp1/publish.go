package amqp1

import (
	"context"
	"errors"
	"fmt"
	"sync"

	amqp "github.com/Azure/go-amqp"

	"github.com/switchyard-mq/switchyard/transport/driver"
)

// senderSlot holds the sending link of one target address. Its mutex
// serialises (re)attaching only; sends on the link run concurrently.
type senderSlot struct {
	mu   sync.Mutex
	gen  uint64
	sess *amqp.Session
	snd  *amqp.Sender
}

// Publish implements driver.Conn. The routing key travels as the message's
// subject, so one link per exchange serves every key.
func (c *conn) Publish(ctx context.Context, exchange, routingKey string, msg driver.Message) error {
	address, to, send, err := c.fl.publishAddress(exchange, routingKey)
	if err != nil || !send {
		return err
	}
	m, err := toAMQP(exchange, routingKey, &msg)
	if err != nil {
		return err
	}
	if to != "" {
		m.Properties.To = &to
	}
	err = c.send(ctx, address, m)
	if to != "" && err != nil {
		err = fmt.Errorf("publish to %s: %w", to, err)
	}
	return err
}

// send sends m to address and, unless the URL asks for pre-settled
// publishing, waits for the broker to accept it (RabbitMQ accepts after
// its publisher confirm). If the link is lost before that, it retries once
// on a fresh link, after reconnecting if need be: a message is published at
// least once.
func (c *conn) send(ctx context.Context, address string, m *amqp.Message) error {
	for attempt := 0; ; attempt++ {
		slot, snd, err := c.sender(ctx, address)
		if err != nil {
			return err
		}
		err = c.sendOnLink(ctx, snd, m)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("send to %s (the message may or may not have been taken): %w", address, ctx.Err())
		}
		if !isLinkGone(err) {
			return fmt.Errorf("the broker refused the message sent to %s: %w", address, mapError(err))
		}
		c.dropSender(slot, snd)
		c.mu.Lock()
		closed := c.closed
		c.mu.Unlock()
		if closed {
			return driver.ErrClosed
		}
		if isRemoteRefusal(err) || attempt > 0 {
			return fmt.Errorf("send to %s: %w", address, mapError(err))
		}
		c.logger.DebugContext(ctx, "amqp1: sending link lost; sending again on a new one", "address", address, "err", err)
	}
}

// sendOnLink sends m on snd. ctx ends the wait, not the send: go-amqp
// leaves the session broken when a send is cancelled midway
// (Azure/go-amqp#277), so the send goes on to its end in the background.
func (c *conn) sendOnLink(ctx context.Context, snd *amqp.Sender, m *amqp.Message) error {
	if ctx.Done() == nil {
		return snd.Send(ctx, m, c.sendOpts)
	}
	result := make(chan error, 1)
	go func() { result <- snd.Send(context.WithoutCancel(ctx), m, c.sendOpts) }()
	select {
	case err := <-result:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sender returns the link that sends to address, attaching one (on a
// session of its own) if there is none on the current connection.
func (c *conn) sender(ctx context.Context, address string) (*senderSlot, *amqp.Sender, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, nil, driver.ErrClosed
	}
	slot := c.senders[address]
	if slot == nil {
		slot = &senderSlot{}
		c.senders[address] = slot
	}
	cur := c.cur
	c.mu.Unlock()

	slot.mu.Lock()
	defer slot.mu.Unlock()
	if slot.snd != nil && slot.gen == cur.n && cur.ac != nil && cur.ac.Err() == nil {
		return slot, slot.snd, nil
	}
	if slot.sess != nil {
		closeSession(slot.sess)
		slot.sess, slot.snd = nil, nil
	}
	sess, gen, err := c.newSession(ctx, nil)
	if err != nil {
		return nil, nil, err
	}
	// Mixed mode, the default: brokers that answer "mixed" to a request for
	// "unsettled" (Proton's) fail the attach otherwise, and each send says
	// whether it is settled. RabbitMQ confirms unsettled ones.
	hctx, cancel := handshakeContext(ctx)
	snd, err := sess.NewSender(hctx, address, nil)
	cancel()
	if err != nil {
		closeSession(sess)
		return nil, nil, fmt.Errorf("attach a sending link to %s: %w", address, mapError(err))
	}
	slot.sess, slot.snd, slot.gen = sess, snd, gen
	return slot, snd, nil
}

// dropSender forgets snd after its link failed, if it is still the slot's.
func (c *conn) dropSender(slot *senderSlot, snd *amqp.Sender) {
	slot.mu.Lock()
	defer slot.mu.Unlock()
	if slot.snd != snd {
		return
	}
	closeSession(slot.sess)
	slot.sess, slot.snd = nil, nil
}

// errNoExchanges is what the proton flavour says of every exchange.
var errNoExchanges = errors.New("this broker has no exchanges (only queues); publish to the default exchange")
