package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-mq/switchyard/transport"
)

// rabbitBaseline is rabbit://'s raw baseline: github.com/rabbitmq/amqp091-go
// on the same broker, virtual host and credentials as the URL, publishing
// with a confirm for each message exactly when the driver does (its
// confirms option, default true), so that both give the same guarantee.
type rabbitBaseline struct {
	amqpURL  string // amqp://user:pass@host:port/vhost: it holds the password, never print it
	where    string // host and virtual host, for errors
	confirms bool
}

// rabbitServerPrefetch is the raw RPC server's prefetch, as the rpc
// server's default concurrency bound.
const rabbitServerPrefetch = 64

// newRabbitBaseline builds the amqp091-go URL from a rabbit:// URL's
// first host, credentials (guest/guest without) and virtual host (the
// driver's default "/" for none).
func newRabbitBaseline(tc *transport.URL) (*rabbitBaseline, error) {
	confirms := true
	if v := queryOption(tc, "confirms", ""); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("option confirms=%q is not true or false", v)
		}
		confirms = b
	}
	host, port := "localhost", 5672
	if len(tc.Hosts) > 0 {
		host = tc.Hosts[0].Name
		if tc.Hosts[0].Port != 0 {
			port = tc.Hosts[0].Port
		}
	}
	user, pass := tc.User, tc.Password
	if user == "" && !tc.HasPassword {
		user, pass = "guest", "guest"
	}
	vhost := tc.VirtualHost
	if vhost == "" {
		vhost = "/"
	}
	hostPort := net.JoinHostPort(host, strconv.Itoa(port))
	return &rabbitBaseline{
		amqpURL:  "amqp://" + url.UserPassword(user, pass).String() + "@" + hostPort + "/" + url.PathEscape(vhost),
		where:    fmt.Sprintf("%s, virtual host %q", hostPort, vhost),
		confirms: confirms,
	}, nil
}

func (*rabbitBaseline) name() string { return "raw amqp091-go" }

func (r *rabbitBaseline) dial() (*amqp.Connection, error) {
	conn, err := amqp.DialConfig(r.amqpURL, amqp.Config{
		Heartbeat: 10 * time.Second, Locale: "en_US", Dial: amqp.DefaultDial(30 * time.Second),
	})
	if err != nil {
		// amqp091-go's errors do not quote the URL, so the password
		// stays out of this one.
		return nil, fmt.Errorf("raw amqp091-go: connect to %s: %w", r.where, err)
	}
	return conn, nil
}

// dialPair connects the two sides; close closes both.
func (r *rabbitBaseline) dialPair() (a, b *amqp.Connection, close func() error, err error) {
	if a, err = r.dial(); err != nil {
		return nil, nil, nil, err
	}
	if b, err = r.dial(); err != nil {
		return nil, nil, nil, errors.Join(err, a.Close())
	}
	return a, b, func() error { return errors.Join(ignoreClosed(b.Close()), ignoreClosed(a.Close())) }, nil
}

func ignoreClosed(err error) error {
	if errors.Is(err, amqp.ErrClosed) {
		return nil
	}
	return err
}

// declareQueue declares a queue on a channel of conn and returns the
// function that deletes it, on a new channel (the first may have been
// closed by an error meanwhile).
func declareQueue(conn *amqp.Connection, name string, exclusive bool) (deleteQueue func() error, err error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	defer ch.Close()
	if _, err := ch.QueueDeclare(name, false, false, exclusive, false, nil); err != nil {
		return nil, fmt.Errorf("declare queue %s: %w", name, err)
	}
	return func() error {
		ch, err := conn.Channel()
		if err != nil {
			return fmt.Errorf("delete queue %s: %w", name, err)
		}
		defer ch.Close()
		if _, err := ch.QueueDelete(name, false, false, false); err != nil {
			return fmt.Errorf("delete queue %s: %w", name, err)
		}
		return nil
	}, nil
}

// publisher returns a channel of conn and its publish function, which
// waits for the broker's confirm when r confirms.
func (r *rabbitBaseline) publisher(conn *amqp.Connection) (func(ctx context.Context, key string, p amqp.Publishing) error, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	if !r.confirms {
		return func(ctx context.Context, key string, p amqp.Publishing) error {
			return ch.PublishWithContext(ctx, "", key, false, false, p)
		}, nil
	}
	if err := ch.Confirm(false); err != nil {
		return nil, err
	}
	return func(ctx context.Context, key string, p amqp.Publishing) error {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", key, false, false, p)
		if err != nil {
			return err
		}
		ok, err := dc.WaitContext(ctx)
		if err == nil && !ok {
			err = errors.New("the broker refused the message (basic.nack)")
		}
		return err
	}, nil
}

// consume starts a consumer on a new channel of conn.
func consume(conn *amqp.Connection, queue string, autoAck, exclusive bool, prefetch int) (<-chan amqp.Delivery, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	if prefetch > 0 {
		if err := ch.Qos(prefetch, 0, false); err != nil {
			return nil, err
		}
	}
	return ch.Consume(queue, "", autoAck, exclusive, false, false, nil)
}

// next receives one delivery, until ctx ends.
func next(ctx context.Context, deliveries <-chan amqp.Delivery) (amqp.Delivery, error) {
	select {
	case d, ok := <-deliveries:
		if !ok {
			return d, errors.New("the consumer's channel closed")
		}
		return d, nil
	case <-ctx.Done():
		return amqp.Delivery{}, ctx.Err()
	}
}

