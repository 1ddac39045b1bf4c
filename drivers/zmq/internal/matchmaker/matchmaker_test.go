package matchmaker_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/switchyard-mq/switchyard/drivers/zmq/internal/matchmaker"
	"github.com/switchyard-mq/switchyard/internal/brokertest"
	"github.com/switchyard-mq/switchyard/transport/driver"
)

// impl opens handles on one shared registry for a test.
type impl struct {
	name string
	open func(t *testing.T) func() matchmaker.Matchmaker
}

func impls() []impl {
	return []impl{
		{"memory", func(t *testing.T) func() matchmaker.Matchmaker {
			m := matchmaker.NewMemory()
			return func() matchmaker.Matchmaker {
				h := m.Open()
				t.Cleanup(func() { _ = h.Close() })
				return h
			}
		}},
		{"redis", func(t *testing.T) func() matchmaker.Matchmaker {
			url := brokertest.Redis().URL(t)
			var b [6]byte
			_, _ = rand.Read(b[:])
			prefix := "switchyard:test:" + hex.EncodeToString(b[:]) + ":"
			first := true
			return func() matchmaker.Matchmaker {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				r, err := matchmaker.NewRedis(ctx, url, prefix, 50*time.Millisecond, slog.Default())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					if err := r.Close(); err != nil {
						t.Errorf("close: %v", err)
					}
				})
				if first { // the first handle's cleanups run last: delete the test's keys
					first = false
					t.Cleanup(func() {
						ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
						defer cancel()
						if err := r.DeleteAll(ctx); err != nil {
							t.Errorf("delete test keys: %v", err)
						}
					})
				}
				return r
			}
		}},
	}
}

func forEach(t *testing.T, f func(t *testing.T, open func() matchmaker.Matchmaker)) {
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			ignore := goleak.IgnoreCurrent()
			t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // after the handles close
			f(t, im.open(t))
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not the case after %v", what, within)
		}
		<-tick.C
	}
}

func TestDeclarations(t *testing.T) {
	forEach(t, func(t *testing.T, open func() matchmaker.Matchmaker) {
		a, b := open(), open()
		c := ctx(t)
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		x := matchmaker.Exchange{Name: "x", Kind: "topic"}
		must(a.DeclareExchange(c, x))
		must(b.DeclareExchange(c, x))
		if err := b.DeclareExchange(c, matchmaker.Exchange{Name: "x", Kind: "direct"}); !errors.Is(err, driver.ErrPrecondition) {
			t.Errorf("redeclare with another kind: %v, want ErrPrecondition", err)
		}
		must(a.DeclareQueue(c, matchmaker.Queue{Name: "q"}))
		if err := b.DeclareQueue(c, matchmaker.Queue{Name: "q", Durable: true}); !errors.Is(err, driver.ErrPrecondition) {
			t.Errorf("redeclare queue durable: %v, want ErrPrecondition", err)
		}
		if err := a.Bind(c, matchmaker.Binding{Exchange: "missing", Queue: "q"}); !errors.Is(err, driver.ErrNotFound) {
			t.Errorf("bind to a missing exchange: %v, want ErrNotFound", err)
		}
		if err := a.Bind(c, matchmaker.Binding{Exchange: "x", Queue: "missing"}); !errors.Is(err, driver.ErrNotFound) {
			t.Errorf("bind a missing queue: %v, want ErrNotFound", err)
		}
		must(a.Bind(c, matchmaker.Binding{Exchange: "x", Queue: "q", Key: "a.*"}))
		must(a.Bind(c, matchmaker.Binding{Exchange: "x", Queue: "q", Key: "a.*"}))

		reg, err := b.Refresh(c)
		must(err)
		if len(reg.Bindings) != 1 || reg.Bindings[0].Key != "a.*" || reg.Exchanges["x"].Kind != "topic" {
			t.Errorf("registry seen by the other handle: %+v", reg)
		}
		must(b.DeleteQueue(c, "q"))
		reg, err = a.Refresh(c)
		must(err)
		if _, ok := reg.Queues["q"]; ok || len(reg.Bindings) != 0 {
			t.Errorf("after deleting the queue: queues %v, bindings %v", reg.Queues, reg.Bindings)
		}
		must(b.DeleteQueue(c, "q")) // missing: not an error
		must(a.DeleteExchange(c, "x"))
	})
}

