package zmq

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-mq/switchyard/drivers/zmq/internal/matchmaker"
	"github.com/switchyard-mq/switchyard/transport"
	"github.com/switchyard-mq/switchyard/transport/driver"
	"github.com/switchyard-mq/switchyard/transport/driver/option"
)

// Scheme is the URL scheme this driver registers.
const Scheme = "zmq"

// ErrBufferFull is returned (wrapped, and also matching
// transport.ErrUnroutable) by Publish when a queue has no live consumer
// and its sender already holds buffer_size messages for it: the message
// can neither be delivered nor held.
var ErrBufferFull = fmt.Errorf("%w: sender-side buffer full and no live consumer", driver.ErrUnroutable)

// defaultRegistry names the registry of a zmq:// URL without a host.
const defaultRegistry = "default"

// The URL options this driver reads, besides the portable ones.
var (
	optMatchmaker = option.String(option.Spec{Name: "matchmaker", Default: "memory", Check: checkMatchmaker,
		Doc: `where nodes find each other: "memory" (this process) or a redis://host:port/db URL`})
	optBind = option.String(option.Spec{Name: "bind", Default: "127.0.0.1",
		Doc: "the `address` (host, or host:port) the node listens on (default 127.0.0.1, any port)"})
	optAckTimeout = option.Duration(option.Spec{Name: "ack_timeout", Default: "30s",
		Doc: "how long a delivery may stay unsettled before it is sent to another consumer (0: never)"})
	optLivenessTTL = option.Duration(option.Spec{Name: "liveness_ttl", Default: "10s",
		Doc: "how long a node stays registered without refreshing (more than 0)"})
	optRefresh = option.Duration(option.Spec{Name: "liveness_refresh",
		Doc: "how often a node refreshes its registration (default liveness_ttl/3)"})
	optBufferSize = option.Int(option.Spec{Name: "buffer_size", Default: "10000",
		Doc: "messages a sender holds for a queue without a live consumer"})
	optBufferTime = option.Duration(option.Spec{Name: "buffer_time",
		Doc: "how long a sender holds such a message (0: no limit)"})
	optSendTimeout = option.Duration(option.Spec{Name: "send_timeout", Default: "5s",
		Doc: "how long a send to another node may take (more than 0)"})

	urlOptions = option.NewSet(append(option.Portable(), optMatchmaker, optBind, optAckTimeout, optLivenessTTL,
		optRefresh, optBufferSize, optBufferTime, optSendTimeout)...)
)

// checkMatchmaker refuses a matchmaker other than memory and Redis,
// without quoting the value, which may hold a password.
func checkMatchmaker(v string) error {
	if v == "memory" || strings.HasPrefix(v, "redis://") || strings.HasPrefix(v, "rediss://") {
		return nil
	}
	return fmt.Errorf(`want "memory" or a redis://host:port/db URL`)
}

type options struct {
	matchmaker  string // "memory" or a redis:// URL
	bind        string // host:port
	ackTimeout  time.Duration
	livenessTTL time.Duration
	refresh     time.Duration
	bufferSize  int
	bufferTime  time.Duration
	sendTimeout time.Duration
}

func parseOptions(u *driver.URL) (options, error) {
	v, err := urlOptions.Parse(u)
	if err != nil {
		return options{}, err
	}
	o := options{
		matchmaker:  optMatchmaker.Get(v),
		bind:        optBind.Get(v),
		ackTimeout:  optAckTimeout.Get(v),
		livenessTTL: optLivenessTTL.Get(v),
		refresh:     optRefresh.Get(v),
		bufferSize:  optBufferSize.Get(v),
		bufferTime:  optBufferTime.Get(v),
		sendTimeout: optSendTimeout.Get(v),
	}
	bad := func(opt option.Option, want string) error {
		return fmt.Errorf("%w: option %s of %s: want %s", driver.ErrInvalid, opt.Spec().Name, u, want)
	}
	if o.refresh == 0 {
		o.refresh = o.livenessTTL / 3
	}
	switch {
	case o.livenessTTL == 0:
		return o, bad(optLivenessTTL, "more than 0")
	case o.sendTimeout == 0:
		return o, bad(optSendTimeout, "more than 0")
	case o.refresh == 0 || o.refresh >= o.livenessTTL:
		return o, bad(optRefresh, "a duration more than 0 and shorter than liveness_ttl ("+o.livenessTTL.String()+")")
	}
	if _, _, err := net.SplitHostPort(o.bind); err != nil {
		o.bind = net.JoinHostPort(strings.Trim(o.bind, "[]"), "0")
	}
	return o, nil
}

func init() {
	transport.Register(Scheme, &opener{registries: map[string]*matchmaker.Memory{}})
}

// opener holds the process's in-process registries by name, as the memory
// driver holds its brokers.
type opener struct {
	mu         sync.Mutex
	registries map[string]*matchmaker.Memory
}

