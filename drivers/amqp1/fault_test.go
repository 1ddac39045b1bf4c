package amqp1_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/internal/faultproxy"
	"github.com/switchyard-mq/switchyard/transport"
)

// fastRetry makes the driver re-dial quickly, to keep fault tests short.
const fastRetry = "connection_retry_interval=0.05&connection_retry_backoff=0.05&connection_retry_interval_max=0.2"

// stream publishes total messages ("0" ... ) to queue on pub, each retried
// until the broker confirms it, while a consumer on sub acks what it
// receives; fault runs once the consumer has acked faultAfter messages.
// It returns when every message has been received at least once (and
// fails t if that takes longer than the context allows).
func stream(t *testing.T, ctx context.Context, pub, sub *transport.Transport, queue string, total, faultAfter int, fault func()) {
	t.Helper()
	c, err := sub.Consume(ctx, queue, transport.ConsumeOptions{Prefetch: 50})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	var wg sync.WaitGroup
	publishErr := make(chan error, 1)
	wg.Go(func() {
		for i := range total {
			for {
				err := pub.Publish(ctx, "", queue, transport.Message{Body: []byte(strconv.Itoa(i))})
				if err == nil {
					break
				}
				if ctx.Err() != nil || errors.Is(err, transport.ErrClosed) {
					publishErr <- fmt.Errorf("publish %d: %w", i, err)
					return
				}
				// The connection is being re-established: the same
				// message again (at least once).
			}
		}
	})

	received := make([]bool, total)
	missing, acked, faulted := total, 0, false
	for missing > 0 {
		d, err := c.Receive(ctx)
		if err != nil {
			t.Fatalf("receive with %d of %d messages missing: %v", missing, total, err)
		}
		i, err := strconv.Atoi(string(d.Body))
		if err != nil || i < 0 || i >= total {
			t.Fatalf("unexpected body %q", d.Body)
		}
		if !received[i] {
			received[i] = true
			missing--
		}
		if err := d.Ack(); err == nil {
			acked++
		} else if !errors.Is(err, transport.ErrClosed) {
			t.Fatalf("ack: %v", err)
		}
		if !faulted && acked >= faultAfter {
			faulted = true
			fault()
		}
	}
	wg.Wait()
	select {
	case err := <-publishErr:
		t.Fatal(err)
	default:
	}
	if !faulted {
		t.Fatal("the fault never ran")
	}
}

// TestReconnect: consumers and publishers carry on after their connection
// or session is lost, re-attaching their links, and lose no message the
// broker confirmed.
func TestReconnect(t *testing.T) {
	t.Run("connection-cut", func(t *testing.T) {
		eachRabbit(t, func(t *testing.T, raw string) {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			cfg, err := transport.ParseURL(raw)
			if err != nil {
				t.Fatal(err)
			}
			proxy, err := faultproxy.New(cfg.Hosts[0].String())
			if err != nil {
				t.Fatal(err)
			}
			defer proxy.Close()
			viaProxy := strings.Replace(raw, cfg.Hosts[0].String(), proxy.Addr(), 1) + "?" + fastRetry
			pub, sub := openT(t, ctx, viaProxy), openT(t, ctx, viaProxy)
			q, err := pub.DeclareQueue(ctx, orDurable(t, raw, transport.Queue{Name: "fault." + randomHex(4)}))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _, _ = pub.DeleteQueue(context.Background(), q) }()
			stream(t, ctx, pub, sub, q, 3000, 500, func() {
				if n := proxy.CutAll(); n == 0 {
					t.Error("the proxy had no connection to cut")
				}
			})
			if err := sub.Healthy(ctx); err != nil {
				t.Errorf("after reconnecting: %v", err)
			}
		})
	})

	t.Run("broker-closes-connections", func(t *testing.T) {
		// close_all_connections on the test's virtual host. On RabbitMQ
		// 3.10 it closes the plugin's internal connections, one per AMQP
		// 1.0 session (and the 0-9-1 side connection): every session ends
		// while the AMQP 1.0 connection stays up. On RabbitMQ 4, where AMQP
		// 1.0 is in the core, it closes the AMQP 1.0 connections
		// themselves: a close frame with amqp:internal-error, "Connection
		// forced".
		eachRabbit(t, func(t *testing.T, raw string) {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			pub, sub := openT(t, ctx, raw+"?"+fastRetry), openT(t, ctx, raw+"?"+fastRetry)
			q, err := pub.DeclareQueue(ctx, orDurable(t, raw, transport.Queue{Name: "fault." + randomHex(4)}))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _, _ = pub.DeleteQueue(context.Background(), q) }()
			stream(t, ctx, pub, sub, q, 3000, 500, func() {
				if out := closeConnections(t, raw); strings.Contains(out, "Closed 0 connections") {
					t.Errorf("rabbitmqctl closed no connection: %s", out)
				}
			})
			if err := sub.Healthy(ctx); err != nil {
				t.Errorf("after reconnecting: %v", err)
			}
		})
	})

	t.Run("proton-restart", func(t *testing.T) {
		// The broker keeps nothing across a restart: what it held is lost.
		// What must hold is that the consumer and the publisher resume.
		protonURL(t) // skip (or fail) as other Proton tests do without it
		checkLeaks(t)
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		broker := startProtonBroker(t)
		url := "amqp://" + broker.addr + "?" + fastRetry
		pub, sub := openT(t, ctx, url), openT(t, ctx, url)
		q := "fault." + randomHex(4)
		c, err := sub.Consume(ctx, q, transport.ConsumeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		roundTrip := func(phase string, n int) {
			t.Helper()
			for i := range n {
				body := fmt.Sprintf("%s-%d", phase, i)
				if err := pub.Publish(ctx, "", q, transport.Message{Body: []byte(body)}); err != nil {
					t.Fatalf("publish %s: %v", body, err)
				}
				d, err := c.Receive(ctx)
				if err != nil {
					t.Fatalf("receive %s: %v", body, err)
				}
				if string(d.Body) != body {
					t.Fatalf("got %q, want %q", d.Body, body)
				}
				if err := d.Ack(); err != nil {
					t.Fatalf("ack %s: %v", body, err)
				}
			}
		}
		roundTrip("before", 50)
		broker.restart(t)
		roundTrip("after", 50)
	})
}

