package interop

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/internal/brokertest"
	"github.com/switchyard-mq/switchyard/notify"
	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

// TestDeclarationsMatchOslo: an RPC server, a client's call, a notifier
// and a listener pool, run once by Python oslo.messaging and once by Go
// with the same options, each in a virtual host of its own, leave the
// broker with the same exchanges and queues: names, flags and arguments,
// as an operator lists them. On RabbitMQ 4.3 with the options oslo's guide
// recommends, no queue is both non-durable and non-exclusive.
func TestDeclarationsMatchOslo(t *testing.T) {
	brokertest.ForEachStack(t, func(t *testing.T, stack brokertest.Stack) {
		ctx := testContext(t)
		query := stack.Query
		if strings.Contains(query, "use_queue_manager=true") {
			// The queue manager's names carry the host and the process:
			// the same on both sides.
			query += "&hostname=vm&processname=svc"
		}
		topic := uniqueName("declared")
		withQuery := func(v *brokertest.RabbitVHost) string {
			if query == "" {
				return v.URL
			}
			return v.URL + "?" + query
		}

		python := stack.NewVHost(t)
		peer := StartStackPeer(t, stack, withQuery(python))
		for _, step := range []struct {
			op     string
			fields map[string]any
		}{
			{"rpc_server", map[string]any{"name": "server", "topic": topic, "server": "s1"}},
			{"listener", map[string]any{"name": "audit", "topics": []string{"notifications"}, "pool": "audit"}},
			{"call", map[string]any{"topic": topic, "method": "whoami", "args": map[string]any{}}},
			{"notify", map[string]any{"driver": "messagingv2", "topics": []string{"notifications"}, "publisher_id": "svc.vm",
				"priority": "info", "event_type": "declared", "payload": map[string]any{}}},
		} {
			if err := peer.Do(ctx, step.op, step.fields, nil); err != nil {
				t.Fatalf("python %s: %v", step.op, err)
			}
		}

		golang := stack.NewVHost(t)
		goDeclare(ctx, t, withQuery(golang), topic)

		for _, kind := range []struct {
			name string
			list func(*brokertest.RabbitVHost) map[string]map[string]any
		}{
			{"queue", func(v *brokertest.RabbitVHost) map[string]map[string]any { return v.Queues(t) }},
			{"exchange", func(v *brokertest.RabbitVHost) map[string]map[string]any { return v.Exchanges(t) }},
		} {
			want, got := declarations(kind.list(python)), declarations(kind.list(golang))
			t.Logf("%s %ss: oslo.messaging %v; Switchyard %v", stack.Name, kind.name, want, got)
			for _, name := range slices.Sorted(maps.Keys(want)) {
				if got[name] != want[name] {
					t.Errorf("%s %s: Switchyard declares %q, oslo.messaging %q", kind.name, name, got[name], want[name])
				}
			}
			for _, name := range slices.Sorted(maps.Keys(got)) {
				if _, ok := want[name]; !ok {
					t.Errorf("%s %s: Switchyard declares it (%s), oslo.messaging does not", kind.name, name, got[name])
				}
			}
		}
		if stack.Query != "" {
			for name, q := range golang.Queues(t) {
				if q["durable"] != true && q["exclusive"] != true {
					t.Errorf("queue %s is non-durable and non-exclusive", name)
				}
			}
		}
	})
}

// goDeclare runs what the Python peer ran, in Go: a server, a pool
// listener, a call and a notification.
func goDeclare(ctx context.Context, t *testing.T, url, topic string) {
	t.Helper()
	tr, err := transport.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	startGoServer(t, tr, topic, "s1", newEventLog())
	listener, err := notify.NewListener(tr, []transport.Target{{Topic: "notifications"}},
		[]notify.Endpoint{{Handle: func(context.Context, *notify.Notification) error { return nil }}}, notify.WithPool("audit"))
	if err != nil {
		t.Fatal(err)
	}
	if err := listener.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = listener.Stop(stopCtx)
	})
	client, err := rpc.NewClient(tr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	var who string
	if err := client.Call(ctx, transport.Target{Topic: topic}, "whoami", nil, &who); err != nil {
		t.Fatal(err)
	}
	notifier, err := notify.NewNotifier(tr, "svc.vm", notify.WithTopics("notifications"))
	if err != nil {
		t.Fatal(err)
	}
	if err := notifier.Info(ctx, "declared", map[string]any{}); err != nil {
		t.Fatal(err)
	}
}

// countedName is a queue manager's name, whose count depends on what else
// its run of the service named: the Python peer, a child of the test, is
// of the test's run.
var countedName = regexp.MustCompile(`^(reply_vm:svc:)[0-9]+$`)

// randomReply is a random reply or fanout queue name, without the queue
// manager.
var randomReply = regexp.MustCompile(`^(reply_|.+_fanout_)[0-9a-f]{32}$`)

// declarations reads a management API listing as what a declaration sets:
// kind (exchanges), flags and arguments, by name; random and counted
// parts of names read as "<n>".
func declarations(entities map[string]map[string]any) map[string]string {
	out := make(map[string]string, len(entities))
	for name, e := range entities {
		name = countedName.ReplaceAllString(name, "${1}<n>")
		name = randomReply.ReplaceAllString(name, "${1}<n>")
		out[name] = fmt.Sprintf("type=%v durable=%v auto_delete=%v exclusive=%v arguments=%v",
			e["type"], e["durable"], e["auto_delete"], e["exclusive"], e["arguments"])
	}
	return out
}
