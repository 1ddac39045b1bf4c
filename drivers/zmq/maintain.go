package zmq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchyard-mq/switchyard/drivers/zmq/internal/matchmaker"
	"github.com/switchyard-mq/switchyard/transport/driver"
)

// Background work.

// tick is how often the node sweeps for ack timeouts, expired messages and
// nodes to dial again.
const tick = 25 * time.Millisecond

// maintain runs the liveness heartbeat and the sweeps until Close.
func (c *conn) maintain() {
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	lastBeat, lastScan := time.Now(), time.Now()
	// Ack timeouts are checked a few times per timeout: scanning every
	// message in flight at each tick would cost more than it gains.
	scanEvery := max(tick, c.opts.ackTimeout/8)
	for {
		select {
		case <-c.life.stop:
			return
		case now := <-ticker.C:
			if now.Sub(lastBeat) >= c.opts.refresh {
				lastBeat = now
				c.heartbeat()
			}
			scan := now.Sub(lastScan) >= scanEvery
			if scan {
				lastScan = now
			}
			c.sender.sweep(now, scan)
			c.consumers.dedup.evict(now)
		}
	}
}

// watchRegistry loads every change the matchmaker announces.
func (c *conn) watchRegistry() {
	for {
		select {
		case <-c.life.stop:
			return
		case <-c.mm.Changes():
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.sendTimeout)
		if _, err := c.registry.load(ctx, false); err != nil && !c.isClosing() {
			c.logger.WarnContext(context.Background(), "zmq: reading the matchmaker failed", "err", err)
		}
		cancel()
	}
}

// heartbeat refreshes this node's liveness, rejoining if it had expired
// (a long pause, a lost Redis): its consumers are then added again. A
// rejoin that did not complete is tried again at the next heartbeat.
func (c *conn) heartbeat() {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.refresh)
	defer cancel()
	err := c.mm.Heartbeat(ctx, c.id, c.opts.livenessTTL)
	expired := errors.Is(err, matchmaker.ErrExpired)
	if expired {
		c.logger.WarnContext(ctx, "zmq: this node had expired from the matchmaker; joining again")
	}
	if (expired || c.rejoinPending) && !c.isClosing() {
		err = c.rejoin()
		c.rejoinPending = err != nil
	}
	if err != nil && !c.isClosing() {
		c.logger.WarnContext(ctx, "zmq: liveness heartbeat failed", "err", err)
	}
	// Reading the registry lets the in-process matchmaker expire dead nodes.
	if _, err := c.registry.load(ctx, false); err != nil && !c.isClosing() {
		c.logger.WarnContext(ctx, "zmq: reading the matchmaker failed", "err", err)
	}
}

// rejoin registers this node and its consumers again. It has a deadline
// of its own: each change may wait for the other nodes to load it.
func (c *conn) rejoin() error {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.sendTimeout)
	defer cancel()
	if err := c.mm.Join(ctx, matchmaker.Node{ID: c.id, Endpoint: c.endpoint}, c.opts.livenessTTL); err != nil {
		return fmt.Errorf("join again: %w", err)
	}
	for _, cons := range c.consumers.all() {
		// A consumer of a queue deleted meanwhile ends with the next view.
		if err := c.mm.AddConsumer(ctx, cons.rec); err != nil && !errors.Is(err, driver.ErrNotFound) {
			return fmt.Errorf("add consumer of %q again: %w", cons.queue, err)
		}
	}
	return nil
}

// ackDelay is how long settlements of an auto-ack or busy consumer may
// wait to be batched (or to ride along with other traffic) before they
// are sent on their own.
const ackDelay = time.Millisecond

// flushSettlements sends batched settlements at most ackDelay late.
func (c *conn) flushSettlements() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-c.life.stop:
			return
		case <-c.consumers.unsent.kick:
		}
		timer.Reset(ackDelay)
		select {
		case <-c.life.stop:
			timer.Stop()
			return
		case <-timer.C:
		}
		c.consumers.unsent.flush()
	}
}
