package rabbit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-mq/switchyard/internal/rabbitmq"
	"github.com/switchyard-mq/switchyard/transport/driver"
)

// queueDeclaration is how a model queue is declared on RabbitMQ, and
// whether the driver counts its deliveries.
type queueDeclaration struct {
	rabbitmq.QueueDeclaration
	// countedLimit is the delivery limit the driver counts itself (classic
	// queues); zero when there is none or the broker counts (quorum).
	countedLimit int
}

// declaration maps q onto RabbitMQ with the transport's queue options
// (see rabbitmq.QueueOptions.Declaration).
func (s *settings) declaration(q driver.Queue) queueDeclaration {
	d := queueDeclaration{QueueDeclaration: s.queues.Declaration(q)}
	if !d.Quorum {
		d.countedLimit = q.DeliveryLimit
	}
	return d
}

// recorded is the topology declared through a transport, re-declared in
// order after a reconnection: exchanges, then queues, then bindings.
type recorded struct {
	mu        sync.Mutex
	seq       uint64
	exchanges map[string]recordedExchange
	queues    map[string]recordedQueue
	bindings  map[driver.Binding]uint64 // binding → seq
	// deleting counts the DeleteQueue calls in flight per queue.
	deleting map[string]int
}

type recordedExchange struct {
	ex         driver.Exchange
	seq        uint64
	hadBinding bool // an auto-delete exchange goes with its last binding
}

type recordedQueue struct {
	q    driver.Queue
	decl queueDeclaration
	seq  uint64
}

func (r *recorded) init() {
	r.exchanges = map[string]recordedExchange{}
	r.queues = map[string]recordedQueue{}
	r.bindings = map[driver.Binding]uint64{}
	r.deleting = map[string]int{}
}

func (r *recorded) beginDelete(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deleting[name]++
}

func (r *recorded) endDelete(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.deleting[name]--; r.deleting[name] <= 0 {
		delete(r.deleting, name)
	}
}

// deletedHere reports whether the queue is being deleted, or was deleted,
// through this transport: it is not recorded, or a DeleteQueue of it is
// in flight.
func (r *recorded) deletedHere(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, recorded := r.queues[name]
	return !recorded || r.deleting[name] > 0
}

func (r *recorded) putExchange(ex driver.Exchange) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur, ok := r.exchanges[ex.Name]; ok && cur.ex == ex {
		return
	}
	r.seq++
	r.exchanges[ex.Name] = recordedExchange{ex: ex, seq: r.seq}
}

func (r *recorded) deleteExchange(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.exchanges, name)
	for b := range r.bindings {
		if b.Exchange == name {
			delete(r.bindings, b)
		}
	}
}

func (r *recorded) putQueue(q driver.Queue, decl queueDeclaration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur, ok := r.queues[q.Name]; ok && cur.q == q {
		return
	}
	r.seq++
	r.queues[q.Name] = recordedQueue{q: q, decl: decl, seq: r.seq}
}

func (r *recorded) queue(name string) (recordedQueue, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	q, ok := r.queues[name]
	return q, ok
}

// deleteQueue forgets a queue and its bindings, and the auto-delete
// exchanges that lose their last binding with it, as the broker does.
func (r *recorded) deleteQueue(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.queues, name)
	for b := range r.bindings {
		if b.Queue == name {
			delete(r.bindings, b)
		}
	}
	r.dropUnboundAutoDeleteLocked()
}

func (r *recorded) bind(b driver.Binding) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.bindings[b]; !ok {
		r.seq++
		r.bindings[b] = r.seq
	}
	if ex, ok := r.exchanges[b.Exchange]; ok && !ex.hadBinding {
		ex.hadBinding = true
		r.exchanges[b.Exchange] = ex
	}
}

func (r *recorded) unbind(b driver.Binding) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.bindings, b)
	r.dropUnboundAutoDeleteLocked()
}

func (r *recorded) dropUnboundAutoDeleteLocked() {
	for name, ex := range r.exchanges {
		if !ex.ex.AutoDelete || !ex.hadBinding {
			continue
		}
		bound := false
		for b := range r.bindings {
			if b.Exchange == name {
				bound = true
				break
			}
		}
		if !bound {
			delete(r.exchanges, name)
		}
	}
}

