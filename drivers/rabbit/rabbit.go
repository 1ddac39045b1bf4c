package rabbit

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-mq/switchyard/internal/oslo"
	"github.com/switchyard-mq/switchyard/internal/rabbitmq"
	"github.com/switchyard-mq/switchyard/transport"
	"github.com/switchyard-mq/switchyard/transport/driver"
)

// The URL schemes this driver registers: Scheme for plain TCP, SchemeTLS
// for TLS (as is Scheme with ssl=true).
const (
	Scheme    = "rabbit"
	SchemeTLS = "rabbits"
)

func init() {
	transport.Register(Scheme, driver.OpenerFunc(open))
	transport.Register(SchemeTLS, driver.OpenerFunc(open))
}

const (
	// dialTimeout bounds one connection attempt: TCP, TLS and the AMQP
	// handshake.
	dialTimeout = 10 * time.Second
	// closeTimeout bounds the closing handshakes of Close, so that a dead
	// peer cannot make Close hang.
	closeTimeout = 5 * time.Second
	// restoreBudget bounds how long a reconnection waits for the broker to
	// answer the re-declaration of the topology and the consumers' starts
	// before it installs the new connection and lets the rest go on in the
	// background (see restore).
	restoreBudget = 5 * time.Second
)

// conn is one transport's link to RabbitMQ: one AMQP connection at a time,
// replaced by the supervisor goroutine when it drops.
type conn struct {
	s      settings
	logger *slog.Logger

	// ctx ends when Close starts; everything that waits selects on it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the supervisor and the helpers of blocking calls

	cur     atomic.Pointer[session] // nil while reconnecting
	closing atomic.Bool

	// topoSem serialises the topology channel, and holds topology
	// operations off while a new session re-declares the recorded topology.
	topoSem chan struct{}
	topo    recorded
	name    string              // the connection's name, the same on every reconnection
	caps    driver.Capabilities // set by open from the first broker's product

	mu        sync.Mutex
	ready     chan struct{} // closed when cur is set; replaced when it is lost
	consumers map[*consumer]struct{}
	nextHost  int
}

// session is one AMQP connection and the channels opened on it.
type session struct {
	amqp    *amqp.Connection
	host    driver.Host
	closed  chan *amqp.Error // the connection's close notification
	lost    chan struct{}    // closed by the supervisor once it saw the loss
	topoCh  *amqp.Channel    // guarded by conn.topoSem
	pub     sharedChannel    // publishes without the mandatory flag
	tracked sharedChannel    // mandatory publishes, and others that must be confirmed

	// consumerChannels are the channels the connection's consumers share.
	consumerChannels consumerChannels
}

