package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/switchyard-mq/switchyard/drivers/zmq"
	"github.com/switchyard-mq/switchyard/notify"
	"github.com/switchyard-mq/switchyard/transport"
)

// recordingHandler keeps every record logged through it.
type recordingHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler            { return h }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}

// warnings are the messages of the records at level Warn and above.
func (h *recordingHandler) warnings() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var msgs []string
	for _, r := range h.records {
		if r.Level >= slog.LevelWarn {
			msgs = append(msgs, r.Message)
		}
	}
	return msgs
}

// TestNoopDriverWarnsOnce: a notifier with the noop driver says at start,
// once, that notifications are dropped and how to send them; its prepared
// copies and its Notify calls say nothing more; other drivers say nothing.
func TestNoopDriverWarnsOnce(t *testing.T) {
	tr := openMemory(t)
	for _, tt := range []struct {
		driver       notify.Driver
		wantWarnings int
	}{
		{notify.Noop, 1},
		{notify.Log, 0},
		{notify.MessagingV2, 0},
	} {
		t.Run(string(tt.driver), func(t *testing.T) {
			h := &recordingHandler{}
			n, err := notify.NewNotifier(tr, "compute.host1", notify.WithDriver(tt.driver), notify.WithLogger(slog.New(h)))
			if err != nil {
				t.Fatal(err)
			}
			for _, notifier := range []*notify.Notifier{n, n.Prepare("compute.host2")} {
				if err := notifier.Info(t.Context(), "compute.instance.create.end", map[string]string{"id": "vm-1"}); err != nil {
					t.Fatal(err)
				}
			}
			got := h.warnings()
			if len(got) != tt.wantWarnings {
				t.Fatalf("warnings %q, want %d", got, tt.wantWarnings)
			}
			for _, msg := range got {
				for _, want := range []string{"notifications are dropped", "driver = messagingv2", "[oslo_messaging_notifications]"} {
					if !strings.Contains(msg, want) {
						t.Errorf("warning %q does not say %q", msg, want)
					}
				}
			}
		})
	}
}

// queuedEventTypes consumes what waits in queue, without a listener, and
// returns the notifications' event types in order, or the error of
// consuming a queue that does not exist.
func queuedEventTypes(t *testing.T, tr *transport.Transport, queue string, want int) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	c, err := tr.Consume(ctx, queue, transport.ConsumeOptions{AutoAck: true})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var types []string
	for range want {
		d, err := c.Receive(ctx)
		if err != nil {
			t.Fatalf("after %q: %v", types, err)
		}
		var env struct {
			Message string `json:"oslo.message"`
		}
		var note struct {
			EventType string `json:"event_type"`
		}
		if err := json.Unmarshal(d.Body, &env); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(env.Message), &note); err != nil {
			t.Fatal(err)
		}
		types = append(types, note.EventType)
	}
	return types, nil
}

// TestNotifierQueuePolicy: by default the notifier declares oslo's
// "<topic>.<priority>" queue, which keeps every notification for a
// listener to come; PublishOnly declares none (what no listener's queue
// takes is dropped, and a pool still gets everything); MaxLength keeps the
// newest, and listeners declare the queue alike with WithQueueBounds.
func TestNotifierQueuePolicy(t *testing.T) {
	const queue = "notifications.info"
	for _, tt := range []struct {
		name   string
		policy notify.QueuePolicy
		want   []string // event types waiting in queue after e-0 … e-4
	}{
		{"oslo's default", notify.QueuePolicy{}, []string{"e-0", "e-1", "e-2", "e-3", "e-4"}},
		{"bounded", notify.QueuePolicy{MaxLength: 2, MessageTTL: time.Hour}, []string{"e-3", "e-4"}},
		{"publish only", notify.QueuePolicy{PublishOnly: true}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := transport.Open(t.Context(), "memory://"+strings.ReplaceAll(t.Name(), "/", "."))
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			n, err := notify.NewNotifier(tr, "compute.host1", notify.WithQueues(tt.policy))
			if err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				if err := n.Info(t.Context(), fmt.Sprintf("e-%d", i), nil); err != nil {
					t.Fatal(err)
				}
			}
			got, err := queuedEventTypes(t, tr, queue, len(tt.want))
			if tt.policy.PublishOnly {
				if !errors.Is(err, transport.ErrNotFound) {
					t.Fatalf("consume %s: %v, want ErrNotFound: no queue declared", queue, err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("waiting in %s: %q (%v), want %q", queue, got, err, tt.want)
			}
			// A listener on the queue declares it as the notifier did,
			// given the same bounds; otherwise the broker refuses it.
			endpoints := []notify.Endpoint{{Handle: func(context.Context, *notify.Notification) error { return nil }}}
			targets := []transport.Target{{Topic: "notifications"}}
			l, err := notify.NewListener(tr, targets, endpoints, notify.WithQueueBounds(tt.policy))
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Start(t.Context()); err != nil {
				t.Fatalf("a listener with the notifier's bounds: %v", err)
			}
			if err := l.Stop(t.Context()); err != nil {
				t.Fatal(err)
			}
			if tt.policy.MaxLength > 0 {
				l, err := notify.NewListener(tr, targets, endpoints)
				if err != nil {
					t.Fatal(err)
				}
				if err := l.Start(t.Context()); !errors.Is(err, transport.ErrPrecondition) {
					t.Errorf("a listener without the bounds: Start %v, want ErrPrecondition", err)
					_ = l.Stop(t.Context())
				}
			}
		})
	}
}

