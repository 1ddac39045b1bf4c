package zmq

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"time"

	"github.com/switchyard-mq/switchyard/drivers/zmq/internal/matchmaker"
)

// Hand-off: a closing node passes the messages it holds that no consumer
// has to another live node, which holds them from then on, so that a
// graceful shutdown (a rolling restart) loses nothing no consumer took.
// Messages already with a consumer stay with it: their settlements would
// reach nobody, and a redelivery by the new holder would duplicate them.

// handOff sends each queue's pending messages to a node that consumes the
// queue, else to any other live node, on a connection of its own. It
// returns how many it passed on.
func (c *conn) handOff(ctx context.Context) int {
	reg, err := c.mm.Refresh(ctx)
	if err != nil {
		c.logger.WarnContext(ctx, "zmq: cannot read the matchmaker to hand off held messages", "err", err)
		return 0
	}
	passed := 0
	links := map[string]*peer{}
	defer func() {
		for _, p := range links {
			p.flush()
			p.fail()
		}
	}()
	for queue, hs := range c.sender.pendingByQueue() {
		dest := c.handOffTarget(reg, queue)
		if dest.ID == "" {
			continue
		}
		p := links[dest.ID]
		if p == nil {
			if p, err = c.dial(ctx, dest.ID, dest.Endpoint); err != nil {
				c.logger.WarnContext(ctx, "zmq: cannot hand off held messages", "queue", queue, "node", dest.ID, "err", err)
				continue
			}
			links[dest.ID] = p
		}
		slices.SortFunc(hs, func(a, b *held) int { return cmp.Compare(a.seq, b.seq) })
		passed += c.sender.handOver(p, queue, hs)
		p.flush()
	}
	return passed
}

// pendingByQueue returns the messages no consumer has, by queue.
func (s *sender) pendingByQueue() map[string][]*held {
	s.mu.Lock()
	defer s.unlock()
	byQueue := map[string][]*held{}
	for _, h := range s.held {
		if h.state == statePending {
			byQueue[h.q.name] = append(byQueue[h.q.name], h)
		}
	}
	return byQueue
}

// handOver queues on p a HANDOFF of each message of hs still pending and
// not expired, and forgets it: the node at the other end holds it from
// then on. It returns how many it passed on; the caller flushes p.
func (s *sender) handOver(p *peer, queue string, hs []*held) int {
	s.mu.Lock()
	defer s.unlock()
	now := time.Now()
	passed := 0
	for _, h := range hs {
		if h.state != statePending {
			continue
		}
		hdr := handoffHeader{queue: queue, count: uint64(h.count), redelivered: h.redelivered}
		if !h.expires.IsZero() {
			if hdr.ttl = h.expires.Sub(now); hdr.ttl <= 0 {
				continue // expired: the sweep deals with it
			}
		}
		p.handOff(hdr, h.props, h.body)
		s.finishLocked(h)
		passed++
	}
	return passed
}

// handOffTarget picks the node to hand a queue's messages to: one of its
// consumers' nodes, else another live node; the zero Node if none.
func (c *conn) handOffTarget(reg *matchmaker.Registry, queue string) matchmaker.Node {
	if _, ok := reg.Queues[queue]; !ok {
		return matchmaker.Node{}
	}
	for _, cons := range reg.Consumers[queue] {
		if n, ok := reg.Nodes[cons.Node]; ok && cons.Node != c.id {
			return n
		}
	}
	ids := slices.Sorted(maps.Keys(reg.Nodes))
	for _, id := range ids {
		if id != c.id {
			return reg.Nodes[id]
		}
	}
	return matchmaker.Node{}
}

// onHandoff takes over a message another node handed off.
func (c *conn) onHandoff(h handoffHeader, props, body []byte) {
	if c.sender.takeOver(h, props, body) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.sendTimeout)
	_, _ = c.registry.load(ctx, true) // the queue may be newer than this node's view
	cancel()
	if c.life.closing.Load() || !c.sender.takeOver(h, props, body) {
		c.logger.WarnContext(context.Background(), "zmq: dropped a handed-off message for a queue that does not exist", "queue", h.queue)
	}
}

// takeOver holds a handed-off message, reporting false if its queue is
// not in the view.
func (s *sender) takeOver(h handoffHeader, props, body []byte) bool {
	s.mu.Lock()
	defer s.unlock()
	q := s.outQueueLocked(h.queue)
	if q == nil {
		return false
	}
	now := time.Now()
	m := &held{q: q, props: props, body: body, since: now, count: int(h.count), redelivered: h.redelivered}
	if h.ttl > 0 {
		m.expires = now.Add(h.ttl)
	}
	s.addLocked(m, now)
	return true
}
