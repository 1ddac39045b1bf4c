// Package memory is Switchyard's in-process broker, registered as the
// memory:// transport scheme. It needs no server: the tutorials, the tour
// and unit tests run on it, and it is the reference behaviour every other
// driver is held to by the conformance suite.
//
// It implements the whole portable model as RabbitMQ documents it:
// direct, fanout and topic exchanges (plus RabbitMQ's predeclared
// amq.direct, amq.fanout and amq.topic); named and server-named queues;
// durable, exclusive and auto-delete flags; message and queue TTL; max
// length with drop-head overflow; dead-lettering with x-death headers; a
// delivery limit for poison messages; mandatory publishing; competing
// consumers with prefetch (fair dispatch at prefetch 1); ack, nack with
// requeue and reject; unsettled deliveries of a consumer that stops return
// to the queue marked redelivered.
//
// memory:// is one broker per process; memory://NAME is a separate broker
// called NAME. A broker lives as long as the process, so a message sent on
// one transport waits in its queue for a transport opened later. Nothing
// survives the process, and other processes cannot reach it.
//
// Durable here means what it can mean for a broker that is the process
// (transport.CapDurable): durable exchanges and queues, and the persistent
// messages in them, survive every transport closing and new ones opening,
// as they survive a broker restart on RabbitMQ; they do not survive the
// process. A queue that is not durable, exclusive nor auto-delete lives as
// long, since this broker never restarts while its process runs.
//
// Import it for its side effect:
//
//	import _ "github.com/switchyard-mq/switchyard/drivers/memory"
//
// # Over AMQP 0-9-1
//
// A Server serves a broker of this process to other processes over
// AMQP 0-9-1, RabbitMQ's protocol: pika, oslo.messaging and amqp091-go
// (so the rabbit:// driver) reach it over TCP as they reach RabbitMQ,
// while the process's memory://NAME transports use the same queues.
// NewServer and Serve run it in a test or a program; switchyard broker
// (examples/switchyard) runs it from a terminal.
//
// It negotiates as RabbitMQ 3 does: PLAIN and AMQPLAIN, users that may
// log in only from loopback (guest by default), heartbeats (a client that
// misses two is closed), frame_max and channel_max, and the capabilities
// clients rely on: publisher confirms, basic.nack, consumer cancel
// notification, connection.blocked, authentication failure close and
// per-consumer qos; its "product" server property is ServerProduct. Errors
// close the channel or the connection with RabbitMQ's codes and texts: 404
// NOT_FOUND, 403 ACCESS_REFUSED, 405 RESOURCE_LOCKED and 406
// PRECONDITION_FAILED close the channel; a frame that is malformed, too
// large or of an unknown type is 501 FRAME_ERROR, a method that does not
// decode 501 too (as RabbitMQ answers), an unknown class or method 540
// NOT_IMPLEMENTED, a content frame out of place 505 UNEXPECTED_FRAME, a
// method on a channel not open 504 CHANNEL_ERROR, a method out of place
// 503 COMMAND_INVALID; a panic closes only its connection, with 541
// INTERNAL_ERROR, and is logged. A wrong protocol header gets the header
// this server speaks, and the end of the connection.
//
// AMQP properties the portable model has no field for (priority, type,
// app id, user id, cluster id, the exact delivery mode) pass through
// unchanged. The queue arguments the model has are declared
// (x-message-ttl, x-expires, x-max-length, x-dead-letter-exchange and
// routing key, x-delivery-limit, x-queue-type classic or quorum: a quorum
// queue is kept like any other), per-message expiration too; what RabbitMQ
// has and this broker has not is refused with 540 NOT_IMPLEMENTED:
// headers exchanges, exchange-to-exchange bindings, alternate and internal
// exchanges, streams, x-max-priority, x-max-length-bytes, single active
// consumer, x-overflow other than drop-head, transactions, channel.flow
// off and basic.recover without requeue. One virtual host, "/".
package memory

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-mq/switchyard/router"
	"github.com/switchyard-mq/switchyard/transport"
	"github.com/switchyard-mq/switchyard/transport/driver"
	"github.com/switchyard-mq/switchyard/transport/driver/option"
)

