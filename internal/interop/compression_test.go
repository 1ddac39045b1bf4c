package interop

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/switchyard-mq/switchyard/internal/brokertest"
	"github.com/switchyard-mq/switchyard/notify"
	"github.com/switchyard-mq/switchyard/transport"
)

// TestCompressingPythonPeer: a Python peer configured with
// kombu_compression = gzip (a zlib stream with the compression header)
// calls a Go server, gets Go's uncompressed reply, and notifies a Go
// listener: Switchyard reads compressed bodies, and every oslo.messaging
// peer reads uncompressed ones.
func TestCompressingPythonPeer(t *testing.T) {
	t.Parallel()
	forEachStack(t, func(t *testing.T, stack brokertest.Stack) {
		e := newEnv(t, stack)
		url := withQuery(e.url, "kombu_compression=gzip")
		compressing := &env{stack: e.stack, vhost: e.vhost, url: url, tr: e.tr, peer: StartStackPeer(t, e.stack, url), logs: e.logs}
		topic := uniqueName("zlib")
		startGoServer(t, e.tr, topic, "s1", newEventLog())

		t.Run("call", func(t *testing.T) {
			ctx := testContext(t)
			value := json.RawMessage(`{"text": "` + uniqueName("compressed") + `", "n": [1, 2.5, null]}`)
			out := compressing.call(ctx, t, topic, "echo", map[string]any{"value": value},
				map[string]any{"expect": value}).mustSucceed(t)
			if out.Same == nil || !*out.Same {
				t.Fatalf("Python sent %s compressed and got back %s", value, out.Result)
			}
		})

		t.Run("notification", func(t *testing.T) {
			ctx := testContext(t)
			ntopic := uniqueName("zlib_notif")
			got := make(chan *notify.Notification, 1)
			l, err := notify.NewListener(e.tr, []transport.Target{{Topic: ntopic}}, []notify.Endpoint{{
				Handle: func(_ context.Context, n *notify.Notification) error {
					got <- n
					return nil
				},
			}})
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Start(ctx); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = l.Stop(context.Background()) })
			if err := compressing.peer.Do(ctx, "notify", map[string]any{
				"driver": string(notify.MessagingV2), "topics": []string{ntopic}, "publisher_id": "compute.host1",
				"priority": "info", "event_type": "compute.instance.zlib", "payload": map[string]any{"id": 7},
				"ctxt": notificationContext(),
			}, nil); err != nil {
				t.Fatal(err)
			}
			select {
			case n := <-got:
				if n.EventType != "compute.instance.zlib" || !sameJSON(t, json.RawMessage(`{"id": 7}`), n.Payload) {
					t.Errorf("got %s %s", n.EventType, n.Payload)
				}
			case <-ctx.Done():
				t.Fatal("the compressed notification never reached the Go listener")
			}
		})
	})
}
