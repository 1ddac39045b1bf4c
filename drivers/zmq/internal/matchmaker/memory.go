package matchmaker

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Memory is an in-process registry, shared by the nodes of one process
// that name it (zmq:// or zmq://NAME). Node TTLs work as in Redis: a node
// that stops calling Heartbeat disappears when its TTL runs out, so that
// tests of liveness run without a server. Handles from Open share it.
type Memory struct {
	mu        sync.Mutex
	version   uint64
	nodes     map[string]*memNode
	exchanges map[string]Exchange
	queues    map[string]Queue
	bindings  map[Binding]struct{}
	handles   map[*memHandle]struct{}
	cached    *Registry // snapshot at version; nil when stale
	nextCheck time.Time // earliest node expiry
	now       func() time.Time
}

type memNode struct {
	node      Node
	expires   time.Time
	consumers map[Consumer]struct{}
}

// NewMemory returns an empty in-process registry.
func NewMemory() *Memory {
	return &Memory{
		nodes:     map[string]*memNode{},
		exchanges: map[string]Exchange{},
		queues:    map[string]Queue{},
		bindings:  map[Binding]struct{}{},
		handles:   map[*memHandle]struct{}{},
		now:       time.Now,
	}
}

// Open returns a handle on m for one node; its Changes channel is its own.
func (m *Memory) Open() Matchmaker {
	h := &memHandle{m: m, changes: make(chan struct{}, 1)}
	m.mu.Lock()
	m.handles[h] = struct{}{}
	m.mu.Unlock()
	return h
}

// changedLocked bumps the version and wakes every handle.
func (m *Memory) changedLocked() {
	m.version++
	m.cached = nil
	for h := range m.handles {
		signal(h.changes)
	}
}

// expireLocked removes nodes whose TTL ran out.
func (m *Memory) expireLocked() {
	now := m.now()
	if now.Before(m.nextCheck) {
		return
	}
	var next time.Time
	changed := false
	for id, n := range m.nodes {
		if !now.Before(n.expires) {
			m.removeNodeLocked(id)
			changed = true
			continue
		}
		if next.IsZero() || n.expires.Before(next) {
			next = n.expires
		}
	}
	if next.IsZero() {
		next = now.Add(time.Hour)
	}
	m.nextCheck = next
	if changed {
		m.changedLocked()
	}
}

func (m *Memory) removeNodeLocked(id string) {
	delete(m.nodes, id)
	for name, q := range m.queues {
		if q.Exclusive && q.Owner == id {
			m.deleteQueueLocked(name)
		}
	}
}

func (m *Memory) deleteQueueLocked(name string) {
	delete(m.queues, name)
	for b := range m.bindings {
		if b.Queue == name {
			delete(m.bindings, b)
		}
	}
	for _, n := range m.nodes {
		for c := range n.consumers {
			if c.Queue == name {
				delete(n.consumers, c)
			}
		}
	}
}

func (m *Memory) snapshotLocked() *Registry {
	m.expireLocked()
	if m.cached != nil {
		return m.cached
	}
	r := newRegistry(m.version)
	for id, n := range m.nodes {
		r.Nodes[id] = n.node
		for c := range n.consumers {
			r.Consumers[c.Queue] = append(r.Consumers[c.Queue], c)
		}
	}
	for name, x := range m.exchanges {
		r.Exchanges[name] = x
	}
	for name, q := range m.queues {
		r.Queues[name] = q
	}
	for b := range m.bindings {
		r.Bindings = append(r.Bindings, b)
	}
	r.finish()
	m.cached = r
	return r
}

// memHandle is one node's view of a Memory registry.
type memHandle struct {
	m       *Memory
	changes chan struct{}
}

func (h *memHandle) do(ctx context.Context, f func(m *Memory) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m := h.m
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expireLocked()
	return f(m)
}

func (h *memHandle) Join(ctx context.Context, n Node, ttl time.Duration) error {
	return h.do(ctx, func(m *Memory) error {
		cur := m.nodes[n.ID]
		if cur == nil {
			cur = &memNode{consumers: map[Consumer]struct{}{}}
			m.nodes[n.ID] = cur
		}
		cur.node = n
		cur.expires = m.now().Add(ttl)
		m.nextCheck = time.Time{}
		m.changedLocked()
		return nil
	})
}