// protonBroker is a private Qpid Proton example broker on a port of its
// own, which a test may stop and start.
type protonBroker struct {
	script, addr string
	cmd          *exec.Cmd
}

// startProtonBroker starts one and stops it when t ends.
func startProtonBroker(t *testing.T) *protonBroker {
	t.Helper()
	out, err := exec.Command("dpkg", "-L", "libqpid-proton11-dev-examples").Output()
	if err != nil {
		t.Fatalf("find the Proton example broker (apt-get install libqpid-proton11-dev-examples): %v", err)
	}
	b := &protonBroker{addr: "127.0.0.1:" + closedPort(t)}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasSuffix(line, "python/broker.py") {
			b.script = line
		}
	}
	if b.script == "" {
		t.Fatal("libqpid-proton11-dev-examples has no python/broker.py")
	}
	b.start(t)
	t.Cleanup(func() { b.stop(t) })
	return b
}

func (b *protonBroker) start(t *testing.T) {
	t.Helper()
	b.cmd = exec.Command(pythonProton, b.script, "-a", b.addr)
	b.cmd.Stderr = os.Stderr
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Poll the port: the broker gives no other sign that it is ready.
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		conn, err := net.DialTimeout("tcp", b.addr, time.Second)
		if err == nil {
			_ = conn.Close()
			return
		}
		select {
		case <-deadline.C:
			t.Fatalf("the Proton broker does not listen on %s after 30 s: %v", b.addr, err)
		case <-tick.C:
		}
	}
}

func (b *protonBroker) stop(t *testing.T) {
	t.Helper()
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- b.cmd.Wait() }()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		_ = b.cmd.Process.Kill()
		<-done
	}
	b.cmd = nil
}

func (b *protonBroker) restart(t *testing.T) {
	t.Helper()
	b.stop(t)
	b.start(t)
}

// TestQueueDeletedElsewhere: when another connection deletes the queue a
// consumer reads, the consumer ends with ErrClosed saying the queue is
// gone, and the consumer's transport carries on. RabbitMQ 3.10's plugin
// drops the consumer's whole connection (or leaves its session silent,
// which the consumer's idle check finds), so the transport reconnects;
// RabbitMQ 4 detaches the consumer's link, the driver's attach of a new
// one is refused with amqp:not-found, and the connection stays.
func TestQueueDeletedElsewhere(t *testing.T) {
	eachRabbit(t, func(t *testing.T, url string) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		raw := url + "?" + fastRetry
		owner, other := openT(t, ctx, raw), openT(t, ctx, raw)
		q, err := owner.DeclareQueue(ctx, orDurable(t, url, transport.Queue{Name: "deleted." + randomHex(4)}))
		if err != nil {
			t.Fatal(err)
		}
		c, err := owner.Consume(ctx, q, transport.ConsumeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := other.DeleteQueue(ctx, q); err != nil {
			t.Fatal(err)
		}
		_, err = c.Receive(ctx)
		if !errors.Is(err, transport.ErrClosed) || !errors.Is(err, transport.ErrNotFound) {
			t.Fatalf("Receive after the queue was deleted elsewhere: %v, want ErrClosed and ErrNotFound", err)
		}
		t.Logf("Receive after the queue was deleted elsewhere: %v", err)
		q2, err := owner.DeclareQueue(ctx, orDurable(t, url, transport.Queue{}))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _, _ = owner.DeleteQueue(context.Background(), q2) }()
		if err := owner.Publish(ctx, "", q2, transport.Message{Body: []byte("still works")}); err != nil {
			t.Fatal(err)
		}
		c2, err := owner.Consume(ctx, q2, transport.ConsumeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		if d, err := c2.Receive(ctx); err != nil || string(d.Body) != "still works" {
			t.Fatalf("after the loss: %v", err)
		}
	})
}

// TestFailover: a URL's hosts are tried in turn.
func TestFailover(t *testing.T) {
	eachRabbit(t, func(t *testing.T, raw string) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		cfg, err := transport.ParseURL(raw)
		if err != nil {
			t.Fatal(err)
		}
		dead := "127.0.0.1:" + closedPort(t)
		tr := openT(t, ctx, strings.Replace(raw, cfg.Hosts[0].String(), dead+","+cfg.Hosts[0].String(), 1))
		q, err := tr.DeclareQueue(ctx, orDurable(t, raw, transport.Queue{}))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _, _ = tr.DeleteQueue(context.Background(), q) }()
		if err := tr.Publish(ctx, "", q, transport.Message{Body: []byte("via the second host")}); err != nil {
			t.Fatal(err)
		}
	})
}
