package faultproxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// echoServer echoes every connection until the test ends, and sends on
// received what each connection brought once it ends.
func echoServer(t *testing.T) (addr string, received <-chan []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 16)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				var seen bytes.Buffer
				_, _ = io.Copy(c, io.TeeReader(c, &seen))
				_ = c.Close()
				got <- seen.Bytes()
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String(), got
}

func newProxy(t *testing.T) (*Proxy, <-chan []byte) {
	t.Helper()
	addr, received := echoServer(t)
	p, err := New(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p, received
}

func dial(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// readUntilEOF reads everything until the connection ends (EOF or reset);
// a timeout means the cut never came.
func readUntilEOF(t *testing.T, c net.Conn) []byte {
	t.Helper()
	got, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection was not cut: %v", err)
	}
	return got
}

func TestForwards(t *testing.T) {
	p, _ := newProxy(t)
	c := dial(t, p)
	msg := []byte("hello through the proxy")
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("got %q, want %q", got, msg)
	}
	if n := p.Conns(); n != 1 {
		t.Fatalf("Conns = %d, want 1", n)
	}
}

func TestCutAll(t *testing.T) {
	p, _ := newProxy(t)
	a, b := dial(t, p), dial(t, p)
	for _, c := range []net.Conn{a, b} { // make sure both are proxied
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if n := p.CutAll(); n != 2 {
		t.Fatalf("CutAll cut %d connections, want 2", n)
	}
	for _, c := range []net.Conn{a, b} {
		if got := readUntilEOF(t, c); len(got) != 0 {
			t.Fatalf("read %q after the cut", got)
		}
	}
}

func TestCutAfterBytes(t *testing.T) {
	for _, tc := range []struct {
		dir    Direction
		budget int64
	}{
		{Upstream, 0}, {Upstream, 7}, {Downstream, 7}, {Downstream, 20},
	} {
		t.Run(tc.dir.String(), func(t *testing.T) {
			p, received := newProxy(t)
			c := dial(t, p)
			fired := p.CutAfter(tc.dir, tc.budget)
			msg := bytes.Repeat([]byte("0123456789"), 3) // 30 bytes, more than any budget
			if _, err := c.Write(msg); err != nil {
				t.Fatal(err)
			}
			back := readUntilEOF(t, c)
			select {
			case <-fired:
			case <-time.After(5 * time.Second):
				t.Fatal("the armed cut did not fire")
			}
			var atServer []byte
			select {
			case atServer = <-received:
			case <-time.After(5 * time.Second):
				t.Fatal("the server's side was not cut")
			}
			// Exactly the budget passes in the armed direction.
			passed := back
			if tc.dir == Upstream {
				passed = atServer
			}
			if int64(len(passed)) != tc.budget {
				t.Fatalf("%d bytes passed %s, want exactly %d (the budget)", len(passed), tc.dir, tc.budget)
			}
			if !bytes.Equal(passed, msg[:len(passed)]) {
				t.Fatalf("got %q, want a prefix of %q", passed, msg)
			}
		})
	}
}

func TestRefuse(t *testing.T) {
	p, _ := newProxy(t)
	p.SetRefuse(true)
	c := dial(t, p)
	if got := readUntilEOF(t, c); len(got) != 0 {
		t.Fatalf("read %q from a refused connection", got)
	}
	p.SetRefuse(false)
	c = dial(t, p)
	if _, err := c.Write([]byte("ok")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 2)); err != nil {
		t.Fatalf("after SetRefuse(false): %v", err)
	}
}

func TestStall(t *testing.T) {
	p, _ := newProxy(t)
	c := dial(t, p)
	p.Stall()
	if _, err := c.Write([]byte("held")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := c.Read(make([]byte, 4)); err == nil {
		t.Fatalf("read %d bytes through a stalled proxy", n)
	}
	p.Resume()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "held" {
		t.Fatalf("after Resume: %q, %v", got, err)
	}
}
