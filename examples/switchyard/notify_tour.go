package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/switchyard-mq/switchyard/notify"
	"github.com/switchyard-mq/switchyard/transport"
)

// notifySection is the tour's notifications part: one notifier, two
// listener pools, one with a filter.
func notifySection() section {
	return section{
		title: `Notifications: topic "notifications", pools "billing" and "audit-log"`,
		about: `Each pool gets its own copy of every notification; the billing pool's endpoint
only handles info notifications whose event type starts with "compute.instance.".`,
		run: notifyTour,
	}
}

func notifyTour(ctx context.Context, tr *transport.Transport, w io.Writer) error {
	var mu sync.Mutex
	received := map[string][]string{}
	arrived := make(chan struct{}, 16)
	record := func(pool string) func(context.Context, *notify.Notification) error {
		return func(_ context.Context, n *notify.Notification) error {
			mu.Lock()
			received[pool] = append(received[pool], fmt.Sprintf("%s %s %s", n.Priority, n.EventType, n.Payload))
			mu.Unlock()
			arrived <- struct{}{}
			return nil
		}
	}
	pools := []struct {
		name     string
		endpoint notify.Endpoint
	}{
		{"billing", notify.Endpoint{
			Priorities: []notify.Priority{notify.Info},
			Filter:     notify.Filter{EventType: regexpPrefix("compute.instance.")},
			Handle:     record("billing"),
		}},
		{"audit-log", notify.Endpoint{Handle: record("audit-log")}},
	}
	for _, p := range pools {
		l, err := notify.NewListener(tr, []transport.Target{{Topic: notify.DefaultTopic}}, []notify.Endpoint{p.endpoint}, notify.WithPool(p.name))
		if err != nil {
			return err
		}
		if err := l.Start(ctx); err != nil {
			return err
		}
		defer func() { _ = l.Stop(context.WithoutCancel(ctx)) }()
	}
	notifier, err := notify.NewNotifier(tr, "compute.host1")
	if err != nil {
		return err
	}
	sends := []struct {
		priority  notify.Priority
		eventType string
		payload   map[string]string
	}{
		{notify.Info, "compute.instance.create.end", map[string]string{"id": "vm-1"}},
		{notify.Warn, "compute.instance.slow", map[string]string{"id": "vm-1"}},
		{notify.Info, "network.port.create.end", map[string]string{"id": "port-7"}},
	}
	for _, s := range sends {
		if err := notifier.Notify(ctx, s.priority, s.eventType, s.payload); err != nil {
			return err
		}
		fmt.Fprintf(w, "  %-9s | sent %s %s %v\n", "notifier", s.priority, s.eventType, s.payload)
	}
	const want = 4 // audit-log gets all three, billing one
	for range want {
		select {
		case <-arrived:
		case <-ctx.Done():
			return fmt.Errorf("notifications received so far %v: %w", received, ctx.Err())
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, pool := range []string{"billing", "audit-log"} {
		lines := received[pool]
		sort.Strings(lines)
		for _, l := range lines {
			fmt.Fprintf(w, "  %-9s | got  %s\n", pool, l)
		}
	}
	if len(received["billing"]) != 1 || len(received["audit-log"]) != 3 {
		return fmt.Errorf("want billing 1 and audit-log 3 notifications, got %v", received)
	}
	fmt.Fprintln(w, "  => audit-log got every notification; billing only the one its filter and priority select.")
	return nil
}
