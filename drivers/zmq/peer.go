package zmq

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/security/null"
)

// Connections between nodes.
//
// zmq4 does the ZMTP 3.0 handshake (greeting, NULL mechanism, socket type
// and identity metadata), so any ZeroMQ peer can connect; the connection
// is then the driver's own: one reader goroutine per connection, and
// writes that are batched, bounded by a write deadline, and never block
// another peer. zmq4's sockets are not used for traffic because, at
// v0.17.0 (read in its source), a ROUTER or DEALER writes to every peer
// under one lock with no write deadline (WithTimeout bounds only the wait
// for a first peer), so one peer that stops reading stalls every send; its
// accept loop runs each handshake inline with no deadline, so one silent
// client blocks every later one; its reader goroutines can block forever
// on a full channel after Close; and it allocates whatever frame length a
// peer announces. See the package documentation.

const (
	// maxHandshakeFrame bounds the frames of the handshake (READY metadata).
	maxHandshakeFrame = 64 << 10
	// zmtpGreeting is the length of the ZMTP 3.0 greeting.
	zmtpGreeting = 64
	// peerIdentity is zmq4's metadata key for a peer's socket identity.
	peerIdentity = "Identity"
	// writeChunk bounds one write, so that a batch is not built without end.
	writeChunk = 256 << 10
	// settleBatch is how many settlements are sent at once at the latest.
	settleBatch = 64
)

// handshakeConn is the net.Conn zmq4 handshakes over: reads go through the
// connection's bufio.Reader (which the driver keeps reading afterwards)
// and are checked frame by frame, so that zmq4 never allocates a length a
// peer announces beyond maxHandshakeFrame.
type handshakeConn struct {
	net.Conn
	r         *bufio.Reader
	greeting  int // greeting bytes still to pass
	hdr       [9]byte
	hdrLen    int
	bodyLeft  uint64
	lastError error
}

func (h *handshakeConn) Read(p []byte) (int, error) {
	if h.lastError != nil {
		return 0, h.lastError
	}
	// Never read past the current frame header, so that its length is
	// checked before zmq4 sees it.
	limit := len(p)
	switch {
	case h.greeting > 0:
		limit = min(limit, h.greeting)
	case h.bodyLeft > 0:
		limit = int(min(uint64(limit), h.bodyLeft))
	default:
		limit = min(limit, 1)
	}
	n, err := h.r.Read(p[:limit])
	for _, b := range p[:n] {
		if err := h.advance(b); err != nil {
			h.lastError = err
			return 0, err
		}
	}
	return n, err
}

func (h *handshakeConn) advance(b byte) error {
	switch {
	case h.greeting > 0:
		h.greeting--
		return nil
	case h.bodyLeft > 0:
		h.bodyLeft--
		return nil
	}
	h.hdr[h.hdrLen] = b
	h.hdrLen++
	need := 2
	if h.hdr[0]&zmtpLong != 0 {
		need = 9
	}
	if h.hdrLen < need {
		return nil
	}
	size := uint64(h.hdr[1])
	if need == 9 {
		size = binary.BigEndian.Uint64(h.hdr[1:9])
	}
	if size > maxHandshakeFrame {
		return fmt.Errorf("handshake frame of %d bytes exceeds %d", size, maxHandshakeFrame)
	}
	h.hdrLen, h.bodyLeft = 0, size
	return nil
}

// handshake runs the ZMTP handshake on nc as sockType with identity id,
// within timeout, and returns the peer's identity and the reader to go on with.
func handshake(nc net.Conn, sockType zmq4.SocketType, id string, server bool, timeout time.Duration) (string, *bufio.Reader, error) {
	r := bufio.NewReaderSize(nc, 64<<10)
	hc := &handshakeConn{Conn: nc, r: r, greeting: zmtpGreeting}
	if err := nc.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", nil, err
	}
	zc, err := zmq4.Open(hc, null.Security(), sockType, zmq4.SocketIdentity(id), server, nil)
	if err != nil {
		return "", nil, err
	}
	if err := nc.SetDeadline(time.Time{}); err != nil {
		return "", nil, err
	}
	if hc.hdrLen != 0 || hc.bodyLeft != 0 {
		return "", nil, errors.New("handshake ended inside a frame")
	}
	return zc.Peer.Meta[peerIdentity], r, nil
}

// peer is one connection to another node (or to any ZMTP peer).
type peer struct {
	c        *conn
	id       string // the remote node's ID (its ZMTP identity)
	nc       net.Conn
	r        *bufio.Reader
	outbound bool

	mu       sync.Mutex
	out      []byte // encoded messages waiting to be written
	spare    []byte
	settles  []settlement // settlements waiting to be sent
	flushing bool         // a goroutine is writing out
	closed   bool
}