// snapshot lists the recorded topology in declaration order.
func (r *recorded) snapshot() ([]driver.Exchange, []recordedQueue, []driver.Binding) {
	r.mu.Lock()
	defer r.mu.Unlock()
	exs := make([]recordedExchange, 0, len(r.exchanges))
	for _, ex := range r.exchanges {
		exs = append(exs, ex)
	}
	slices.SortFunc(exs, func(a, b recordedExchange) int { return cmp.Compare(a.seq, b.seq) })
	exchanges := make([]driver.Exchange, len(exs))
	for i, ex := range exs {
		exchanges[i] = ex.ex
	}
	queues := make([]recordedQueue, 0, len(r.queues))
	for _, q := range r.queues {
		queues = append(queues, q)
	}
	slices.SortFunc(queues, func(a, b recordedQueue) int { return cmp.Compare(a.seq, b.seq) })
	bindings := make([]driver.Binding, 0, len(r.bindings))
	for b := range r.bindings {
		bindings = append(bindings, b)
	}
	slices.SortFunc(bindings, func(a, b driver.Binding) int { return cmp.Compare(r.bindings[a], r.bindings[b]) })
	return exchanges, queues, bindings
}

// topologyChannel returns the session's channel for declarations, opening
// a new one if a channel error closed the last. conn.topoSem must be held.
func (sess *session) topologyChannel() (*amqp.Channel, error) {
	if sess.topoCh != nil && !sess.topoCh.IsClosed() {
		return sess.topoCh, nil
	}
	ch, err := sess.amqp.Channel()
	if err != nil {
		return nil, err
	}
	sess.topoCh = ch
	return ch, nil
}