func open(ctx context.Context, u *driver.URL) (driver.Conn, error) {
	s, err := parseSettings(u)
	if err != nil {
		return nil, err
	}
	c := &conn{
		s:         s,
		name:      connectionName(),
		logger:    u.Logger,
		topoSem:   make(chan struct{}, 1),
		ready:     make(chan struct{}),
		consumers: map[*consumer]struct{}{},
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	for _, why := range s.ignored {
		c.logger.WarnContext(ctx, "rabbit: an option of oslo.messaging's has no effect here", "option", why)
	}
	c.topo.init()
	c.ctx, c.cancel = context.WithCancel(context.Background())
	var errs []error
	for range s.hosts {
		host := c.pickHost()
		ac, err := c.dial(ctx, host)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if s.queues.HA && !mirrors(ac) {
			c.logger.WarnContext(ctx, "rabbit: rabbit_ha_queues has no effect on this broker: RabbitMQ 4 removed classic queue mirroring (use rabbit_quorum_queue)",
				"broker_version", ac.Properties["version"])
		}
		c.caps = brokerCapabilities(ac)
		sess := c.newSession(ac, host)
		c.install(sess)
		c.wg.Add(1)
		go c.supervise(sess)
		return c, nil
	}
	c.cancel()
	return nil, errors.Join(errs...)
}

// mirrors reports whether the broker may still mirror classic queues, as
// x-ha-policy asks: RabbitMQ before 4.0, or a broker that does not say
// its version.
func mirrors(ac *amqp.Connection) bool {
	version, _ := ac.Properties["version"].(string)
	major, _, _ := strings.Cut(version, ".")
	n, err := strconv.Atoi(major)
	return err != nil || n < 4
}

// As implements driver.Conn: a **amqp091.Connection target gets the
// connection in use now, which a reconnection replaces; false while the
// driver reconnects.
func (c *conn) As(target any) bool {
	p, ok := target.(**amqp.Connection)
	if !ok {
		return false
	}
	sess := c.cur.Load()
	if sess == nil {
		return false
	}
	*p = sess.amqp
	return true
}

// pickHost returns the next host to try, round robin.
func (c *conn) pickHost() driver.Host {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.s.hosts[c.nextHost%len(c.s.hosts)]
	c.nextHost++
	return h
}

// dial opens an AMQP connection to host, bounded by ctx and dialTimeout.
func (c *conn) dial(ctx context.Context, host driver.Host) (*amqp.Connection, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	addr := net.JoinHostPort(host.Name, fmt.Sprint(host.Port))
	fail := func(err error) error {
		if errors.Is(err, driver.ErrInvalid) {
			// Refused credentials or a missing vhost (403, 530): another
			// try will not heal it, so it is not reported as a lost
			// connection.
			return fmt.Errorf("connect to %s (vhost %q) for %s: %w", addr, c.s.vhost, c.s.url, err)
		}
		return fmt.Errorf("%w: connect to %s (vhost %q) for %s: %w", driver.ErrClosed, addr, c.s.vhost, c.s.url, err)
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fail(err)
	}
	// Abort the handshakes when ctx ends; amqp091-go clears the deadline
	// once the connection is open, and its heartbeats take over.
	deadline, _ := ctx.Deadline()
	_ = nc.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
	defer stop()
	if c.s.tls != nil {
		tc := c.s.tls.Clone()
		if tc.ServerName == "" {
			tc.ServerName = host.Name
		}
		tlsConn := tls.Client(nc, tc)
		if err := tlsConn.HandshakeContext(ctx); err != nil {
			_ = nc.Close()
			return nil, fail(fmt.Errorf("TLS handshake: %w", err))
		}
		nc = tlsConn
	}
	ac, err := amqp.Open(nc, amqp.Config{
		// A fresh PlainAuth each time: amqp091-go zeroes the password of
		// the one it used once the connection is open.
		SASL:       []amqp.Authentication{&amqp.PlainAuth{Username: c.s.user, Password: c.s.password}},
		Vhost:      c.s.vhost,
		Heartbeat:  c.s.heartbeat,
		Properties: clientProperties(c.name),
		Locale:     "en_US",
	})
	if err != nil {
		_ = nc.Close()
		if err = rabbitmq.MapError(err); ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return nil, fail(err)
	}
	if !stop() {
		_ = ac.CloseDeadline(time.Now().Add(closeTimeout))
		return nil, fail(ctx.Err())
	}
	return ac, nil
}

// switchyardModule is Switchyard's module path, whose version the connection names.
const switchyardModule = "github.com/switchyard-mq/switchyard"

// clientProperties are what a connection tells the broker about its
// client, shown in RabbitMQ's management UI: Switchyard as the product,
// its version, Go's as the platform, and a connection name that says which
// process opened it, as oslo.messaging's rabbit driver names its
// connections: "<program>:<pid>:<uuid4>". (amqp091-go adds its
// capabilities.)
func clientProperties(connectionName string) amqp.Table {
	return amqp.Table{
		"product":         "Switchyard",
		"version":         moduleVersion(),
		"platform":        "Go " + strings.TrimPrefix(runtime.Version(), "go"),
		"connection_name": connectionName,
	}
}

// connectionName names a transport's connection as oslo.messaging names
// its own, "<process>:<pid>:<uuid>", so that an operator can tell which
// process it is; the transport keeps it across reconnections.
func connectionName() string {
	return filepath.Base(os.Args[0]) + ":" + strconv.Itoa(os.Getpid()) + ":" + oslo.NewDashedID()
}

// moduleVersion is the version of Switchyard built into the program, from
// its build information: a release tag ("v1.2.0"), a pseudo-version, or
// "devel" when Switchyard is built from a working tree (the program's own
// module, or replaced by a local directory) and has none.
func moduleVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	version := ""
	if info.Main.Path == switchyardModule {
		version = info.Main.Version
	}
	for _, dep := range info.Deps {
		if dep.Path == switchyardModule {
			version = dep.Version
			if dep.Replace != nil {
				version = dep.Replace.Version
			}
		}
	}
	if version == "" || version == "(devel)" {
		return "devel"
	}
	return version
}

