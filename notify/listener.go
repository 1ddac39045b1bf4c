package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/switchyard-mq/switchyard/internal/messaging"
	"github.com/switchyard-mq/switchyard/internal/oslo"
	"github.com/switchyard-mq/switchyard/transport"
)

// ErrRequeue, returned (or wrapped) by a handler, asks for the notification
// to be requeued and delivered again; the listener must allow requeue
// (WithRequeue), otherwise it is acknowledged and the request logged.
var ErrRequeue = errors.New("requeue the notification")

// RequestContext is oslo.messaging's request context, as a notification
// carries it: the dictionary of request_id, user_id, project_id, roles and
// the like that travels with requests and notifications. It is the same
// type as rpc.RequestContext; a context made with rpc.WithRequestContext
// gives it to the notifications a Notifier publishes with that context.
type RequestContext = messaging.RequestContext

// Notification is one received notification.
type Notification struct {
	// Context is the sender's request context as oslo's notifiers send
	// it: only the keys of their allow-list (request_id, user_id, roles,
	// ...; never auth_token).
	Context RequestContext
	// PublisherID and EventType are the sender's.
	PublisherID string
	EventType   string
	// Priority is the body's priority, which picked the handler.
	Priority Priority
	// Payload is the event's JSON value.
	Payload json.RawMessage
	// MessageID and Timestamp are oslo's metadata: a dashed uuid4, and the
	// naive UTC time as the sender wrote it (see oslo's format:
	// "2006-01-02 15:04:05.999999").
	MessageID string
	Timestamp string
}

// Filter selects notifications for an endpoint. Every non-nil field must
// match; a context or metadata key whose value is not a string does not
// match. Regular expressions match anywhere in the value unless anchored
// (oslo's NotificationFilter matches from the start: add "^" to a pattern
// taken from Python); Exactly builds one matching a whole value.
type Filter struct {
	PublisherID *regexp.Regexp
	EventType   *regexp.Regexp
	// Context matches request context values by key.
	Context map[string]*regexp.Regexp
	// Metadata matches "message_id" and "timestamp" (no other key).
	Metadata map[string]*regexp.Regexp
}

// Exactly returns a regular expression matching exactly s.
func Exactly(s string) *regexp.Regexp { return regexp.MustCompile("^" + regexp.QuoteMeta(s) + "$") }

func (f *Filter) match(n *Notification) bool {
	if f.PublisherID != nil && !f.PublisherID.MatchString(n.PublisherID) {
		return false
	}
	if f.EventType != nil && !f.EventType.MatchString(n.EventType) {
		return false
	}
	for k, re := range f.Context {
		s, ok := n.Context[k].(string)
		if !ok || !re.MatchString(s) {
			return false
		}
	}
	for k, re := range f.Metadata {
		var v string
		switch k {
		case "message_id":
			v = n.MessageID
		case "timestamp":
			v = n.Timestamp
		default: // NewListener refuses other keys
			return false
		}
		if !re.MatchString(v) {
			return false
		}
	}
	return true
}

// Endpoint handles the notifications of some priorities that pass its
// filter. Set Handle, or HandleBatch for a batch listener (WithBatch).
type Endpoint struct {
	// Priorities this endpoint handles; empty means all seven.
	Priorities []Priority
	// Filter narrows what reaches the handler.
	Filter Filter
	// Handle handles one notification. Returning ErrRequeue (or, with
	// WithRequeue, any error) requeues it.
	Handle func(ctx context.Context, n *Notification) error
	// HandleBatch handles a batch; its error applies to the whole batch.
	HandleBatch func(ctx context.Context, batch []*Notification) error
}

func (e *Endpoint) handles(p Priority) bool {
	return len(e.Priorities) == 0 || slices.Contains(e.Priorities, p)
}

// ListenerOption configures a Listener.
type ListenerOption func(*Listener)

// WithPool makes the listener a member of pool: the pool's members share
// one queue named after it, and every pool gets its own copy of each
// notification. Without a pool, listeners share the queue "N.p" with the
// queue the notifier declares, and so compete for its messages.
func WithPool(name string) ListenerOption { return func(l *Listener) { l.pool = name } }

