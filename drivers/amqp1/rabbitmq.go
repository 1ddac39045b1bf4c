package amqp1

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-mq/switchyard/internal/rabbitmq"
	"github.com/switchyard-mq/switchyard/transport/driver"
)

// rabbitFlavour maps the model onto RabbitMQ's AMQP 1.0 plugin (3.10):
// messages over AMQP 1.0, topology (exchanges, queues with arguments,
// bindings, purge, delete) over a small AMQP 0-9-1 side connection to the
// same host, port, credentials and virtual host. See the package
// documentation for why.
type rabbitFlavour struct {
	c *conn

	mu   sync.Mutex // serialises topology operations on the side channel
	side *amqp091.Connection
	ch   *amqp091.Channel
}

// rabbitCapabilities are what RabbitMQ 3.10's plugin and the side
// connection give together; see the package documentation for the others.
const rabbitCapabilities = driver.Capabilities(
	driver.CapDirect |
		driver.CapFanout |
		driver.CapTopic |
		driver.CapQueueBinding |
		driver.CapServerNamedQueue |
		driver.CapAutoDelete |
		driver.CapMessageTTL |
		driver.CapQueueExpiry |
		driver.CapMaxLength |
		driver.CapPrefetch |
		driver.CapHeaders |
		driver.CapDurable |
		driver.CapCrossProcess |
		driver.CapQueueExistence |
		driver.CapTransientQueue)

func newRabbitFlavour(ctx context.Context, c *conn) (*rabbitFlavour, error) {
	f := &rabbitFlavour{c: c}
	// Connect now: a virtual host that does not exist is reported here,
	// by name, which the AMQP 1.0 connection cannot do.
	err := f.do(ctx, func(*amqp091.Channel) error { return nil })
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (f *rabbitFlavour) name() flavourName                 { return flavourRabbitMQ }
func (f *rabbitFlavour) capabilities() driver.Capabilities { return rabbitCapabilities }
func (f *rabbitFlavour) rabbit() bool                      { return true }
func (f *rabbitFlavour) addressV2() bool                   { return false }
func (f *rabbitFlavour) requeueByCopy() bool               { return false }
func (f *rabbitFlavour) countReturns() bool                { return false }
func (f *rabbitFlavour) detachLinks() bool                 { return false }

// escapeName escapes a name for an address, where the plugin splits on "/"
// and unescapes only "%2F".
func escapeName(what, name string) (string, error) {
	if strings.Contains(strings.ToUpper(name), "%2F") {
		return "", fmt.Errorf("%w: %s %q: RabbitMQ's AMQP 1.0 addresses cannot carry the text %%2F", driver.ErrInvalid, what, name)
	}
	return strings.ReplaceAll(name, "/", "%2F"), nil
}

// consumeAddress is /amq/queue/Q: it consumes an existing queue and never
// declares one (a missing queue is amqp:not-found).
func (f *rabbitFlavour) consumeAddress(queue string) (string, error) {
	q, err := escapeName("queue", queue)
	return "/amq/queue/" + q, err
}

// publishAddress is /queue (the default exchange) or /exchange/X, with the
// routing key as the subject: one link per exchange serves every key.
// /queue never declares; a missing queue drops the message, as an
// unroutable one is.
func (f *rabbitFlavour) publishAddress(exchange, key string) (string, string, bool, error) {
	if exchange == "" {
		return "/queue", "", true, nil
	}
	x, err := escapeName("exchange", exchange)
	return "/exchange/" + x, "", true, err
}

// do runs op on the side channel, (re)connecting first if needed, bounded
// by ctx: when ctx ends first the side connection is closed, which ends op.
func (f *rabbitFlavour) do(ctx context.Context, op func(*amqp091.Channel) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	// Dialing is bounded by ctx's deadline (see dial); the operation is
	// bounded by closing the connection under it.
	ch, err := f.channel(ctx)
	if err == nil {
		result := make(chan error, 1)
		side := f.side
		go func() { result <- op(ch) }()
		select {
		case err = <-result:
		case <-ctx.Done():
			_ = side.Close()
			<-result
			err = ctx.Err()
		}
	}
	if err != nil {
		switch {
		case rabbitmq.IsChannelError(err):
			f.ch = nil // the broker closed the channel; the connection lives
		case f.side != nil && f.side.IsClosed():
			f.side, f.ch = nil, nil
		}
		return rabbitmq.MapError(err)
	}
	return nil
}

// channel returns the side channel, connecting and opening it if needed.
// Called with f.mu held.
func (f *rabbitFlavour) channel(ctx context.Context) (*amqp091.Channel, error) {
	if f.ch != nil && !f.ch.IsClosed() {
		return f.ch, nil
	}
	if f.side == nil || f.side.IsClosed() {
		side, err := f.dial(ctx)
		if err != nil {
			return nil, err
		}
		f.side = side
	}
	ch, err := f.side.Channel()
	if err != nil {
		_ = f.side.Close()
		f.side = nil
		return nil, fmt.Errorf("open a channel on the AMQP 0-9-1 side connection: %w", err)
	}
	f.ch = ch
	return ch, nil
}

// dial opens the side connection to the first host that answers.
func (f *rabbitFlavour) dial(ctx context.Context) (*amqp091.Connection, error) {
	s := f.c.s
	user, pass := s.user, s.password
	if !s.hasUser {
		user, pass = "guest", "guest" // what the plugin's anonymous login runs as by default
	}
	timeout := 30 * time.Second
	if deadline, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(deadline), time.Millisecond)
	}
	cfg := amqp091.Config{
		Vhost:           s.vhost,
		Heartbeat:       10 * time.Second,
		TLSClientConfig: s.tls,
		Dial:            amqp091.DefaultDial(timeout),
		Properties:      amqp091.Table{"connection_name": "switchyard amqp1 topology"},
	}
	if cfg.Vhost == "" {
		cfg.Vhost = "/"
	}
	scheme := "amqp"
	if s.tls != nil {
		scheme = "amqps"
	}
	var errs []error
	for _, h := range s.hosts {
		u := url.URL{Scheme: scheme, User: url.UserPassword(user, pass), Host: net.JoinHostPort(h.Name, strconv.Itoa(h.Port)), Path: "/"}
		side, err := amqp091.DialConfig(u.String(), cfg)
		if err == nil {
			return side, nil
		}
		var ae *amqp091.Error
		if errors.As(err, &ae) && ae.Code == amqp091.NotAllowed && strings.Contains(ae.Reason, "vhost") {
			return nil, fmt.Errorf("%w: virtual host %q does not exist on %s: %w", driver.ErrNotFound, cfg.Vhost, h, err)
		}
		if errors.As(err, &ae) && ae.Code == amqp091.AccessRefused {
			return nil, fmt.Errorf("the AMQP 0-9-1 side connection to %s, virtual host %q, was refused: %w", h, cfg.Vhost, rabbitmq.MapError(err))
		}
		errs = append(errs, fmt.Errorf("%s: %w", h, err))
	}
	return nil, fmt.Errorf("connect the AMQP 0-9-1 side connection (it declares RabbitMQ topology): %w", errors.Join(errs...))
}

