package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-mq/switchyard/internal/rabbitmq"
	"github.com/switchyard-mq/switchyard/transport"
	"github.com/switchyard-mq/switchyard/transport/driver/option"
)

// rabbitClient is rabbit://'s raw baseline: github.com/rabbitmq/amqp091-go
// on the same broker, virtual host and credentials as the URL, publishing
// with a confirm for each message exactly when the driver does (its
// confirms option, default true), so that both give the same guarantee.
type rabbitClient struct {
	amqpURL  string // amqp://user:pass@host:port/vhost: it holds the password, never print it
	where    string // host and virtual host, for errors
	confirms bool
}

// rabbitOptions are the rabbit driver's options its raw client follows,
// read with the driver's own declarations.
var rabbitOptions = option.NewSet(rabbitmq.Confirms)

// rabbitServerPrefetch is the raw RPC server's prefetch, as the rpc
// server's default concurrency bound.
const rabbitServerPrefetch = 64

// newRabbitClient builds the amqp091-go URL from a rabbit:// URL's first
// host, credentials (guest/guest without) and virtual host (the driver's
// default "/" for none).
func newRabbitClient(u *transport.URL) (*rabbitClient, error) {
	values, err := rabbitOptions.Pick(u)
	if err != nil {
		return nil, err
	}
	user, pass := u.User, u.Password
	if user == "" && !u.HasPassword {
		user, pass = "guest", "guest"
	}
	vhost := u.VirtualHost
	if vhost == "" {
		vhost = "/"
	}
	hostPort := firstHost(u)
	return &rabbitClient{
		amqpURL:  "amqp://" + url.UserPassword(user, pass).String() + "@" + hostPort + "/" + url.PathEscape(vhost),
		where:    fmt.Sprintf("%s, virtual host %q", hostPort, vhost),
		confirms: rabbitmq.Confirms.Get(values),
	}, nil
}

// firstHost is the host:port of u's first host, as the drivers default
// them: localhost, AMQP's port 5672.
func firstHost(u *transport.URL) string {
	host, port := "localhost", 5672
	if len(u.Hosts) > 0 {
		host = u.Hosts[0].Name
		if u.Hosts[0].Port != 0 {
			port = u.Hosts[0].Port
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

func (*rabbitClient) name() string { return "raw amqp091-go" }

func (r *rabbitClient) dial() (*amqp.Connection, error) {
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
func (r *rabbitClient) dialPair() (a, b *amqp.Connection, close func() error, err error) {
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

// onChannel runs step on a channel of conn of its own, closed after it
// (a failed step closes its channel, and a later step needs a new one);
// an error says what the step was.
func onChannel(conn *amqp.Connection, what string, step func(*amqp.Channel) error) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer ch.Close()
	if err := step(ch); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// declareQueue declares a queue on a channel of conn and returns the
// function that deletes it, on a new channel (the first may have been
// closed by an error meanwhile).
func declareQueue(conn *amqp.Connection, name string, exclusive bool) (deleteQueue func() error, err error) {
	if err := onChannel(conn, "declare queue "+name, func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclare(name, false, false, exclusive, false, nil)
		return err
	}); err != nil {
		return nil, err
	}
	return func() error {
		return onChannel(conn, "delete queue "+name, func(ch *amqp.Channel) error {
			_, err := ch.QueueDelete(name, false, false, false)
			return err
		})
	}, nil
}

// publisher returns a channel of conn and its publish function to
// exchange ("" for the default exchange), which waits for the broker's
// confirm when r confirms.
func (r *rabbitClient) publisher(conn *amqp.Connection, exchange string) (func(ctx context.Context, key string, p amqp.Publishing) error, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	if !r.confirms {
		return func(ctx context.Context, key string, p amqp.Publishing) error {
			return ch.PublishWithContext(ctx, exchange, key, false, false, p)
		}, nil
	}
	if err := ch.Confirm(false); err != nil {
		return nil, err
	}
	return confirmedPublish(ch, exchange, false), nil
}

// confirmedPublish returns the publish function of ch, in confirm mode, to
// exchange: it waits for each confirm.
func confirmedPublish(ch *amqp.Channel, exchange string, mandatory bool) func(ctx context.Context, key string, p amqp.Publishing) error {
	return func(ctx context.Context, key string, p amqp.Publishing) error {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, mandatory, false, p)
		if err != nil {
			return err
		}
		ok, err := dc.WaitContext(ctx)
		if err == nil && !ok {
			err = errors.New("the broker refused the message (basic.nack)")
		}
		return err
	}
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

func (r *rabbitClient) publish(ctx context.Context, lim Limits, ack bool, m *meter) (err error) {
	pubConn, subConn, closeBoth, err := r.dialPair()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, closeBoth()) }()
	q := uniqueName("raw-publish")
	deleteQueue, err := declareQueue(subConn, q, false)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, deleteQueue()) }()
	prefetch := 0
	if ack {
		prefetch = AckPrefetch
	}
	deliveries, err := consume(subConn, q, !ack, false, prefetch)
	if err != nil {
		return err
	}
	send, err := r.publisher(pubConn, "")
	if err != nil {
		return err
	}
	msg := amqp.Publishing{Body: body(lim.Size)}
	publish := func(ctx context.Context) error { return send(ctx, q, msg) }
	receive := func(ctx context.Context) error {
		d, err := next(ctx, deliveries)
		if err != nil || !ack {
			return err
		}
		return d.Ack(false)
	}
	return measureStream(ctx, lim, m, publish, receive)
}

