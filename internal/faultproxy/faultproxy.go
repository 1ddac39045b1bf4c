// Package faultproxy is a TCP proxy for fault tests. It listens on a
// loopback port, forwards every connection to a target (a broker), and
// cuts connections on demand: all at once, or once a number of bytes has
// passed in one direction, so that the cut falls in the middle of a
// protocol frame. It can also refuse new connections for a while, as a
// broker that is down would.
package faultproxy

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Direction is the way bytes flow through the proxy.
type Direction int

const (
	// Upstream is from the client to the target.
	Upstream Direction = iota
	// Downstream is from the target to the client.
	Downstream
)

// String names the direction, for logs and test names.
func (d Direction) String() string {
	if d == Upstream {
		return "upstream"
	}
	return "downstream"
}

// dialTimeout bounds the proxy's connection to the target.
const dialTimeout = 5 * time.Second

// Proxy forwards TCP connections to a target. Its methods are safe for
// concurrent use.
type Proxy struct {
	target string
	ln     net.Listener
	wg     sync.WaitGroup // the accept loop and every pump

	mu     sync.Mutex
	links  map[*link]struct{}
	closed bool
	refuse bool
	armed  [2]*trigger // by Direction
	cuts   int
	// gate, when not nil, holds every byte read until it is closed: a
	// stalled network, where nothing flows and nothing closes.
	gate chan struct{}
}

// trigger cuts every connection once budget more bytes have passed.
type trigger struct {
	budget int64
	fired  chan struct{}
}

// link is one proxied connection.
type link struct {
	client, server net.Conn
	pumps          atomic.Int32 // running; the last one forgets the link
	closeOnce      sync.Once
	closed         chan struct{}
}

func (l *link) close() {
	l.closeOnce.Do(func() {
		close(l.closed)
		_ = l.client.Close()
		_ = l.server.Close()
	})
}

// New starts a proxy on 127.0.0.1 with a port of the system's choosing,
// forwarding to target (host:port).
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{target: target, ln: ln, links: map[*link]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the host:port clients connect to instead of the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.mu.Lock()
		refuse := p.refuse || p.closed
		p.mu.Unlock()
		if refuse {
			_ = client.Close()
			continue
		}
		server, err := net.DialTimeout("tcp", p.target, dialTimeout)
		if err != nil {
			_ = client.Close()
			continue
		}
		l := &link{client: client, server: server, closed: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			l.close()
			continue
		}
		p.links[l] = struct{}{}
		l.pumps.Store(2)
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pump(l, Upstream, client, server)
		go p.pump(l, Downstream, server, client)
	}
}

// pump copies from src to dst until either side fails, spending the armed
// trigger of its direction on the way; when the trigger's budget runs out
// it forwards exactly the bytes left in the budget and cuts everything.
func (p *Proxy) pump(l *link, dir Direction, src, dst net.Conn) {
	defer p.wg.Done()
	defer func() {
		l.close()
		if l.pumps.Add(-1) == 0 {
			p.mu.Lock()
			delete(p.links, l)
			p.mu.Unlock()
		}
	}()
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			gate := p.gate
			p.mu.Unlock()
			if gate != nil {
				select {
				case <-gate:
				case <-l.closed:
					return
				}
			}
			allowed, fire := p.spend(dir, n)
			if allowed > 0 {
				if _, werr := dst.Write(buf[:allowed]); werr != nil {
					return
				}
			}
			if fire != nil {
				p.cutAll()
				close(fire)
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// spend takes n bytes from the trigger armed for dir, returning how many
// may pass and, when the budget ran out, the trigger's channel to close.
func (p *Proxy) spend(dir Direction, n int) (int, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	tr := p.armed[dir]
	if tr == nil {
		return n, nil
	}
	if int64(n) < tr.budget {
		tr.budget -= int64(n)
		return n, nil
	}
	allowed := int(tr.budget)
	p.armed[dir] = nil
	return allowed, tr.fired
}

// CutAfter arms a cut: once n more bytes have passed in direction dir, on
// any connection, the proxy forwards exactly those n bytes and then cuts
// every connection. The returned channel is closed when the cut happens.
// Arming again replaces a cut that has not fired.
func (p *Proxy) CutAfter(dir Direction, n int64) <-chan struct{} {
	tr := &trigger{budget: max(n, 0), fired: make(chan struct{})}
	p.mu.Lock()
	p.armed[dir] = tr
	p.mu.Unlock()
	return tr.fired
}

// CutAll closes every proxied connection now, on both sides, and returns
// how many there were.
func (p *Proxy) CutAll() int { return p.cutAll() }

func (p *Proxy) cutAll() int {
	p.mu.Lock()
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.cuts++
	p.mu.Unlock()
	for _, l := range links {
		l.close()
	}
	return len(links)
}

// Stall holds every byte in both directions, on every connection, new
// ones included, without closing anything, until Resume: a network that
// went silent, which only timeouts (heartbeats) detect.
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gate == nil {
		p.gate = make(chan struct{})
	}
}

// Resume lets the bytes held by Stall, and the following ones, flow.
func (p *Proxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gate != nil {
		close(p.gate)
		p.gate = nil
	}
}

// SetRefuse makes the proxy close new connections at once (true), as a
// broker that is down, or forward them again (false).
func (p *Proxy) SetRefuse(refuse bool) {
	p.mu.Lock()
	p.refuse = refuse
	p.mu.Unlock()
}

// Conns is the number of connections being proxied.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.links)
}

// Cuts is how many times the proxy cut its connections.
func (p *Proxy) Cuts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

// Close stops listening, cuts every connection and waits for the proxy's
// goroutines to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.cutAll()
	p.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
