package conformance

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/switchyard-mq/switchyard/notify"
	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

// notifyEnv is one notification case's topic and transport.
type notifyEnv struct {
	*env
	tr    *transport.Transport
	topic string
}

func newNotifyEnv(e *env) *notifyEnv {
	require(e.t, e.caps, transport.CapTopic, transport.CapQueueBinding)
	n := &notifyEnv{env: e, tr: e.open(), topic: uniqueName("notifications")}
	e.t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		// Notification queues outlive their listeners, as oslo's do.
		for _, p := range notify.Priorities() {
			_, _ = e.admin.DeleteQueue(ctx, n.topic+"."+string(p))
		}
	})
	return n
}

func (n *notifyEnv) notifier(opts ...notify.NotifierOption) *notify.Notifier {
	n.t.Helper()
	nt, err := notify.NewNotifier(n.tr, "conformance.host1", append([]notify.NotifierOption{notify.WithTopics(n.topic)}, opts...)...)
	if err != nil {
		n.t.Fatalf("new notifier: %v", err)
	}
	return nt
}

// listener starts a listener on the case's topic, stopped when the case
// ends; a pool's queue is deleted then too.
func (n *notifyEnv) listener(eps []notify.Endpoint, opts ...notify.ListenerOption) {
	n.t.Helper()
	l, err := notify.NewListener(n.tr, []transport.Target{{Topic: n.topic}}, eps, opts...)
	if err != nil {
		n.t.Fatalf("new listener: %v", err)
	}
	if err := l.Start(n.ctx); err != nil {
		n.t.Fatalf("start listener: %v", err)
	}
	n.t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		if err := l.Stop(ctx); err != nil {
			n.t.Errorf("stop listener: %v", err)
		}
	})
}

func (n *notifyEnv) pool(name string) notify.ListenerOption {
	n.t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		_, _ = n.admin.DeleteQueue(ctx, name)
	})
	return notify.WithPool(name)
}

// collector records notifications from handlers.
type collector struct {
	mu  sync.Mutex
	got []*notify.Notification
	ch  chan struct{}
}

func newCollector() *collector { return &collector{ch: make(chan struct{}, 1024)} }

func (c *collector) handle(ctx context.Context, n *notify.Notification) error {
	c.mu.Lock()
	c.got = append(c.got, n)
	c.mu.Unlock()
	c.ch <- struct{}{}
	return nil
}

