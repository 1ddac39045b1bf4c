package amqp1

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/switchyard-mq/switchyard/transport"
	"github.com/switchyard-mq/switchyard/transport/driver"
)

// The URL schemes this driver registers.
const (
	Scheme    = "amqp"
	TLSScheme = "amqps"
)

func init() {
	transport.Register(Scheme, driver.OpenerFunc(open))
	transport.Register(TLSScheme, driver.OpenerFunc(open))
}

// MessagingSystem is the broker's OpenTelemetry messaging.system value:
// "rabbitmq" for RabbitMQ, else "amqp1" (a broker the conventions do not
// list, or one not told apart).
func (c *conn) MessagingSystem() string {
	if c.fl.name() == flavourRabbitMQ {
		return "rabbitmq"
	}
	return "amqp1"
}

// closeTimeout bounds the closing of a session or link. RabbitMQ 3.10's
// plugin never completes a link detach that go-amqp accepts (it answers a
// closing detach with a non-closing one), so links are never closed one by
// one: their session is ended instead, which the plugin does answer.
const closeTimeout = 2 * time.Second

// attachTimeout bounds beginning a session or attaching a link.
const attachTimeout = 10 * time.Second

// handshakeContext bounds a session begin or link attach by attachTimeout
// but not by the caller's cancellation: go-amqp leaves the connection
// broken when one is cancelled midway (Azure/go-amqp issues 237 and 277;
// the next begin fails with "didn't find channel" or "no such channel"),
// so a caller that gives up waits out the handshake instead.
func handshakeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), attachTimeout)
}

// settleTimeout bounds what a consumer sends to the broker outside any
// caller's context: copies that requeue a message where the broker cannot
// (the model's Settler and Close take no context).
const settleTimeout = 10 * time.Second

// flavour is a broker profile: where the model's operations go and what the
// broker supports. The rabbitmq one declares topology out of band; the
// proton one has only queues.
type flavour interface {
	name() flavourName
	capabilities() driver.Capabilities
	// rabbit reports RabbitMQ's header and reply-to conventions (see fromAMQP).
	rabbit() bool
	// addressV2 reports RabbitMQ 4's v2 addresses (see fromAMQP).
	addressV2() bool
	// consumeAddress is the source address that consumes queue.
	consumeAddress(queue string) (string, error)
	// publishAddress is the target address of the link that publishes to
	// exchange with key, and the message's to field ("" for none; the
	// subject always carries the key); send is false when the message has
	// nowhere to go and is dropped, as an unroutable message is.
	publishAddress(exchange, key string) (address, to string, send bool, err error)
	// detachLinks reports that links must be detached before their
	// session ends (see endLink).
	detachLinks() bool
	// requeueByCopy reports that the broker cannot requeue (a released
	// message is lost), so the driver requeues by publishing a copy.
	requeueByCopy() bool
	// countReturns reports that the broker counts a return in the
	// delivery count when the consumer settles with modified
	// (delivery-failed), which it then sends instead of released.
	countReturns() bool

	declareExchange(ctx context.Context, ex driver.Exchange) error
	deleteExchange(ctx context.Context, name string) error
	declareQueue(ctx context.Context, q driver.Queue) (string, error)
	deleteQueue(ctx context.Context, name string) (int, error)
	purgeQueue(ctx context.Context, name string) (int, error)
	// checkQueue says ErrNotFound if the queue is gone; nil if it exists
	// or the broker cannot tell.
	checkQueue(ctx context.Context, name string) error
	bind(ctx context.Context, b driver.Binding) error
	unbind(ctx context.Context, b driver.Binding) error
	close() error
}

// generation is one state of the connection: connected (ac set) or
// reconnecting (ac nil). n counts connections, so that links attached to
// an earlier one are known to be stale.
type generation struct {
	ac       *amqp.Conn
	n        uint64
	replaced chan struct{} // closed when the next generation takes over
}

