package memory

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-mq/switchyard/drivers/memory/internal/amqp091"
)

// handshakeTimeout bounds the protocol header, authentication and tuning,
// as RabbitMQ's handshake_timeout does.
const handshakeTimeout = 10 * time.Second

// closeTimeout bounds how long a connection waits for the client's
// close-ok after the server closed it.
const closeTimeout = 3 * time.Second

// serverConn is one client connection. One goroutine reads its frames
// and runs their methods in order; each consumer has a goroutine that
// writes its deliveries; writes share a lock and a buffer.
type serverConn struct {
	s      *Server
	nc     net.Conn
	r      *bufio.Reader
	logger *slog.Logger
	mc     *conn // the connection to the broker: owns exclusive queues and consumers

	// Negotiated at tune-ok; read-only afterwards.
	frameMax   uint32
	channelMax uint16
	heartbeat  time.Duration
	user       string
	cancelNote bool // the client takes server-sent basic.cancel
	blockNote  bool // the client takes connection.blocked

	wmu     sync.Mutex
	w       *bufio.Writer
	scratch []byte
	werr    error
	writers atomic.Int32 // waiting for or holding wmu: the last one flushes

	channels map[uint16]*serverChannel // the reading goroutine's
	forced   atomic.Bool               // the server sent connection.close
	done     chan struct{}             // closed when the connection ends
}

func newServerConn(s *Server, nc net.Conn) *serverConn {
	return &serverConn{
		s: s, nc: nc,
		r:        bufio.NewReaderSize(nc, 64<<10),
		w:        bufio.NewWriterSize(nc, 64<<10),
		logger:   s.logger.With("client", nc.RemoteAddr().String()),
		mc:       newConn(s.b),
		channels: map[uint16]*serverChannel{},
		done:     make(chan struct{}),
		frameMax: s.cfg.FrameMax,
	}
}

// writeTimeout bounds one flush: a client that stops reading for that
// long is closed rather than holding its consumers' goroutines.
func (c *serverConn) writeTimeout() time.Duration {
	if c.forced.Load() {
		return closeTimeout // closing: a stuck client must not hold the shutdown
	}
	if c.heartbeat > 0 {
		return 2 * c.heartbeat
	}
	return time.Minute
}

// emit appends frames with encode to the connection's buffer and writes
// them; the last of concurrent writers flushes. encode runs under the
// write lock, so what it numbers (delivery tags) goes out in order.
func (c *serverConn) emit(encode func(dst []byte) ([]byte, error)) error {
	c.writers.Add(1)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	last := c.writers.Add(-1) == 0
	if c.werr != nil {
		return c.werr
	}
	b, err := encode(c.scratch[:0])
	if err != nil {
		return err
	}
	if cap(b) <= 1<<20 {
		c.scratch = b[:0]
	}
	if _, err = c.w.Write(b); err == nil && last {
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout()))
		err = c.w.Flush()
	}
	if err != nil {
		c.werr = fmt.Errorf("writing to %s: %w", c.nc.RemoteAddr(), err)
		_ = c.nc.Close()
		return c.werr
	}
	return nil
}

// writeFailed reports whether writing to the client failed.
func (c *serverConn) writeFailed() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.werr != nil
}

// abort closes the connection from a goroutine other than the reading
// one, after an internal error: 541 INTERNAL_ERROR to the client, then the
// socket, which ends the reading goroutine and releases everything.
func (c *serverConn) abort() {
	c.forced.Store(true)
	_ = c.sendMethod(0, &amqp091.ConnectionClose{ReplyCode: replyInternalError, ReplyText: "INTERNAL_ERROR - internal error"})
	_ = c.nc.Close()
}

// sendMethod writes one method frame.
func (c *serverConn) sendMethod(channel uint16, m amqp091.Method) error {
	return c.emit(func(dst []byte) ([]byte, error) { return amqp091.AppendMethodFrame(dst, channel, m) })
}

