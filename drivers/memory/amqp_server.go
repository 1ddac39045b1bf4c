package memory

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-mq/switchyard/drivers/memory/internal/amqp091"
)

// ServerConfig configures an AMQP 0-9-1 server in front of an in-process
// broker. The zero value serves memory://'s default broker to guest/guest
// from loopback, with RabbitMQ's defaults.
type ServerConfig struct {
	// Broker names the in-process broker served: "" is memory://, NAME
	// is memory://NAME. Transports of this process opened on that URL and
	// the server's clients share its queues and exchanges.
	Broker string
	// Users maps user names to passwords; nil means guest/guest.
	Users map[string]string
	// LoopbackUsers may log in only from a loopback address, as RabbitMQ's
	// loopback_users; nil means guest.
	LoopbackUsers []string
	// MaxConnections bounds open client connections; 0 is no bound.
	MaxConnections int
	// ChannelMax is the channel_max proposed to clients; 0 is 2047.
	ChannelMax uint16
	// FrameMax is the frame_max proposed to clients; 0 is 131072.
	FrameMax uint32
	// Heartbeat is the heartbeat interval proposed to clients, rounded to
	// seconds; 0 is 60 s, negative proposes none.
	Heartbeat time.Duration
	// MaxMessageSize bounds a message body; 0 is 128 MiB, RabbitMQ's
	// default.
	MaxMessageSize int
	// MaxQueuedBytes bounds the bodies of the messages ready in the
	// broker's queues: above it the server sends connection.blocked to
	// each connection that publishes and reads nothing more from it until
	// the queues drain below the bound (then connection.unblocked), as
	// RabbitMQ's memory alarm does. 0 is no bound.
	MaxQueuedBytes int64
	// TLS, when not nil, makes ListenAndServe serve AMQPS.
	TLS *tls.Config
	// Logger receives the server's logs; nil is slog.Default().
	Logger *slog.Logger
}

// Server is an AMQP 0-9-1 server in front of an in-process broker, so
// that pika, amqp091-go (the rabbit:// driver), oslo.messaging and other
// RabbitMQ clients reach it over TCP. See the package documentation.
type Server struct {
	cfg    ServerConfig
	b      *broker
	logger *slog.Logger

	users    map[string]string
	loopback map[string]bool

	// blocked is set while the broker holds more than MaxQueuedBytes;
	// flowChange is closed and replaced when it changes.
	blocked    atomic.Bool
	flowMu     sync.Mutex
	flowChange chan struct{}

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*serverConn]struct{}
	closed    bool
	wg        sync.WaitGroup
	done      chan struct{}
}

// NewServer returns a server for cfg's broker, which it starts if this
// process has not used it yet.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.ChannelMax == 0 {
		cfg.ChannelMax = 2047
	}
	switch {
	case cfg.FrameMax == 0:
		cfg.FrameMax = 131072
	case cfg.FrameMax < amqp091.FrameMinSize:
		return nil, fmt.Errorf("memory: frame_max %d is below the protocol's minimum %d", cfg.FrameMax, amqp091.FrameMinSize)
	}
	switch {
	case cfg.Heartbeat == 0:
		cfg.Heartbeat = 60 * time.Second
	case cfg.Heartbeat < 0:
		cfg.Heartbeat = 0
	case cfg.Heartbeat < time.Second || cfg.Heartbeat > 65535*time.Second:
		return nil, fmt.Errorf("memory: heartbeat %v is not between 1 s and 65535 s", cfg.Heartbeat)
	}
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = 128 << 20
	}
	if cfg.Users == nil {
		cfg.Users = map[string]string{"guest": "guest"}
	}
	if cfg.LoopbackUsers == nil {
		cfg.LoopbackUsers = []string{"guest"}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	s := &Server{
		cfg:       cfg,
		b:         brokers.broker(cfg.Broker, logger),
		logger:    logger.With("server", "amqp", "broker", "memory://"+cfg.Broker),
		users:     cfg.Users,
		loopback:  map[string]bool{},
		listeners: map[net.Listener]struct{}{},
		conns:     map[*serverConn]struct{}{},
		done:      make(chan struct{}),
	}
	for _, u := range cfg.LoopbackUsers {
		s.loopback[u] = true
	}
	s.flowChange = make(chan struct{})
	if cfg.MaxQueuedBytes > 0 {
		go s.watchQueuedBytes()
	}
	return s, nil
}

