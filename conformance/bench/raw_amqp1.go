package bench

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/switchyard-mq/switchyard/drivers/amqp1"
	"github.com/switchyard-mq/switchyard/transport"
	"github.com/switchyard-mq/switchyard/transport/driver/option"
)

// amqp1Client is amqp://'s raw baseline: github.com/Azure/go-amqp on the
// same broker, used as the AMQP 1.0 driver uses it, so that both do the
// same work: a session per link; manual credit, granted again only once
// the last grant is used up (RabbitMQ 3.10 overshoots otherwise, see
// drivers/amqp1); sends settled by the broker unless the URL's
// presettled option says otherwise. On RabbitMQ (the broker's "product"
// property) messages go to /queue with the queue as subject and come from
// /amq/queue/NAME, and queues are declared and deleted over AMQP 0-9-1 on
// the same port, as the driver does; elsewhere (the Qpid Proton example
// broker) a queue's address is its name and queues need no declaring.
type amqp1Client struct {
	addr       string // host:port
	vhost      string
	user, pass string
	presettled bool
	prefetch   int // the credit of auto-ack consumers: the driver's prefetch_size, 0 for its default
	flavour    string
	topology   *rabbitClient // declares RabbitMQ's queues over AMQP 0-9-1
}

// amqp1Options are the amqp driver's options its raw client follows.
var amqp1Options = option.NewSet(amqp1.FlavourOption, amqp1.PrefetchOption, amqp1.PresettledOption)

// amqp1ServerCredit is the raw RPC server's credit, as rabbitServerPrefetch.
const amqp1ServerCredit = 64

func newAMQP1Client(u *transport.URL) (*amqp1Client, error) {
	values, err := amqp1Options.Pick(u)
	if err != nil {
		return nil, err
	}
	topology := u.Clone()
	topology.Scheme = "rabbit"
	r, err := newRabbitClient(topology)
	if err != nil {
		return nil, err
	}
	return &amqp1Client{
		addr:  firstHost(u),
		vhost: u.VirtualHost, user: u.User, pass: u.Password,
		presettled: amqp1.PresettledOption.Get(values),
		prefetch:   amqp1.PrefetchOption.Get(values),
		flavour:    strings.ToLower(amqp1.FlavourOption.Get(values)),
		topology:   r,
	}, nil
}

func (*amqp1Client) name() string { return "raw go-amqp" }

// amqp1Conn is one raw connection and the sessions of its links.
type amqp1Conn struct {
	conn      *amqp.Conn
	rabbit    bool
	mu        sync.Mutex
	sessions  []*amqp.Session
	closeOnce sync.Once
}

func (a *amqp1Client) dial(ctx context.Context) (*amqp1Conn, error) {
	opts := &amqp.ConnOptions{SASLType: amqp.SASLTypeAnonymous()}
	if a.user != "" {
		opts.SASLType = amqp.SASLTypePlain(a.user, a.pass)
	}
	if a.vhost != "" {
		opts.HostName = "vhost:" + a.vhost // how RabbitMQ selects a virtual host
	}
	conn, err := amqp.Dial(ctx, "amqp://"+a.addr, opts)
	if err != nil {
		return nil, fmt.Errorf("raw go-amqp: connect to %s: %w", a.addr, err)
	}
	product, _ := conn.Properties()["product"].(string)
	rabbit := product == "RabbitMQ"
	switch a.flavour {
	case "rabbitmq":
		rabbit = true
	case "proton":
		rabbit = false
	}
	return &amqp1Conn{conn: conn, rabbit: rabbit}, nil
}

// session begins a session for one link: on RabbitMQ a failed attach ends
// its whole session.
func (c *amqp1Conn) session(ctx context.Context) (*amqp.Session, error) {
	s, err := c.conn.NewSession(ctx, nil)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.sessions = append(c.sessions, s)
	c.mu.Unlock()
	return s, nil
}

// close ends the sessions rather than detaching their links (RabbitMQ
// never completes a detach that go-amqp accepts), each within two seconds,
// then closes the connection. Calls after the first do nothing.
func (c *amqp1Conn) close() error {
	var err error
	c.closeOnce.Do(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, s := range c.sessions {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = s.Close(ctx)
			cancel()
		}
		err = c.conn.Close()
	})
	return err
}

// sender attaches a sending link for queue (RabbitMQ: /queue, any queue,
// by subject).
func (c *amqp1Conn) sender(ctx context.Context, queue string) (*amqp.Sender, error) {
	s, err := c.session(ctx)
	if err != nil {
		return nil, err
	}
	target := queue
	if c.rabbit {
		target = "/queue"
	}
	return s.NewSender(ctx, target, nil)
}