// WithQueueBounds declares the "N.p" queues the listener shares with
// notifiers bounded as p says (MaxLength, MessageTTL; PublishOnly is the
// notifiers' concern and ignored here), as notifiers with WithQueues(p)
// declare them: every service that declares a queue must declare it alike
// (otherwise ErrPrecondition, RabbitMQ's 406). A pool's queue is the
// pool's own and stays unbounded. Python listeners declare those queues
// unbounded: where they share them, bound the queues with a RabbitMQ
// policy instead.
func WithQueueBounds(p QueuePolicy) ListenerOption {
	return func(l *Listener) { l.bounds = QueuePolicy{MaxLength: p.MaxLength, MessageTTL: p.MessageTTL} }
}

// WithBatch hands notifications to HandleBatch in batches of up to size,
// or what arrived within timeout of a batch's first notification.
func WithBatch(size int, timeout time.Duration) ListenerOption {
	return func(l *Listener) { l.batchSize, l.batchTimeout = size, timeout }
}

// DefaultPrefetch is how many notifications a listener holds from the
// broker, unacknowledged, while it handles one: enough to keep the
// broker's round trip out of a busy listener's way (with 2, a listener
// waits for the broker after every other notification). oslo.messaging
// sets no bound by default; a bound keeps a listener starting on a long
// backlog from taking all of it into memory.
const DefaultPrefetch = 64

// WithPrefetch sets how many notifications the listener holds from the
// broker, unacknowledged, at a time (DefaultPrefetch, or twice the batch
// size if more): fewer shares a pool's queue more evenly among its
// members, more hides the round trip to a distant broker. It must be at
// least the batch size, for a batch to fill.
func WithPrefetch(n int) ListenerOption { return func(l *Listener) { l.prefetch = n } }

// WithRequeue allows handlers to requeue notifications, by returning
// ErrRequeue or any other error, as oslo's allow_requeue.
func WithRequeue() ListenerOption { return func(l *Listener) { l.allowRequeue = true } }

// Listener consumes notifications for targets (Topic, and optionally
// Exchange: the control exchange by default) and hands them to endpoints
// by priority. It handles one notification (or batch) at a time.
type Listener struct {
	tr           *transport.Transport
	targets      []transport.Target
	endpoints    []Endpoint
	topo         messaging.Topology
	logger       *slog.Logger
	pool         string
	bounds       QueuePolicy
	batchSize    int
	batchTimeout time.Duration
	prefetch     int // 0: the default
	allowRequeue bool

	mu  sync.Mutex
	cur *run // nil when stopped
	// last is the latest run: the next may start once its dispatch loop
	// has ended, so that one loop at a time checks and remembers ids in
	// recent.
	last *run
	// recent holds the _unique_ids of the notifications acked lately,
	// across runs.
	recent messaging.DuplicateFilter
}

// run is the state of one Start to its Stop, so that a run ending in the
// background shares nothing with the next.
type run struct {
	pool       *messaging.WorkerPool[*transport.Delivery] // receives from the listener's queues and handles
	stopping   chan struct{}                              // closed when Stop begins
	dispatched chan struct{}                              // closed when the last handler has returned after Stop

	// The batch being gathered (WithBatch), and the timer that hands it
	// over at the batch timeout.
	batchMu sync.Mutex
	batch   []received
	flush   *time.Timer
}

