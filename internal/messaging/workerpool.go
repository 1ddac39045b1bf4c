package messaging

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-mq/switchyard/internal/backoff"
	"github.com/switchyard-mq/switchyard/transport"
)

// WorkerPool receives from several consumers and handles each delivery on
// the goroutine that received it, up to MaxConcurrency at once. No
// goroutine hands a delivery to another: that hand-off (a wake-up and a
// switch) cost an RPC server more than a third of its throughput.
//
// Each consumer (a lane) has goroutines waiting in Receive. One that
// receives, and leaves none waiting behind it, starts another while there
// is room under MaxConcurrency; one that has handled goes back to a lane
// left with nobody waiting, its own first. A goroutine that has waited
// through a whole IdleTimeout while another waited on its lane too ends,
// so that an idle pool costs a goroutine per consumer.
//
// While MaxConcurrency handlers run, a goroutine that receives holds its
// delivery, unsettled, until one returns; the rest stay in the queue (and
// the consumer's prefetch), where other consumers of the queue can take
// them. The WorkerPool owns the consumers: Close closes them.
type WorkerPool[T any] struct {
	cfg   WorkerPoolConfig[T]
	slots chan struct{} // a token per handler running
	lanes []*lane

	closing    chan struct{}
	closeOnce  sync.Once
	goroutines sync.WaitGroup
	// idleCheck runs retireIdle every IdleTimeout; idleMu orders its
	// setting, re-arming and stopping, which run on different goroutines.
	idleMu     sync.Mutex
	idleCheck  *time.Timer
	running    atomic.Int64 // goroutines
	lost       atomic.Uint64
	unconsumed atomic.Int64
}

// WorkerPoolConfig says what a WorkerPool does with its consumers'
// deliveries.
type WorkerPoolConfig[T any] struct {
	// Accept turns a delivery into what Handle gets, before a handler's
	// room is taken; false drops it (Accept settles it).
	Accept func(*transport.Delivery) (T, bool)
	// Handle handles what Accept returned. ctx is the receiving
	// goroutine's own, derived from Context.
	Handle func(ctx context.Context, v T)
	// Context is the parent of the contexts Handle gets.
	Context context.Context
	// MaxConcurrency bounds the handlers running at once (at least 1).
	MaxConcurrency int
	// IdleTimeout is how long a goroutine waits for a delivery, while
	// another waits on its consumer too, before it ends.
	IdleTimeout time.Duration
	// Stopping, once closed, makes the pool take nothing more: a delivery
	// received but not handled goes back to its queue, and the goroutines
	// return once their handlers have.
	Stopping <-chan struct{}
	// Resume consumes a queue again after its consumer ended while the
	// pool was not stopping (a broker cancelled it, its queue was
	// deleted): it declares what the queue needs and returns a new
	// consumer. It is tried with a growing backoff, each failure logged at
	// error level, until it succeeds, it fails with ErrClosed (the
	// transport closed), or the pool stops. Nil: such a queue is no longer
	// served, which is logged at error level.
	Resume func(ctx context.Context, queue string) (*transport.Consumer, error)
	// Logger gets the pool's failures; What names the deliveries in its
	// messages ("requests").
	Logger *slog.Logger
	What   string
}

// lane is one consumer and the goroutines receiving from it.
type lane struct {
	consumer atomic.Pointer[transport.Consumer] // the current one of the queue
	queue    string

	mu sync.Mutex
	// waiting are the goroutines in (or about to enter) Receive, and
	// howMany their number, read without mu; fewestWaiting is the fewest
	// there were since the last idle check.
	waiting       []*worker
	howMany       atomic.Int32
	fewestWaiting int
	// resumed is non-nil while one goroutine consumes the queue again,
	// and closed when it is done; ended says the queue is not served
	// any more.
	resumed chan struct{}
	ended   bool
}

