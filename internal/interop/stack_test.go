package interop

import (
	"strings"
	"testing"

	"github.com/switchyard-mq/switchyard/internal/brokertest"
)

// TestSidStackPythonCall proves the plumbing to today's stack (.ci/sid-stack):
// two oslo.messaging 18 peers, run by the Debian sid chroot's python3, meet
// on RabbitMQ 4.3 (which refuses non-durable non-exclusive queues) in a
// virtual host of their own, with the stack's options, and one calls the
// other's server. The queues they declared are what those options ask for.
func TestSidStackPythonCall(t *testing.T) {
	stack := brokertest.SidStack()
	vhost := stack.NewVHost(t)
	if v := vhost.Version(t); !strings.HasPrefix(v, "4.3.") {
		t.Errorf("the broker is RabbitMQ %s, want 4.3", v)
	}
	url := stack.URL(vhost)
	server := StartStackPeer(t, stack, url)
	client := StartStackPeer(t, stack, url)
	ctx := testContext(t)

	var versions map[string]string
	if err := server.Do(ctx, "versions", nil, &versions); err != nil {
		t.Fatal(err)
	}
	if v := versions["oslo.messaging"]; !strings.HasPrefix(v, "18.") {
		t.Errorf("the peer runs oslo.messaging %s (%v), want 18", v, versions)
	}

	topic := uniqueName("sid_smoke")
	if err := server.Do(ctx, "rpc_server", map[string]any{"name": "server", "topic": topic, "server": "py18"}, nil); err != nil {
		t.Fatal(err)
	}
	var got pyCall
	if err := client.Do(ctx, "call", map[string]any{"topic": topic, "method": "whoami", "args": map[string]any{}}, &got); err != nil {
		t.Fatal(err)
	}
	got.mustSucceed(t)
	if string(got.Result) != `"py18"` {
		t.Errorf("whoami = %s, want \"py18\"", got.Result)
	}

	for _, tc := range []struct{ queue, queueType string }{
		{topic, "quorum"},
		{topic + ".py18", "quorum"},
		{topic + "_fanout", "stream"},
	} {
		q := vhost.Queue(t, tc.queue)
		if q == nil {
			t.Errorf("queue %s was not declared", tc.queue)
			continue
		}
		args, _ := q["arguments"].(map[string]any)
		if q["durable"] != true || args["x-queue-type"] != tc.queueType {
			t.Errorf("queue %s: durable %v, arguments %v; want a durable %s queue", tc.queue, q["durable"], args, tc.queueType)
		}
	}
	t.Logf("%s: %v on RabbitMQ %s", stack.Name, versions, vhost.Version(t))
}
