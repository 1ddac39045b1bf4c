package interop

import (
	"errors"
	"log/slog"
	"testing"

	"github.com/switchyard-mq/switchyard/internal/brokertest"
	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

// TestTopologyOptionsInURL: with amqp_durable_queues=true in the transport
// URL that both sides read, Go and Python declare the control exchange and
// the topic queues alike (durable), so each can start beside the other and
// they call each other both ways.
func TestTopologyOptionsInURL(t *testing.T) {
	t.Parallel()
	forEachStack(t, func(t *testing.T, stack brokertest.Stack) {
		e := newEnvQuery(t, stack, "amqp_durable_queues=true")
		ctx := testContext(t)

		topic := uniqueName("durable")
		e.startPyServer(t, topic, topic, "py")
		startGoServer(t, e.tr, topic, "go", newEventLog()) // declares after Python: a flag mismatch would fail here

		// The switchyard broker has no management API to list them: there
		// the refused non-durable declaration below shows the same.
		if !stack.Broker.Embedded {
			for _, name := range []string{"openstack"} {
				if ex := e.vhost.Exchange(t, name); ex == nil || ex["durable"] != true {
					t.Fatalf("exchange %s: %v, want durable", name, ex)
				}
			}
			for _, name := range []string{topic, topic + ".py", topic + ".go"} {
				if q := e.vhost.Queue(t, name); q == nil || q["durable"] != true {
					t.Fatalf("queue %s: %v, want durable", name, q)
				}
			}
		}

		client, err := rpc.NewClient(e.tr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = client.Close() })
		var who string
		if err := client.Prepare(rpc.WithServer("py")).Call(ctx, transport.Target{Topic: topic}, "whoami", nil, &who); err != nil || who != "py" {
			t.Fatalf("Go → Python: %q, %v", who, err)
		}
		if out := e.call(ctx, t, topic, "whoami", nil, map[string]any{"server": "go"}).mustSucceed(t); string(out.Result) != `"go"` {
			t.Fatalf("Python → Go: %s", out.Result)
		}

		// A Go server whose URL lacks the options that make the exchange
		// durable (amqp_durable_queues; on the modern stack
		// rabbit_quorum_queue and rabbit_transient_quorum_queue do too, as
		// in oslo.messaging 18) declares it non-durable: the broker
		// refuses (406), and Start says so.
		plain, err := transport.Open(ctx, e.vhost.URL, transport.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = plain.Close() })
		srv, err := rpc.NewServer(plain, transport.Target{Topic: topic, Server: "mismatched"}, []rpc.Endpoint{{Receiver: &service{}}})
		if err != nil {
			t.Fatal(err)
		}
		err = srv.Start(ctx)
		if !errors.Is(err, transport.ErrPrecondition) {
			_ = srv.Stop(ctx)
			t.Fatalf("Start with mismatched flags: %v, want transport.ErrPrecondition", err)
		}
		t.Logf("mismatched flags: %v", err)
		if out := e.call(ctx, t, topic, "whoami", nil, map[string]any{"server": "go"}).mustSucceed(t); string(out.Result) != `"go"` {
			t.Fatalf("after the refused start, Python → Go: %s", out.Result)
		}
	})
}
