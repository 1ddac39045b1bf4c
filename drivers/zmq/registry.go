package zmq

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/switchyard-mq/switchyard/drivers/zmq/internal/matchmaker"
	"github.com/switchyard-mq/switchyard/router"
	"github.com/switchyard-mq/switchyard/transport/driver"
)

// The registry view: what the matchmaker says (nodes, exchanges, queues,
// bindings, consumers) as this node last loaded it, and routing over it.

// view is a snapshot of the registry with its routing table.
type view struct {
	reg    *matchmaker.Registry
	routes *router.Table[string]
}

func newView(reg *matchmaker.Registry) *view {
	v := &view{reg: reg, routes: router.New[string]()}
	for name, x := range reg.Exchanges {
		_ = v.routes.DeclareExchange(name, router.Kind(x.Kind))
	}
	for _, b := range reg.Bindings {
		_ = v.routes.Bind(b.Exchange, b.Key, b.Queue)
	}
	return v
}

// olderThan reports whether reg should replace v: v is nil, or reg is
// another snapshot at least as new.
func (v *view) olderThan(reg *matchmaker.Registry) bool {
	return v == nil || (v.reg != reg && reg.Version >= v.reg.Version)
}

// route resolves the queues a message published to exchange with key
// reaches, appending them to buf.
func (v *view) route(exchange, key string, buf []string) ([]string, error) {
	if exchange == "" {
		if _, ok := v.reg.Queues[key]; ok {
			return append(buf, key), nil
		}
		return buf, nil
	}
	queues, err := v.routes.Route(exchange, key, buf)
	if errors.Is(err, router.ErrExchangeNotFound) {
		return nil, fmt.Errorf("%w: no exchange %q", driver.ErrNotFound, exchange)
	}
	return queues, err
}

// registry is a node's view of the matchmaker's registry, and the lookups
// over it. A lookup that finds nothing asks the matchmaker's store before
// answering: a declaration made by another node may not have reached this
// one yet.
type registry struct {
	self string // this node's ID
	mm   matchmaker.Matchmaker
	// current is the view, read without a lock. Only follow replaces it.
	current atomic.Pointer[view]
	// follow makes a registry newer than the current view current, and
	// returns the view then current. The conn supplies it: the sender's
	// queues follow a registry before any lookup sees it, so that a queue
	// routed to is one the sender knows.
	follow func(*matchmaker.Registry) *view
}

// load returns the view of the latest registry the matchmaker holds;
// fresh asks the matchmaker's store first (a round trip for Redis).
func (r *registry) load(ctx context.Context, fresh bool) (*view, error) {
	var reg *matchmaker.Registry
	var err error
	if fresh {
		reg, err = r.mm.Refresh(ctx)
	} else {
		reg, err = r.mm.Registry(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("zmq: matchmaker: %w", err)
	}
	if v := r.current.Load(); !v.olderThan(reg) {
		return v, nil
	}
	return r.follow(reg), nil
}

// sync makes the view include this node's own latest change.
func (r *registry) sync(ctx context.Context) error {
	_, err := r.load(ctx, true)
	return err
}

// route resolves the queues a publish reaches.
func (r *registry) route(ctx context.Context, exchange, key string, buf []string) ([]string, error) {
	var queues []string
	var err error
	for _, fresh := range []bool{false, true} {
		var v *view
		if v, err = r.load(ctx, fresh); err != nil {
			return nil, err
		}
		if queues, err = v.route(exchange, key, buf[:0]); err == nil && len(queues) > 0 {
			return queues, nil
		}
	}
	return queues, err
}

// queue returns a queue's declaration.
func (r *registry) queue(ctx context.Context, name string) (matchmaker.Queue, error) {
	for _, fresh := range []bool{false, true} {
		v, err := r.load(ctx, fresh)
		if err != nil {
			return matchmaker.Queue{}, err
		}
		if q, ok := v.reg.Queues[name]; ok {
			return q, nil
		}
	}
	return matchmaker.Queue{}, fmt.Errorf("%w: no queue %q", driver.ErrNotFound, name)
}

// usableQueue is queue for a queue this node may use: not another node's
// exclusive queue.
func (r *registry) usableQueue(ctx context.Context, name string) (matchmaker.Queue, error) {
	q, err := r.queue(ctx, name)
	if err == nil && q.Exclusive && q.Owner != r.self {
		err = fmt.Errorf("%w: queue %q is exclusive to another connection", driver.ErrInUse, name)
	}
	return q, err
}

// exchange returns an exchange's declaration.
func (r *registry) exchange(ctx context.Context, name string) (matchmaker.Exchange, error) {
	for _, fresh := range []bool{false, true} {
		v, err := r.load(ctx, fresh)
		if err != nil {
			return matchmaker.Exchange{}, err
		}
		if x, ok := v.reg.Exchanges[name]; ok {
			return x, nil
		}
	}
	return matchmaker.Exchange{}, fmt.Errorf("%w: no exchange %q", driver.ErrNotFound, name)
}

// follow makes reg the node's view unless the view is as new, and returns
// the view then current. The sender's queues and targets follow it
// first, under the sender's lock, which is also what orders views; local
// consumers of queues it no longer has end.
func (c *conn) follow(reg *matchmaker.Registry) *view {
	var ended []*consumer
	v := c.sender.follow(reg, func(v *view) {
		c.registry.current.Store(v)
		ended = c.consumers.ofDeletedQueues(v.reg)
	})
	for _, cons := range ended {
		cons.cancel() // its senders dropped what they held for it
	}
	return v
}