// Scheme is the URL scheme this driver registers.
const Scheme = "memory"

// brokers is the process's brokers, by name: the memory:// driver and
// the AMQP server (Server) share them.
var brokers = &opener{brokers: map[string]*broker{}}

func init() {
	transport.Register(Scheme, brokers)
}

// opener holds the process's brokers, by name; it lives in the transport
// registry.
type opener struct {
	mu      sync.Mutex
	brokers map[string]*broker
}

// options are the URL options memory:// takes: the portable ones, which
// the rpc and notify layers read.
var options = option.NewSet(option.Portable()...)

func (o *opener) Open(ctx context.Context, cfg *driver.URL) (driver.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if _, err := options.Parse(cfg); err != nil {
		return nil, err
	}
	var name string
	switch {
	case len(cfg.Hosts) > 1:
		return nil, fmt.Errorf("%w: memory:// takes one broker name, not %d hosts", driver.ErrInvalid, len(cfg.Hosts))
	case len(cfg.Hosts) == 1 && cfg.Hosts[0].Port != 0:
		return nil, fmt.Errorf("%w: memory://%s: a broker name has no port", driver.ErrInvalid, cfg.Hosts[0])
	case cfg.User != "" || cfg.HasPassword:
		return nil, fmt.Errorf("%w: memory:// takes no credentials", driver.ErrInvalid)
	case cfg.VirtualHost != "":
		return nil, fmt.Errorf("%w: memory:// takes no virtual host (got %q); use memory://NAME for a separate broker", driver.ErrInvalid, cfg.VirtualHost)
	case len(cfg.Hosts) == 1:
		name = cfg.Hosts[0].Name
	}
	return newConn(o.broker(name, cfg.Logger)), nil
}

// broker returns the named broker, starting it if need be.
func (o *opener) broker(name string, logger *slog.Logger) *broker {
	o.mu.Lock()
	defer o.mu.Unlock()
	b, ok := o.brokers[name]
	if !ok {
		b = newBroker(name, logger)
		o.brokers[name] = b
	}
	return b
}

func newConn(b *broker) *conn {
	return &conn{b: b, consumers: map[*consumer]struct{}{}}
}

// broker is one in-process message broker.
type broker struct {
	name   string
	logger *slog.Logger
	epoch  time.Time // anchors now

	mu        sync.RWMutex // guards exchanges and queues
	exchanges map[string]*exchange
	queues    map[string]*queue
	routes    *router.Table[*queue]
}

type exchange struct {
	decl       driver.Exchange
	hadBinding bool // auto-delete applies only once bound
}

func newBroker(name string, logger *slog.Logger) *broker {
	b := &broker{
		name:      name,
		epoch:     time.Now(),
		logger:    logger.With("broker", "memory://"+name),
		exchanges: map[string]*exchange{},
		queues:    map[string]*queue{},
		routes:    router.New[*queue](),
	}
	// RabbitMQ predeclares these; programs written for it expect them.
	for _, ex := range []driver.Exchange{
		{Name: "amq.direct", Kind: driver.Direct, Durable: true},
		{Name: "amq.fanout", Kind: driver.Fanout, Durable: true},
		{Name: "amq.topic", Kind: driver.Topic, Durable: true},
	} {
		b.exchanges[ex.Name] = &exchange{decl: ex}
		_ = b.routes.DeclareExchange(ex.Name, router.Kind(ex.Kind))
	}
	return b
}

// now is monotonic nanoseconds since the broker started, so that message
// TTLs are immune to wall-clock jumps and fit in an int64.
func (b *broker) now() int64 { return int64(time.Since(b.epoch)) }

func (b *broker) String() string { return "memory://" + b.name }

func (b *broker) errNoQueue(name string) error {
	return fmt.Errorf("%w: no queue %q in %s", driver.ErrNotFound, name, b)
}

func (b *broker) errNoExchange(name string) error {
	return fmt.Errorf("%w: no exchange %q in %s", driver.ErrNotFound, name, b)
}

