package notify_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/switchyard-mq/switchyard/drivers/memory"
	"github.com/switchyard-mq/switchyard/notify"
	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

func TestNotifyListen(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr := openMemory(t)
	var mu sync.Mutex
	got := map[notify.Priority][]*notify.Notification{}
	done := make(chan struct{}, 100)
	l, err := notify.NewListener(tr, []transport.Target{{Topic: "notifications"}}, []notify.Endpoint{{
		Handle: func(ctx context.Context, n *notify.Notification) error {
			mu.Lock()
			got[n.Priority] = append(got[n.Priority], n)
			mu.Unlock()
			done <- struct{}{}
			return nil
		},
	}}, notify.WithPool("p1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer l.Stop(ctx)
	n, err := notify.NewNotifier(tr, "compute.host1")
	if err != nil {
		t.Fatal(err)
	}
	rctx := rpc.WithRequestContext(ctx, rpc.RequestContext{"request_id": "req-9", "auth_token": "secret"})
	for _, p := range notify.Priorities() {
		if err := n.Notify(rctx, p, "instance.create", map[string]int{"id": 1}); err != nil {
			t.Fatal(err)
		}
	}
	for range notify.Priorities() {
		select {
		case <-done:
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range notify.Priorities() {
		if len(got[p]) != 1 {
			t.Fatalf("%s: %d", p, len(got[p]))
		}
		n := got[p][0]
		if n.PublisherID != "compute.host1" || n.EventType != "instance.create" || string(n.Payload) != `{"id":1}` || n.Context["request_id"] != "req-9" || n.Context["auth_token"] != nil {
			t.Fatalf("%+v", n)
		}
	}
}

// TestMalformedNotificationRejected: a body that is not a notification is
// rejected, not requeued, and the listener
// keeps handling the next one.
func TestMalformedNotificationRejected(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr := openMemory(t)
	got := make(chan *notify.Notification, 4)
	startListener(t, tr, func(ctx context.Context, n *notify.Notification) error {
		got <- n
		return nil
	}, notify.Info)
	for _, body := range []string{"not json", `{"oslo.version": "3.0", "oslo.message": "{}"}`} {
		if err := tr.Publish(ctx, "openstack", "notifications.info", transport.Message{Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := notify.NewNotifier(tr, "p")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Info(ctx, "after.garbage", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case note := <-got:
		if note.EventType != "after.garbage" {
			t.Errorf("handled %q, want only the well-formed notification", note.EventType)
		}
	case <-ctx.Done():
		t.Fatal("the listener stopped handling after malformed notifications")
	}
	if left, err := tr.PurgeQueue(ctx, "notifications.info"); err != nil || left != 0 {
		t.Errorf("malformed notifications left in the queue: %d, %v (want rejected, not requeued)", left, err)
	}
}

// TestConstructorsRefuseNilTransport: a missing transport is an
// ErrInvalid, not a nil-pointer panic.
func TestConstructorsRefuseNilTransport(t *testing.T) {
	endpoints := []notify.Endpoint{{Handle: func(context.Context, *notify.Notification) error { return nil }}}
	if _, err := notify.NewListener(nil, []transport.Target{{Topic: "notifications"}}, endpoints); !errors.Is(err, transport.ErrInvalid) {
		t.Errorf("NewListener(nil): %v, want an ErrInvalid", err)
	}
	if _, err := notify.NewNotifier(nil, "host"); !errors.Is(err, transport.ErrInvalid) {
		t.Errorf("NewNotifier(nil): %v, want an ErrInvalid", err)
	}
}

// TestRestartAfterStopGaveUp: a Stop whose deadline passes with a handler
// still running leaves that handler to finish; Start refuses until it has,
// then the listener runs again.
func TestRestartAfterStopGaveUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr := openMemory(t)
	started, release := make(chan string, 10), make(chan struct{})
	l := startListener(t, tr, func(ctx context.Context, n *notify.Notification) error {
		started <- n.EventType
		if n.EventType == "slow" {
			<-release
		}
		return nil
	})
	notifier, err := notify.NewNotifier(tr, "host")
	if err != nil {
		t.Fatal(err)
	}
	if err := notifier.Info(ctx, "slow", nil); err != nil {
		t.Fatal(err)
	}
	<-started
	stopCtx, stopCancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer stopCancel()
	if err := l.Stop(stopCtx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop with a handler running: %v, want context.DeadlineExceeded", err)
	}
	if err := l.Start(ctx); !errors.Is(err, transport.ErrInvalid) {
		t.Fatalf("Start with the last run's handler still running: %v, want ErrInvalid", err)
	}
	close(release)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		err := l.Start(ctx)
		if err == nil {
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("Start once the handler returned: %v", err)
		}
	}
	if err := notifier.Info(ctx, "after", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-started:
		if got != "after" {
			t.Errorf("after restarting, handled %q, want %q", got, "after")
		}
	case <-ctx.Done():
		t.Fatal("nothing handled after restarting")
	}
}

// syncBuffer is a concurrency-safe log destination.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestUnknownPriorityDropped: a notification whose priority is missing or
// not one of the seven is logged, acked and dropped, as a Python listener
// does, not rejected as malformed (which would dead-letter it).
func TestUnknownPriorityDropped(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	logs := &syncBuffer{}
	tr, err := transport.Open(ctx, "memory://"+t.Name(), transport.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() }) // after the listener stops
	got := make(chan *notify.Notification, 8)
	startListener(t, tr, func(ctx context.Context, n *notify.Notification) error {
		got <- n
		return nil
	})
	bodies := []string{
		`{"message_id": "m1", "publisher_id": "p", "event_type": "e", "priority": "WARNING", "payload": {}, "timestamp": "t"}`,
		`{"message_id": "m2", "publisher_id": "p", "event_type": "e", "priority": "foo", "payload": {}, "timestamp": "t"}`,
		`{"message_id": "m3", "publisher_id": "p", "event_type": "e", "payload": {}, "timestamp": "t"}`,
		`{"message_id": "m4", "publisher_id": "p", "event_type": "e", "priority": 3, "payload": {}, "timestamp": "t"}`,
	}
	for _, body := range bodies {
		if err := tr.Publish(ctx, "openstack", "notifications.info", transport.Message{Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := notify.NewNotifier(tr, "p")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Info(ctx, "after.unknown", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case note := <-got:
		if note.EventType != "after.unknown" {
			t.Errorf("handled %q (priority %q), want only the well-formed notification", note.EventType, note.Priority)
		}
	case <-ctx.Done():
		t.Fatal("the listener stopped handling after notifications of unknown priority")
	}
	if n := strings.Count(logs.String(), "unknown or missing priority dropped"); n != len(bodies) {
		t.Errorf("logged %d drops, want %d:\n%s", n, len(bodies), logs)
	}
	if strings.Contains(logs.String(), "rejected") {
		t.Errorf("a notification of unknown priority was rejected:\n%s", logs)
	}
}

// TestListenerRefusesUnknownMetadataFilter: a metadata filter key other
// than message_id and timestamp would drop every notification; it is an
// ErrInvalid instead.
func TestListenerRefusesUnknownMetadataFilter(t *testing.T) {
	tr := openMemory(t)
	handle := func(context.Context, *notify.Notification) error { return nil }
	for key, ok := range map[string]bool{"message_id": true, "timestamp": true, "messageid": false, "publisher_id": false} {
		_, err := notify.NewListener(tr, []transport.Target{{Topic: "notifications"}}, []notify.Endpoint{{
			Handle: handle, Filter: notify.Filter{Metadata: map[string]*regexp.Regexp{key: regexp.MustCompile(".")}},
		}})
		if ok && err != nil {
			t.Errorf("metadata filter on %q: %v", key, err)
		}
		if !ok && !errors.Is(err, transport.ErrInvalid) {
			t.Errorf("metadata filter on %q: %v, want ErrInvalid", key, err)
		}
	}
}

// startListener starts, for the test, a listener on topic "notifications"
// whose one endpoint handles priorities ps (all of them if none).
func startListener(t *testing.T, tr *transport.Transport, handle func(context.Context, *notify.Notification) error, ps ...notify.Priority) *notify.Listener {
	t.Helper()
	l, err := notify.NewListener(tr, []transport.Target{{Topic: "notifications"}}, []notify.Endpoint{{Priorities: ps, Handle: handle}})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Stop(context.Background()) })
	return l
}

// TestStartDuringStop: a Start that gets in while a Stop is under way
// runs apart from the run being stopped: the Stop returns, and the new
// run handles notifications (the race detector watches the rest).
func TestStartDuringStop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr := openMemory(t)
	handled := make(chan string, 100)
	l := startListener(t, tr, func(ctx context.Context, n *notify.Notification) error {
		handled <- n.EventType
		return nil
	})
	notifier, err := notify.NewNotifier(tr, "host")
	if err != nil {
		t.Fatal(err)
	}
	for round := range 20 {
		stopped := make(chan error, 1)
		go func() { stopped <- l.Stop(ctx) }()
		restarted := false
		for !restarted && len(stopped) == 0 {
			restarted = l.Start(ctx) == nil
		}
		select {
		case err := <-stopped:
			if err != nil {
				t.Fatalf("round %d: Stop: %v", round, err)
			}
		case <-ctx.Done():
			t.Fatalf("round %d: Stop did not return with a Start in the middle", round)
		}
		if !restarted {
			if err := l.Start(ctx); err != nil {
				t.Fatalf("round %d: Start after Stop: %v", round, err)
			}
		}
		if err := notifier.Info(ctx, fmt.Sprint("round-", round), nil); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-handled:
			if got != fmt.Sprint("round-", round) {
				t.Errorf("round %d: handled %q", round, got)
			}
		case <-ctx.Done():
			t.Fatalf("round %d: nothing handled after the restart", round)
		}
	}
}

// openMemory opens a memory:// transport of the test's own, closed when the
// test ends, after the listeners startListener started have stopped.
func openMemory(t *testing.T) *transport.Transport {
	t.Helper()
	tr, err := transport.Open(context.Background(), "memory://"+strings.ReplaceAll(t.Name(), "/", "-"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// TestListenerQueueDeleted: a listener whose queue is deleted under it
// declares it again and consumes it again, counting it in its stats:
// notifications sent after that reach it.
func TestListenerQueueDeleted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tr := openMemory(t)
	got := make(chan string, 8)
	l := startListener(t, tr, func(ctx context.Context, n *notify.Notification) error {
		got <- n.EventType
		return nil
	}, notify.Info)
	operator := openMemory(t)
	if _, err := operator.DeleteQueue(ctx, "notifications.info"); err != nil {
		t.Fatal(err)
	}
	for l.Stats().ConsumersLost == 0 || l.Stats().Unconsumed != 0 {
		select {
		case <-ctx.Done():
			t.Fatalf("the listener did not consume its queue again: %+v", l.Stats())
		case <-time.After(10 * time.Millisecond):
		}
	}
	n, err := notify.NewNotifier(tr, "p")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Info(ctx, "after.delete", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-got:
		if e != "after.delete" {
			t.Errorf("handled %q, want after.delete", e)
		}
	case <-ctx.Done():
		t.Fatal("a notification sent after the queue came back was not handled")
	}
}

// TestListenerPrefetch: a listener holds at most its prefetch of
// notifications from the broker while it handles one; the rest stay in
// the queue, for a pool's other members. (Without the bound, memory://
// hands all four to the listener's first receive.)
func TestListenerPrefetch(t *testing.T) {
	for _, prefetch := range []int{1, 2} {
		t.Run(fmt.Sprint("prefetch ", prefetch), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			tr := openMemory(t)
			notifier, err := notify.NewNotifier(tr, "host")
			if err != nil {
				t.Fatal(err)
			}
			const sent = 4
			for i := range sent {
				if err := notifier.Info(ctx, fmt.Sprint("event-", i), nil); err != nil {
					t.Fatal(err)
				}
			}
			started, release := make(chan string, sent), make(chan struct{})
			l, err := notify.NewListener(tr, []transport.Target{{Topic: "notifications"}}, []notify.Endpoint{{
				Handle: func(ctx context.Context, n *notify.Notification) error {
					started <- n.EventType
					<-release
					return nil
				},
			}}, notify.WithPrefetch(prefetch))
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Start(ctx); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := l.Stop(ctx); err != nil {
					t.Errorf("Stop: %v", err)
				}
			}()
			defer close(release)
			select {
			case <-started:
			case <-ctx.Done():
				t.Fatal("nothing handled")
			}
			left, err := tr.PurgeQueue(ctx, "notifications.info")
			if err != nil {
				t.Fatal(err)
			}
			if held := sent - left; held > prefetch {
				t.Errorf("with the first notification in hand, the listener held %d, more than its prefetch of %d", held, prefetch)
			}
		})
	}
}

func TestListenerRefusesBadPrefetch(t *testing.T) {
	tr := openMemory(t)
	handle := func(context.Context, *notify.Notification) error { return nil }
	batch := func(context.Context, []*notify.Notification) error { return nil }
	for _, tc := range []struct {
		name     string
		endpoint notify.Endpoint
		opts     []notify.ListenerOption
	}{
		{"negative", notify.Endpoint{Handle: handle}, []notify.ListenerOption{notify.WithPrefetch(-1)}},
		{"past AMQP's bound", notify.Endpoint{Handle: handle}, []notify.ListenerOption{notify.WithPrefetch(1 << 16)}},
		{"below the batch size", notify.Endpoint{HandleBatch: batch},
			[]notify.ListenerOption{notify.WithBatch(10, time.Second), notify.WithPrefetch(5)}},
	} {
		_, err := notify.NewListener(tr, []transport.Target{{Topic: "notifications"}}, []notify.Endpoint{tc.endpoint}, tc.opts...)
		if !errors.Is(err, transport.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", tc.name, err)
		}
	}
}
