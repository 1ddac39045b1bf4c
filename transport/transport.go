package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-mq/switchyard/transport/driver"
)

// Option configures Open.
type Option func(*openOptions)

type openOptions struct {
	logger         *slog.Logger
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	propagator     propagation.TextMapPropagator
}

// WithLogger sends the transport's and its driver's logs to l instead of
// slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *openOptions) { o.logger = l }
}

// Transport is an open connection to a messaging backend, speaking the
// portable model. It is safe for concurrent use. Close it when done; every
// call after Close returns an error wrapping ErrClosed.
type Transport struct {
	conn   driver.Conn
	url    *URL
	caps   Capabilities
	logger *slog.Logger
	tel    *telemetry // nil: no tracing or metrics

	closed    atomic.Bool
	mu        sync.Mutex // guards consumers
	consumers map[*Consumer]struct{}
}

// Open connects to the backend that rawURL names by its scheme. The
// driver for the scheme must be registered (imported); an unknown scheme
// is an error listing the registered ones.
func Open(ctx context.Context, rawURL string, opts ...Option) (*Transport, error) {
	u, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return OpenURL(ctx, u, opts...)
}

// OpenURL is Open for an already parsed URL. u is copied.
func OpenURL(ctx context.Context, u *URL, opts ...Option) (*Transport, error) {
	o := openOptions{logger: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	opener, err := lookupOpener(u.Scheme)
	if err != nil {
		return nil, err
	}
	u = u.Clone()
	u.Logger = o.logger.With("transport", u.String())
	tel, err := newTelemetry(o, u)
	if err != nil {
		return nil, fmt.Errorf("open %s: telemetry: %w", u, err)
	}
	conn, err := opener.Open(ctx, u)
	if err != nil {
		if !wrapsSentinel(err) {
			// The backend could not be reached (a refused connection, a
			// name that does not resolve): what rabbit:// reports as
			// ErrClosed, whatever the driver said.
			return nil, fmt.Errorf("open %s: %w: %w", u, ErrClosed, err)
		}
		return nil, fmt.Errorf("open %s: %w", u, err)
	}
	if sn, ok := conn.(driver.SystemNamer); ok && tel != nil {
		tel.setSystem(sn.MessagingSystem())
	}
	return &Transport{
		conn:      conn,
		url:       u,
		caps:      conn.Capabilities(),
		logger:    u.Logger,
		tel:       tel,
		consumers: map[*Consumer]struct{}{},
	}, nil
}

// String is the transport's URL with the password hidden.
func (t *Transport) String() string { return t.url.String() }

// URL returns a copy of the parsed URL the transport was opened with.
func (t *Transport) URL() *URL { return t.url.Clone() }

// As sets target to the driver's underlying client, where the driver
// documents target's type (rabbit:// fills a **amqp091.Connection, amqp://
// a **amqp.Conn of go-amqp), and reports whether it did: an escape hatch
// to what the portable model does not offer. Errors need no such hatch: a client's error stays in the chain,
// for errors.As.
func (t *Transport) As(target any) bool {
	if t.closed.Load() {
		return false
	}
	return t.conn.As(target)
}

// Logger is the logger the transport was opened with, for the layers built
// on it.
func (t *Transport) Logger() *slog.Logger { return t.logger }

// Capabilities reports what the backend supports.
func (t *Transport) Capabilities() Capabilities { return t.caps }

func (t *Transport) check(capsNeeded ...Capability) error {
	if t.closed.Load() {
		return ErrClosed
	}
	for _, c := range capsNeeded {
		if !t.caps.Has(c) {
			if a, ok := t.conn.(driver.CapabilityAdviser); ok {
				if advice := a.AdviseCapability(c); advice != "" {
					return fmt.Errorf("%w: %s:// lacks the %q capability; %s", ErrUnsupported, t.url.Scheme, c, advice)
				}
			}
			return fmt.Errorf("%w: %s:// lacks the %q capability", ErrUnsupported, t.url.Scheme, c)
		}
	}
	return nil
}

// wrap says which operation failed; the sentinel stays reachable.
func wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), err)
}