// lookupQueue returns the named queue, checking exclusive ownership.
func (b *broker) lookupQueue(name string, by *conn) (*queue, error) {
	b.mu.RLock()
	q := b.queues[name]
	b.mu.RUnlock()
	if q == nil {
		return nil, b.errNoQueue(name)
	}
	if q.owner != nil && q.owner != by {
		return nil, fmt.Errorf("%w: queue %q is exclusive to another connection", driver.ErrInUse, name)
	}
	return q, nil
}

func (b *broker) declareExchange(ex driver.Exchange) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if cur, ok := b.exchanges[ex.Name]; ok {
		if cur.decl != ex {
			return fmt.Errorf("%w: exchange %q exists as %+v, declared as %+v", driver.ErrPrecondition, ex.Name, cur.decl, ex)
		}
		return nil
	}
	if err := b.routes.DeclareExchange(ex.Name, router.Kind(ex.Kind)); err != nil {
		return fmt.Errorf("%w: %v", driver.ErrPrecondition, err)
	}
	b.exchanges[ex.Name] = &exchange{decl: ex}
	return nil
}

func (b *broker) deleteExchange(name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.exchanges, name)
	b.routes.DeleteExchange(name)
}

// dropUnboundAutoDeleteLocked deletes auto-delete exchanges that lost
// their last binding. b.mu must be held.
func (b *broker) dropUnboundAutoDeleteLocked() {
	for name, ex := range b.exchanges {
		if ex.decl.AutoDelete && ex.hadBinding && !b.routes.HasBindings(name) {
			delete(b.exchanges, name)
			b.routes.DeleteExchange(name)
		}
	}
}

func (b *broker) bind(bd driver.Binding, by *conn) error {
	q, err := b.lookupQueue(bd.Queue, by)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	ex, ok := b.exchanges[bd.Exchange]
	if !ok {
		return b.errNoExchange(bd.Exchange)
	}
	if b.queues[bd.Queue] != q {
		return b.errNoQueue(bd.Queue)
	}
	if err := b.routes.Bind(bd.Exchange, bd.Key, q); err != nil {
		return fmt.Errorf("%w: %v", driver.ErrNotFound, err)
	}
	ex.hadBinding = true
	return nil
}

func (b *broker) unbind(bd driver.Binding, by *conn) error {
	q, err := b.lookupQueue(bd.Queue, by)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.exchanges[bd.Exchange]; !ok {
		return b.errNoExchange(bd.Exchange)
	}
	if _, err := b.routes.Unbind(bd.Exchange, bd.Key, q); err != nil {
		return fmt.Errorf("%w: %v", driver.ErrNotFound, err)
	}
	b.dropUnboundAutoDeleteLocked()
	return nil
}

func (b *broker) declareQueue(decl driver.Queue, by *conn) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if decl.Name == "" {
		for decl.Name == "" || b.queues[decl.Name] != nil {
			decl.Name = "amq.gen-" + randomName()
		}
	}
	if q, ok := b.queues[decl.Name]; ok {
		if q.owner != nil && q.owner != by {
			return "", fmt.Errorf("%w: queue %q is exclusive to another connection", driver.ErrInUse, decl.Name)
		}
		if q.decl != decl {
			return "", fmt.Errorf("%w: queue %q exists as %+v, declared as %+v", driver.ErrPrecondition, decl.Name, q.decl, decl)
		}
		q.touch()
		return decl.Name, nil
	}
	q := newQueue(b, decl)
	if decl.Exclusive {
		q.owner = by
		if !by.addExclusive(q) {
			return "", driver.ErrClosed // by closed meanwhile: it would never delete q
		}
	}
	b.queues[decl.Name] = q
	q.touch()
	return decl.Name, nil
}