// worker is one goroutine of the pool.
type worker struct {
	lane    *lane
	at      int // its index in lane.waiting while it waits
	handler context.Context
	// receive ends the worker's Receive when the idle check retires it.
	receive context.Context
	retire  context.CancelFunc
}

// NewWorkerPool starts a goroutine on each consumer; it owns the
// consumers from then on.
func NewWorkerPool[T any](consumers []*transport.Consumer, cfg WorkerPoolConfig[T]) *WorkerPool[T] {
	cfg.MaxConcurrency = max(cfg.MaxConcurrency, 1)
	p := &WorkerPool[T]{cfg: cfg, slots: make(chan struct{}, cfg.MaxConcurrency), closing: make(chan struct{})}
	for _, c := range consumers {
		l := &lane{queue: c.Queue()}
		l.consumer.Store(c)
		p.lanes = append(p.lanes, l)
	}
	for _, l := range p.lanes {
		l.mu.Lock()
		p.startLocked(l)
		l.mu.Unlock()
	}
	if cfg.IdleTimeout > 0 {
		p.idleMu.Lock()
		p.idleCheck = time.AfterFunc(cfg.IdleTimeout, p.retireIdle)
		p.idleMu.Unlock()
	}
	return p
}

// startLocked starts a goroutine waiting on l.
func (p *WorkerPool[T]) startLocked(l *lane) {
	w := &worker{lane: l}
	w.receive, w.retire = context.WithCancel(context.Background())
	l.enterLocked(w)
	p.running.Add(1)
	p.goroutines.Go(func() {
		defer p.running.Add(-1)
		p.run(w)
	})
}

func (l *lane) enterLocked(w *worker) {
	w.lane, w.at = l, len(l.waiting)
	l.waiting = append(l.waiting, w)
	l.howMany.Store(int32(len(l.waiting)))
}

func (l *lane) leaveLocked(w *worker) {
	last := len(l.waiting) - 1
	l.waiting[w.at] = l.waiting[last]
	l.waiting[w.at].at = w.at
	l.waiting[last] = nil
	l.waiting = l.waiting[:last]
	l.howMany.Store(int32(len(l.waiting)))
	l.fewestWaiting = min(l.fewestWaiting, len(l.waiting))
}

// run receives and handles until the pool stops, the worker's lane ends,
// or the idle check retires it.
func (p *WorkerPool[T]) run(w *worker) {
	// A context of its own, rather than the pool's shared one, so that
	// handlers do not contend on the parent's lock.
	handlerCtx, cancel := context.WithCancel(p.cfg.Context)
	defer cancel()
	defer w.retire()
	w.handler = handlerCtx
	for {
		l := w.lane
		c := l.consumer.Load()
		d, err := c.Receive(w.receive)
		if err != nil {
			if !p.afterFailedReceive(w, c, err) {
				return
			}
			continue
		}
		v, ok := p.cfg.Accept(d)
		if !ok {
			continue // still waiting on l
		}
		if !p.handle(w, l, d, v) || !p.next(w) {
			return
		}
	}
}

// handle runs Handle once there is room, w leaving l's waiting goroutines
// then and starting another if none is left; false: the pool stopped
// first, w left, and d went back to its queue.
func (p *WorkerPool[T]) handle(w *worker, l *lane, d *transport.Delivery, v T) bool {
	room := true
	select {
	case p.slots <- struct{}{}:
	default:
		select {
		case p.slots <- struct{}{}:
		case <-p.cfg.Stopping:
			room = false
		}
	}
	if p.stopped() {
		if room {
			<-p.slots
		}
		// Not run: back to the queue for another consumer (closing the
		// consumer returns it too, if that came first).
		if err := d.Nack(true); err != nil && !errors.Is(err, transport.ErrClosed) {
			p.cfg.Logger.WarnContext(d.TraceContext(context.Background()), "returning a delivery to its queue failed; the broker will redeliver it", "queue", l.queue, "err", err)
		}
		p.leave(w)
		return false
	}
	l.mu.Lock()
	l.leaveLocked(w)
	if len(l.waiting) == 0 && !l.ended && len(p.slots) < cap(p.slots) {
		p.startLocked(l)
	}
	l.mu.Unlock()
	p.cfg.Handle(w.handler, v)
	<-p.slots
	return true
}