// DeclareExchange creates an exchange, or checks that an existing one has
// the same properties (ErrPrecondition if not). A kind, Durable or
// AutoDelete the backend lacks the capability of is ErrUnsupported.
func (t *Transport) DeclareExchange(ctx context.Context, ex Exchange) error {
	err := func() error {
		if err := validDeclaredName("exchange name", ex.Name); err != nil {
			return err
		}
		if !ex.Kind.Valid() {
			return fmt.Errorf("%w: exchange kind %q (want direct, fanout or topic)", ErrInvalid, ex.Kind)
		}
		// The kind last, so that a missing property is the one named.
		var needed []Capability
		if ex.AutoDelete {
			needed = append(needed, CapAutoDelete)
		}
		if ex.Durable {
			needed = append(needed, CapDurable)
		}
		needed = append(needed, kindCapability(ex.Kind))
		if err := t.check(needed...); err != nil {
			return err
		}
		return t.conn.DeclareExchange(ctx, driver.Exchange(ex))
	}()
	return wrap(err, "declare %s exchange %q", ex.Kind, ex.Name)
}

func kindCapability(k ExchangeKind) Capability {
	switch k {
	case Fanout:
		return CapFanout
	case Topic:
		return CapTopic
	}
	return CapDirect
}

// DeleteExchange deletes an exchange and its bindings; deleting a missing
// exchange is not an error.
func (t *Transport) DeleteExchange(ctx context.Context, name string) error {
	err := validDeclaredName("exchange name", name)
	if err == nil {
		err = t.check()
	}
	if err == nil {
		err = t.conn.DeleteExchange(ctx, name)
	}
	return wrap(err, "delete exchange %q", name)
}

// DeclareQueue creates a queue, or checks that an existing one has the
// same properties (ErrPrecondition if not), and returns its name: the
// broker chooses one when q.Name is empty.
func (t *Transport) DeclareQueue(ctx context.Context, q Queue) (string, error) {
	name, err := func() (string, error) {
		var needed []Capability
		if q.Name == "" {
			needed = append(needed, CapServerNamedQueue)
		} else if err := validDeclaredName("queue name", q.Name); err != nil {
			return "", err
		}
		if err := validName("dead-letter exchange", q.DeadLetterExchange); err != nil {
			return "", err
		}
		if q.MessageTTL < 0 || q.Expires < 0 || q.MaxLength < 0 || q.DeliveryLimit < 0 {
			return "", fmt.Errorf("%w: negative TTL, expiry, length or delivery limit", ErrInvalid)
		}
		if err := checkQueueType(q); err != nil {
			return "", err
		}
		for _, need := range []struct {
			set bool
			c   Capability
		}{
			// Durable after the queue types, which must be durable, so
			// that a missing type is the one named.
			{q.Exclusive, CapExclusiveQueue}, {q.AutoDelete, CapAutoDelete},
			{q.MessageTTL > 0, CapMessageTTL}, {q.Expires > 0, CapQueueExpiry},
			{q.MaxLength > 0, CapMaxLength}, {q.DeadLetterExchange != "", CapDeadLetter},
			{q.DeliveryLimit > 0, CapDeliveryLimit},
			{q.Type == QuorumQueue, CapQuorumQueue}, {q.Type == StreamQueue, CapStreamQueue},
			{q.Durable, CapDurable}, {!q.Durable && !q.Exclusive, CapTransientQueue},
		} {
			if need.set {
				needed = append(needed, need.c)
			}
		}
		if err := t.check(needed...); err != nil {
			return "", err
		}
		return t.conn.DeclareQueue(ctx, driver.Queue(q))
	}()
	if q.Name == "" {
		return name, wrap(err, "declare server-named queue")
	}
	return name, wrap(err, "declare queue %q", q.Name)
}

// DeleteQueue deletes a queue and the messages it holds, and returns how
// many it held. Its consumers end. Deleting a missing queue is not an error.
func (t *Transport) DeleteQueue(ctx context.Context, name string) (int, error) {
	err := validRequiredName("queue name", name)
	if err == nil {
		err = t.check()
	}
	n := 0
	if err == nil {
		n, err = t.conn.DeleteQueue(ctx, name)
	}
	return n, wrap(err, "delete queue %q", name)
}