// wait waits for n notifications and returns every one so far.
func (c *collector) wait(e *env, n int) []*notify.Notification {
	e.t.Helper()
	timer := time.NewTimer(deliveryTimeout)
	defer timer.Stop()
	for range n {
		select {
		case <-c.ch:
		case <-timer.C:
			c.mu.Lock()
			defer c.mu.Unlock()
			e.t.Fatalf("got %d of %d notifications", len(c.got), n)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

func (c *collector) eventTypes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var types []string
	for _, n := range c.got {
		types = append(types, n.EventType)
	}
	sort.Strings(types)
	return types
}

func notifyCases() []testCase {
	return []testCase{
		{"every-priority", notifyPriorities},
		{"v1-messaging-driver", notifyV1},
		{"pools", notifyPools},
		{"filters", notifyFilters},
		{"batch", notifyBatch},
		{"requeue", notifyRequeue},
		{"publish-only", notifyPublishOnly},
		{"bounded-queues", notifyBoundedQueues},
	}
}

// notifyPublishOnly: a notifier that declares no queue still reaches the
// pools listening, and leaves no "<topic>.<priority>" queue behind.
func notifyPublishOnly(e *env) {
	require(e.t, e.caps, transport.CapQueueExistence)
	n := newNotifyEnv(e)
	c := newCollector()
	n.listener([]notify.Endpoint{{Handle: c.handle}}, n.pool(uniqueName("pool")))
	nt := n.notifier(notify.WithQueues(notify.QueuePolicy{PublishOnly: true}))
	for i := range 3 {
		if err := nt.Info(n.ctx, fmt.Sprintf("e-%d", i), nil); err != nil {
			e.t.Fatal(err)
		}
	}
	c.wait(e, 3)
	if got, want := c.eventTypes(), []string{"e-0", "e-1", "e-2"}; !slices.Equal(got, want) {
		e.t.Errorf("the pool got %q, want %q", got, want)
	}
	_, err := n.tr.PurgeQueue(n.ctx, n.topic+".info")
	e.wantErr("the notifier's own queue", err, transport.ErrNotFound)
}

// notifyBoundedQueues: a notifier's queue bounded to two notifications
// keeps the newest two for a listener that starts later and declares the
// queue with the same bounds.
func notifyBoundedQueues(e *env) {
	require(e.t, e.caps, transport.CapMaxLength, transport.CapMessageTTL)
	n := newNotifyEnv(e)
	bounds := notify.QueuePolicy{MaxLength: 2, MessageTTL: time.Hour}
	nt := n.notifier(notify.WithQueues(bounds))
	for i := range 4 {
		if err := nt.Info(n.ctx, fmt.Sprintf("e-%d", i), nil); err != nil {
			e.t.Fatal(err)
		}
	}
	c := newCollector()
	n.listener([]notify.Endpoint{{Handle: c.handle, Priorities: []notify.Priority{notify.Info}}}, notify.WithQueueBounds(bounds))
	c.wait(e, 2)
	if got, want := c.eventTypes(), []string{"e-2", "e-3"}; !slices.Equal(got, want) {
		e.t.Errorf("the listener got %q, want %q (the oldest dropped)", got, want)
	}
}

// notifyPriorities: every priority reaches topic.priority and the handler
// for it, with the metadata oslo sends.
func notifyPriorities(e *env) {
	n := newNotifyEnv(e)
	c := newCollector()
	n.listener([]notify.Endpoint{{Handle: c.handle}})
	nt := n.notifier()
	ctx := rpc.WithRequestContext(n.ctx, rpc.RequestContext{"request_id": "req-7", "user_id": "u1", "auth_token": "secret"})
	for _, p := range notify.Priorities() {
		if err := nt.Notify(ctx, p, "event."+string(p), map[string]string{"p": string(p)}); err != nil {
			n.t.Fatalf("notify %s: %v", p, err)
		}
	}
	got := c.wait(e, len(notify.Priorities()))
	timestamp := regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?$`)
	messageID := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[notify.Priority]bool{}
	for _, note := range got {
		seen[note.Priority] = true
		if note.EventType != "event."+string(note.Priority) || string(note.Payload) != fmt.Sprintf(`{"p":%q}`, note.Priority) {
			n.t.Errorf("%s notification: event %q payload %s", note.Priority, note.EventType, note.Payload)
		}
		if note.PublisherID != "conformance.host1" || !timestamp.MatchString(note.Timestamp) || !messageID.MatchString(note.MessageID) {
			n.t.Errorf("%s notification metadata: publisher %q timestamp %q message id %q", note.Priority, note.PublisherID, note.Timestamp, note.MessageID)
		}
		if note.Context["request_id"] != "req-7" || note.Context["user_id"] != "u1" || note.Context["auth_token"] != nil {
			n.t.Errorf("%s notification context %v: want request_id and user_id, and no auth_token", note.Priority, note.Context)
		}
	}
	if len(seen) != len(notify.Priorities()) {
		n.t.Errorf("priorities received: %v", seen)
	}
}

func notifyV1(e *env) {
	n := newNotifyEnv(e)
	c := newCollector()
	n.listener([]notify.Endpoint{{Priorities: []notify.Priority{notify.Warn}, Handle: c.handle}})
	if err := n.notifier(notify.WithDriver(notify.Messaging)).Warn(n.ctx, "old.style", []int{1, 2}); err != nil {
		n.t.Fatal(err)
	}
	if got := c.wait(e, 1); string(got[0].Payload) != "[1,2]" || got[0].Priority != notify.Warn {
		n.t.Errorf("v1 notification arrived as %+v", got[0])
	}
}

// notifyPools: each pool gets every notification; a pool's members share.
func notifyPools(e *env) {
	n := newNotifyEnv(e)
	poolA, poolB := uniqueName("pool-a"), uniqueName("pool-b")
	a1, a2, b := newCollector(), newCollector(), newCollector()
	n.listener([]notify.Endpoint{{Handle: a1.handle}}, n.pool(poolA))
	n.listener([]notify.Endpoint{{Handle: a2.handle}}, n.pool(poolA))
	n.listener([]notify.Endpoint{{Handle: b.handle}}, n.pool(poolB))
	nt := n.notifier()
	const count = 20
	var want []string
	for i := range count {
		want = append(want, fmt.Sprintf("ev.%02d", i))
		if err := nt.Info(n.ctx, want[i], nil); err != nil {
			n.t.Fatal(err)
		}
	}
	b.wait(e, count)
	if got := b.eventTypes(); !slices.Equal(got, want) {
		n.t.Errorf("pool B got %v, want every notification", got)
	}
	n.eventually("pool A receives every notification", func(context.Context) error {
		if got := len(a1.eventTypes()) + len(a2.eventTypes()); got < count {
			return fmt.Errorf("%d of %d", got, count)
		}
		return nil
	})
	got := append(a1.eventTypes(), a2.eventTypes()...)
	sort.Strings(got)
	if !slices.Equal(got, want) {
		n.t.Errorf("pool A's members together got %v, want each notification once", got)
	}
}

func notifyFilters(e *env) {
	n := newNotifyEnv(e)
	c := newCollector()
	n.listener([]notify.Endpoint{{
		Filter: notify.Filter{
			PublisherID: regexp.MustCompile(`^compute\.`),
			EventType:   notify.Exactly("instance.create"),
			Context:     map[string]*regexp.Regexp{"project_id": notify.Exactly("p1")},
		},
		Handle: c.handle,
	}})
	nt := n.notifier()
	p1 := rpc.WithRequestContext(n.ctx, rpc.RequestContext{"project_id": "p1"})
	p2 := rpc.WithRequestContext(n.ctx, rpc.RequestContext{"project_id": "p2"})
	sends := []struct {
		ctx                  context.Context
		publisher, eventType string
	}{
		{p1, "network.h", "instance.create"},
		{p1, "compute.h", "instance.create.end"},
		{p2, "compute.h", "instance.create"},
		{p1, "compute.h", "instance.create"}, // the only match
	}
	for _, s := range sends {
		if err := nt.Prepare(s.publisher).Info(s.ctx, s.eventType, map[string]string{"publisher": s.publisher}); err != nil {
			n.t.Fatal(err)
		}
	}
	got := c.wait(e, 1)
	if got[0].PublisherID != "compute.h" || got[0].EventType != "instance.create" || got[0].Context["project_id"] != "p1" {
		n.t.Errorf("filter passed %+v", got[0])
	}
	select {
	case <-c.ch:
		n.t.Errorf("filter passed a second notification: %v", c.eventTypes())
	case <-time.After(quietPeriod):
	}
}

func notifyBatch(e *env) {
	n := newNotifyEnv(e)
	var mu sync.Mutex
	var sizes []int
	batches := make(chan struct{}, 16)
	n.listener([]notify.Endpoint{{HandleBatch: func(ctx context.Context, batch []*notify.Notification) error {
		mu.Lock()
		sizes = append(sizes, len(batch))
		mu.Unlock()
		batches <- struct{}{}
		return nil
	}}}, notify.WithBatch(5, 300*time.Millisecond))
	nt := n.notifier()
	for i := range 12 {
		if err := nt.Info(n.ctx, fmt.Sprint("ev", i), nil); err != nil {
			n.t.Fatal(err)
		}
	}
	total := 0
	for total < 12 {
		select {
		case <-batches:
		case <-n.ctx.Done():
			n.t.Fatalf("batches so far %v", sizes)
		}
		mu.Lock()
		total = 0
		for _, s := range sizes {
			total += s
			if s > 5 {
				n.t.Errorf("batch of %d, above the size 5", s)
			}
		}
		mu.Unlock()
	}
	if total != 12 {
		n.t.Errorf("batches %v hold %d notifications, want 12", sizes, total)
	}
}

func notifyRequeue(e *env) {
	n := newNotifyEnv(e)
	var mu sync.Mutex
	attempts := 0
	done := make(chan struct{})
	n.listener([]notify.Endpoint{{Handle: func(ctx context.Context, note *notify.Notification) error {
		mu.Lock()
		defer mu.Unlock()
		attempts++
		if attempts == 1 {
			return notify.ErrRequeue
		}
		close(done)
		return nil
	}}}, notify.WithRequeue())
	if err := n.notifier().Error(n.ctx, "flaky", nil); err != nil {
		n.t.Fatal(err)
	}
	select {
	case <-done:
	case <-n.ctx.Done():
		n.t.Fatal("the requeued notification did not come back")
	}

}