// conn is one transport's connection: an AMQP 1.0 connection that a
// supervisor re-dials when it is lost, its publishing links, its
// consumers, and the flavour's state.
type conn struct {
	s      settings
	logger *slog.Logger
	fl     flavour

	ctx    context.Context // ends with Close: stops dialing and waiting
	cancel context.CancelFunc
	wg     sync.WaitGroup // the supervisor

	mu        sync.Mutex
	cur       *generation // never nil
	host      int         // index of the host last connected to
	closing   bool        // Close has begun: no new consumers
	closed    bool        // consumers are closed: no new links
	consumers map[*consumer]struct{}
	senders   map[string]*senderSlot
	sendOpts  *amqp.SendOptions // pre-settled or not, by the URL
}

func open(ctx context.Context, cfg *driver.URL) (driver.Conn, error) {
	s, err := parseSettings(cfg)
	if err != nil {
		return nil, err
	}
	c := &conn{
		s:         s,
		logger:    cfg.Logger,
		cur:       &generation{replaced: make(chan struct{})},
		consumers: map[*consumer]struct{}{},
		senders:   map[string]*senderSlot{},
		sendOpts:  &amqp.SendOptions{Settled: s.presettled},
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	ac, host, err := c.dialAny(ctx, 0)
	if err != nil {
		c.cancel()
		return nil, err
	}
	if err := c.checkSession(ctx, ac); err != nil {
		_ = ac.Close()
		c.cancel()
		return nil, err
	}
	product, _ := ac.Properties()["product"].(string)
	version, _ := ac.Properties()["version"].(string)
	detected := flavourProton
	if product == "RabbitMQ" {
		detected = flavourRabbitMQ
	}
	name := s.flavour
	if name == flavourAuto {
		name = detected
	} else if name != detected {
		c.logger.WarnContext(ctx, "amqp1: flavour forced by the URL differs from the broker's", "forced", name, "detected", detected, "product", product)
	}
	switch {
	case name == flavourRabbitMQ && rabbitMajor(version) >= 4:
		// AMQP 1.0 in the core: v2 addresses and the management node.
		c.fl = newRabbit4Flavour(c, version)
	case name == flavourRabbitMQ:
		c.fl, err = newRabbitFlavour(ctx, c)
	default:
		c.fl, err = newProtonFlavour(c)
	}
	if err != nil {
		_ = ac.Close()
		c.cancel()
		return nil, err
	}
	c.replace(ac, host)
	c.logger.DebugContext(ctx, "amqp1: connected", "flavour", name, "product", product, "version", version, "host", s.hosts[host])
	c.wg.Add(1)
	go c.supervise(ac)
	return c, nil
}

// dialAny connects to the first host that answers, starting with the one
// of index first, and returns it with its index.
func (c *conn) dialAny(ctx context.Context, first int) (*amqp.Conn, int, error) {
	var errs []error
	for i := range c.s.hosts {
		idx := (first + i) % len(c.s.hosts)
		ac, err := c.dial(ctx, c.s.hosts[idx])
		if err == nil {
			return ac, idx, nil
		}
		if ctx.Err() != nil {
			return nil, 0, fmt.Errorf("connect to %s: %w", c.s.hosts[idx], ctx.Err())
		}
		errs = append(errs, err)
		var ae *amqp.Error
		if errors.Is(err, driver.ErrInvalid) || errors.As(err, &ae) {
			break // refused credentials are refused by every host
		}
	}
	return nil, 0, errors.Join(errs...)
}

// dial opens an AMQP 1.0 connection to h.
func (c *conn) dial(ctx context.Context, h driver.Host) (*amqp.Conn, error) {
	scheme := Scheme
	if c.s.tls != nil {
		scheme = TLSScheme
	}
	opts := &amqp.ConnOptions{
		ContainerID: c.s.containerID,
		IdleTimeout: c.s.idleTimeout,
		HostName:    h.Name,
		Properties:  map[string]any{"product": "switchyard"},
		SASLType:    amqp.SASLTypeAnonymous(),
	}
	if c.s.vhost != "" {
		// RabbitMQ selects a virtual host by "vhost:NAME"; a plain name
		// would silently land in the default one.
		opts.HostName = "vhost:" + c.s.vhost
	}
	if c.s.hasUser {
		opts.SASLType = amqp.SASLTypePlain(c.s.user, c.s.password)
	}
	if c.s.tls != nil {
		opts.TLSConfig = c.s.tls.Clone()
		if opts.TLSConfig.ServerName == "" {
			opts.TLSConfig.ServerName = h.Name // go-amqp would use HostName, the vhost
		}
	}
	addr := scheme + "://" + net.JoinHostPort(h.Name, strconv.Itoa(h.Port))
	ac, err := amqp.Dial(ctx, addr, opts)
	if err == nil {
		return ac, nil
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "unexpected protocol version 0.9.1"):
		// An AMQP 0-9-1 broker answers a protocol header it does not
		// speak with its own, "AMQP\x00\x00\x09\x01", and closes: RabbitMQ
		// without its AMQP 1.0 plugin (or before 4, on a port without it).
		return nil, fmt.Errorf("%w: connect to %s: the server speaks AMQP 0-9-1, not AMQP 1.0, which amqp:// means here "+
			"(amqp091-go's amqp:// is Switchyard's rabbit://): did you mean %s? (%w)", driver.ErrUnsupported, h, c.rabbitURLHint(), err)
	case strings.Contains(msg, "SASL") && strings.Contains(msg, "auth failed"):
		return nil, fmt.Errorf("%w: connect to %s: the broker refused the credentials of user %q: %w", driver.ErrInvalid, h, c.s.user, err)
	case strings.Contains(msg, "no supported auth mechanism"):
		how := "drop the user and password from the URL (anonymous login)"
		if !c.s.hasUser {
			how = "give a user and password in the URL"
		}
		return nil, fmt.Errorf("%w: connect to %s: the broker does not accept this login (%w); %s", driver.ErrInvalid, h, err, how)
	case c.s.vhost != "" && ctx.Err() == nil && droppedMidHandshake(err):
		// RabbitMQ 3 opens the connection and refuses its first session
		// (checkSession); RabbitMQ 4 checks the virtual host on the open
		// frame and, refusing it, closes the socket after a delay without
		// a close frame: the reason is only in its log.
		return nil, fmt.Errorf("%w: connect to %s: the broker dropped the connection during the AMQP handshake without a reason; "+
			"RabbitMQ 4 does so when virtual host %q does not exist or user %q may not use it (its log says which): %w",
			driver.ErrNotFound, h, c.s.vhost, c.s.user, err)
	}
	return nil, fmt.Errorf("connect to %s: %w", h, mapError(err))
}