func (h *memHandle) Heartbeat(ctx context.Context, nodeID string, ttl time.Duration) error {
	return h.do(ctx, func(m *Memory) error {
		n := m.nodes[nodeID]
		if n == nil {
			return fmt.Errorf("%w: %s", ErrExpired, nodeID)
		}
		n.expires = m.now().Add(ttl)
		m.nextCheck = time.Time{}
		return nil
	})
}

func (h *memHandle) Leave(ctx context.Context, nodeID string) error {
	return h.do(ctx, func(m *Memory) error {
		if _, ok := m.nodes[nodeID]; ok {
			m.removeNodeLocked(nodeID)
			m.changedLocked()
		}
		return nil
	})
}

func (h *memHandle) DeclareExchange(ctx context.Context, x Exchange) error {
	return h.do(ctx, func(m *Memory) error {
		if cur, ok := m.exchanges[x.Name]; ok {
			return checkExchange(cur, x)
		}
		m.exchanges[x.Name] = x
		m.changedLocked()
		return nil
	})
}

func (h *memHandle) DeleteExchange(ctx context.Context, name string) error {
	return h.do(ctx, func(m *Memory) error {
		if _, ok := m.exchanges[name]; !ok {
			return nil
		}
		delete(m.exchanges, name)
		for b := range m.bindings {
			if b.Exchange == name {
				delete(m.bindings, b)
			}
		}
		m.changedLocked()
		return nil
	})
}

func (h *memHandle) DeclareQueue(ctx context.Context, q Queue) error {
	return h.do(ctx, func(m *Memory) error {
		if cur, ok := m.queues[q.Name]; ok {
			_, live := m.nodes[cur.Owner]
			return checkQueue(cur, q, live)
		}
		if q.Exclusive {
			if _, live := m.nodes[q.Owner]; !live {
				return fmt.Errorf("%w: owner %s of exclusive queue %q", ErrExpired, q.Owner, q.Name)
			}
		}
		m.queues[q.Name] = q
		m.changedLocked()
		return nil
	})
}

func (h *memHandle) DeleteQueue(ctx context.Context, name string) error {
	return h.do(ctx, func(m *Memory) error {
		if _, ok := m.queues[name]; !ok {
			return nil
		}
		m.deleteQueueLocked(name)
		m.changedLocked()
		return nil
	})
}

func (h *memHandle) Bind(ctx context.Context, b Binding) error {
	return h.do(ctx, func(m *Memory) error {
		if _, ok := m.exchanges[b.Exchange]; !ok {
			return errNoExchange(b.Exchange)
		}
		if _, ok := m.queues[b.Queue]; !ok {
			return errNoQueue(b.Queue)
		}
		if _, ok := m.bindings[b]; !ok {
			m.bindings[b] = struct{}{}
			m.changedLocked()
		}
		return nil
	})
}

func (h *memHandle) Unbind(ctx context.Context, b Binding) error {
	return h.do(ctx, func(m *Memory) error {
		if _, ok := m.bindings[b]; ok {
			delete(m.bindings, b)
			m.changedLocked()
		}
		return nil
	})
}

func (h *memHandle) AddConsumer(ctx context.Context, c Consumer) error {
	return h.do(ctx, func(m *Memory) error {
		if _, ok := m.queues[c.Queue]; !ok {
			return errNoQueue(c.Queue)
		}
		n := m.nodes[c.Node]
		if n == nil {
			return fmt.Errorf("%w: %s", ErrExpired, c.Node)
		}
		n.consumers[c] = struct{}{}
		m.changedLocked()
		return nil
	})
}

func (h *memHandle) RemoveConsumer(ctx context.Context, c Consumer) error {
	return h.do(ctx, func(m *Memory) error {
		if n := m.nodes[c.Node]; n != nil {
			if _, ok := n.consumers[c]; ok {
				delete(n.consumers, c)
				m.changedLocked()
			}
		}
		return nil
	})
}

func (h *memHandle) Registry(ctx context.Context) (*Registry, error) {
	var r *Registry
	err := h.do(ctx, func(m *Memory) error {
		r = m.snapshotLocked()
		return nil
	})
	return r, err
}

// Refresh is Registry: the in-process registry is never stale.
func (h *memHandle) Refresh(ctx context.Context) (*Registry, error) { return h.Registry(ctx) }

func (h *memHandle) Changes() <-chan struct{} { return h.changes }

func (h *memHandle) Ping(ctx context.Context) error { return ctx.Err() }

func (h *memHandle) Close() error {
	h.m.mu.Lock()
	delete(h.m.handles, h)
	h.m.mu.Unlock()
	return nil
}