// NewListener returns a listener for targets over endpoints; it declares
// and consumes nothing until Start.
func NewListener(tr *transport.Transport, targets []transport.Target, endpoints []Endpoint, opts ...ListenerOption) (*Listener, error) {
	if tr == nil {
		return nil, fmt.Errorf("listener: %w: no transport", transport.ErrInvalid)
	}
	l := &Listener{tr: tr, targets: targets, endpoints: endpoints, logger: tr.Logger().With("component", "notify.listener")}
	for _, opt := range opts {
		opt(l)
	}
	if len(targets) == 0 || len(endpoints) == 0 {
		return nil, fmt.Errorf("listener: %w: it needs at least one target and one endpoint", transport.ErrInvalid)
	}
	for _, t := range targets {
		if err := t.Validate(); err != nil {
			return nil, fmt.Errorf("listener: %w", err)
		}
	}
	if err := l.bounds.validate(tr.Capabilities()); err != nil {
		return nil, fmt.Errorf("listener on %s: %w", tr, err)
	}
	batch := l.batchSize > 0
	if l.batchSize < 0 || (batch && l.batchTimeout <= 0) {
		return nil, fmt.Errorf("listener: %w: batch size %d and timeout %v", transport.ErrInvalid, l.batchSize, l.batchTimeout)
	}
	switch {
	case l.prefetch < 0 || l.prefetch > math.MaxUint16:
		return nil, fmt.Errorf("listener: %w: prefetch %d is not between 1 and %d", transport.ErrInvalid, l.prefetch, math.MaxUint16)
	case l.prefetch > 0 && l.prefetch < l.batchSize:
		return nil, fmt.Errorf("listener: %w: a batch of %d never fills with a prefetch of %d", transport.ErrInvalid, l.batchSize, l.prefetch)
	case l.prefetch == 0:
		l.prefetch = max(DefaultPrefetch, 2*l.batchSize)
	}
	for i, e := range endpoints {
		if (e.Handle == nil) == (e.HandleBatch == nil) || batch != (e.HandleBatch != nil) {
			return nil, fmt.Errorf("listener: %w: endpoint %d must set exactly one of Handle and HandleBatch, HandleBatch only with WithBatch", transport.ErrInvalid, i)
		}
		for _, p := range e.Priorities {
			if !p.valid() {
				return nil, fmt.Errorf("listener: %w: endpoint %d: unknown priority %q", transport.ErrInvalid, i, p)
			}
		}
		for k := range e.Filter.Metadata {
			if k != "message_id" && k != "timestamp" {
				// It would match nothing: every notification dropped.
				return nil, fmt.Errorf("listener: %w: endpoint %d: filter on metadata %q: the keys are message_id and timestamp", transport.ErrInvalid, i, k)
			}
		}
	}
	topo, err := messaging.NewTopology(tr)
	if err != nil {
		return nil, fmt.Errorf("listener on %s: %w", tr, err)
	}
	l.topo = topo
	return l, nil
}

// priorities lists those some endpoint handles; only their queues are
// bound, as oslo does.
func (l *Listener) priorities() []Priority {
	var ps []Priority
	for _, p := range Priorities() {
		for _, e := range l.endpoints {
			if e.handles(p) {
				ps = append(ps, p)
				break
			}
		}
	}
	return ps
}

// Start declares the queues and bindings and starts consuming. A stopped
// listener may start again, once the handler a Stop gave up waiting for
// has returned.
func (l *Listener) Start(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cur != nil {
		return fmt.Errorf("listener: %w: already started", transport.ErrInvalid)
	}
	if l.last != nil {
		select {
		case <-l.last.dispatched:
		default:
			return fmt.Errorf("listener: %w: a handler the last Stop gave up waiting for is still running", transport.ErrInvalid)
		}
	}
	queues, err := l.declare(ctx)
	var consumers []*transport.Consumer
	if err == nil {
		consumers, err = l.consume(ctx, queues)
	}
	if err != nil {
		for _, c := range consumers {
			_ = c.Close()
		}
		return fmt.Errorf("listener: start: %w", err)
	}
	r := &run{stopping: make(chan struct{}), dispatched: make(chan struct{})}
	r.pool = messaging.NewWorkerPool(consumers, messaging.WorkerPoolConfig[*transport.Delivery]{
		// Decoded by the handler, one at a time, so that a repeat is
		// checked only once the one before is settled and remembered.
		Accept:         func(d *transport.Delivery) (*transport.Delivery, bool) { return d, true },
		Handle:         func(_ context.Context, d *transport.Delivery) { l.dispatch(r, d) },
		Context:        context.Background(),
		MaxConcurrency: 1, IdleTimeout: 10 * time.Second,
		Stopping: r.stopping, Resume: l.resume, Logger: l.logger, What: "notifications",
	})
	l.cur, l.last = r, r
	return nil
}

func (l *Listener) declare(ctx context.Context) ([]string, error) {
	var queues []string
	for _, t := range l.targets {
		exchange := l.topo.ExchangeName(t)
		if err := l.topo.DeclareExchange(ctx, l.tr, l.topo.Exchange(exchange)); err != nil {
			return nil, err
		}
		for _, p := range l.priorities() {
			key := oslo.NotificationKey(t.Topic, oslo.Priority(p))
			q := l.topo.SharedQueue(key)
			q.MaxLength, q.MessageTTL = l.bounds.MaxLength, l.bounds.MessageTTL
			if l.pool != "" {
				q = l.topo.SharedQueue(l.pool)
			}
			queue := q.Name
			if _, err := l.topo.DeclareQueue(ctx, l.tr, q); err != nil {
				return nil, err
			}
			if err := l.tr.Bind(ctx, transport.Binding{Exchange: exchange, Queue: queue, Key: key}); err != nil {
				return nil, err
			}
			if !slices.Contains(queues, queue) {
				queues = append(queues, queue)
			}
		}
	}
	return queues, nil
}