// droppedMidHandshake reports whether err, from amqp.Dial, is the peer
// closing or resetting a TCP connection that was established (a failed
// read or write, or EOF), as opposed to one that never was (a dial error)
// or a refusal with a reason.
func droppedMidHandshake(err error) bool {
	var ae *amqp.Error
	if errors.As(err, &ae) {
		return false
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && (op.Op == "read" || op.Op == "write")
}

// checkSession begins and ends a session: RabbitMQ accepts a connection to
// a virtual host that does not exist (or that the user may not use) and
// refuses only the first session.
func (c *conn) checkSession(ctx context.Context, ac *amqp.Conn) error {
	hctx, cancel := handshakeContext(ctx)
	defer cancel()
	sess, err := ac.NewSession(hctx, nil)
	if err != nil {
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Condition == amqp.ErrCondUnauthorizedAccess {
			return fmt.Errorf("%w: virtual host %q refused user %q: it does not exist or the user has no permissions there (%s)",
				driver.ErrNotFound, c.s.vhost, c.s.user, ae.Description)
		}
		return fmt.Errorf("begin a session: %w", mapError(err))
	}
	closeSession(sess)
	return nil
}

// supervise re-dials when the connection is lost, until Close. Links
// notice the loss themselves (their calls fail) and re-attach through
// current, which waits for the new connection.
func (c *conn) supervise(ac *amqp.Conn) {
	defer c.wg.Done()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-ac.Done():
		}
		c.replace(nil, 0)
		if c.ctx.Err() != nil {
			return
		}
		c.logger.WarnContext(c.ctx, "amqp1: connection lost; reconnecting", "err", ac.Err())
		next, host := c.redial()
		if next == nil {
			return
		}
		c.mu.Lock()
		closed := c.closed
		c.mu.Unlock()
		if closed {
			_ = next.Close()
			return
		}
		c.replace(next, host)
		c.logger.InfoContext(c.ctx, "amqp1: reconnected", "host", c.s.hosts[host])
		ac = next
	}
}