// PurgeQueue drops a queue's ready messages and returns how many.
func (t *Transport) PurgeQueue(ctx context.Context, name string) (int, error) {
	err := validRequiredName("queue name", name)
	if err == nil {
		err = t.check()
	}
	n := 0
	if err == nil {
		n, err = t.conn.PurgeQueue(ctx, name)
	}
	return n, wrap(err, "purge queue %q", name)
}

// checkQueueType refuses what a queue of q's type cannot be, as RabbitMQ
// refuses it, whatever the backend.
func checkQueueType(q Queue) error {
	if !q.Type.Valid() {
		return fmt.Errorf("%w: queue type %q (want classic, quorum or stream, or none for the backend's default)", ErrInvalid, q.Type)
	}
	if q.Type != QuorumQueue && q.Type != StreamQueue {
		return nil
	}
	var cannot []string
	for _, c := range []struct {
		set  bool
		what string
	}{
		{!q.Durable, "non-durable"}, {q.Exclusive, "exclusive"}, {q.AutoDelete, "auto-delete"},
		{q.Type == StreamQueue && q.Expires > 0, "expiring"},
		{q.Type == StreamQueue && q.MaxLength > 0, "length-limited"},
		{q.Type == StreamQueue && q.DeadLetterExchange != "", "dead-lettering"},
		{q.Type == StreamQueue && q.DeliveryLimit > 0, "delivery-limited"},
	} {
		if c.set {
			cannot = append(cannot, c.what)
		}
	}
	if len(cannot) > 0 {
		return fmt.Errorf("%w: a %s queue cannot be %s", ErrInvalid, q.Type, strings.Join(cannot, ", "))
	}
	return nil
}

func (t *Transport) checkBinding(b Binding) error {
	if err := validRequiredName("binding exchange", b.Exchange); err != nil {
		return err
	}
	if err := validRequiredName("binding queue", b.Queue); err != nil {
		return err
	}
	if err := validName("binding key", b.Key); err != nil {
		return err
	}
	return t.check(CapQueueBinding)
}

// Bind routes messages from b.Exchange to b.Queue: those whose routing key
// equals b.Key (direct), matches it as a pattern (topic), or all (fanout).
// Both must exist (ErrNotFound). Binding twice is one binding.
func (t *Transport) Bind(ctx context.Context, b Binding) error {
	err := t.checkBinding(b)
	if err == nil {
		err = t.conn.Bind(ctx, driver.Binding(b))
	}
	return wrap(err, "bind queue %q to exchange %q with key %q", b.Queue, b.Exchange, b.Key)
}

// Unbind removes a binding; removing a missing binding is not an error.
func (t *Transport) Unbind(ctx context.Context, b Binding) error {
	err := t.checkBinding(b)
	if err == nil {
		err = t.conn.Unbind(ctx, driver.Binding(b))
	}
	return wrap(err, "unbind queue %q from exchange %q with key %q", b.Queue, b.Exchange, b.Key)
}

// Publish sends msg to an exchange with a routing key; exchange "" is the
// default exchange, which routes to the queue named by the key. It returns
// once the backend has taken responsibility for the message (after the
// broker's confirm, where there is one) or ctx ends. A missing exchange is
// ErrNotFound. A message that reaches no queue is dropped, unless
// msg.Mandatory is set: then Publish fails with ErrUnroutable. A property
// the backend cannot honour (Mandatory, Persistent, Expiration, Headers
// without CapMandatory, CapDurable, CapMessageTTL, CapHeaders) is
// ErrUnsupported, never silently dropped.
func (t *Transport) Publish(ctx context.Context, exchange, routingKey string, msg Message) error {
	if err := t.checkPublish(exchange, routingKey, &msg); err != nil {
		return wrap(err, "publish to exchange %q with key %q", exchange, routingKey)
	}
	if t.tel != nil {
		var span trace.Span
		ctx, span = t.tel.startPublish(ctx, exchange, routingKey, &msg)
		err := t.conn.Publish(ctx, exchange, routingKey, driver.Message(msg))
		t.tel.endPublish(span, exchange, err)
		return wrap(err, "publish to exchange %q with key %q", exchange, routingKey)
	}
	if err := t.conn.Publish(ctx, exchange, routingKey, driver.Message(msg)); err != nil {
		return wrap(err, "publish to exchange %q with key %q", exchange, routingKey)
	}
	return nil
}