// serve runs the connection until it ends. A panic closes this
// connection with 541 INTERNAL_ERROR and is logged; other connections
// carry on.
func (c *serverConn) serve(ctx context.Context) {
	defer close(c.done)
	defer c.cleanup()
	defer func() {
		if p := recover(); p != nil {
			c.logger.ErrorContext(ctx, "AMQP connection panicked; closing it", "panic", p, "stack", string(debug.Stack()))
			c.closeWith(ctx, connectionError(replyInternalError, nil, "internal error"))
		}
	}()
	if err := c.handshake(ctx); err != nil {
		var ae *amqpError
		if errors.As(err, &ae) {
			c.closeWith(ctx, ae)
		}
		if !errors.Is(err, io.EOF) {
			c.logger.InfoContext(ctx, "AMQP handshake failed", "err", err)
		}
		return
	}
	c.logger.DebugContext(ctx, "AMQP connection open", "user", c.user)
	if c.heartbeat > 0 {
		go c.beat()
	}
	err := c.loop(ctx)
	var ae *amqpError
	switch {
	case errors.As(err, &ae):
		c.logger.InfoContext(ctx, "closing AMQP connection", "code", ae.code, "reason", ae.text)
		c.closeWith(ctx, ae)
	case err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed):
		c.logger.InfoContext(ctx, "AMQP connection lost", "err", err)
	}
}

// cleanup ends the connection's channels (their unsettled deliveries go
// back to their queues) and its exclusive queues.
func (c *serverConn) cleanup() {
	_ = c.nc.Close()
	c.releaseChannels()
	_ = c.mc.Close()
}

func (c *serverConn) releaseChannels() {
	for id, ch := range c.channels {
		ch.release()
		delete(c.channels, id)
	}
}

// closeWith sends connection.close and waits a moment for close-ok.
func (c *serverConn) closeWith(ctx context.Context, e *amqpError) {
	c.forced.Store(true)
	if err := c.sendMethod(0, &amqp091.ConnectionClose{ReplyCode: e.code, ReplyText: e.text, ClassId: e.class, MethodId: e.method}); err != nil {
		return
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(closeTimeout))
	var buf []byte
	for {
		f, b, err := amqp091.ReadFrame(c.r, c.frameMax, buf)
		buf = b
		if err != nil {
			return
		}
		if f.Type == amqp091.FrameMethod && f.Channel == 0 {
			if m, err := amqp091.DecodeMethod(f.Payload); err == nil {
				switch m.(type) {
				case *amqp091.ConnectionCloseOk, *amqp091.ConnectionClose:
					return
				}
			}
		}
	}
}

// shutdown closes the connection for a server shutdown: connection.close
// with 320 CONNECTION_FORCED; the reading goroutine waits for close-ok.
func (c *serverConn) shutdown() {
	// A write stuck on a client that does not read fails by then.
	_ = c.nc.SetWriteDeadline(time.Now().Add(closeTimeout))
	if !c.forced.Swap(true) {
		_ = c.sendMethod(0, &amqp091.ConnectionClose{ReplyCode: replyConnectionForced, ReplyText: "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"})
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(closeTimeout))
	<-c.done
}

// beat sends heartbeats at half the negotiated interval.
func (c *serverConn) beat() {
	t := time.NewTicker(c.heartbeat / 2)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			if c.emit(func(dst []byte) ([]byte, error) {
				return amqp091.AppendFrame(dst, amqp091.FrameHeartbeat, 0, nil), nil
			}) != nil {
				return
			}
		}
	}
}

// readMethod reads the next method on channel 0 during the handshake.
func (c *serverConn) readMethod() (amqp091.Method, error) {
	for {
		f, _, err := amqp091.ReadFrame(c.r, c.frameMax, nil)
		if err != nil {
			return nil, frameReadError(err)
		}
		switch {
		case f.Type == amqp091.FrameHeartbeat:
			continue
		case f.Type != amqp091.FrameMethod || f.Channel != 0:
			return nil, connectionError(replyUnexpectedFrame, nil, "expected a method frame on channel 0 during the handshake, got frame type %d on channel %d", f.Type, f.Channel)
		}
		return decodeMethod(f.Payload)
	}
}