// TestLivenessExpiry: a node that stops refreshing disappears after its
// TTL, with its consumers and exclusive queues; one that refreshes stays.
func TestLivenessExpiry(t *testing.T) {
	forEach(t, func(t *testing.T, open func() matchmaker.Matchmaker) {
		a, watcher := open(), open()
		c := ctx(t)
		const ttl = 300 * time.Millisecond
		live := matchmaker.Node{ID: "live", Endpoint: "tcp://127.0.0.1:1"}
		dying := matchmaker.Node{ID: "dying", Endpoint: "tcp://127.0.0.1:2"}
		for _, n := range []matchmaker.Node{live, dying} {
			if err := a.Join(c, n, ttl); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.DeclareQueue(c, matchmaker.Queue{Name: "shared"}); err != nil {
			t.Fatal(err)
		}
		if err := a.DeclareQueue(c, matchmaker.Queue{Name: "mine", Exclusive: true, Owner: "dying"}); err != nil {
			t.Fatal(err)
		}
		if err := watcher.DeclareQueue(c, matchmaker.Queue{Name: "mine", Exclusive: true, Owner: "live"}); !errors.Is(err, driver.ErrInUse) {
			t.Errorf("redeclare another node's exclusive queue: %v, want ErrInUse", err)
		}
		for _, n := range []string{"live", "dying"} {
			if err := a.AddConsumer(c, matchmaker.Consumer{Queue: "shared", Node: n, ID: 1}); err != nil {
				t.Fatal(err)
			}
		}
		reg, _ := watcher.Refresh(c)
		if got := len(reg.Consumers["shared"]); got != 2 {
			t.Fatalf("consumers before expiry: %d, want 2", got)
		}

		// Only "live" refreshes; "dying" must vanish, and the watcher must
		// be told through Changes (Redis: by its periodic reload).
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			tick := time.NewTicker(ttl / 5)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if err := a.Heartbeat(c, "live", ttl); err != nil {
						t.Errorf("heartbeat of a live node: %v", err)
						return
					}
				}
			}
		}()
		defer func() { close(stop); <-done }()
		eventually(t, "dying node expired", 5*time.Second, func() bool {
			reg, err := watcher.Registry(c)
			if err != nil {
				t.Fatal(err)
			}
			_, dead := reg.Nodes["dying"]
			return !dead
		})
		reg, _ = watcher.Refresh(c)
		if cs := reg.Consumers["shared"]; len(cs) != 1 || cs[0].Node != "live" {
			t.Errorf("consumers after expiry: %+v, want only live's", cs)
		}
		if _, ok := reg.Queues["mine"]; ok {
			t.Errorf("the dead node's exclusive queue survived it")
		}
		if _, ok := reg.Queues["shared"]; !ok {
			t.Errorf("a declared queue disappeared with a node")
		}
		if err := a.Heartbeat(c, "dying", ttl); !errors.Is(err, matchmaker.ErrExpired) {
			t.Errorf("heartbeat of an expired node: %v, want ErrExpired", err)
		}
	})
}