func (c *conn) newSession(ac *amqp.Connection, host driver.Host) *session {
	sess := &session{
		amqp:   ac,
		host:   host,
		closed: ac.NotifyClose(make(chan *amqp.Error, 1)),
		lost:   make(chan struct{}),
	}
	sess.pub.confirm = c.s.confirms
	sess.tracked.confirm, sess.tracked.track = true, true
	sess.consumerChannels.spread = spreadChannels
	return sess
}

// install makes sess the current session and wakes those waiting for one.
// It reports false (and closes sess) if the transport is closing.
func (c *conn) install(sess *session) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing.Load() {
		_ = sess.amqp.CloseDeadline(time.Now().Add(closeTimeout))
		return false
	}
	c.cur.Store(sess)
	close(c.ready)
	return true
}

// session returns the current session, waiting for a reconnection if the
// connection is down, until ctx ends or the transport closes.
func (c *conn) session(ctx context.Context) (*session, error) {
	for {
		if sess := c.cur.Load(); sess != nil {
			return sess, nil
		}
		c.mu.Lock()
		ready := c.ready
		c.mu.Unlock()
		if c.cur.Load() != nil {
			continue
		}
		if c.closing.Load() {
			return nil, driver.ErrClosed
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the connection to %s to come back: %w", c.s.url, ctx.Err())
		case <-c.ctx.Done():
			return nil, driver.ErrClosed
		}
	}
}

// supervise watches the current session and replaces it when it drops.
func (c *conn) supervise(sess *session) {
	defer c.wg.Done()
	for {
		var cause *amqp.Error
		select {
		case <-c.ctx.Done():
			return
		case cause = <-sess.closed:
		}
		if c.ctx.Err() != nil {
			return
		}
		c.logger.WarnContext(c.ctx, "rabbit: connection lost; reconnecting", "host", sess.host.String(), "err", cause)
		c.mu.Lock()
		c.cur.Store(nil)
		c.ready = make(chan struct{})
		c.mu.Unlock()
		close(sess.lost)
		next := c.reconnect()
		if next == nil {
			return
		}
		sess = next
	}
}