// frameReadError maps a frame reader's error to what the client is told,
// if anything.
func frameReadError(err error) error {
	switch {
	case errors.Is(err, amqp091.ErrFrameTooLarge), errors.Is(err, amqp091.ErrFrameEnd):
		return connectionError(replyFrameError, nil, "%v", err)
	}
	return err
}

// decodeMethod decodes a method frame; an unknown method is 540
// NOT_IMPLEMENTED and one that does not decode 501 FRAME_ERROR, as
// RabbitMQ answers them.
func decodeMethod(payload []byte) (amqp091.Method, error) {
	m, err := amqp091.DecodeMethod(payload)
	var unknown *amqp091.UnknownMethodError
	switch {
	case errors.As(err, &unknown):
		return nil, connectionError(replyNotImplemented, nil, "unknown method %d.%d", unknown.Class, unknown.Method)
	case err != nil:
		return nil, connectionError(replyFrameError, nil, "cannot decode method frame: %v", err)
	}
	return m, nil
}

func (c *serverConn) handshake(ctx context.Context) error {
	_ = c.nc.SetDeadline(time.Now().Add(handshakeTimeout))
	var header [8]byte
	if _, err := io.ReadFull(c.r, header[:]); err != nil {
		return fmt.Errorf("reading the protocol header: %w", err)
	}
	if string(header[:]) != amqp091.ProtocolHeader {
		// The specification's answer: the header this server speaks.
		_, _ = c.nc.Write([]byte(amqp091.ProtocolHeader))
		return fmt.Errorf("protocol header %q is not AMQP 0-9-1", header[:])
	}
	start := &amqp091.ConnectionStart{VersionMajor: 0, VersionMinor: 9, ServerProperties: serverProperties(), Mechanisms: "PLAIN AMQPLAIN", Locales: "en_US"}
	if err := c.sendMethod(0, start); err != nil {
		return err
	}
	m, err := c.readMethod()
	if err != nil {
		return err
	}
	startOk, ok := m.(*amqp091.ConnectionStartOk)
	if !ok {
		return connectionError(replyCommandInvalid, m, "expected 'connection.start_ok', got '%s'", m.Name())
	}
	caps, _ := startOk.ClientProperties["capabilities"].(amqp091.Table)
	c.cancelNote, _ = caps["consumer_cancel_notify"].(bool)
	c.blockNote, _ = caps["connection.blocked"].(bool)
	if err := c.authenticate(ctx, startOk); err != nil {
		if closeOnFail, _ := caps["authentication_failure_close"].(bool); closeOnFail {
			return err
		}
		var ae *amqpError
		if errors.As(err, &ae) {
			return fmt.Errorf("%s", ae.text) // RabbitMQ just drops such a client
		}
		return err
	}
	tune := &amqp091.ConnectionTune{ChannelMax: c.s.cfg.ChannelMax, FrameMax: c.s.cfg.FrameMax, Heartbeat: uint16(c.s.cfg.Heartbeat / time.Second)}
	if err := c.sendMethod(0, tune); err != nil {
		return err
	}
	if m, err = c.readMethod(); err != nil {
		return err
	}
	tuneOk, ok := m.(*amqp091.ConnectionTuneOk)
	if !ok {
		return connectionError(replyCommandInvalid, m, "expected 'connection.tune_ok', got '%s'", m.Name())
	}
	if err := c.tune(tuneOk); err != nil {
		return err
	}
	if m, err = c.readMethod(); err != nil {
		return err
	}
	open, ok := m.(*amqp091.ConnectionOpen)
	if !ok {
		return connectionError(replyCommandInvalid, m, "expected 'connection.open', got '%s'", m.Name())
	}
	if open.VirtualHost != "/" && open.VirtualHost != "" {
		return connectionError(replyNotAllowed, m, "vhost %s not found", open.VirtualHost)
	}
	if max := c.s.cfg.MaxConnections; max > 0 && c.s.connCount() > max {
		return connectionError(replyNotAllowed, m, "access to vhost '/' refused for user '%s': connection limit (%d) is reached", c.user, max)
	}
	_ = c.nc.SetDeadline(time.Time{})
	return c.sendMethod(0, &amqp091.ConnectionOpenOk{})
}