func (f *rabbitFlavour) declareExchange(ctx context.Context, ex driver.Exchange) error {
	return f.do(ctx, func(ch *amqp091.Channel) error {
		return rabbitmq.DeclareExchange(ch, ex)
	})
}

func (f *rabbitFlavour) deleteExchange(ctx context.Context, name string) error {
	return f.do(ctx, func(ch *amqp091.Channel) error { return ch.ExchangeDelete(name, false, false) })
}

// declareQueue declares q as the rabbit driver declares it without
// quorum or HA queues, so that a queue declared through either driver is
// the same queue. Queues the driver names are switchyard.gen-, never
// amq.gen-: that is what the plugin's leaked subscription queues are
// called, which a policy expires (see the package documentation).
func (f *rabbitFlavour) declareQueue(ctx context.Context, q driver.Queue) (string, error) {
	if q.Exclusive || q.DeadLetterExchange != "" || q.DeliveryLimit > 0 {
		return "", fmt.Errorf("%w: exclusive queues, dead-lettering and delivery limits on RabbitMQ's AMQP 1.0 plugin", driver.ErrUnsupported)
	}
	if q.Name == "" {
		q.Name = rabbitmq.ServerNamedQueue()
	}
	// No x-overflow: the broker's default, drop-head, is the model's; the
	// other, reject-publish, would kill the plugin's connection on the
	// first refused message.
	return q.Name, f.do(ctx, rabbitmq.QueueOptions{}.Declaration(q).Declare)
}

func (f *rabbitFlavour) deleteQueue(ctx context.Context, name string) (int, error) {
	var n int
	err := f.do(ctx, func(ch *amqp091.Channel) error {
		var err error
		n, err = ch.QueueDelete(name, false, false, false)
		return err
	})
	if errors.Is(err, driver.ErrNotFound) {
		return 0, nil
	}
	return n, err
}

func (f *rabbitFlavour) purgeQueue(ctx context.Context, name string) (int, error) {
	var n int
	err := f.do(ctx, func(ch *amqp091.Channel) error {
		var err error
		n, err = ch.QueuePurge(name, false)
		return err
	})
	return n, err
}

func (f *rabbitFlavour) checkQueue(ctx context.Context, name string) error {
	return f.do(ctx, func(ch *amqp091.Channel) error {
		_, err := ch.QueueDeclarePassive(name, false, false, false, false, nil)
		return err
	})
}

func (f *rabbitFlavour) bind(ctx context.Context, b driver.Binding) error {
	return f.do(ctx, func(ch *amqp091.Channel) error { return rabbitmq.Bind(ch, b) })
}

// unbind treats a missing exchange or queue as a missing binding, which is
// not an error.
func (f *rabbitFlavour) unbind(ctx context.Context, b driver.Binding) error {
	err := f.do(ctx, func(ch *amqp091.Channel) error { return rabbitmq.Unbind(ch, b) })
	if errors.Is(err, driver.ErrNotFound) {
		return nil
	}
	return err
}

func (f *rabbitFlavour) close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.side == nil {
		return nil
	}
	// An error here means the connection was already broken (a cut
	// socket answers the close with a frame error): either way it is gone.
	if err := f.side.Close(); err != nil {
		f.c.logger.DebugContext(context.Background(), "amqp1: closing the AMQP 0-9-1 side connection", "err", err)
	}
	f.side, f.ch = nil, nil
	return nil
}
