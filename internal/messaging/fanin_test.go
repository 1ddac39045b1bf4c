package messaging_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/internal/messaging"
	"github.com/switchyard-mq/switchyard/transport"
)

// fanInFixture declares queues q0..qn-1 on a memory broker of the test's
// own and consumes each.
func fanInFixture(t *testing.T, n int) (*transport.Transport, []string, []*transport.Consumer) {
	t.Helper()
	tr := openMemory(t, "")
	ctx := testContext(t)
	var queues []string
	var consumers []*transport.Consumer
	for i := range n {
		q, err := tr.DeclareQueue(ctx, transport.Queue{Name: "q" + strconv.Itoa(i)})
		if err != nil {
			t.Fatal(err)
		}
		c, err := tr.Consume(ctx, q, transport.ConsumeOptions{Prefetch: 4})
		if err != nil {
			t.Fatal(err)
		}
		queues, consumers = append(queues, q), append(consumers, c)
	}
	return tr, queues, consumers
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func publish(t *testing.T, tr *transport.Transport, queue, body string) {
	t.Helper()
	if err := tr.Publish(testContext(t), "", queue, transport.Message{Body: []byte(body)}); err != nil {
		t.Fatal(err)
	}
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestFanIn: what every queue delivers comes out of one stream, less what
// Accept drops; Close ends the stream.
func TestFanIn(t *testing.T) {
	tests := []struct {
		name      string
		published map[string][]string // queue: bodies
		drop      string              // the body Accept rejects
		want      []string
	}{
		{"one queue", map[string][]string{"q0": {"a", "b"}}, "", []string{"a", "b"}},
		{"several queues", map[string][]string{"q0": {"a"}, "q1": {"b", "c"}, "q2": {"d"}}, "", []string{"a", "b", "c", "d"}},
		{"Accept drops some", map[string][]string{"q0": {"a", "drop"}, "q1": {"drop", "b"}}, "drop", []string{"a", "b"}},
		{"nothing", nil, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			tr, queues, consumers := fanInFixture(t, 3)
			stopping := make(chan struct{})
			drops := 0
			for _, bodies := range tt.published {
				for _, b := range bodies {
					if tt.drop != "" && b == tt.drop {
						drops++
					}
				}
			}
			rejected := make(chan struct{}, drops)
			in := messaging.NewFanIn(consumers, messaging.FanInConfig[string]{
				Accept: func(d *transport.Delivery) (string, bool) {
					if string(d.Body) == tt.drop {
						_ = d.Reject()
						rejected <- struct{}{}
						return "", false
					}
					_ = d.Ack()
					return string(d.Body), true
				},
				Stopping: stopping, Logger: quiet, What: "bodies",
			})
			for q, bodies := range tt.published {
				for _, b := range bodies {
					publish(t, tr, q, b)
				}
			}
			var got []string
			for len(got) < len(tt.want) {
				select {
				case b := <-in.Out():
					got = append(got, b)
				case <-ctx.Done():
					t.Fatalf("received %q, want %q", got, tt.want)
				}
			}
			// The dropped deliveries may come after the wanted ones: wait
			// until each is rejected, so that none is still unsettled when
			// the consumers close.
			for range drops {
				select {
				case <-rejected:
				case <-ctx.Done():
					t.Fatalf("%d dropped deliveries, not all rejected", drops)
				}
			}
			close(stopping)
			in.Close()
			if b, ok := <-in.Out(); ok {
				t.Errorf("received %q after Close, want the stream closed", b)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("received %q, want %q", got, tt.want)
			}
			for _, q := range queues {
				if n, err := tr.PurgeQueue(ctx, q); err != nil || n != 0 {
					t.Errorf("queue %s: %d left, %v; want every delivery settled", q, n, err)
				}
			}
		})
	}
}

// TestFanInStoppingReturnsWhatIsInHand: a delivery accepted but not taken
// when Stopping closes goes back to its queue, unsettled, and Close
// returns though nobody reads the stream.
func TestFanInStoppingReturnsWhatIsInHand(t *testing.T) {
	ctx := testContext(t)
	tr, queues, consumers := fanInFixture(t, 1)
	stopping := make(chan struct{})
	accepted := make(chan struct{}, 1)
	in := messaging.NewFanIn(consumers, messaging.FanInConfig[*transport.Delivery]{
		Accept: func(d *transport.Delivery) (*transport.Delivery, bool) {
			accepted <- struct{}{}
			return d, true
		},
		Stopping: stopping, Logger: quiet, What: "deliveries",
	})
	publish(t, tr, queues[0], "in hand")
	select {
	case <-accepted:
	case <-ctx.Done():
		t.Fatal("nothing accepted")
	}
	close(stopping)
	in.Close()

	c, err := tr.Consume(ctx, queues[0], transport.ConsumeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d, err := c.Receive(ctx)
	if err != nil {
		t.Fatalf("the delivery in hand is not back in its queue: %v", err)
	}
	if string(d.Body) != "in hand" || !d.Redelivered {
		t.Errorf("got %q (redelivered %v), want %q redelivered", d.Body, d.Redelivered, "in hand")
	}
}