// redial dials with backoff until it succeeds or the connection is closed
// (nil). It starts with the host it was connected to.
func (c *conn) redial() (*amqp.Conn, int) {
	c.mu.Lock()
	first := c.host
	c.mu.Unlock()
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
		ac, host, err := c.dialAny(ctx, first)
		cancel()
		if err == nil {
			return ac, host
		}
		c.logger.WarnContext(c.ctx, "amqp1: reconnect failed", "err", err, "retry_in", c.s.retry.Delay(attempt))
		if c.s.retry.Wait(c.ctx, attempt) != nil {
			return nil, 0
		}
	}
}

// current returns the live connection and its generation, waiting while
// it is being re-established, until ctx ends, stop is closed or the
// transport closes.
func (c *conn) current(ctx context.Context, stop <-chan struct{}) (*amqp.Conn, uint64, error) {
	for {
		c.mu.Lock()
		closed, g := c.closed, c.cur
		c.mu.Unlock()
		if closed {
			return nil, 0, driver.ErrClosed
		}
		if g.ac != nil && g.ac.Err() == nil {
			return g.ac, g.n, nil
		}
		// Down, or lost and about to be marked down by the supervisor:
		// either way the generation is replaced next.
		select {
		case <-g.replaced:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-stop:
			return nil, 0, driver.ErrClosed
		case <-c.ctx.Done():
			return nil, 0, driver.ErrClosed
		}
	}
}

// replace makes ac (nil: none, reconnecting) the current connection.
func (c *conn) replace(ac *amqp.Conn, host int) {
	c.mu.Lock()
	old := c.cur
	c.cur = &generation{ac: ac, n: old.n, replaced: make(chan struct{})}
	if ac != nil {
		c.cur.n++
		c.host = host
	}
	c.mu.Unlock()
	close(old.replaced)
}

// newSession begins a session on the current connection. The driver gives
// every link a session of its own: RabbitMQ ends the whole session when one
// attach fails, and a session can be ended where a link cannot be closed.
func (c *conn) newSession(ctx context.Context, stop <-chan struct{}) (*amqp.Session, uint64, error) {
	ac, gen, err := c.current(ctx, stop)
	if err != nil {
		return nil, 0, err
	}
	hctx, cancel := handshakeContext(ctx)
	defer cancel()
	sess, err := ac.NewSession(hctx, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("begin a session: %w", mapError(err))
	}
	return sess, gen, nil
}

// closeSession ends sess, waiting at most closeTimeout for the broker's
// answer. The session's links end with it, and the broker returns their
// unsettled deliveries to their queues.
func closeSession(sess *amqp.Session) {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = sess.Close(ctx)
}

// closer is a link: *amqp.Receiver or *amqp.Sender.
type closer interface {
	Close(ctx context.Context) error
}

// endLink ends a link and its session. Where the flavour needs it (the
// Proton broker keeps a link whose session ended as a consumer, and sends
// it messages that are then lost) the link is detached first; RabbitMQ's
// plugin never completes a detach, so there the session alone ends.
func (c *conn) endLink(sess *amqp.Session, link closer) {
	if link != nil && c.fl.detachLinks() {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		_ = link.Close(ctx)
		cancel()
	}
	closeSession(sess)
}

// isLinkGone reports whether err says that the link, its session or its
// connection has ended (as opposed to one message being refused).
func isLinkGone(err error) bool {
	var le *amqp.LinkError
	var se *amqp.SessionError
	var ce *amqp.ConnError
	return errors.As(err, &le) || errors.As(err, &se) || errors.As(err, &ce)
}

// Capabilities implements driver.Conn.
func (c *conn) Capabilities() driver.Capabilities { return c.fl.capabilities() }