// message is a message to queue with body.
func (c *amqp1Conn) message(queue string, body []byte) *amqp.Message {
	m := &amqp.Message{Data: [][]byte{body}, Properties: &amqp.MessageProperties{}}
	if c.rabbit {
		m.Properties.Subject = &queue
	}
	return m
}

// creditReceiver receives with manual credit, granted again only once
// the last grant is used up, accepting each message unless they come
// settled.
type creditReceiver struct {
	rcv                 *amqp.Receiver
	credit, issued, got int
	accept              bool
}

func (c *amqp1Conn) receiver(ctx context.Context, queue string, credit int, autoAck bool) (*creditReceiver, error) {
	s, err := c.session(ctx)
	if err != nil {
		return nil, err
	}
	source := queue
	opts := &amqp.ReceiverOptions{Credit: -1}
	if c.rabbit {
		source = "/amq/queue/" + queue
		if autoAck {
			settled := amqp.SenderSettleModeSettled
			opts.RequestedSenderSettleMode = &settled
		}
	}
	rcv, err := s.NewReceiver(ctx, source, opts)
	if err != nil {
		return nil, err
	}
	// Only RabbitMQ sends pre-settled deliveries; elsewhere auto-ack is
	// an accept as each message comes, as the driver does.
	return &creditReceiver{rcv: rcv, credit: credit, accept: !autoAck || !c.rabbit}, nil
}

func (r *creditReceiver) receive(ctx context.Context) (*amqp.Message, error) {
	if r.got == r.issued {
		if err := r.rcv.IssueCredit(uint32(r.credit)); err != nil {
			return nil, err
		}
		r.issued += r.credit
	}
	m, err := r.rcv.Receive(ctx, nil)
	if err != nil {
		return nil, err
	}
	r.got++
	if r.accept {
		if err := r.rcv.AcceptMessage(ctx, m); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// declare makes the queues (on RabbitMQ, over AMQP 0-9-1) and returns
// the function that deletes them.
func (a *amqp1Client) declare(c *amqp1Conn, queues ...string) (deleteAll func() error, err error) {
	if !c.rabbit {
		return func() error { return nil }, nil
	}
	conn, err := a.topology.dial()
	if err != nil {
		return nil, err
	}
	var deletes []func() error
	deleteAll = func() error {
		var errs []error
		for _, d := range deletes {
			errs = append(errs, d())
		}
		return errors.Join(append(errs, ignoreClosed(conn.Close()))...)
	}
	for _, q := range queues {
		d, err := declareQueue(conn, q, false)
		if err != nil {
			return nil, errors.Join(err, deleteAll())
		}
		deletes = append(deletes, d)
	}
	return deleteAll, nil
}

// dialPair connects the two sides; close closes both.
func (a *amqp1Client) dialPair(ctx context.Context) (x, y *amqp1Conn, close func() error, err error) {
	if x, err = a.dial(ctx); err != nil {
		return nil, nil, nil, err
	}
	if y, err = a.dial(ctx); err != nil {
		return nil, nil, nil, errors.Join(err, x.close())
	}
	return x, y, func() error { return errors.Join(y.close(), x.close()) }, nil
}

func (a *amqp1Client) consumerCredit(c *amqp1Conn, ack bool) int {
	switch {
	case ack:
		return AckPrefetch
	case a.prefetch > 0:
		return a.prefetch
	case c.rabbit:
		return 200 // the driver's default prefetch_size
	}
	return 10 // the driver's default on other brokers
}

func (a *amqp1Client) publish(ctx context.Context, lim Limits, ack bool, m *meter) (err error) {
	pubConn, subConn, closeBoth, err := a.dialPair(ctx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, closeBoth()) }()
	q := uniqueName("raw-publish")
	deleteQueues, err := a.declare(subConn, q)
	if err != nil {
		return err
	}
	// Deleted after the links end: RabbitMQ drops a connection whose
	// link consumes a deleted queue.
	defer func() { err = errors.Join(err, closeBoth(), deleteQueues()) }()
	snd, err := pubConn.sender(ctx, q)
	if err != nil {
		return fmt.Errorf("raw go-amqp: attach a sender: %w", err)
	}
	rcv, err := subConn.receiver(ctx, q, a.consumerCredit(subConn, ack), !ack)
	if err != nil {
		return fmt.Errorf("raw go-amqp: attach a receiver: %w", err)
	}
	msg := pubConn.message(q, body(lim.Size))
	sendOpts := &amqp.SendOptions{Settled: a.presettled}
	publish := func(ctx context.Context) error { return snd.Send(ctx, msg, sendOpts) }
	receive := func(ctx context.Context) error {
		_, err := rcv.receive(ctx)
		return err
	}
	return measureStream(ctx, lim, m, publish, receive)
}

// amqp1RPCLinks are the four links of the raw RPC: the server's request
// receiver and reply sender, the client's reply receiver and request
// sender.
type amqp1RPCLinks struct {
	requests, replies          *creditReceiver
	replySender, requestSender *amqp.Sender
	serverConn, clientConn     *amqp1Conn
	requestQ, replyQ           string
	sendOpts                   *amqp.SendOptions
}

// attach attaches the RPC's links on the two connections.
func (a *amqp1Client) attach(ctx context.Context, l *amqp1RPCLinks) (err error) {
	if l.requests, err = l.serverConn.receiver(ctx, l.requestQ, amqp1ServerCredit, false); err != nil {
		return fmt.Errorf("raw go-amqp: attach the server's receiver: %w", err)
	}
	if l.replySender, err = l.serverConn.sender(ctx, l.replyQ); err != nil {
		return fmt.Errorf("raw go-amqp: attach the server's sender: %w", err)
	}
	if l.replies, err = l.clientConn.receiver(ctx, l.replyQ, a.consumerCredit(l.clientConn, false), true); err != nil {
		return fmt.Errorf("raw go-amqp: attach the client's receiver: %w", err)
	}
	if l.requestSender, err = l.clientConn.sender(ctx, l.requestQ); err != nil {
		return fmt.Errorf("raw go-amqp: attach the client's sender: %w", err)
	}
	return nil
}

// rpc: the server receives from a request queue (accepting each request)
// and sends each reply to the request's reply-to queue with its
// correlation id; the client receives from its reply queue and hands each
// reply to its caller by correlation id.
func (a *amqp1Client) rpc(ctx context.Context, lim Limits, callers int, m *meter) (err error) {
	serverConn, clientConn, closeBoth, err := a.dialPair(ctx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, closeBoth()) }()
	l := &amqp1RPCLinks{serverConn: serverConn, clientConn: clientConn,
		requestQ: uniqueName("raw-rpc"), replyQ: uniqueName("raw-reply"), sendOpts: &amqp.SendOptions{Settled: a.presettled}}
	deleteQueues, err := a.declare(serverConn, l.requestQ, l.replyQ)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, closeBoth(), deleteQueues()) }()
	if err := a.attach(ctx, l); err != nil {
		return err
	}
	calls := newRawCalls(ctx, callers)
	defer calls.stop()
	l.serve(calls, callers)
	body := body(lim.Size)
	return measureCalls(ctx, lim, callers, m, func(ctx context.Context, caller int) error {
		return calls.call(ctx, caller, func(id string) error {
			msg := clientConn.message(l.requestQ, body)
			msg.Properties.ReplyTo = &l.replyQ
			msg.Properties.CorrelationID = id
			return l.requestSender.Send(ctx, msg, l.sendOpts)
		})
	})
}