func (o *opener) Open(ctx context.Context, cfg *driver.URL) (driver.Conn, error) {
	opts, err := parseOptions(cfg)
	if err != nil {
		return nil, err
	}
	name := defaultRegistry
	switch {
	case len(cfg.Hosts) > 1:
		return nil, fmt.Errorf("%w: zmq:// takes one registry name, not %d hosts", driver.ErrInvalid, len(cfg.Hosts))
	case len(cfg.Hosts) == 1 && cfg.Hosts[0].Port != 0:
		return nil, fmt.Errorf("%w: zmq://%s: a registry name has no port (the matchmaker option says where Redis is)", driver.ErrInvalid, cfg.Hosts[0])
	case cfg.User != "" || cfg.HasPassword:
		return nil, fmt.Errorf("%w: zmq:// takes no credentials (put Redis's in the matchmaker URL)", driver.ErrInvalid)
	case cfg.VirtualHost != "":
		return nil, fmt.Errorf("%w: zmq:// takes no path (got %q); use zmq://NAME for a separate registry", driver.ErrInvalid, cfg.VirtualHost)
	case len(cfg.Hosts) == 1:
		name = cfg.Hosts[0].Name
	}
	var mm matchmaker.Matchmaker
	crossProcess := false
	if opts.matchmaker == "memory" {
		o.mu.Lock()
		reg := o.registries[name]
		if reg == nil {
			reg = matchmaker.NewMemory()
			o.registries[name] = reg
		}
		o.mu.Unlock()
		mm = reg.Open()
	} else {
		r, err := matchmaker.NewRedis(ctx, opts.matchmaker, RedisPrefix(name), opts.refresh, cfg.Logger)
		if err != nil {
			return nil, err
		}
		mm, crossProcess = r, true
	}
	c, err := open(ctx, cfg.Logger, opts, mm, crossProcess)
	if err != nil {
		_ = mm.Close()
		return nil, err
	}
	return c, nil
}

// RedisPrefix is the prefix of the Redis keys of the registry that
// zmq://NAME?matchmaker=redis://... uses.
func RedisPrefix(name string) string { return "switchyard:zmq:" + name + ":" }

// defaultWindow is the credit a sender gives a consumer without prefetch:
// how many deliveries may be on the way to it or waiting in its buffer.
const defaultWindow = 1024

// conn is one open zmq:// transport: a node with its own endpoint. It
// composes parts that each guard their own state:
//
//   - registry: the view of the matchmaker's registry, and routing over it;
//   - sender: the messages this node holds for each queue, and the
//     credit of each queue's consumers;
//   - pool: the connections to other nodes, and the dials;
//   - consumers: this node's consumers and what they received;
//   - life: how far Close has gone, and the goroutines it waits for.
//
// Lock order: the sender's lock comes first; under it the pool's, the
// consumer table's and a connection's may be taken, and the pool's
// takes a connection's. The other locks (a consumer's, the duplicate
// filter's, the batched settlements', the lifecycle's) are taken alone.
// Nothing blocks under the sender's lock: it writes connections out and
// dials nodes once released (sender.unlock).
type conn struct {
	id       string
	endpoint string
	opts     options
	logger   *slog.Logger
	mm       matchmaker.Matchmaker
	ln       net.Listener
	caps     driver.Capabilities

	life      *lifecycle
	registry  *registry
	sender    *sender
	pool      *peerPool
	consumers *consumerTable

	rejoinPending bool // a rejoin did not complete; used by the maintain goroutine only
}

func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func open(ctx context.Context, logger *slog.Logger, opts options, mm matchmaker.Matchmaker, crossProcess bool) (*conn, error) {
	ln, err := net.Listen("tcp", opts.bind)
	if err != nil {
		return nil, fmt.Errorf("zmq: listen on %s: %w", opts.bind, err)
	}
	c := &conn{
		id:        randomID(),
		endpoint:  "tcp://" + ln.Addr().String(),
		opts:      opts,
		mm:        mm,
		ln:        ln,
		caps:      capabilities(crossProcess),
		life:      newLifecycle(),
		consumers: newConsumerTable(),
	}
	c.logger = logger.With("node", c.id)
	c.registry = &registry{self: c.id, mm: mm, follow: c.follow}
	c.pool = newPeerPool(c.life)
	c.sender = newSender(opts, c.logger, c.life, c.pool, c.connect)

	fail := func(err error) (*conn, error) {
		_ = ln.Close()
		return nil, err
	}
	if err := mm.Join(ctx, matchmaker.Node{ID: c.id, Endpoint: c.endpoint}, opts.livenessTTL); err != nil {
		return fail(fmt.Errorf("zmq: join the matchmaker: %w", err))
	}
	// RabbitMQ predeclares these; programs written for it expect them.
	for _, kind := range []string{"direct", "fanout", "topic"} {
		x := matchmaker.Exchange{Name: "amq." + kind, Kind: kind, Durable: true}
		if err := mm.DeclareExchange(ctx, x); err != nil {
			_ = mm.Leave(context.WithoutCancel(ctx), c.id)
			return fail(fmt.Errorf("zmq: predeclare %s: %w", x.Name, err))
		}
	}
	reg, err := mm.Refresh(ctx)
	if err != nil {
		_ = mm.Leave(context.WithoutCancel(ctx), c.id)
		return fail(fmt.Errorf("zmq: load the registry: %w", err))
	}
	c.follow(reg)
	for _, loop := range []func(){c.acceptLoop, c.watchRegistry, c.maintain, c.flushSettlements} {
		c.life.goTracked(loop)
	}
	c.logger.DebugContext(ctx, "zmq: node up", "endpoint", c.endpoint, "matchmaker", redactMatchmaker(opts.matchmaker))
	return c, nil
}