// AdviseCapability implements driver.CapabilityAdviser: on RabbitMQ every
// capability is rabbit://'s, and amqp:// is what Go users of amqp091-go
// write for it.
func (c *conn) AdviseCapability(driver.Capability) string {
	if !c.fl.rabbit() {
		return ""
	}
	return "the broker is RabbitMQ, whose AMQP 0-9-1 (rabbit://, which amqp091-go users write amqp://) has it: did you mean " + c.rabbitURLHint() + "?"
}

// rabbitURLHint is the rabbit:// URL of the first host, without
// credentials or options: what the user may have meant.
func (c *conn) rabbitURLHint() string {
	scheme := "rabbit"
	if c.s.tls != nil {
		scheme = "rabbits"
	}
	if len(c.s.hosts) == 0 {
		return scheme + "://"
	}
	return scheme + "://" + c.s.hosts[0].String() + "/" + url.PathEscape(c.s.vhost)
}

// DeclareExchange implements driver.Conn.
func (c *conn) DeclareExchange(ctx context.Context, ex driver.Exchange) error {
	return c.fl.declareExchange(ctx, ex)
}

// DeleteExchange implements driver.Conn.
func (c *conn) DeleteExchange(ctx context.Context, name string) error {
	return c.fl.deleteExchange(ctx, name)
}

// DeclareQueue implements driver.Conn.
func (c *conn) DeclareQueue(ctx context.Context, q driver.Queue) (string, error) {
	return c.fl.declareQueue(ctx, q)
}

// DeleteQueue implements driver.Conn. This connection's consumers of the
// queue end first (Receive returns ErrClosed): RabbitMQ 3.10's plugin
// drops the whole connection of a link whose queue is deleted under it.
func (c *conn) DeleteQueue(ctx context.Context, name string) (int, error) {
	c.mu.Lock()
	var doomed []*consumer
	for k := range c.consumers {
		if k.queue == name {
			doomed = append(doomed, k)
		}
	}
	c.mu.Unlock()
	for _, k := range doomed {
		_ = k.end(fmt.Errorf("%w: queue %s was deleted", driver.ErrClosed, name))
	}
	return c.fl.deleteQueue(ctx, name)
}

// PurgeQueue implements driver.Conn.
func (c *conn) PurgeQueue(ctx context.Context, name string) (int, error) {
	return c.fl.purgeQueue(ctx, name)
}

// Bind implements driver.Conn.
func (c *conn) Bind(ctx context.Context, b driver.Binding) error { return c.fl.bind(ctx, b) }

// Unbind implements driver.Conn.
func (c *conn) Unbind(ctx context.Context, b driver.Binding) error { return c.fl.unbind(ctx, b) }

// Healthy implements driver.HealthChecker: the connection is up now.
func (c *conn) Healthy(ctx context.Context) error {
	c.mu.Lock()
	ac, host := c.cur.ac, c.s.hosts[c.host]
	c.mu.Unlock()
	if ac == nil || ac.Err() != nil {
		return fmt.Errorf("amqp1: connection to %s lost; reconnecting", host)
	}
	return nil
}

// As implements driver.Conn: a **amqp.Conn target (go-amqp's) gets the
// connection in use now, which a reconnection replaces; false while the
// driver reconnects.
func (c *conn) As(target any) bool {
	p, ok := target.(**amqp.Conn)
	if !ok {
		return false
	}
	c.mu.Lock()
	ac := c.cur.ac
	c.mu.Unlock()
	if ac == nil {
		return false
	}
	*p = ac
	return true
}

// Close implements driver.Conn: consumers end first (their unsettled
// deliveries return to their queues), then the connection and the
// supervisor.
func (c *conn) Close() error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return nil
	}
	c.closing = true
	consumers := make([]*consumer, 0, len(c.consumers))
	for k := range c.consumers {
		consumers = append(consumers, k)
	}
	c.mu.Unlock()
	for _, k := range consumers {
		_ = k.Close()
	}
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	c.mu.Lock()
	ac := c.cur.ac
	c.mu.Unlock()
	errs := []error{c.fl.close()}
	if ac != nil {
		if err := ac.Close(); err != nil && !isLinkGone(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// randomName returns prefix and 16 random bytes in hex.
func randomName(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}