// authenticate checks start-ok's credentials: PLAIN or AMQPLAIN, users
// of LoopbackUsers only from a loopback address.
func (c *serverConn) authenticate(ctx context.Context, m *amqp091.ConnectionStartOk) error {
	var user, password string
	switch m.Mechanism {
	case "PLAIN":
		parts := strings.Split(m.Response, "\x00")
		if len(parts) != 3 {
			return connectionError(replyAccessRefused, m, "Login was refused using authentication mechanism PLAIN: a malformed response")
		}
		user, password = parts[1], parts[2]
	case "AMQPLAIN":
		t, err := amqp091.TableBody([]byte(m.Response))
		if err != nil {
			return connectionError(replyAccessRefused, m, "Login was refused using authentication mechanism AMQPLAIN: %v", err)
		}
		user, _ = t["LOGIN"].(string)
		password, _ = t["PASSWORD"].(string)
	default:
		return connectionError(replyCommandInvalid, m, "unknown authentication mechanism '%s'", m.Mechanism)
	}
	want, ok := c.s.users[user]
	if !ok || want != password {
		return connectionError(replyAccessRefused, m, "Login was refused using authentication mechanism %s. For details see the broker logfile.", m.Mechanism)
	}
	if c.s.loopback[user] && !isLoopback(c.nc.RemoteAddr()) {
		c.logger.WarnContext(ctx, "user may connect only from loopback", "user", user)
		return connectionError(replyAccessRefused, m, "Login was refused using authentication mechanism %s. For details see the broker logfile.", m.Mechanism)
	}
	c.user = user
	return nil
}

func isLoopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// tune applies the client's tune-ok within the server's proposal.
func (c *serverConn) tune(m *amqp091.ConnectionTuneOk) error {
	switch {
	case m.FrameMax == 0:
		c.frameMax = c.s.cfg.FrameMax
	case m.FrameMax < amqp091.FrameMinSize:
		return connectionError(replyNotAllowed, m, "frame_max=%d < %d min size", m.FrameMax, amqp091.FrameMinSize)
	case m.FrameMax > c.s.cfg.FrameMax:
		return connectionError(replyNotAllowed, m, "frame_max=%d > %d max size", m.FrameMax, c.s.cfg.FrameMax)
	default:
		c.frameMax = m.FrameMax
	}
	switch {
	case m.ChannelMax == 0:
		c.channelMax = c.s.cfg.ChannelMax
	case m.ChannelMax > c.s.cfg.ChannelMax:
		return connectionError(replyNotAllowed, m, "channel_max=%d > %d max", m.ChannelMax, c.s.cfg.ChannelMax)
	default:
		c.channelMax = m.ChannelMax
	}
	c.heartbeat = time.Duration(m.Heartbeat) * time.Second
	return nil
}

// loop reads and runs frames until the connection ends.
func (c *serverConn) loop(ctx context.Context) error {
	var buf []byte
	for {
		if c.heartbeat > 0 && !c.forced.Load() {
			// A client that misses two heartbeats is gone.
			_ = c.nc.SetReadDeadline(time.Now().Add(2 * c.heartbeat))
		}
		f, b, err := amqp091.ReadFrame(c.r, c.frameMax, buf)
		buf = b
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !c.forced.Load() {
				return fmt.Errorf("missed heartbeats from client, timeout: %v", c.heartbeat)
			}
			return frameReadError(err)
		}
		if c.forced.Load() {
			// Closing: only close-ok (or the client's own close) matters.
			if f.Type == amqp091.FrameMethod && f.Channel == 0 {
				if m, err := amqp091.DecodeMethod(f.Payload); err == nil {
					switch m.(type) {
					case *amqp091.ConnectionCloseOk:
						return nil
					case *amqp091.ConnectionClose:
						_ = c.sendMethod(0, &amqp091.ConnectionCloseOk{})
						return nil
					}
				}
			}
			continue
		}
		done, err := c.frame(ctx, f)
		if err != nil || done {
			return err
		}
	}
}

