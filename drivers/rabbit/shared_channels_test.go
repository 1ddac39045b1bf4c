package rabbit

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/transport"
	"github.com/switchyard-mq/switchyard/transport/driver"
)

// sharedSetup is a driver connection on the test's virtual host with
// queues declared through it, and a consumer on each.
type sharedSetup struct {
	x         *tester
	c         *conn
	queues    []string
	consumers []*consumer
}

// newSharedSetup opens a connection whose session spreads its consumers
// over spread channels before they share, and consumes queues queues.
func newSharedSetup(t *testing.T, queues, spread int) *sharedSetup {
	t.Helper()
	x := newTester(t)
	u, err := transport.ParseURL(x.url(""))
	if err != nil {
		t.Fatal(err)
	}
	u.Logger = slog.New(slog.NewTextHandler(x.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dc, err := open(x.ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	s := &sharedSetup{x: x, c: dc.(*conn)}
	t.Cleanup(func() { _ = s.c.Close() })
	sess, err := s.c.session(x.ctx)
	if err != nil {
		t.Fatal(err)
	}
	sess.consumerChannels.mu.Lock()
	sess.consumerChannels.spread = spread
	sess.consumerChannels.mu.Unlock()
	for i := range queues {
		name, err := s.c.DeclareQueue(x.ctx, driver.Queue{Name: fmt.Sprintf("shared-%d", i), Exclusive: true})
		if err != nil {
			t.Fatal(err)
		}
		s.queues = append(s.queues, name)
		s.consumers = append(s.consumers, s.consume(t, name))
	}
	return s
}

func (s *sharedSetup) consume(t *testing.T, queue string) *consumer {
	t.Helper()
	dcons, err := s.c.Consume(s.x.ctx, queue, driver.ConsumeOptions{Prefetch: 10})
	if err != nil {
		t.Fatal(err)
	}
	return dcons.(*consumer)
}

func (s *sharedSetup) publish(t *testing.T, queue, body string) {
	t.Helper()
	if err := s.c.Publish(s.x.ctx, "", queue, driver.Message{Body: []byte(body)}); err != nil {
		t.Fatal(err)
	}
}

// receive reads the next delivery of cons and checks its body.
func (s *sharedSetup) receive(t *testing.T, cons *consumer, body string) driver.Delivery {
	t.Helper()
	d, err := cons.Receive(s.x.ctx)
	if err != nil {
		t.Fatalf("receive from %s: %v", cons.queue, err)
	}
	if string(d.Body) != body {
		t.Fatalf("received %q from %s, want %q", d.Body, cons.queue, body)
	}
	return d
}

// TestSharedConsumerChannels: the first consumers of a session have
// channels of their own, up to spreadChannels, then they share them, up to
// consumersPerChannel each; a channel error ends every consumer on the
// channel, and each consumes again, the error logged; a consumer that
// closes gives its unsettled deliveries back to its queue and leaves the
// others on its channel consuming.
func TestSharedConsumerChannels(t *testing.T) {
	t.Run("a few consumers have channels of their own", func(t *testing.T) {
		s := newSharedSetup(t, 3, spreadChannels)
		channels := map[*consumerChannel]bool{}
		for _, cons := range s.consumers {
			channels[cons.cur.Load().cc] = true
		}
		if len(channels) != 3 {
			t.Errorf("3 consumers on %d channels, want one each", len(channels))
		}
	})

	t.Run("spread, then shared by the least busy", func(t *testing.T) {
		s := newSharedSetup(t, 5, 2)
		counts := map[*consumerChannel]int{}
		for _, cons := range s.consumers {
			counts[cons.cur.Load().cc]++
		}
		if len(counts) != 2 {
			t.Fatalf("5 consumers on %d channels, want 2", len(counts))
		}
		for cc, n := range counts {
			if n < 2 || n > 3 || cc.members != n {
				t.Errorf("a channel of %d consumers (counting %d), want 2 or 3", n, cc.members)
			}
		}
	})

	t.Run("bounded consumers per channel", func(t *testing.T) {
		s := newSharedSetup(t, consumersPerChannel+1, 1)
		channels := map[*consumerChannel]int{}
		for _, cons := range s.consumers {
			channels[cons.cur.Load().cc]++
		}
		if len(channels) != 2 {
			t.Errorf("%d consumers on %d channels, want 2", len(s.consumers), len(channels))
		}
		for cc, n := range channels {
			if n > consumersPerChannel || cc.members != n {
				t.Errorf("a channel of %d consumers counts %d, bound %d", n, cc.members, consumersPerChannel)
			}
		}
		for i, cons := range s.consumers {
			s.publish(t, s.queues[i], "m")
			if d := s.receive(t, cons, "m"); d.Settler.Ack(d.Tag) != nil {
				t.Fatalf("ack from %s failed", cons.queue)
			}
		}
	})

	t.Run("a channel error re-consumes every consumer on it", func(t *testing.T) {
		s := newSharedSetup(t, 3, 1)
		cc := s.consumers[0].cur.Load().cc
		var held driver.Delivery
		for i, cons := range s.consumers {
			if cons.cur.Load().cc != cc {
				t.Fatalf("consumer %d on another channel", i)
			}
			s.publish(t, s.queues[i], "before")
			held = s.receive(t, cons, "before")
		}
		// An unknown delivery tag: the broker closes the channel.
		if err := cc.ch.Ack(1<<40, false); err != nil {
			t.Fatal(err)
		}
		poll(t, 10*time.Second, "the channel closed by the broker", cc.ch.IsClosed)
		if err := held.Settler.Ack(held.Tag); !errors.Is(err, driver.ErrClosed) {
			t.Errorf("ack of a delivery of the closed channel: %v, want ErrClosed", err)
		}
		for i, cons := range s.consumers {
			// Unsettled, each came back to its queue: first again.
			d := s.receive(t, cons, "before")
			if !d.Redelivered {
				t.Errorf("consumer %d: the unsettled delivery came back not marked redelivered", i)
			}
			if err := d.Settler.Ack(d.Tag); err != nil {
				t.Fatal(err)
			}
			s.publish(t, s.queues[i], "after")
			d = s.receive(t, cons, "after")
			if err := d.Settler.Ack(d.Tag); err != nil {
				t.Fatal(err)
			}
		}
		if logs := s.x.logs.String(); strings.Count(logs, "the broker closed a consumer channel") != 1 {
			t.Errorf("the channel error logged other than once:\n%s", logs)
		}
	})

	t.Run("close gives back unsettled deliveries, siblings go on", func(t *testing.T) {
		s := newSharedSetup(t, 2, 1)
		closing, sibling := s.consumers[0], s.consumers[1]
		cc := sibling.cur.Load().cc
		s.publish(t, s.queues[0], "held")
		held := s.receive(t, closing, "held")
		if err := closing.Close(); err != nil {
			t.Fatal(err)
		}
		if err := held.Settler.Ack(held.Tag); !errors.Is(err, driver.ErrClosed) {
			t.Errorf("ack after the consumer closed: %v, want ErrClosed", err)
		}
		again := s.consume(t, s.queues[0])
		d := s.receive(t, again, "held")
		if !d.Redelivered {
			t.Error("the delivery given back came again not marked redelivered")
		}
		if err := d.Settler.Ack(d.Tag); err != nil {
			t.Fatal(err)
		}
		if cc.ch.IsClosed() || sibling.cur.Load().cc != cc {
			t.Fatal("the sibling's channel closed with the consumer")
		}
		s.publish(t, s.queues[1], "sibling")
		d = s.receive(t, sibling, "sibling")
		if err := d.Settler.Ack(d.Tag); err != nil {
			t.Fatal(err)
		}
	})
}