// serve runs the server and the client's reply dispatcher on calls. The
// server receives on one goroutine (a receiver's credit is counted by
// one) and replies from one per caller, as the rpc server's workers do:
// a reply waiting for its disposition does not hold up the others.
func (l *amqp1RPCLinks) serve(calls *rawCalls, callers int) {
	work := make(chan *amqp.Message)
	calls.run("server", func(ctx context.Context) error {
		defer close(work)
		for {
			req, err := l.requests.receive(ctx)
			if err != nil {
				return err
			}
			select {
			case work <- req:
			case <-ctx.Done():
				return nil
			}
		}
	})
	for range min(callers, amqp1ServerCredit) {
		calls.run("server", func(ctx context.Context) error {
			for req := range work {
				replyTo := l.replyQ
				if req.Properties != nil && req.Properties.ReplyTo != nil {
					replyTo = *req.Properties.ReplyTo
				}
				reply := l.serverConn.message(replyTo, req.GetData())
				if req.Properties != nil {
					reply.Properties.CorrelationID = req.Properties.CorrelationID
				}
				if err := l.replySender.Send(ctx, reply, l.sendOpts); err != nil {
					return err
				}
			}
			return nil
		})
	}
	calls.run("replies", func(ctx context.Context) error {
		for {
			reply, err := l.replies.receive(ctx)
			if err != nil {
				return err
			}
			if reply.Properties != nil {
				id, _ := reply.Properties.CorrelationID.(string)
				calls.deliver(id)
			}
		}
	})
}
