package zmq

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zeromq/zmq4"

	"github.com/switchyard-mq/switchyard/drivers/zmq/internal/matchmaker"
)

// The peer pool: a node's connections to other nodes, those it dialled
// and those it accepted, and which of them carries what it sends to each
// node.

// dialBackoff is how long a node that could not be reached is not dialled;
// dialGrace is how long dispatch waits for a dial under way before
// sending to the consumers already connected.
const (
	dialBackoff = 500 * time.Millisecond
	dialGrace   = 100 * time.Millisecond
)

// dialState is a dial under way (retryAt zero) or a failed one.
type dialState struct {
	started time.Time
	retryAt time.Time
}

// peerPool holds a node's open connections and its dials.
type peerPool struct {
	life *lifecycle

	// toNode maps a node ID to the connection that carries what is sent
	// to it. The map is replaced, never changed, so that dispatch reads
	// it without a lock; it is replaced under mu.
	toNode atomic.Pointer[map[string]*peer]

	mu      sync.Mutex // guards the fields below; taken after the sender's lock, never before
	all     map[*peer]struct{}
	dialing map[string]dialState
}

func newPeerPool(life *lifecycle) *peerPool {
	pp := &peerPool{life: life, all: map[*peer]struct{}{}, dialing: map[string]dialState{}}
	pp.toNode.Store(&map[string]*peer{})
	return pp
}

// senders returns the connection to send to each node on. The map must
// not be changed.
func (pp *peerPool) senders() map[string]*peer { return *pp.toNode.Load() }

// setSenderLocked makes p (nil: none) the connection that carries what
// is sent to node.
func (pp *peerPool) setSenderLocked(node string, p *peer) {
	next := maps.Clone(pp.senders())
	if p == nil {
		delete(next, node)
	} else {
		next[node] = p
	}
	pp.toNode.Store(&next)
}

// add registers a connection, reporting whether it is the first to its
// node (it then carries what is sent there) and false for ok once the
// node is closing.
func (pp *peerPool) add(p *peer) (first, ok bool) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	// Checked under mu: Close takes every connection under mu after
	// setting closing, so none added here escapes it.
	if pp.life.closing.Load() {
		return false, false
	}
	pp.all[p] = struct{}{}
	if p.outbound {
		delete(pp.dialing, p.id)
	}
	if pp.senders()[p.id] != nil {
		return false, true
	}
	pp.setSenderLocked(p.id, p)
	return true, true
}

// remove forgets a failed connection; another open one to the same node,
// if any, carries what is sent there from now on.
func (pp *peerPool) remove(p *peer) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	delete(pp.all, p)
	if pp.senders()[p.id] != p {
		return
	}
	var next *peer
	for other := range pp.all {
		if other.id == p.id && !other.isClosed() {
			next = other
			break
		}
	}
	pp.setSenderLocked(p.id, next)
}

// conns returns every open connection.
func (pp *peerPool) conns() []*peer {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	return slices.Collect(maps.Keys(pp.all))
}

// claimDial decides whether to dial a node now, reporting start when the
// caller is to dial it (the dial then counts as under way) and wait when
// dispatch should hold back for a dial begun less than dialGrace ago. A
// node whose dial failed is not dialled until its backoff ends, nor one
// the registry does not know.
func (pp *peerPool) claimDial(node string, known bool, now time.Time) (start, wait bool) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if st, ok := pp.dialing[node]; ok {
		if st.retryAt.IsZero() {
			return false, now.Sub(st.started) < dialGrace
		}
		if now.Before(st.retryAt) {
			return false, false
		}
	}
	if !known {
		return false, false
	}
	pp.dialing[node] = dialState{started: now}
	return true, true
}

// dialFailed backs off from a node that could not be reached.
func (pp *peerPool) dialFailed(node string) {
	pp.mu.Lock()
	pp.dialing[node] = dialState{retryAt: time.Now().Add(dialBackoff)}
	pp.mu.Unlock()
}