func (r *rabbitBaseline) publish(ctx context.Context, lim benchLimits, ack bool, m *meter) (err error) {
	pubConn, subConn, closeBoth, err := r.dialPair()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, closeBoth()) }()
	q := benchName("raw-publish")
	deleteQueue, err := declareQueue(subConn, q, false)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, deleteQueue()) }()
	prefetch := 0
	if ack {
		prefetch = ackPrefetch
	}
	deliveries, err := consume(subConn, q, !ack, false, prefetch)
	if err != nil {
		return err
	}
	send, err := r.publisher(pubConn)
	if err != nil {
		return err
	}
	msg := amqp.Publishing{Body: benchBody(lim.size)}
	publish := func(ctx context.Context) error { return send(ctx, q, msg) }
	receive := func(ctx context.Context) error {
		d, err := next(ctx, deliveries)
		if err != nil || !ack {
			return err
		}
		return d.Ack(false)
	}
	if err := publish(ctx); err != nil {
		return fmt.Errorf("warm-up publish: %w", err)
	}
	if err := receive(ctx); err != nil {
		return fmt.Errorf("warm-up receive: %w", err)
	}
	return m.measure(ctx, lim.duration, func(ctx context.Context) error {
		return streamLoop(ctx, lim.messages, m, publish, receive)
	})
}

// rpc is request and reply as a careful amqp091-go user writes it: the
// server consumes a request queue (manual ack, prefetch 64) and publishes
// each reply to the request's reply_to with its correlation id, from one
// goroutine per caller; the client consumes an exclusive reply queue
// (auto-ack) and hands each reply to its caller by correlation id.
func (r *rabbitBaseline) rpc(ctx context.Context, lim benchLimits, callers int, m *meter) (err error) {
	serverConn, clientConn, closeBoth, err := r.dialPair()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, closeBoth()) }()
	requestQ, replyQ := benchName("raw-rpc"), benchName("raw-reply")
	deleteRequests, err := declareQueue(serverConn, requestQ, false)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, deleteRequests()) }()
	deleteReplies, err := declareQueue(clientConn, replyQ, true)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, deleteReplies()) }()
	requests, err := consume(serverConn, requestQ, false, false, rabbitServerPrefetch)
	if err != nil {
		return err
	}
	replies, err := consume(clientConn, replyQ, true, true, 0)
	if err != nil {
		return err
	}
	reply, err := r.publisher(serverConn)
	if err != nil {
		return err
	}
	request, err := r.publisher(clientConn)
	if err != nil {
		return err
	}

	pending := newPendingCalls(callers)
	loopCtx, stopLoops := context.WithCancel(ctx)
	var loops sync.WaitGroup
	defer func() { stopLoops(); loops.Wait() }()
	// The server handles as many requests at once as there are callers,
	// as the rpc server's workers do: a reply waiting for its confirm
	// does not hold up the others.
	for range min(callers, rabbitServerPrefetch) {
		loops.Go(func() {
			for {
				d, err := next(loopCtx, requests)
				if err == nil {
					err = d.Ack(false)
				}
				if err == nil {
					err = reply(loopCtx, d.ReplyTo, amqp.Publishing{CorrelationId: d.CorrelationId, Body: d.Body})
				}
				if err != nil {
					pending.fail(loopCtx, fmt.Errorf("server: %w", err))
					return
				}
			}
		})
	}
	loops.Go(func() { // the client's reply dispatcher
		for {
			d, err := next(loopCtx, replies)
			if err != nil {
				pending.fail(loopCtx, fmt.Errorf("replies: %w", err))
				return
			}
			pending.deliver(d.CorrelationId)
		}
	})

	body := benchBody(lim.size)
	call := func(ctx context.Context, caller int) error {
		id, done := pending.add(caller)
		if err := request(ctx, requestQ, amqp.Publishing{ReplyTo: replyQ, CorrelationId: id, Body: body}); err != nil {
			return err
		}
		return pending.wait(ctx, done)
	}
	if err := call(ctx, 0); err != nil {
		return fmt.Errorf("warm-up call: %w", err)
	}
	return m.measure(ctx, lim.duration, func(ctx context.Context) error {
		return callLoop(ctx, lim.messages, callers, m, call)
	})
}

// pendingCalls hands replies to their callers by correlation id, as a raw
// RPC client does. Each caller has one call outstanding at a time.
type pendingCalls struct {
	mu      sync.Mutex
	seq     uint64
	waiting map[string]chan struct{}
	done    []chan struct{} // per caller, reused
	failed  chan struct{}   // closed with err on a server or dispatcher failure
	err     error
}

func newPendingCalls(callers int) *pendingCalls {
	p := &pendingCalls{waiting: map[string]chan struct{}{}, done: make([]chan struct{}, callers), failed: make(chan struct{})}
	for i := range p.done {
		p.done[i] = make(chan struct{}, 1)
	}
	return p
}

// add registers a call of caller and returns its correlation id and the
// channel its reply signals.
func (p *pendingCalls) add(caller int) (string, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq++
	id := strconv.FormatUint(p.seq, 10)
	done := p.done[caller]
	select { // a reply that came after its caller gave up
	case <-done:
	default:
	}
	p.waiting[id] = done
	return id, done
}

func (p *pendingCalls) deliver(id string) {
	p.mu.Lock()
	done, ok := p.waiting[id]
	delete(p.waiting, id)
	p.mu.Unlock()
	if ok {
		select {
		case done <- struct{}{}:
		default: // its caller gave up, at the end of the run
		}
	}
}

func (p *pendingCalls) wait(ctx context.Context, done chan struct{}) error {
	select {
	case <-done:
		return nil
	case <-p.failed:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fail fails the calls, unless ctx ended: that is the loops stopping.
func (p *pendingCalls) fail(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
		close(p.failed)
	}
}

// queryOption is the last value of a URL's query option, or def.
func queryOption(u *transport.URL, name, def string) string {
	if vs := u.Options[name]; len(vs) > 0 {
		return vs[len(vs)-1]
	}
	return def
}