// flowInterval is how often the server compares the broker's queued
// bytes with MaxQueuedBytes.
const flowInterval = 20 * time.Millisecond

// watchQueuedBytes blocks and unblocks publishers as the broker's queues
// fill and drain, until Close.
func (s *Server) watchQueuedBytes() {
	t := time.NewTicker(flowInterval)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		over := s.b.queuedBytes() > s.cfg.MaxQueuedBytes
		if s.blocked.Load() != over {
			s.flowMu.Lock()
			s.blocked.Store(over)
			close(s.flowChange)
			s.flowChange = make(chan struct{})
			s.flowMu.Unlock()
			s.logger.InfoContext(context.Background(), "publisher flow control: queued bytes crossed the limit", "blocked", over, "limit", s.cfg.MaxQueuedBytes)
		}
	}
}

// flowState reports whether publishers are blocked, and a channel closed
// when that changes.
func (s *Server) flowState() (bool, <-chan struct{}) {
	s.flowMu.Lock()
	defer s.flowMu.Unlock()
	return s.blocked.Load(), s.flowChange
}

// ErrServerClosed is returned by Serve once Close was called.
var ErrServerClosed = errors.New("memory: AMQP server closed")

// ListenAndServe listens on addr (TCP, TLS if cfg.TLS is set) and serves
// until ctx ends, then closes the server gracefully. Use NewServer and
// Serve to learn the address of a listener on port 0.
func ListenAndServe(ctx context.Context, addr string, cfg ServerConfig) error {
	s, err := NewServer(cfg)
	if err != nil {
		return err
	}
	l, err := s.Listen(addr)
	if err != nil {
		return err
	}
	err = s.Serve(ctx, l)
	if errors.Is(err, ErrServerClosed) {
		return nil
	}
	return err
}

// Listen opens a listener on addr, wrapped in TLS if the configuration
// has it.
func (s *Server) Listen(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("memory: AMQP server: %w", err)
	}
	if s.cfg.TLS != nil {
		l = tls.NewListener(l, s.cfg.TLS)
	}
	return l, nil
}

// Serve accepts connections on l until ctx ends or Close is called, and
// then closes the server: it tells every client with connection.close
// (320 CONNECTION_FORCED) and waits for their connections to end. It
// returns ErrServerClosed after a shutdown, or the listener's error.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { _ = s.Close() })
	defer stop()
	s.logger.DebugContext(ctx, "AMQP 0-9-1 server listening", "addr", l.Addr().String())
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			delete(s.listeners, l)
			s.mu.Unlock()
			if closed {
				s.wg.Wait()
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("memory: AMQP server: %w", err)
		}
		c := newServerConn(s, nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve(context.WithoutCancel(ctx))
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// Addr is the address of a listener Serve accepts on, or nil.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	for l := range s.listeners {
		return l.Addr()
	}
	return nil
}

// connCount is how many client connections are open.
func (s *Server) connCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Close stops accepting, closes every client connection with
// 320 CONNECTION_FORCED, and waits for them to end. The broker and its
// queues stay, for the process's memory:// users and a later server.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	close(s.done)
	for l := range s.listeners {
		_ = l.Close()
	}
	conns := make([]*serverConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.shutdown()
	}
	s.wg.Wait()
	return nil
}

// serverProperties are what connection.start announces: the capabilities
// RabbitMQ announces that clients rely on, and a product that tells this
// broker from RabbitMQ.
func serverProperties() amqp091.Table {
	return amqp091.Table{
		"product":     ServerProduct,
		"version":     "0.9.1",
		"platform":    "Go",
		"information": "Switchyard's in-process broker served over AMQP 0-9-1",
		"capabilities": amqp091.Table{
			"publisher_confirms":           true,
			"exchange_exchange_bindings":   false,
			"basic.nack":                   true,
			"consumer_cancel_notify":       true,
			"connection.blocked":           true,
			"consumer_priorities":          false,
			"authentication_failure_close": true,
			"per_consumer_qos":             true,
			"direct_reply_to":              false,
		},
	}
}

// ServerProduct is the "product" server property the server announces:
// clients that need to know they talk to this broker rather than
// RabbitMQ read it.
const ServerProduct = "Switchyard"