// dialAbandoned forgets a claimed dial that never began.
func (pp *peerPool) dialAbandoned(node string) {
	pp.mu.Lock()
	delete(pp.dialing, node)
	pp.mu.Unlock()
}

// connect dials a node in a goroutine of its own and reads the connection
// until it ends. A node that cannot be reached is backed off from, and
// what waited for it goes to the consumers that can be reached.
func (c *conn) connect(node matchmaker.Node) {
	started := c.life.goTracked(func() {
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.sendTimeout)
		p, err := c.dial(ctx, node.ID, node.Endpoint)
		cancel()
		if err != nil {
			c.pool.dialFailed(node.ID)
			c.sender.dispatchAll()
			if !c.isClosing() {
				c.logger.WarnContext(context.Background(), "zmq: cannot reach node; its consumers get nothing until it answers or expires", "node", node.ID, "endpoint", node.Endpoint, "err", err)
			}
			return
		}
		if !c.addPeer(p) {
			p.fail()
			return
		}
		p.readLoop()
	})
	if !started {
		c.pool.dialAbandoned(node.ID)
	}
}

// addPeer registers a connection; the first one to a node carries what is
// sent to it, and what waited for it is sent. It reports false once the
// node is closing.
func (c *conn) addPeer(p *peer) bool {
	first, ok := c.pool.add(p)
	if first {
		c.sender.dispatchAll()
	}
	return ok
}

// peerDown forgets a failed connection: what was sent on it and is not
// settled goes back to its queues, counted as a delivery, since the
// consumer may have seen it.
func (c *conn) peerDown(p *peer) {
	c.pool.remove(p)
	c.sender.lost(p)
}

// dial connects to a node's endpoint and runs the handshake.
func (c *conn) dial(ctx context.Context, nodeID, endpoint string) (*peer, error) {
	addr, ok := tcpAddress(endpoint)
	if !ok {
		return nil, fmt.Errorf("node %s has endpoint %q; this driver dials tcp:// only", nodeID, endpoint)
	}
	d := net.Dialer{Timeout: c.opts.sendTimeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	id, r, err := handshake(nc, zmq4.Dealer, c.id, false, c.opts.sendTimeout)
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("ZMTP handshake with %s: %w", endpoint, err)
	}
	if id != nodeID {
		_ = nc.Close()
		return nil, fmt.Errorf("%s answered as node %q, want %q (a restarted node on a reused port?)", endpoint, id, nodeID)
	}
	return newPeer(c, id, nc, r, true), nil
}

func tcpAddress(endpoint string) (string, bool) {
	const scheme = "tcp://"
	if len(endpoint) <= len(scheme) || endpoint[:len(scheme)] != scheme {
		return "", false
	}
	return endpoint[len(scheme):], true
}

// acceptLoop accepts connections until the listener closes; each
// handshake runs in its own goroutine, bounded by send_timeout, so a
// silent client delays nobody.
func (c *conn) acceptLoop() {
	for {
		nc, err := c.ln.Accept()
		if err != nil {
			if !c.isClosing() {
				c.logger.ErrorContext(context.Background(), "zmq: accepting connections failed; this node receives nothing more", "endpoint", c.endpoint, "err", err)
			}
			return
		}
		if !c.life.goTracked(func() { c.accepted(nc) }) {
			_ = nc.Close()
			return
		}
	}
}

// accepted handshakes an inbound connection and reads it.
func (c *conn) accepted(nc net.Conn) {
	id, r, err := handshake(nc, zmq4.Router, c.id, true, c.opts.sendTimeout)
	if err != nil {
		if !c.isClosing() {
			c.logger.WarnContext(context.Background(), "zmq: inbound ZMTP handshake failed", "remote", nc.RemoteAddr().String(), "err", err)
		}
		_ = nc.Close()
		return
	}
	p := newPeer(c, id, nc, r, false)
	if !c.addPeer(p) {
		_ = nc.Close()
		return
	}
	p.readLoop()
}