// rpc is request and reply as a careful amqp091-go user writes it: the
// server consumes a request queue (manual ack, prefetch 64) and publishes
// each reply to the request's reply_to with its correlation id, from one
// goroutine per caller; the client consumes an exclusive reply queue
// (auto-ack) and hands each reply to its caller by correlation id.
func (r *rabbitClient) rpc(ctx context.Context, lim Limits, callers int, m *meter) (err error) {
	q, closeRPC, err := r.openRPC("raw-rpc", "raw-reply", "")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, closeRPC()) }()
	reply, err := r.publisher(q.serverConn, "")
	if err != nil {
		return err
	}
	request, err := r.publisher(q.clientConn, "")
	if err != nil {
		return err
	}

	calls := newRawCalls(ctx, callers)
	defer calls.stop()
	q.serve(calls, callers, reply, func(d amqp.Delivery) (string, amqp.Publishing, bool) {
		return d.ReplyTo, amqp.Publishing{CorrelationId: d.CorrelationId, Body: d.Body}, true
	}, func(d amqp.Delivery) (string, error) { return d.CorrelationId, nil })

	body := body(lim.Size)
	return measureCalls(ctx, lim, callers, m, func(ctx context.Context, caller int) error {
		return calls.call(ctx, caller, func(id string) error {
			return request(ctx, q.requestQ, amqp.Publishing{ReplyTo: q.replyQ, CorrelationId: id, Body: body})
		})
	})
}

// rpcQueues are a raw RPC run's connections, queues and consumers.
type rpcQueues struct {
	serverConn, clientConn *amqp.Connection
	requestQ, replyQ       string
	requests, replies      <-chan amqp.Delivery
}

// openRPC dials the server's and the client's connections, declares the
// request queue (bound by its name to exchange, a topic exchange it
// declares, unless exchange is "") and the client's exclusive reply
// queue, named from the prefixes, and consumes them: the requests with
// manual ack and rabbitServerPrefetch, the replies with auto-ack. closeRPC
// deletes what it declared and closes the connections.
func (r *rabbitClient) openRPC(requestPrefix, replyPrefix, exchange string) (q *rpcQueues, closeRPC func() error, err error) {
	q = &rpcQueues{requestQ: uniqueName(requestPrefix), replyQ: uniqueName(replyPrefix)}
	serverConn, clientConn, closeBoth, err := r.dialPair()
	if err != nil {
		return nil, nil, err
	}
	q.serverConn, q.clientConn = serverConn, clientConn
	undo := undoStack{closeBoth}
	closeRPC = undo.undo
	defer func() {
		if err != nil {
			err = errors.Join(err, closeRPC())
		}
	}()
	if exchange != "" {
		deleteExchange, err := declareTopicExchange(serverConn, exchange)
		if err != nil {
			return nil, nil, err
		}
		undo = append(undo, deleteExchange)
	}
	deleteRequests, err := declareQueue(serverConn, q.requestQ, false)
	if err != nil {
		return nil, nil, err
	}
	undo = append(undo, deleteRequests)
	if exchange != "" {
		if err := bindQueue(serverConn, q.requestQ, exchange); err != nil {
			return nil, nil, err
		}
	}
	deleteReplies, err := declareQueue(clientConn, q.replyQ, true)
	if err != nil {
		return nil, nil, err
	}
	undo = append(undo, deleteReplies)
	if q.requests, err = consume(serverConn, q.requestQ, false, false, rabbitServerPrefetch); err != nil {
		return nil, nil, err
	}
	if q.replies, err = consume(clientConn, q.replyQ, true, true, 0); err != nil {
		return nil, nil, err
	}
	return q, closeRPC, nil
}

// serve runs q's server, as many handlers at once as there are callers
// (up to the prefetch), as the rpc server's workers do: each acks a
// request, then publishes what answer makes of it (nothing if answer says
// so) to the queue it names. And it runs the reply dispatcher, handing
// each reply to its caller by the id idOf reads from it. A failure fails
// calls.
func (q *rpcQueues) serve(calls *rawCalls, callers int, reply func(ctx context.Context, key string, p amqp.Publishing) error,
	answer func(amqp.Delivery) (replyTo string, p amqp.Publishing, ok bool), idOf func(amqp.Delivery) (string, error)) {
	for range min(callers, rabbitServerPrefetch) {
		calls.run("server", func(ctx context.Context) error {
			for {
				d, err := next(ctx, q.requests)
				if err != nil {
					return err
				}
				if err := d.Ack(false); err != nil {
					return err
				}
				replyTo, p, ok := answer(d)
				if !ok {
					continue
				}
				if err := reply(ctx, replyTo, p); err != nil {
					return err
				}
			}
		})
	}
	calls.run("replies", func(ctx context.Context) error {
		for {
			d, err := next(ctx, q.replies)
			if err != nil {
				return err
			}
			id, err := idOf(d)
			if err != nil {
				return err
			}
			calls.deliver(id)
		}
	})
}

// undoStack holds what a setup must undo, in the order it was done; undo
// undoes it in reverse, joining the errors. Take undo as a method value of
// the variable, so that it undoes what is added after.
type undoStack []func() error

func (u *undoStack) undo() error {
	var errs []error
	for i := len(*u) - 1; i >= 0; i-- {
		errs = append(errs, (*u)[i]())
	}
	return errors.Join(errs...)
}