// TestChangesAndLeave: a change made through one handle is announced to
// another, and Leave removes a node's records at once.
func TestChangesAndLeave(t *testing.T) {
	forEach(t, func(t *testing.T, open func() matchmaker.Matchmaker) {
		a, b := open(), open()
		c := ctx(t)
		drain(b.Changes())
		if err := a.Join(c, matchmaker.Node{ID: "n", Endpoint: "tcp://127.0.0.1:3"}, time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := a.DeclareQueue(c, matchmaker.Queue{Name: "q"}); err != nil {
			t.Fatal(err)
		}
		if err := a.AddConsumer(c, matchmaker.Consumer{Queue: "q", Node: "n", ID: 7, Prefetch: 3}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "b sees the consumer", 5*time.Second, func() bool {
			select {
			case <-b.Changes():
			case <-time.After(100 * time.Millisecond):
			}
			reg, _ := b.Registry(c)
			cs := reg.Consumers["q"]
			return len(cs) == 1 && cs[0].Prefetch == 3
		})
		if err := a.Leave(c, "n"); err != nil {
			t.Fatal(err)
		}
		reg, _ := b.Refresh(c)
		if _, ok := reg.Nodes["n"]; ok || len(reg.Consumers["q"]) != 0 {
			t.Errorf("after Leave: nodes %v, consumers %v", reg.Nodes, reg.Consumers)
		}
		if err := a.AddConsumer(c, matchmaker.Consumer{Queue: "q", Node: "n", ID: 8}); !errors.Is(err, matchmaker.ErrExpired) {
			t.Errorf("add a consumer on a node that left: %v, want ErrExpired", err)
		}
	})
}

// TestRedisChangeLoadedEverywhereOnReturn: when a change returns, every
// other live node's local copy already holds it, so that a consumer added
// in one process gets its share of what another publishes right after.
// The periodic reload is slow here: only the wait for the other nodes'
// loads can make the change visible in time.
func TestRedisChangeLoadedEverywhereOnReturn(t *testing.T) {
	url := brokertest.Redis().URL(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "switchyard:test:" + hex.EncodeToString(b[:]) + ":"
	c := ctx(t)
	handles := make([]*matchmaker.Redis, 3)
	for i := range handles {
		r, err := matchmaker.NewRedis(c, url, prefix, 10*time.Second, slog.Default())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		if err := r.Join(c, matchmaker.Node{ID: fmt.Sprint("n", i), Endpoint: "tcp://127.0.0.1:3"}, time.Minute); err != nil {
			t.Fatal(err)
		}
		handles[i] = r
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := handles[0].DeleteAll(ctx); err != nil {
			t.Errorf("delete test keys: %v", err)
		}
	})
	if err := handles[0].DeclareQueue(c, matchmaker.Queue{Name: "q"}); err != nil {
		t.Fatal(err)
	}
	for id := range 20 {
		changer := handles[id%len(handles)]
		node := fmt.Sprint("n", id%len(handles))
		if err := changer.AddConsumer(c, matchmaker.Consumer{Queue: "q", Node: node, ID: uint64(id)}); err != nil {
			t.Fatal(err)
		}
		for i, h := range handles {
			reg, err := h.Registry(c)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(reg.Consumers["q"]); got != id+1 {
				t.Fatalf("after adding consumer %d, node n%d's copy has %d consumers, want %d", id, i, got, id+1)
			}
		}
	}
}

// TestRedisChangeDoesNotWaitForADeadNode: a node that stopped loading
// (its process hung or died, its liveness not yet expired) holds up one
// change by at most the wait bound, and none after it.
func TestRedisChangeDoesNotWaitForADeadNode(t *testing.T) {
	url := brokertest.Redis().URL(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "switchyard:test:" + hex.EncodeToString(b[:]) + ":"
	c := ctx(t)
	const reload = 300 * time.Millisecond // the bound on waiting for a node
	open := func(node string) *matchmaker.Redis {
		r, err := matchmaker.NewRedis(c, url, prefix, reload, slog.Default())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		if err := r.Join(c, matchmaker.Node{ID: node, Endpoint: "tcp://127.0.0.1:3"}, time.Minute); err != nil {
			t.Fatal(err)
		}
		return r
	}
	live := open("live")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := live.DeleteAll(ctx); err != nil {
			t.Errorf("delete test keys: %v", err)
		}
	})
	// Closed without leaving: its record lives on, and nothing loads for it.
	if err := open("hung").Close(); err != nil {
		t.Fatal(err)
	}
	if err := live.DeclareQueue(c, matchmaker.Queue{Name: "q"}); err != nil {
		t.Fatal(err)
	}
	// Waiting a bound for each change would take changes*reload at least.
	const changes = 10
	start := time.Now()
	for id := range changes {
		if err := live.AddConsumer(c, matchmaker.Consumer{Queue: "q", Node: "live", ID: uint64(id)}); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took >= changes*reload/2 {
		t.Errorf("%d changes took %v with a hung node: each waited for it", changes, took)
	}

	// Once it has loaded the version it missed, it is waited for again:
	// here it loads nothing more, so the next change waits the whole bound.
	client := redis.NewClient(mustParseRedisURL(t, url))
	defer client.Close()
	v, err := client.Get(c, prefix+"v").Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := client.HSet(c, prefix+"seen", "hung", v).Err(); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := live.AddConsumer(c, matchmaker.Consumer{Queue: "q", Node: "live", ID: changes}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < reload {
		t.Errorf("a change took %v after the hung node caught up: it was not waited for (bound %v)", took, reload)
	}
}

func mustParseRedisURL(t *testing.T, url string) *redis.Options {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	return opts
}

func drain(ch <-chan struct{}) {
	select {
	case <-ch:
	default:
	}
}