// resume consumes queue again after its consumer ended unasked (the
// broker cancelled it, the queue was deleted): it declares the listener's
// topology again, as Start did, first.
func (l *Listener) resume(ctx context.Context, queue string) (*transport.Consumer, error) {
	if _, err := l.declare(ctx); err != nil {
		return nil, err
	}
	consumers, err := l.consume(ctx, []string{queue})
	if err != nil {
		return nil, err
	}
	return consumers[0], nil
}

// ListenerStats are a listener's counters, for its current run.
type ListenerStats struct {
	// ConsumersLost counts the consumers that ended while the listener
	// ran (the broker cancelled one, a queue was deleted): each is
	// consumed again, its topology declared first.
	ConsumersLost uint64
	// Unconsumed is how many of the listener's queues are not consumed
	// right now, waiting to be consumed again.
	Unconsumed int
}

// Stats returns the counters of the listener's current run (zero when
// it is stopped).
func (l *Listener) Stats() ListenerStats {
	l.mu.Lock()
	r := l.cur
	l.mu.Unlock()
	if r == nil {
		return ListenerStats{}
	}
	return ListenerStats{ConsumersLost: r.pool.Lost(), Unconsumed: r.pool.Unconsumed()}
}

// consume starts a consumer on each queue; on error it returns those
// started, for the caller to close.
func (l *Listener) consume(ctx context.Context, queues []string) ([]*transport.Consumer, error) {
	var consumers []*transport.Consumer
	for _, q := range queues {
		c, err := l.tr.Consume(ctx, q, transport.ConsumeOptions{Prefetch: l.prefetch})
		if err != nil {
			return consumers, err
		}
		consumers = append(consumers, c)
	}
	return consumers, nil
}

// received is a decoded notification and the delivery to settle.
type received struct {
	d        *transport.Delivery
	n        *Notification
	uniqueID string
}

// dispatch decodes and handles one notification, or adds it to the batch
// and hands the batch over once full. The pool runs one at a time.
func (l *Listener) dispatch(r *run, d *transport.Delivery) {
	rec, ok := l.decode(d)
	if !ok {
		return
	}
	if l.batchSize == 0 {
		l.settle([]received{rec}, l.handle(rec))
		return
	}
	r.batchMu.Lock()
	defer r.batchMu.Unlock()
	r.batch = append(r.batch, rec)
	if len(r.batch) == 1 {
		r.flush = time.AfterFunc(l.batchTimeout, func() { l.flushBatch(r) })
	}
	if len(r.batch) >= l.batchSize {
		l.flushBatchLocked(r)
	}
}

// flushBatch hands over the batch gathered so far, if any.
func (l *Listener) flushBatch(r *run) {
	r.batchMu.Lock()
	defer r.batchMu.Unlock()
	l.flushBatchLocked(r)
}

func (l *Listener) flushBatchLocked(r *run) {
	if r.flush != nil {
		r.flush.Stop()
		r.flush = nil
	}
	if len(r.batch) == 0 {
		return
	}
	batch := r.batch
	r.batch = nil
	l.settle(batch, l.handleBatch(batch))
}