// next puts w back to waiting after a delivery: on a lane nobody waits
// on, its own first, or on its own. False: the pool stopped, and w has
// left it.
func (p *WorkerPool[T]) next(w *worker) bool {
	if p.stopped() {
		return false
	}
	own := w.lane
	target := own
	crowded := own.howMany.Load() > 0
	if crowded {
		for _, l := range p.lanes {
			if l.howMany.Load() == 0 {
				target = l
				break
			}
		}
	}
	if w.receive.Err() != nil {
		// Retired while it was handling: it ends, unless it is needed.
		if target == own && crowded {
			return false
		}
		// Not yet on a lane's waiting list, where the idle check reads it.
		w.receive, w.retire = context.WithCancel(context.Background())
	}
	target.mu.Lock()
	if target.ended && target != own {
		// Its queue is no longer served: back to its own.
		target.mu.Unlock()
		target = own
		target.mu.Lock()
	}
	defer target.mu.Unlock()
	if target.ended {
		w.retire()
		return false
	}
	target.enterLocked(w)
	return true
}

// afterFailedReceive handles a Receive that failed with err on c: the
// pool stopped or closed, the worker was retired, or c ended unasked
// (which one worker of the lane resumes while the others wait for it).
// It reports whether w goes on.
func (p *WorkerPool[T]) afterFailedReceive(w *worker, c *transport.Consumer, err error) bool {
	l := w.lane
	if p.stopped() {
		p.leave(w)
		return false
	}
	if w.receive.Err() != nil {
		l.mu.Lock()
		defer l.mu.Unlock()
		if len(l.waiting) > 1 {
			l.leaveLocked(w)
			return false
		}
		w.receive, w.retire = context.WithCancel(context.Background())
		return true
	}
	l.mu.Lock()
	switch {
	case l.ended:
		l.leaveLocked(w)
		l.mu.Unlock()
		return false
	case l.consumer.Load() != c:
		l.mu.Unlock()
		return true // resumed already
	case l.resumed != nil:
		resumed := l.resumed
		l.mu.Unlock()
		select {
		case <-resumed:
		case <-p.closing:
		case <-p.cfg.Stopping:
		}
		return true
	}
	resumed := make(chan struct{})
	l.resumed = resumed
	l.mu.Unlock()
	next := p.resume(l, err)
	l.mu.Lock()
	if next != nil {
		l.consumer.Store(next)
	} else {
		l.ended = true
	}
	l.resumed = nil
	close(resumed)
	l.mu.Unlock()
	if next == nil {
		p.leave(w)
		return false
	}
	return true
}

// leave takes w, which is ending, out of its lane's waiting goroutines.
func (p *WorkerPool[T]) leave(w *worker) {
	l := w.lane
	l.mu.Lock()
	if w.at < len(l.waiting) && l.waiting[w.at] == w {
		l.leaveLocked(w)
	}
	l.mu.Unlock()
}

// stopped reports whether the pool is stopping or closing. (Two selects
// of one case each: they read an open channel without taking its lock,
// where one select of both takes both.)
func (p *WorkerPool[T]) stopped() bool {
	select {
	case <-p.cfg.Stopping:
		return true
	default:
	}
	select {
	case <-p.closing:
		return true
	default:
		return false
	}
}

