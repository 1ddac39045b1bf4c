package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/internal/brokertest"
	"github.com/switchyard-mq/switchyard/internal/oslo"
	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

// TestMalformedFromPython: a Python peer (kombu, which oslo.messaging's
// rabbit driver is built on) sends the Go server's topic what Switchyard
// cannot decode. The Go server logs a rejection, rejects the delivery to
// the broker (so a dead-letter policy keeps it: nothing is lost silently),
// counts it in Stats().Rejected, and keeps serving.
func TestMalformedFromPython(t *testing.T) {
	t.Parallel()
	forEachStack(t, func(t *testing.T, stack brokertest.Stack) {
		e := newEnv(t, stack)
		ctx := testContext(t)
		topic := uniqueName("malformed")

		// A policy, unlike queue arguments, adds a dead-letter exchange
		// without changing how the server declares its queue. switchyard
		// broker has no policies: there the broker drops what the server
		// rejects, and the test checks the rest.
		var deadLetters *transport.Consumer
		if !stack.Broker.Embedded {
			const dlx, dead = "interop.dlx", "interop.dead"
			e.vhost.SetPolicy(t, "interop-dead-letters", "^"+topic+"$", "queues", map[string]any{"dead-letter-exchange": dlx})
			if err := e.tr.DeclareExchange(ctx, transport.Exchange{Name: dlx, Kind: transport.Fanout}); err != nil {
				t.Fatal(err)
			}
			if _, err := e.tr.DeclareQueue(ctx, transport.Queue{Name: dead, Durable: true}); err != nil {
				t.Fatal(err)
			}
			if err := e.tr.Bind(ctx, transport.Binding{Exchange: dlx, Queue: dead}); err != nil {
				t.Fatal(err)
			}
			var err error
			if deadLetters, err = e.tr.Consume(ctx, dead, transport.ConsumeOptions{AutoAck: true}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = deadLetters.Close() })
		}
		srv := startGoServer(t, e.tr, topic, "go1", newEventLog())

		castJSON := func(extra string) string {
			return fmt.Sprintf(`{"method": "echo", "args": {"value": 1}, "_unique_id": "%s"%s}`, oslo.NewID(), extra)
		}
		envelope := func(version, msg string) string {
			quoted, _ := json.Marshal(msg)
			return fmt.Sprintf(`{"oslo.version": "%s", "oslo.message": %s}`, version, quoted)
		}
		cases := []struct {
			name, body, contentType string
		}{
			{"envelope_version_2_1", envelope("2.1", castJSON("")), "application/json"},
			{"envelope_version_2_1_call", envelope("2.1", castJSON(`, "_msg_id": "`+oslo.NewID()+`", "_reply_q": "reply_`+oslo.NewID()+`", "_timeout": null`)), "application/json"},
			{"envelope_version_3_0", envelope("3.0", castJSON("")), "application/json"},
			{"body_not_json", `this is {not JSON`, "application/json"},
			{"content_type_text_plain", envelope("2.0", castJSON("")), "text/plain"},
			{"content_type_with_charset", envelope("2.0", castJSON("")), "application/json; charset=utf-8"},
			{"oslo_message_not_a_string", `{"oslo.version": "2.0", "oslo.message": ` + castJSON("") + `}`, "application/json"},
			{"body_a_json_list", `[1, 2, 3]`, "application/json"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				ctx := testContext(t)
				before := srv.Stats().Rejected
				logged := e.logs.count("malformed request rejected", "routing_key="+topic)
				if err := e.peer.Do(ctx, "raw_publish", map[string]any{
					"exchange": "openstack", "routing_key": topic, "body": c.body, "content_type": c.contentType,
				}, nil); err != nil {
					t.Fatal(err)
				}
				if deadLetters != nil {
					d, err := deadLetters.Receive(ctx)
					if err != nil {
						t.Fatalf("the malformed message was not dead-lettered: %v", err)
					}
					if !bytes.Equal(d.Body, []byte(c.body)) {
						t.Fatalf("dead-lettered %q, sent %q", d.Body, c.body)
					}
					if reason := deathReason(d.Headers); reason != "rejected" {
						t.Errorf("x-death reason %q, want rejected (headers %v)", reason, d.Headers)
					}
				} else {
					waitRejected(ctx, t, srv, before+1)
				}
				// The server counts and logs before it rejects, so both are
				// visible once the dead letter has arrived.
				if got := srv.Stats().Rejected; got != before+1 {
					t.Errorf("Stats().Rejected = %d, want %d", got, before+1)
				}
				if got := e.logs.count("malformed request rejected", "routing_key="+topic); got != logged+1 {
					t.Errorf("%d rejection logs, want %d", got, logged+1)
				}
				out := e.call(ctx, t, topic, "echo", map[string]any{"value": "still serving"}, nil).mustSucceed(t)
				if string(out.Result) != `"still serving"` {
					t.Fatalf("after the malformed message, echo returned %s", out.Result)
				}
			})
		}
	})
}

// waitRejected polls until the server has rejected want requests in all.
func waitRejected(ctx context.Context, t *testing.T, srv *rpc.Server, want uint64) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for srv.Stats().Rejected < want {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("the malformed message was not rejected: Stats().Rejected = %d, want %d", srv.Stats().Rejected, want)
		}
	}
}

// deathReason returns the reason of the first x-death entry RabbitMQ
// adds to a dead-lettered message, or "".
func deathReason(h transport.Headers) string {
	deaths, _ := h["x-death"].([]any)
	if len(deaths) == 0 {
		return ""
	}
	death, _ := deaths[0].(transport.Headers)
	reason, _ := death["reason"].(string)
	return reason
}