func (t *Transport) checkPublish(exchange, routingKey string, msg *Message) error {
	if t.closed.Load() {
		return ErrClosed
	}
	if msg.Expiration < 0 {
		return fmt.Errorf("%w: negative expiration %v", ErrInvalid, msg.Expiration)
	}
	// Each property the backend cannot honour fails rather than being
	// dropped on the way (the README's capability matrix).
	for _, need := range [...]struct {
		set bool
		c   Capability
	}{
		{msg.Mandatory, CapMandatory}, {msg.Persistent, CapDurable},
		{msg.Expiration > 0, CapMessageTTL}, {len(msg.Headers) > 0, CapHeaders},
	} {
		if need.set && !t.caps.Has(need.c) {
			return t.check(need.c)
		}
	}
	if len(exchange) > driver.MaxNameLen || len(routingKey) > driver.MaxNameLen {
		return fmt.Errorf("%w: exchange or routing key longer than %d bytes", ErrInvalid, driver.MaxNameLen)
	}
	return nil
}

// Consume starts a consumer on an existing queue (ErrNotFound otherwise).
// Read deliveries with Receive, settle each with Ack, Nack or Reject unless
// opts.AutoAck is set, and Close the consumer when done: its unsettled
// deliveries go back to the queue, marked redelivered.
func (t *Transport) Consume(ctx context.Context, queue string, opts ConsumeOptions) (*Consumer, error) {
	err := validRequiredName("queue name", queue)
	if err == nil && opts.Prefetch < 0 {
		err = fmt.Errorf("%w: negative prefetch %d", ErrInvalid, opts.Prefetch)
	}
	if err == nil && opts.Prefetch > 0 {
		err = t.check(CapPrefetch)
	}
	if err == nil && opts.Exclusive {
		err = t.check(CapExclusiveConsumer)
	}
	if err == nil {
		err = t.check()
	}
	if err != nil {
		return nil, wrap(err, "consume queue %q", queue)
	}
	dc, err := t.conn.Consume(ctx, queue, driver.ConsumeOptions(opts))
	if err != nil {
		return nil, wrap(err, "consume queue %q", queue)
	}
	c := &Consumer{t: t, dc: dc, queue: queue}
	t.mu.Lock()
	if t.closed.Load() {
		t.mu.Unlock()
		_ = dc.Close()
		return nil, wrap(ErrClosed, "consume queue %q", queue)
	}
	t.consumers[c] = struct{}{}
	t.mu.Unlock()
	return c, nil
}

// Healthy reports whether the backend is reachable now, for health checks.
func (t *Transport) Healthy(ctx context.Context) error {
	if err := t.check(); err != nil {
		return err
	}
	if hc, ok := t.conn.(driver.HealthChecker); ok {
		return wrap(hc.Healthy(ctx), "health check of %s", t)
	}
	return nil
}

// Close ends every consumer (their unsettled deliveries return to their
// queues) and the connection. It is idempotent.
func (t *Transport) Close() error {
	if t.closed.Swap(true) {
		return nil
	}
	t.mu.Lock()
	consumers := make([]*Consumer, 0, len(t.consumers))
	for c := range t.consumers {
		consumers = append(consumers, c)
	}
	t.mu.Unlock()
	var errs []error
	for _, c := range consumers {
		errs = append(errs, c.Close())
	}
	errs = append(errs, t.conn.Close())
	return wrap(errors.Join(errs...), "close %s", t)
}

// Consumer is a stream of deliveries from one queue. Receive may be called
// from several goroutines.
type Consumer struct {
	t      *Transport
	dc     driver.Consumer
	queue  string
	closed atomic.Bool
}

// Queue is the name of the queue being consumed.
func (c *Consumer) Queue() string { return c.queue }