// resume consumes l's queue again after its consumer ended unasked with
// cause, through cfg.Resume; it returns the new consumer, or nil if the
// queue is no longer served.
func (p *WorkerPool[T]) resume(l *lane, cause error) *transport.Consumer {
	cfg := p.cfg
	p.lost.Add(1)
	p.unconsumed.Add(1)
	if cfg.Resume == nil {
		cfg.Logger.Error("receiving "+cfg.What+" failed; this queue is no longer served", "queue", l.queue, "err", cause)
		return nil
	}
	cfg.Logger.Error("the consumer of a queue of "+cfg.What+" ended; consuming it again", "queue", l.queue, "err", cause)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-cfg.Stopping:
		case <-p.closing:
		case <-ctx.Done():
		}
		cancel()
	}()
	// Spaced out: the queue may be gone for a while (a broker node's loss).
	wait := backoff.Backoff{Initial: 100 * time.Millisecond, Multiplier: 2, Max: 5 * time.Second, Jitter: 0.5}
	for attempt := 0; ; attempt++ {
		if wait.Wait(ctx, attempt) != nil {
			return nil
		}
		c, err := cfg.Resume(ctx, l.queue)
		if err == nil {
			if p.stopped() {
				// Close may have closed the consumers before this one
				// took its place.
				_ = c.Close()
				return nil
			}
			p.unconsumed.Add(-1)
			cfg.Logger.Info("consuming the queue of "+cfg.What+" again", "queue", l.queue, "attempts", attempt+1)
			return c
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, transport.ErrClosed) {
			cfg.Logger.Error("cannot consume the queue of "+cfg.What+" again: the transport closed; this queue is no longer served", "queue", l.queue, "err", err)
			return nil
		}
		cfg.Logger.Error("cannot consume the queue of "+cfg.What+" again; trying again", "queue", l.queue, "attempt", attempt+1, "err", err)
	}
}

// retireIdle ends, on each lane, the goroutines that waited through the
// whole interval beside another, keeping one.
func (p *WorkerPool[T]) retireIdle() {
	if p.stopped() {
		return
	}
	for _, l := range p.lanes {
		l.mu.Lock()
		for i := 0; i < l.fewestWaiting-1 && i < len(l.waiting)-1; i++ {
			l.waiting[i].retire()
		}
		l.fewestWaiting = len(l.waiting)
		l.mu.Unlock()
	}
	p.idleMu.Lock()
	defer p.idleMu.Unlock()
	if !p.stopped() { // Close stopped the timer: it stays stopped
		p.idleCheck.Reset(p.cfg.IdleTimeout)
	}
}

// Lost counts the consumers that ended while the pool was not stopping.
func (p *WorkerPool[T]) Lost() uint64 { return p.lost.Load() }

// Unconsumed counts the queues not consumed right now: their consumer
// ended and has not been resumed (yet).
func (p *WorkerPool[T]) Unconsumed() int { return int(p.unconsumed.Load()) }

// Goroutines counts the pool's goroutines, waiting or handling.
func (p *WorkerPool[T]) Goroutines() int { return int(p.running.Load()) }

// Drain waits, once Stopping is closed (no handler starts then), until
// no handler runs, or until ctx ends.
func (p *WorkerPool[T]) Drain(ctx context.Context) error {
	taken := 0
	defer func() {
		for range taken {
			<-p.slots
		}
	}()
	for taken < cap(p.slots) {
		select {
		case p.slots <- struct{}{}:
			taken++
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Close closes the consumers, so that what they deliver unsettled goes
// back to the queues, and stops taking deliveries; the handlers running
// go on. Wait waits for them. Close Stopping first, or the goroutines
// holding a delivery for room wait for a handler to return.
func (p *WorkerPool[T]) Close() {
	p.closeOnce.Do(func() { close(p.closing) })
	p.idleMu.Lock()
	if p.idleCheck != nil {
		p.idleCheck.Stop()
	}
	p.idleMu.Unlock()
	for _, l := range p.lanes {
		_ = l.consumer.Load().Close()
	}
}

// Wait waits until every goroutine of the pool has returned, after
// Close.
func (p *WorkerPool[T]) Wait() { p.goroutines.Wait() }