// sessionChange is closed when the connection moves on from sess, the
// session last seen current: for a session, once the supervisor has seen
// it lost; for none (reconnecting), once a new one is installed.
func (c *conn) sessionChange(sess *session) <-chan struct{} {
	if sess != nil {
		return sess.lost
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ready
}

// reconnect dials the URL's hosts in turn, waiting a jittered, growing
// backoff after each round that fails, until one connects and takes the
// recorded topology and the consumers back, or the transport closes.
func (c *conn) reconnect() *session {
	start := time.Now()
	attempts := 0
	for round := 0; ; round++ {
		if round > 0 {
			if c.s.reconnect.Wait(c.ctx, round-1) != nil {
				return nil
			}
		}
		for range c.s.hosts {
			host := c.pickHost()
			attempts++
			ac, err := c.dial(c.ctx, host)
			if err != nil {
				if c.ctx.Err() != nil {
					return nil
				}
				c.logger.InfoContext(c.ctx, "rabbit: reconnection attempt failed", "host", host.String(), "attempt", attempts, "err", err)
				continue
			}
			sess := c.newSession(ac, host)
			if err := c.restore(sess); err != nil {
				_ = ac.CloseDeadline(time.Now().Add(closeTimeout))
				if c.ctx.Err() != nil {
					return nil
				}
				c.logger.InfoContext(c.ctx, "rabbit: reconnected but could not restore; retrying", "host", host.String(), "attempt", attempts, "err", err)
				continue
			}
			if !c.install(sess) {
				return nil
			}
			c.logger.InfoContext(c.ctx, "rabbit: reconnected", "host", host.String(), "attempts", attempts, "down", time.Since(start).Round(time.Millisecond))
			return sess
		}
	}
}

// restore re-declares the recorded topology on a new session and resumes
// every consumer on it. It fails only when the new connection fails; an
// entity or consumer the broker refuses is logged and left out.
//
// It is bounded by restoreBudget: on a cluster, a node that is frozen (a
// stalled VM or host) but not yet seen down by its peers holds every
// declaration and consume that touches it (a queue whose leader it is, a
// metadata transaction) until it resumes or its peers give it up, which
// can take minutes. What has not answered by then goes on in the
// background, and the session is installed: publishing, and consumers the
// healthy nodes serve, resume at once. A consumer still starting is
// reported by Healthy until it consumes (if its start fails, its Receive
// tries again with backoff); the topology still being declared holds
// further declarations through this transport off until it is done.
func (c *conn) restore(sess *session) error {
	deadline := time.Now().Add(restoreBudget)
	budget := time.NewTimer(restoreBudget)
	defer budget.Stop()
	select {
	case c.topoSem <- struct{}{}:
	case <-c.ctx.Done():
		return driver.ErrClosed
	}
	var late atomic.Bool
	redeclared := make(chan error, 1)
	start := time.Now()
	if !c.spawn(func() {
		defer func() { <-c.topoSem }()
		err := c.redeclare(sess)
		redeclared <- err
		if late.Load() && c.ctx.Err() == nil {
			c.logger.InfoContext(c.ctx, "rabbit: the topology re-declared in the background", "host", sess.host.String(), "took", time.Since(start).Round(time.Millisecond), "err", err)
		}
	}) {
		<-c.topoSem
		return driver.ErrClosed
	}
	select {
	case err := <-redeclared:
		if err != nil {
			return err
		}
	case <-budget.C:
		late.Store(true)
		c.logger.WarnContext(c.ctx, "rabbit: the broker has not answered the re-declaration of the topology in time (a node does not answer?); going on, the rest is declared in the background",
			"host", sess.host.String(), "waited", restoreBudget)
	case <-c.ctx.Done():
		return driver.ErrClosed
	}
	c.mu.Lock()
	consumers := make([]*consumer, 0, len(c.consumers))
	for cons := range c.consumers {
		consumers = append(consumers, cons)
	}
	c.mu.Unlock()
	// Consumers on healthy nodes start in milliseconds: they get a second
	// even when the topology took the whole budget.
	return c.restartConsumers(sess, consumers, max(time.Until(deadline), time.Second))
}

// restartConsumers starts the consumers again on sess, each on a goroutine
// of its own, and waits for them for budget: a consumer whose
// start has not answered by then is reported stalled (Healthy says so)
// and goes on starting in the background. It returns the error of a start
// that failed because the connection did.
func (c *conn) restartConsumers(sess *session, consumers []*consumer, budget time.Duration) error {
	timer := time.NewTimer(budget)
	defer timer.Stop()
	var mu sync.Mutex // orders a late start's outcome after the stall of a consumer still starting
	pastBudget := false
	finished := make(map[*consumer]bool, len(consumers))
	errs := make(chan error, len(consumers))
	for _, cons := range consumers {
		if !c.spawn(func() {
			err := cons.restart(sess)
			mu.Lock()
			finished[cons] = true
			late := pastBudget
			mu.Unlock()
			switch {
			case err == nil:
				cons.resumed(c.ctx)
			case c.ctx.Err() != nil || connectionFailing(sess, err):
			default:
				// Not ended: its Receive tries again with backoff (lost),
				// and Healthy reports it meanwhile.
				cons.stall(c.ctx, fmt.Errorf("the consumer of queue %q could not resume after reconnecting: %w", cons.queue, rabbitmq.MapError(err)))
			}
			if late && err == nil {
				c.logger.InfoContext(c.ctx, "rabbit: a consumer started late after reconnecting", "queue", cons.queue)
			}
			errs <- err
		}) {
			return driver.ErrClosed
		}
	}
	for range consumers {
		select {
		case err := <-errs:
			if err != nil && (c.ctx.Err() != nil || connectionFailing(sess, err)) {
				return err
			}
		case <-timer.C:
			mu.Lock()
			pastBudget = true
			for _, cons := range consumers {
				if !finished[cons] {
					cons.stall(c.ctx, fmt.Errorf("the consumer of queue %q has not started again: the broker has not answered within %v after reconnecting; still trying", cons.queue, budget))
				}
			}
			mu.Unlock()
			return nil
		case <-c.ctx.Done():
			return driver.ErrClosed
		}
	}
	return nil
}

// Capabilities: the whole model on RabbitMQ. Delivery limits are native
// on quorum queues and counted by the driver on classic ones.
func (c *conn) Capabilities() driver.Capabilities { return c.caps }

// switchyardProduct is the "product" server property of Switchyard's own
// broker served over AMQP 0-9-1 (drivers/memory's ServerProduct, which
// this driver cannot import).
const switchyardProduct = "Switchyard"

// brokerCapabilities is what the broker ac reached provides: everything
// on RabbitMQ; on Switchyard's broker (switchyard broker, which says so
// in its "product" server property) there are no streams, and durable
// means what it means on memory://: kept while the broker's process
// lives, whoever connects and disconnects, not across its restart.
func brokerCapabilities(ac *amqp.Connection) driver.Capabilities {
	all := driver.NewCapabilities(driver.AllCapabilities()...)
	if product, _ := ac.Properties["product"].(string); product == switchyardProduct {
		return all.Without(driver.CapStreamQueue)
	}
	return all
}

// Healthy reports whether the connection is up now and every consumer
// consumes: a consumer the broker cancelled, or that could not resume
// after a reconnection, is reported until it consumes again.
func (c *conn) Healthy(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.closing.Load() {
		return driver.ErrClosed
	}
	sess := c.cur.Load()
	if sess == nil || sess.amqp.IsClosed() {
		return fmt.Errorf("%w: not connected to %s (reconnecting)", driver.ErrClosed, c.s.url)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for cons := range c.consumers {
		if err := cons.stalledErr(); err != nil {
			return fmt.Errorf("rabbit: connected, but %w", err)
		}
	}
	return nil
}

// Close ends the consumers and the connection; the broker returns every
// unsettled delivery to its queue. It waits for the driver's goroutines.
func (c *conn) Close() error {
	c.mu.Lock()
	if c.closing.Swap(true) {
		c.mu.Unlock()
		return nil
	}
	consumers := make([]*consumer, 0, len(c.consumers))
	for cons := range c.consumers {
		consumers = append(consumers, cons)
	}
	c.consumers = map[*consumer]struct{}{}
	sess := c.cur.Swap(nil)
	c.mu.Unlock()
	c.cancel()
	for _, cons := range consumers {
		cons.end(fmt.Errorf("%w: the transport closed", driver.ErrClosed), false)
	}
	var err error
	if sess != nil {
		if cerr := sess.amqp.CloseDeadline(time.Now().Add(closeTimeout)); cerr != nil && !errors.Is(cerr, amqp.ErrClosed) {
			err = fmt.Errorf("close connection to %s: %w", sess.host, rabbitmq.MapError(cerr))
		}
	}
	c.wg.Wait()
	return err
}

// async runs f on a goroutine that the transport owns and waits for it
// until ctx ends: amqp091-go's requests take no context, and a request on
// a connection that died silently only returns when the heartbeat timeout
// notices. f must not touch what the caller owns after ctx ends.
func (c *conn) async(ctx context.Context, f func() error) error {
	done := make(chan error, 1)
	if !c.spawn(func() { done <- f() }) {
		return driver.ErrClosed
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// spawn runs f on a goroutine that Close waits for; it reports false, and
// runs nothing, once the transport is closing.
func (c *conn) spawn(f func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing.Load() {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
	return true
}