func newPeer(c *conn, id string, nc net.Conn, r *bufio.Reader, outbound bool) *peer {
	return &peer{c: c, id: id, nc: nc, r: r, outbound: outbound}
}

// isClosed reports whether the connection failed or was closed.
func (p *peer) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// deliver queues a DELIVER; the caller flushes.
func (p *peer) deliver(h deliverHeader, props, body []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.out = appendDeliver(p.out, h, props, body)
	return true
}

// handOff queues a HANDOFF; the caller flushes.
func (p *peer) handOff(h handoffHeader, props, body []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.out = appendHandoff(p.out, h, props, body)
	}
}

// settle queues a settlement and reports whether a flush is due now
// (a full batch); otherwise the caller flushes when it sees fit.
func (p *peer) settle(s settlement) (full bool, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false, false
	}
	p.settles = append(p.settles, s)
	return len(p.settles) >= settleBatch, true
}

// flush writes out what is queued, unless another goroutine is already
// doing so (it will write this too). A write that fails or exceeds the
// send timeout fails the connection: its messages are then redelivered
// by their senders.
func (p *peer) flush() {
	p.mu.Lock()
	if p.flushing || p.closed {
		p.mu.Unlock()
		return
	}
	p.flushing = true
	for {
		if len(p.settles) > 0 {
			for len(p.settles) > 0 {
				n := min(len(p.settles), 4096)
				p.out = appendSettle(p.out, p.settles[:n])
				p.settles = p.settles[n:]
			}
			p.settles = p.settles[:0:cap(p.settles)]
		}
		if len(p.out) == 0 || p.closed {
			break
		}
		buf := p.out
		p.out = p.spare[:0]
		p.spare = nil
		p.mu.Unlock()
		err := p.nc.SetWriteDeadline(time.Now().Add(p.c.opts.sendTimeout))
		if err == nil {
			_, err = p.nc.Write(buf)
		}
		p.mu.Lock()
		if cap(buf) <= writeChunk*4 {
			p.spare = buf[:0]
		}
		if err != nil {
			p.flushing = false
			p.mu.Unlock()
			if !p.c.isClosing() {
				p.c.logger.WarnContext(context.Background(), "zmq: writing to peer failed; closing the connection, its unsettled messages go to other consumers",
					"node", p.id, "remote", p.nc.RemoteAddr().String(), "err", err)
			}
			p.fail()
			return
		}
	}
	p.flushing = false
	p.mu.Unlock()
}

// fail closes the connection once; the owner learns of it through the
// reader goroutine, which then ends.
func (p *peer) fail() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.out, p.settles = nil, nil
	p.mu.Unlock()
	_ = p.nc.Close()
}

// readLoop reads messages until the connection ends, handing each to the
// node. A protocol error is logged and ends the connection: the peer is
// not trusted to resynchronise.
func (p *peer) readLoop() {
	c := p.c
	var (
		frames  [][]byte
		scratch []byte
		command bool
		err     error
	)
	for {
		frames, command, scratch, err = readMessage(p.r, frames, scratch)
		if err == nil {
			if command {
				err = p.command(frames[0])
			} else {
				err = c.handle(p, frames)
			}
		}
		if err != nil {
			p.mu.Lock()
			closedByUs := p.closed
			p.mu.Unlock()
			switch {
			case closedByUs || c.isClosing():
			case errors.Is(err, io.EOF):
				c.logger.DebugContext(context.Background(), "zmq: peer disconnected", "node", p.id)
			default:
				c.logger.WarnContext(context.Background(), "zmq: connection to peer failed; closing it", "node", p.id, "remote", p.nc.RemoteAddr().String(), "err", err)
			}
			p.fail()
			c.peerDown(p)
			return
		}
		if cap(scratch) > 1<<20 {
			scratch = nil // do not keep a large buffer for one large message
		}
	}
}

// command answers ZMTP commands: PING gets a PONG (RFC 37), others are
// ignored.
func (p *peer) command(frame []byte) error {
	if len(frame) < 1 || int(frame[0]) > len(frame)-1 {
		return errors.New("malformed ZMTP command")
	}
	name := string(frame[1 : 1+int(frame[0])])
	if name != zmq4.CmdPing {
		return nil
	}
	body := frame[1+int(frame[0]):]
	if len(body) < 2 {
		return errors.New("malformed ZMTP PING")
	}
	ctx := body[2:]
	if len(ctx) > 16 {
		ctx = ctx[:16]
	}
	pong := append([]byte{byte(len(zmq4.CmdPong))}, zmq4.CmdPong...)
	pong = append(pong, ctx...)
	p.mu.Lock()
	if !p.closed {
		p.out = append(p.out, zmtpCommand, byte(len(pong)))
		p.out = append(p.out, pong...)
	}
	p.mu.Unlock()
	p.flush()
	return nil
}