// deleteQueue removes q if it is still registered, ends its consumers, and
// returns how many ready messages it held and whether it deleted q. If
// onlyIf is not nil, q is deleted only if onlyIf, called with b.mu and q.mu
// held, returns true: auto-delete and idle expiry decide atomically with
// the deletion, so that a consumer or a redeclaration arriving meanwhile
// keeps the queue alive.
func (b *broker) deleteQueue(q *queue, onlyIf func() bool) (int, bool) {
	b.mu.Lock()
	if b.queues[q.decl.Name] != q {
		b.mu.Unlock()
		return 0, false
	}
	n, consumers, ok := q.markDeleted(onlyIf)
	if !ok {
		b.mu.Unlock()
		return 0, false
	}
	delete(b.queues, q.decl.Name)
	b.routes.RemoveDestination(q)
	b.dropUnboundAutoDeleteLocked()
	b.mu.Unlock()
	if q.owner != nil {
		q.owner.removeExclusive(q)
	}
	for _, c := range consumers {
		c.cancel()
	}
	return n, true
}

// queuedBytes sums the bodies of the messages ready in b's queues.
func (b *broker) queuedBytes() int64 {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var n int64
	for _, q := range b.queues {
		q.mu.Lock()
		n += q.readyBytes
		q.mu.Unlock()
	}
	return n
}

// publish routes m and enqueues it on every queue it reaches, returning
// how many that was.
func (b *broker) publish(exchange, key string, m *message) (int, error) {
	var buf [4]*queue
	targets := buf[:0]
	if exchange == "" {
		b.mu.RLock()
		if q := b.queues[key]; q != nil {
			targets = append(targets, q)
		}
		b.mu.RUnlock()
	} else {
		var err error
		if targets, err = b.routes.Route(exchange, key, targets); err != nil {
			if errors.Is(err, router.ErrExchangeNotFound) {
				return 0, b.errNoExchange(exchange)
			}
			return 0, err
		}
	}
	delivered := 0
	for _, q := range targets {
		if q.isDeadLetterCycle(m) {
			b.logger.DebugContext(context.Background(), "dead-letter cycle: message dropped", "queue", q.decl.Name)
			continue
		}
		if q.enqueue(m) {
			delivered++
		}
	}
	return delivered, nil
}

// deadLetter republishes dead messages to their queues' dead-letter
// exchanges. It must be called with no queue or consumer lock held.
func (b *broker) deadLetter(dead []deadLetter) {
	for _, d := range dead {
		if d.exchange == "" {
			continue
		}
		if _, err := b.publish(d.exchange, d.key, d.msg); err != nil {
			b.logger.WarnContext(context.Background(), "dead-lettering failed; message dropped", "queue", d.queue, "reason", d.reason, "err", err)
		}
	}
}

func randomName() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// conn is one transport's connection to a broker.
type conn struct {
	b *broker

	// closed is atomic so that Publish, the hot path, checks it without
	// the lock; it is set under mu, so holders of mu see it settled.
	closed atomic.Bool

	mu        sync.Mutex
	consumers map[*consumer]struct{}
	exclusive []*queue
}

// Capabilities: everything but what needs a process boundary (durable
// means as long as the process; see the package documentation) and
// RabbitMQ's replicated queue types.
func (c *conn) Capabilities() driver.Capabilities {
	return driver.NewCapabilities(driver.AllCapabilities()...).Without(driver.CapCrossProcess, driver.CapQuorumQueue, driver.CapStreamQueue)
}

func (c *conn) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.closed.Load() {
		return driver.ErrClosed
	}
	return nil
}

// addExclusive records q as owned by c, so that Close deletes it; it
// reports false if c is already closed.
func (c *conn) addExclusive(q *queue) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return false
	}
	c.exclusive = append(c.exclusive, q)
	return true
}

func (c *conn) removeExclusive(q *queue) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, e := range c.exclusive {
		if e == q {
			c.exclusive = append(c.exclusive[:i], c.exclusive[i+1:]...)
			return
		}
	}
}

func (c *conn) DeclareExchange(ctx context.Context, ex driver.Exchange) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	return c.b.declareExchange(ex)
}

func (c *conn) DeleteExchange(ctx context.Context, name string) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	c.b.deleteExchange(name)
	return nil
}

func (c *conn) DeclareQueue(ctx context.Context, q driver.Queue) (string, error) {
	if err := c.check(ctx); err != nil {
		return "", err
	}
	return c.b.declareQueue(q, c)
}