// topoOp runs op on the topology channel of the current session. It waits
// for a reconnection when the connection is down, and runs op again on the
// next connection when the connection drops under it (declarations and
// deletions are idempotent). op records what it changed: it runs while
// topoSem is held, so a reconnection cannot take its snapshot of the
// recorded topology between the broker's reply and the record.
func (c *conn) topoOp(ctx context.Context, op func(ch *amqp.Channel) error) error {
	for {
		sess, err := c.session(ctx)
		if err != nil {
			return err
		}
		select {
		case c.topoSem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.ctx.Done():
			return driver.ErrClosed
		}
		done := make(chan error, 1)
		if !c.spawn(func() {
			defer func() { <-c.topoSem }()
			ch, err := sess.topologyChannel()
			if err == nil {
				err = op(ch)
			}
			done <- err
		}) {
			<-c.topoSem
			return driver.ErrClosed
		}
		select {
		case err = <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
		switch {
		case err == nil:
			return nil
		case c.closing.Load():
			return fmt.Errorf("%w: %w", driver.ErrClosed, err)
		case connectionFailing(sess, err):
			// The connection dropped: again on the next one, once the
			// supervisor has seen the loss.
			select {
			case <-sess.lost:
				continue
			case <-ctx.Done():
				return fmt.Errorf("the connection dropped (%v); waiting for it to come back: %w", err, ctx.Err())
			case <-c.ctx.Done():
				return driver.ErrClosed
			}
		}
		return rabbitmq.MapError(err)
	}
}

func (c *conn) DeclareExchange(ctx context.Context, ex driver.Exchange) error {
	return c.topoOp(ctx, func(ch *amqp.Channel) error {
		if err := rabbitmq.DeclareExchange(ch, ex); err != nil {
			return err
		}
		c.topo.putExchange(ex)
		return nil
	})
}

func (c *conn) DeleteExchange(ctx context.Context, name string) error {
	return c.topoOp(ctx, func(ch *amqp.Channel) error {
		if err := ch.ExchangeDelete(name, false, false); err != nil {
			return err
		}
		c.topo.deleteExchange(name)
		return nil
	})
}

func (c *conn) DeclareQueue(ctx context.Context, q driver.Queue) (string, error) {
	if q.Name == "" {
		q.Name = rabbitmq.ServerNamedQueue()
	}
	decl := c.s.declaration(q)
	err := c.topoOp(ctx, func(ch *amqp.Channel) error {
		if err := decl.Declare(ch); err != nil {
			return err
		}
		c.topo.putQueue(q, decl)
		return nil
	})
	if err != nil {
		return "", err
	}
	return q.Name, nil
}

func (c *conn) DeleteQueue(ctx context.Context, name string) (int, error) {
	var n int
	// Marked first: the broker cancels the queue's consumers before it
	// answers, and they must see the deletion as this transport's own.
	c.topo.beginDelete(name)
	defer c.topo.endDelete(name)
	err := c.topoOp(ctx, func(ch *amqp.Channel) error {
		var err error
		if n, err = ch.QueueDelete(name, false, false, false); err != nil {
			return err
		}
		c.topo.deleteQueue(name)
		return nil
	})
	return n, err
}

func (c *conn) PurgeQueue(ctx context.Context, name string) (int, error) {
	var n int
	err := c.topoOp(ctx, func(ch *amqp.Channel) error {
		var err error
		n, err = ch.QueuePurge(name, false)
		return err
	})
	return n, err
}

func (c *conn) Bind(ctx context.Context, b driver.Binding) error {
	return c.topoOp(ctx, func(ch *amqp.Channel) error {
		if err := rabbitmq.Bind(ch, b); err != nil {
			return err
		}
		c.topo.bind(b)
		return nil
	})
}

func (c *conn) Unbind(ctx context.Context, b driver.Binding) error {
	return c.topoOp(ctx, func(ch *amqp.Channel) error {
		if err := rabbitmq.Unbind(ch, b); err != nil {
			return err
		}
		c.topo.unbind(b)
		return nil
	})
}

// redeclareQueue declares again, on sess, a queue recorded here, the
// recorded exchanges its recorded bindings name, and those bindings: the
// broker deleted the queue under a consumer (and an auto-delete exchange
// with it, perhaps). A queue not recorded here is left alone.
func (c *conn) redeclareQueue(sess *session, name string) error {
	rq, ok := c.topo.queue(name)
	if !ok {
		return nil
	}
	exchanges, _, bindings := c.topo.snapshot()
	bound := map[string]bool{}
	bindings = slices.DeleteFunc(bindings, func(b driver.Binding) bool { return b.Queue != name })
	for _, b := range bindings {
		bound[b.Exchange] = true
	}
	select {
	case c.topoSem <- struct{}{}:
	case <-c.ctx.Done():
		return driver.ErrClosed
	}
	defer func() { <-c.topoSem }()
	ch, err := sess.topologyChannel()
	if err != nil {
		return err
	}
	for _, ex := range exchanges {
		if bound[ex.Name] {
			if err := rabbitmq.DeclareExchange(ch, ex); err != nil {
				return fmt.Errorf("exchange %q: %w", ex.Name, err)
			}
		}
	}
	if err := rq.decl.Declare(ch); err != nil {
		return err
	}
	for _, b := range bindings {
		if err := rabbitmq.Bind(ch, b); err != nil {
			return fmt.Errorf("binding %q→%q key %q: %w", b.Exchange, b.Queue, b.Key, err)
		}
	}
	return nil
}

// redeclare declares the recorded topology on a new session. It fails
// when the connection does; an entity the broker refuses is logged at
// error level and skipped. An exclusive queue may still be held by the
// old connection until the broker notices that it is gone, so ErrInUse is
// retried a few times. A binding whose exchange or queue is missing is
// retried after declaring them again: on a cluster, the broker removes
// the queues of a dead node after a while, and an auto-delete exchange
// with their last binding, perhaps just after it was declared here.
func (c *conn) redeclare(sess *session) error {
	exchanges, queues, bindings := c.topo.snapshot()
	do := func(what string, op func(ch *amqp.Channel) error) error {
		for attempt := 0; ; attempt++ {
			ch, err := sess.topologyChannel()
			if err == nil {
				err = op(ch)
			}
			if err == nil {
				return nil
			}
			if connectionFailing(sess, err) {
				return err
			}
			mapped := rabbitmq.MapError(err)
			retry := errors.Is(mapped, driver.ErrInUse) || errors.Is(mapped, driver.ErrNotFound)
			if retry && attempt < 10 {
				t := time.NewTimer(100 * time.Millisecond)
				select {
				case <-t.C:
					continue
				case <-c.ctx.Done():
					t.Stop()
					return driver.ErrClosed
				}
			}
			c.logger.ErrorContext(c.ctx, "rabbit: could not re-declare after reconnecting; skipped", "entity", what, "err", mapped)
			return nil
		}
	}
	for _, ex := range exchanges {
		if err := do("exchange "+ex.Name, func(ch *amqp.Channel) error {
			return rabbitmq.DeclareExchange(ch, ex)
		}); err != nil {
			return err
		}
	}
	for _, q := range queues {
		if err := do("queue "+q.q.Name, q.decl.Declare); err != nil {
			return err
		}
	}
	for _, b := range bindings {
		if err := do(fmt.Sprintf("binding %q→%q key %q", b.Exchange, b.Queue, b.Key), func(ch *amqp.Channel) error {
			err := rabbitmq.Bind(ch, b)
			if !errors.Is(rabbitmq.MapError(err), driver.ErrNotFound) {
				return err
			}
			// The channel is closed: declare what is missing on a new one,
			// and try the binding again.
			return c.declareBound(sess, b, err)
		}); err != nil {
			return err
		}
	}
	return nil
}

// declareBound declares again the recorded exchange and queue of b, which
// the broker said were missing (notFound), and returns notFound so that
// the binding is tried again; an error declaring them is returned instead.
func (c *conn) declareBound(sess *session, b driver.Binding, notFound error) error {
	ch, err := sess.topologyChannel()
	if err != nil {
		return err
	}
	exchanges, _, _ := c.topo.snapshot()
	for _, ex := range exchanges {
		if ex.Name == b.Exchange {
			if err := rabbitmq.DeclareExchange(ch, ex); err != nil {
				return err
			}
		}
	}
	if rq, ok := c.topo.queue(b.Queue); ok {
		if err := rq.decl.Declare(ch); err != nil {
			return err
		}
	}
	return notFound
}