// frame runs one frame; done reports that the client closed the
// connection.
func (c *serverConn) frame(ctx context.Context, f amqp091.Frame) (done bool, err error) {
	switch f.Type {
	case amqp091.FrameHeartbeat:
		if f.Channel != 0 {
			return false, connectionError(replyFrameError, nil, "heartbeat frame on channel %d", f.Channel)
		}
		return false, nil
	case amqp091.FrameMethod, amqp091.FrameHeader, amqp091.FrameBody:
	default:
		return false, connectionError(replyFrameError, nil, "unknown frame type %d", f.Type)
	}
	if f.Channel == 0 {
		if f.Type != amqp091.FrameMethod {
			return false, connectionError(replyUnexpectedFrame, nil, "content frame of type %d on channel 0", f.Type)
		}
		m, err := decodeMethod(f.Payload)
		if err != nil {
			return false, err
		}
		switch m := m.(type) {
		case *amqp091.ConnectionClose:
			c.logger.DebugContext(ctx, "client closed the connection", "code", m.ReplyCode, "reason", m.ReplyText)
			// As RabbitMQ: what the channels leave is back in its queues
			// before close-ok.
			c.releaseChannels()
			_ = c.sendMethod(0, &amqp091.ConnectionCloseOk{})
			return true, nil
		case *amqp091.ConnectionCloseOk:
			return true, nil
		case *amqp091.ConnectionBlocked, *amqp091.ConnectionUnblocked:
			return false, nil // a client's notice; nothing to do
		case *amqp091.ConnectionUpdateSecret:
			return false, connectionError(replyNotImplemented, m, "connection.update_secret is not supported")
		}
		return false, connectionError(replyCommandInvalid, m, "method '%s' on channel 0", m.Name())
	}
	if f.Channel > c.channelMax {
		return false, connectionError(replyChannelError, nil, "channel %d exceeds the negotiated channel_max %d", f.Channel, c.channelMax)
	}
	ch := c.channels[f.Channel]
	if ch == nil {
		if f.Type != amqp091.FrameMethod {
			return false, connectionError(replyUnexpectedFrame, nil, "content frame of type %d on channel %d, which is not open", f.Type, f.Channel)
		}
		m, err := decodeMethod(f.Payload)
		if err != nil {
			return false, err
		}
		if _, ok := m.(*amqp091.ChannelOpen); !ok {
			return false, connectionError(replyChannelError, m, "expected 'channel.open' on channel %d, got '%s'", f.Channel, m.Name())
		}
		c.channels[f.Channel] = newServerChannel(c, f.Channel)
		return false, c.sendMethod(f.Channel, &amqp091.ChannelOpenOk{})
	}
	closed, err := ch.frame(ctx, f)
	if closed {
		delete(c.channels, f.Channel)
	}
	return false, err
}

// waitFlow holds a publish while the broker is over MaxQueuedBytes,
// telling the client with connection.blocked and unblocked. Reading
// nothing meanwhile is how RabbitMQ blocks a publisher too.
func (c *serverConn) waitFlow(ctx context.Context) error {
	blocked, change := c.s.flowState()
	if !blocked {
		return nil
	}
	if c.blockNote {
		if err := c.sendMethod(0, &amqp091.ConnectionBlocked{Reason: "queued bytes over the limit"}); err != nil {
			return err
		}
	}
	for blocked {
		select {
		case <-change:
		case <-c.s.done:
			return nil
		}
		blocked, change = c.s.flowState()
	}
	if c.blockNote {
		return c.sendMethod(0, &amqp091.ConnectionUnblocked{})
	}
	return nil
}