func (c *conn) DeleteQueue(ctx context.Context, name string) (int, error) {
	if err := c.check(ctx); err != nil {
		return 0, err
	}
	q, err := c.b.lookupQueue(name, c)
	if errors.Is(err, driver.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, _ := c.b.deleteQueue(q, nil)
	return n, nil
}

func (c *conn) PurgeQueue(ctx context.Context, name string) (int, error) {
	if err := c.check(ctx); err != nil {
		return 0, err
	}
	q, err := c.b.lookupQueue(name, c)
	if err != nil {
		return 0, err
	}
	return q.purge(), nil
}

func (c *conn) Bind(ctx context.Context, bd driver.Binding) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	return c.b.bind(bd, c)
}

func (c *conn) Unbind(ctx context.Context, bd driver.Binding) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	return c.b.unbind(bd, c)
}

func (c *conn) Publish(ctx context.Context, exchange, key string, msg driver.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.closed.Load() {
		return driver.ErrClosed
	}
	for k, v := range msg.Headers {
		if err := checkHeaderValue(v); err != nil {
			return fmt.Errorf("%w: header %q: %v", driver.ErrInvalid, k, err)
		}
	}
	n, err := c.b.publish(exchange, key, newMessage(msg, exchange, key))
	if err != nil {
		return err
	}
	if n == 0 && msg.Mandatory {
		return fmt.Errorf("%w: no queue bound to exchange %q matches key %q in %s", driver.ErrUnroutable, exchange, key, c.b)
	}
	return nil
}

// checkHeaderValue refuses what driver.Headers says no backend carries, so
// that code tried on memory:// does not fail on a broker first.
func checkHeaderValue(v any) error {
	switch x := v.(type) {
	case nil, bool, string, []byte, time.Time,
		int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return nil
	case driver.Headers:
		return checkHeaderMap(x)
	case map[string]any:
		return checkHeaderMap(x)
	case []any:
		for i, e := range x {
			if err := checkHeaderValue(e); err != nil {
				return fmt.Errorf("element %d: %w", i, err)
			}
		}
		return nil
	}
	return fmt.Errorf("a %T is not a header value (strings, booleans, numbers, []byte, time.Time, nested Headers and []any are)", v)
}

func checkHeaderMap(h map[string]any) error {
	for k, v := range h {
		if err := checkHeaderValue(v); err != nil {
			return fmt.Errorf("%q: %w", k, err)
		}
	}
	return nil
}

func (c *conn) Consume(ctx context.Context, queueName string, opts driver.ConsumeOptions) (driver.Consumer, error) {
	if err := c.check(ctx); err != nil {
		return nil, err
	}
	q, err := c.b.lookupQueue(queueName, c)
	if err != nil {
		return nil, err
	}
	cons := newConsumer(q, c, opts)
	c.mu.Lock()
	if c.closed.Load() {
		c.mu.Unlock()
		return nil, driver.ErrClosed
	}
	c.consumers[cons] = struct{}{}
	c.mu.Unlock()
	if err := q.addConsumer(cons); err != nil {
		c.forget(cons)
		return nil, err
	}
	return cons, nil
}

func (c *conn) forget(cons *consumer) {
	c.mu.Lock()
	delete(c.consumers, cons)
	c.mu.Unlock()
}

// As implements driver.Conn: memory:// has no client to reach.
func (c *conn) As(any) bool { return false }

// Close ends the connection's consumers and deletes its exclusive queues.
func (c *conn) Close() error {
	c.mu.Lock()
	if c.closed.Swap(true) {
		c.mu.Unlock()
		return nil
	}
	consumers := make([]*consumer, 0, len(c.consumers))
	for cons := range c.consumers {
		consumers = append(consumers, cons)
	}
	exclusive := append([]*queue(nil), c.exclusive...)
	c.mu.Unlock()
	for _, cons := range consumers {
		_ = cons.Close()
	}
	for _, q := range exclusive {
		c.b.deleteQueue(q, nil)
	}
	return nil
}