// capabilities are what a node provides; cross-process only with a
// matchmaker that other processes share.
func capabilities(crossProcess bool) driver.Capabilities {
	caps := []driver.Capability{
		driver.CapDirect, driver.CapFanout, driver.CapTopic, driver.CapQueueBinding, driver.CapServerNamedQueue,
		driver.CapExclusiveQueue, driver.CapAutoDelete, driver.CapMessageTTL, driver.CapDeadLetter,
		driver.CapDeliveryLimit, driver.CapMandatory, driver.CapPrefetch, driver.CapHeaders, driver.CapDeliveryCount,
		driver.CapExclusiveConsumer, driver.CapQueueExistence, driver.CapTransientQueue,
	}
	if crossProcess {
		caps = append(caps, driver.CapCrossProcess)
	}
	return driver.NewCapabilities(caps...)
}

// redactMatchmaker hides a password in a redis:// URL for logs.
func redactMatchmaker(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		return scheme + "://xxxxx@" + rest[at+1:]
	}
	return u
}

// isClosing reports whether Close has stopped the node's background work.
func (c *conn) isClosing() bool { return c.life.stopping() }

// Capabilities implements driver.Conn.
func (c *conn) Capabilities() driver.Capabilities { return c.caps }

// Healthy implements driver.HealthChecker: the matchmaker is reachable.
func (c *conn) Healthy(ctx context.Context) error {
	if c.isClosing() {
		return driver.ErrClosed
	}
	return c.mm.Ping(ctx)
}

func (c *conn) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.isClosing() {
		return driver.ErrClosed
	}
	return nil
}

// As implements driver.Conn: zmq:// speaks ZeroMQ itself and has no
// client to reach.
func (c *conn) As(any) bool { return false }

// Close implements driver.Conn: consumers end (their messages go back to
// their senders), the node leaves the matchmaker, connections close, and
// every goroutine is waited for. Messages this node still held for other
// nodes' consumers are lost: there is no broker to keep them.
func (c *conn) Close() error {
	if !c.life.closing.CompareAndSwap(false, true) {
		return nil
	}
	autoDelete := map[string]bool{}
	for _, cons := range c.consumers.all() {
		cons.end(true)
		autoDelete[cons.queue] = true
	}
	c.consumers.unsent.flush()

	ctx, cancel := context.WithTimeout(context.Background(), c.opts.sendTimeout)
	defer cancel()
	if n := c.handOff(ctx); n > 0 {
		c.logger.DebugContext(context.Background(), "zmq: handed off held messages to another node", "messages", n)
	}
	var errs []error
	if err := c.mm.Leave(ctx, c.id); err != nil {
		errs = append(errs, fmt.Errorf("zmq: leave the matchmaker: %w", err))
	}
	c.life.halt()
	for q := range autoDelete {
		c.autoDeleteQueue(ctx, q)
	}

	c.life.seal()
	_ = c.ln.Close()
	pending, unsettled := c.sender.counts()
	for _, p := range c.pool.conns() {
		p.flush() // settlements and returns queued by the consumers above
		p.fail()
	}
	c.life.wait()
	if pending > 0 {
		c.logger.WarnContext(ctx, "zmq: closed while holding messages no consumer had, and no other node could take them; they are lost", "messages", pending)
	}
	if unsettled > 0 {
		c.logger.DebugContext(ctx, "zmq: closed before consumers settled messages they had; they will not be redelivered", "messages", unsettled)
	}
	errs = append(errs, c.mm.Close())
	return errors.Join(errs...)
}

// lifecycle is how far a node is in closing, and the goroutines Close
// waits for.
type lifecycle struct {
	// closing is set when Close begins: from then on nothing new is held,
	// dialled or connected.
	closing atomic.Bool
	// stop is closed once Close has handed off and left the matchmaker:
	// the background loops end, and the node refuses every operation.
	stop chan struct{}

	mu     sync.Mutex // orders wg.Add against wait
	sealed bool       // no goroutine may start
	wg     sync.WaitGroup
}

func newLifecycle() *lifecycle { return &lifecycle{stop: make(chan struct{})} }

// goTracked runs f in a goroutine that wait waits for, unless the
// lifecycle is sealed.
func (l *lifecycle) goTracked(f func()) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sealed {
		return false
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		f()
	}()
	return true
}

// halt stops the background loops.
func (l *lifecycle) halt() { close(l.stop) }

// stopping reports whether halt was called.
func (l *lifecycle) stopping() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

// seal refuses every goroutine from now on.
func (l *lifecycle) seal() {
	l.mu.Lock()
	l.sealed = true
	l.mu.Unlock()
}

// wait waits for every tracked goroutine; call it after seal.
func (l *lifecycle) wait() { l.wg.Wait() }