// decode turns a delivery into a notification, rejecting what cannot be
// decoded and dropping unknown priorities and repeats, as oslo does.
func (l *Listener) decode(d *transport.Delivery) (received, bool) {
	ctx := d.TraceContext(context.Background())
	body, err := oslo.Decompress(d.Headers, d.Body)
	if err != nil {
		l.logger.ErrorContext(ctx, "malformed notification rejected", "routing_key", d.RoutingKey, "err", err)
		_ = d.Reject()
		return received{}, false
	}
	on, err := oslo.UnwrapNotification(body)
	if on != nil && !on.Priority.Valid() {
		// As a Python listener does: logged, acked and dropped, whatever
		// else is wrong with it.
		l.logger.WarnContext(ctx, "notification with an unknown or missing priority dropped", "priority", on.Priority,
			"event_type", on.EventType, "routing_key", d.RoutingKey)
		_ = d.Ack()
		return received{}, false
	}
	if err != nil {
		l.logger.ErrorContext(ctx, "malformed notification rejected", "routing_key", d.RoutingKey, "err", err, "body", string(d.Body[:min(len(d.Body), 200)]))
		_ = d.Reject()
		return received{}, false
	}
	if d.MessageID == "" {
		// oslo sends the id in the body: the delivery's process and
		// settle spans name it as messaging.message.id.
		d.MessageID = on.MessageID
	}
	if l.recent.Seen(on.UniqueID) {
		l.logger.DebugContext(ctx, "duplicate notification dropped", "message_id", on.MessageID, "unique_id", on.UniqueID)
		_ = d.Ack()
		return received{}, false
	}
	rc, err := messaging.DecodeRequestContext(on.Context)
	if err != nil {
		l.logger.WarnContext(ctx, "notification context dropped", "message_id", on.MessageID, "err", err)
	}
	return received{d: d, uniqueID: on.UniqueID, n: &Notification{
		Context: rc, PublisherID: on.PublisherID, EventType: on.EventType, Priority: Priority(on.Priority),
		Payload: on.Payload, MessageID: on.MessageID, Timestamp: on.Timestamp,
	}}, true
}

// handle runs every endpoint the notification is for; the first error
// decides its fate.
func (l *Listener) handle(r received) error {
	// The handler's context carries the sender's trace, when traced, in
	// the delivery's process span.
	ctx, end := r.d.StartProcess(context.Background())
	var first error
	for i := range l.endpoints {
		e := &l.endpoints[i]
		if !e.handles(r.n.Priority) || !e.Filter.match(r.n) {
			continue
		}
		if err := l.call(func() error { return e.Handle(ctx, r.n) }); err != nil && first == nil {
			first = err
		}
	}
	end(first)
	return first
}

func (l *Listener) handleBatch(batch []received) error {
	var first error
	for i := range l.endpoints {
		e := &l.endpoints[i]
		var ns []*Notification
		for _, r := range batch {
			if e.handles(r.n.Priority) && e.Filter.match(r.n) {
				ns = append(ns, r.n)
			}
		}
		if len(ns) == 0 {
			continue
		}
		if err := l.call(func() error { return e.HandleBatch(context.Background(), ns) }); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// call runs a handler, turning a panic into an error.
func (l *Listener) call(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return f()
}

// settle acks the deliveries, or requeues them when the handler asked and
// requeue is allowed.
func (l *Listener) settle(rs []received, err error) {
	requeue := err != nil && l.allowRequeue
	if err != nil {
		ctx := context.Background()
		if len(rs) == 1 {
			ctx = rs[0].d.TraceContext(ctx)
		}
		l.logger.WarnContext(ctx, "notification handler failed", "err", err, "requeued", requeue, "count", len(rs))
	}
	for _, r := range rs {
		var serr error
		if requeue {
			serr = r.d.Nack(true)
		} else {
			serr = r.d.Ack()
			// Remembered once acked, not before: a requeued
			// notification may come back.
			l.recent.Remember(r.uniqueID)
		}
		if serr != nil {
			l.logger.WarnContext(r.d.TraceContext(context.Background()), "settling a notification failed", "message_id", r.n.MessageID, "err", serr)
		}
	}
}

// Stop stops consuming, finishes the notification or batch in hand, and
// returns; notifications not yet handled go back to their queues. If ctx
// ends first, Stop returns its error without waiting for the handler. It
// is idempotent.
func (l *Listener) Stop(ctx context.Context) error {
	l.mu.Lock()
	r := l.cur
	l.cur = nil
	l.mu.Unlock()
	if r == nil {
		return nil
	}

	// Settle what is in hand before the consumers close, so that a handled
	// notification is acked rather than returned to its queue: the handler
	// running, then the batch gathered.
	close(r.stopping)
	go func() {
		_ = r.pool.Drain(context.Background())
		l.flushBatch(r)
		r.pool.Close()
		r.pool.Wait()
		close(r.dispatched)
	}()
	var err error
	select {
	case <-r.dispatched:
	case <-ctx.Done():
		err = fmt.Errorf("listener: stop: handler still running: %w", ctx.Err())
	}
	// Nothing more is taken once stopping: what is received comes back
	// to its queue.
	r.pool.Close()
	return err
}