// TestPublishOnlyReachesPools: with PublishOnly a pool listener still
// gets every notification sent while it listens.
func TestPublishOnlyReachesPools(t *testing.T) {
	tr := openMemory(t)
	got := make(chan string, 10)
	l, err := notify.NewListener(tr, []transport.Target{{Topic: "notifications"}}, []notify.Endpoint{{
		Handle: func(_ context.Context, n *notify.Notification) error { got <- n.EventType; return nil },
	}}, notify.WithPool("audit"))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer l.Stop(context.Background())
	n, err := notify.NewNotifier(tr, "compute.host1", notify.WithQueues(notify.QueuePolicy{PublishOnly: true}))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := n.Info(t.Context(), fmt.Sprintf("e-%d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		select {
		case e := <-got:
			if want := fmt.Sprintf("e-%d", i); e != want {
				t.Errorf("pool got %q, want %q", e, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("pool got %d of 3 notifications", i)
		}
	}
	if _, err := tr.PurgeQueue(t.Context(), "notifications.info"); !errors.Is(err, transport.ErrNotFound) {
		t.Errorf("purge notifications.info: %v, want ErrNotFound: the notifier declared no queue", err)
	}
}

// TestNotifierQueuePolicyOnZMQ: on zmq:// a queue holds nothing by itself,
// so the notifier's queue lives in the sender's buffer (buffer_size) until
// a listener comes: with nobody listening, Notify fails once the buffer is
// full. PublishOnly holds nothing for an absent listener, so Notify never
// fails so; a length bound is refused at NewNotifier (no max-length); with
// an age bound what expired leaves the buffer, and Notify succeeds again.
func TestNotifierQueuePolicyOnZMQ(t *testing.T) {
	const buffer = 5
	for _, tt := range []struct {
		name          string
		policy        notify.QueuePolicy
		wantNewErr    error
		wantFailAfter int // notifications sent before Notify fails; 0: none fails
		wantRecovery  bool
	}{
		{"oslo's default", notify.QueuePolicy{}, nil, buffer, false},
		{"publish only", notify.QueuePolicy{PublishOnly: true}, nil, 0, false},
		{"bounded by length", notify.QueuePolicy{MaxLength: 3}, transport.ErrUnsupported, 0, false},
		{"bounded by age", notify.QueuePolicy{MessageTTL: 100 * time.Millisecond}, nil, buffer, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			url := fmt.Sprintf("zmq://%s?buffer_size=%d", strings.ReplaceAll(t.Name(), "/", "."), buffer)
			tr, err := transport.Open(t.Context(), url)
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			n, err := notify.NewNotifier(tr, "compute.host1", notify.WithQueues(tt.policy), notify.WithRetry(0))
			if tt.wantNewErr != nil {
				if !errors.Is(err, tt.wantNewErr) {
					t.Fatalf("NewNotifier: %v, want %v", err, tt.wantNewErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 * buffer {
				err := n.Info(t.Context(), fmt.Sprintf("e-%d", i), nil)
				switch {
				case tt.wantFailAfter > 0 && i == tt.wantFailAfter:
					if !errors.Is(err, transport.ErrUnroutable) {
						t.Fatalf("notification %d with a full buffer: %v, want ErrUnroutable (the buffer is full)", i, err)
					}
					if tt.wantRecovery {
						notifyOnceExpired(t, n)
					}
					return
				case err != nil:
					t.Fatalf("notification %d: %v", i, err)
				}
			}
			if tt.wantFailAfter > 0 {
				t.Fatalf("%d notifications sent with nobody listening, want a failure after %d", 3*buffer, tt.wantFailAfter)
			}
		})
	}
}

// notifyOnceExpired polls until a notification is taken again, the ones
// that filled the buffer having expired.
func notifyOnceExpired(t *testing.T, n *notify.Notifier) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := n.Info(t.Context(), "after expiry", nil)
		if err == nil {
			return
		}
		if !errors.Is(err, transport.ErrUnroutable) || time.Now().After(deadline) {
			t.Fatalf("notify once the buffered notifications expired: %v", err)
		}
		<-tick.C
	}
}