// Receive returns the next delivery. It blocks until one arrives, ctx ends
// (returning ctx.Err()), or the consumer or its transport closes
// (ErrClosed).
func (c *Consumer) Receive(ctx context.Context) (*Delivery, error) {
	if c.closed.Load() {
		return nil, wrap(ErrClosed, "receive from %q", c.queue)
	}
	d, err := c.dc.Receive(ctx)
	if err != nil {
		return nil, wrap(err, "receive from %q", c.queue)
	}
	delivery := &Delivery{
		Message:       Message(d.Message),
		Exchange:      d.Exchange,
		RoutingKey:    d.RoutingKey,
		Redelivered:   d.Redelivered,
		DeliveryCount: d.DeliveryCount,
		settler:       d.Settler,
		tag:           d.Tag,
	}
	if tel := c.t.tel; tel != nil {
		delivery.tel, delivery.queue = tel, c.queue
		delivery.traceCtx = tel.received(c.queue, delivery)
	}
	return delivery, nil
}

// Close stops the consumer. Its unsettled deliveries return to the queue
// marked redelivered; settling them afterwards fails. Close is idempotent.
func (c *Consumer) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.t.mu.Lock()
	delete(c.t.consumers, c)
	c.t.mu.Unlock()
	return wrap(c.dc.Close(), "close consumer of %q", c.queue)
}

// Delivery is one message handed to a consumer: the Message fields, where
// it was published (Exchange, RoutingKey), and whether it is a redelivery.
// Unless the consumer auto-acks, settle it exactly once with Ack, Nack or
// Reject; settling twice returns ErrSettled.
type Delivery struct {
	Message
	// Exchange and RoutingKey are where the message was published.
	Exchange   string
	RoutingKey string
	// Redelivered is set when the message was handed out before and came
	// back to the queue (requeued, or its consumer went away unsettled).
	Redelivered bool
	// DeliveryCount is how many times the message was returned to the
	// queue before this delivery, where the backend counts it
	// (CapDeliveryCount).
	DeliveryCount int

	settler     driver.Settler // nil for auto-ack deliveries
	tag         uint64
	settled     atomic.Bool
	tel         *telemetry                        // nil without telemetry
	queue       string                            // for metrics and span names
	traceCtx    context.Context                   // the receipt's span, for TraceContext
	processSpan atomic.Pointer[trace.SpanContext] // set by StartProcess
}

// settle claims the delivery's one settlement.
func (d *Delivery) settle() error {
	if d.settler == nil {
		return fmt.Errorf("%w: the delivery came from an auto-ack consumer", ErrSettled)
	}
	if d.settled.Swap(true) {
		return ErrSettled
	}
	return nil
}

// Ack tells the backend the message was handled; it leaves the queue.
func (d *Delivery) Ack() error {
	if err := d.settle(); err != nil {
		return err
	}
	if d.tel == nil {
		return d.settler.Ack(d.tag)
	}
	span := d.tel.startSettle(d, opAck)
	err := d.settler.Ack(d.tag)
	d.endSettle(span, d.tel.acked, err)
	return err
}

// Nack gives the message back: with requeue it returns to its queue to be
// delivered again, marked redelivered (up to the queue's DeliveryLimit);
// without, it is dead-lettered or dropped, as Reject does.
func (d *Delivery) Nack(requeue bool) error {
	if err := d.settle(); err != nil {
		return err
	}
	if d.tel == nil {
		return d.settler.Nack(d.tag, requeue)
	}
	op, counter := opReject, d.tel.rejected
	if requeue {
		op, counter = opNack, d.tel.requeued
	}
	span := d.tel.startSettle(d, op)
	err := d.settler.Nack(d.tag, requeue)
	d.endSettle(span, counter, err)
	return err
}

// endSettle ends a settlement's span (nil without tracing) and counts it
// if it succeeded.
func (d *Delivery) endSettle(span trace.Span, counter metric.Int64Counter, err error) {
	if span != nil {
		endSpan(span, err)
	}
	if err == nil {
		d.tel.settled(d.queue, counter)
	}
}

// Reject refuses a message that cannot be handled (a poison message): it
// goes to the queue's dead-letter exchange, or is dropped. It is
// Nack(false), named for AMQP's basic.reject.
func (d *Delivery) Reject() error { return d.Nack(false) }
