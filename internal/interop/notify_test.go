package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/internal/brokertest"
	"github.com/switchyard-mq/switchyard/internal/messaging"
	"github.com/switchyard-mq/switchyard/notify"
	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

var (
	// dashedUUID4 is oslo's message_id: str(uuid.uuid4()).
	dashedUUID4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	// uuid4Hex is oslo's _unique_id: uuid.uuid4().hex.
	uuid4Hex = regexp.MustCompile(`^[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}$`)
	// naiveUTC is str() of a naive UTC datetime: the fraction only when
	// the microseconds are not zero.
	naiveUTC = regexp.MustCompile(`^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{6})?$`)
)

// notificationContext is a request context with keys oslo's notifier sends
// and keys it drops (auth_token, custom ones).
func notificationContext() map[string]any {
	return map[string]any{
		"request_id": "req-0e5d2f4a-7c1b-4f0e-9d3a-2b1c0d9e8f7a", "user_id": "u-1", "project_id": "p-1",
		"roles": []any{"reader", "member"}, "is_admin": true, "user": "alice",
		"auth_token": "secret-token", "custom_key": "dropped",
	}
}

// allowedNotificationContext is what of notificationContext travels.
func allowedNotificationContext() map[string]any {
	rc := notificationContext()
	delete(rc, "auth_token")
	delete(rc, "custom_key")
	return rc
}

// notifiedContext is what of notificationContext a Python notifier of
// oslo.messaging version puts on the wire, passed as a plain dict
// (requestContext false) or, as a service passes it, as an oslo.context
// RequestContext (peer.py's request_context). oslo.messaging 14 cuts
// either to an allow-list of keys, and sends a RequestContext so cut as
// its to_dict(); oslo.messaging 18 sends a RequestContext's
// redacted_copy().to_dict(), which comes to the same, and no context at
// all for a plain dict.
func notifiedContext(t testing.TB, version string, requestContext bool) map[string]any {
	t.Helper()
	sent := notificationContext()
	if requestContext {
		// RequestContext.to_dict(): every field, the user as "user" (the
		// dict's "user" wins over its "user_id" in from_dict), the auth
		// token cleared.
		return map[string]any{
			"request_id": sent["request_id"], "project_id": sent["project_id"], "project": sent["project_id"],
			"user": sent["user"], "roles": sent["roles"], "is_admin": sent["is_admin"], "is_admin_project": true,
			"user_identity": fmt.Sprintf("%s %s - - -", sent["user"], sent["project_id"]),
			"auth_token":    nil, "domain": nil, "global_request_id": nil, "project_domain": nil, "resource_uuid": nil,
			"system_scope": nil, "user_domain": nil, "read_only": false, "show_deleted": false,
		}
	}
	switch major, _, _ := strings.Cut(version, "."); major {
	case "14":
		return allowedNotificationContext()
	case "18":
		return nil // oslo.messaging 18's _sanitize_context: a dict is sent as {}
	default:
		t.Fatalf("no notification context known for oslo.messaging %s", version)
		return nil
	}
}

// checkTimestamp checks a notification timestamp's form and that it is
// about now.
func checkTimestamp(t testing.TB, ts string) {
	t.Helper()
	if !naiveUTC.MatchString(ts) {
		t.Errorf("timestamp %q is not oslo's naive UTC form", ts)
		return
	}
	layout := "2006-01-02 15:04:05"
	if strings.Contains(ts, ".") {
		layout += ".000000"
	}
	at, err := time.Parse(layout, ts)
	if err != nil {
		t.Errorf("timestamp %q: %v", ts, err)
		return
	}
	if d := time.Since(at); d < -time.Minute || d > time.Minute {
		t.Errorf("timestamp %q is %v from now (not UTC?)", ts, d)
	}
}

// rawCapture binds a queue of its own to every priority of topic on the
// control exchange, to read notifications as they are on the wire.
func rawCapture(t testing.TB, tr *transport.Transport, topic string) *transport.Consumer {
	t.Helper()
	ctx := testContext(t)
	topo, err := messaging.NewTopology(tr)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.DeclareExchange(ctx, topo.Exchange(topo.ControlExchange)); err != nil {
		t.Fatal(err)
	}
	// Exclusive: RabbitMQ 4.3 refuses a transient queue that is not.
	q, err := tr.DeclareQueue(ctx, transport.Queue{Name: uniqueName("raw_" + topic), Exclusive: true, AutoDelete: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Bind(ctx, transport.Binding{Exchange: topo.ControlExchange, Queue: q, Key: topic + ".*"}); err != nil {
		t.Fatal(err)
	}
	c, err := tr.Consume(ctx, q, transport.ConsumeOptions{AutoAck: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// readRaw reads one notification off the wire and checks its layers: the
// bare message for driver messaging, the 2.0 envelope for messagingv2, and
// the keys oslo writes. It returns the message's keys.
func readRaw(ctx context.Context, t testing.TB, c *transport.Consumer, driver notify.Driver) map[string]json.RawMessage {
	t.Helper()
	d, err := c.Receive(ctx)
	if err != nil {
		t.Fatalf("raw notification: %v", err)
	}
	if d.ContentType != "application/json" || d.ContentEncoding != "utf-8" {
		t.Errorf("content type %q, encoding %q", d.ContentType, d.ContentEncoding)
	}
	var outer map[string]json.RawMessage
	if err := json.Unmarshal(d.Body, &outer); err != nil {
		t.Fatalf("raw notification %s: %v", d.Body, err)
	}
	msg := outer
	if driver == notify.MessagingV2 {
		var inner string
		if len(outer) != 2 || string(outer["oslo.version"]) != `"2.0"` || json.Unmarshal(outer["oslo.message"], &inner) != nil {
			t.Fatalf("a messagingv2 body is not the 2.0 envelope: %s", d.Body)
		}
		msg = nil
		if err := json.Unmarshal([]byte(inner), &msg); err != nil {
			t.Fatalf("oslo.message %q: %v", inner, err)
		}
	} else if _, enveloped := outer["oslo.message"]; enveloped {
		t.Fatalf("a messaging (v1) body is enveloped: %s", d.Body)
	}
	keys := []string{"message_id", "publisher_id", "event_type", "priority", "payload", "timestamp", "_unique_id"}
	for _, k := range keys {
		if _, ok := msg[k]; !ok {
			t.Fatalf("notification %s has no %s", d.Body, k)
		}
	}
	for k := range msg {
		if !slices.Contains(keys, k) && !strings.HasPrefix(k, "_context_") {
			t.Errorf("notification %s has the key %s, which oslo does not write", d.Body, k)
		}
	}
	var uniqueID string
	_ = json.Unmarshal(msg["_unique_id"], &uniqueID)
	if !uuid4Hex.MatchString(uniqueID) {
		t.Errorf("_unique_id %q is not a uuid4 hex", uniqueID)
	}
	if !strings.HasSuffix(d.RoutingKey, "."+strings.ToLower(strings.Trim(string(msg["priority"]), `"`))) {
		t.Errorf("routing key %s does not end with the priority %s", d.RoutingKey, msg["priority"])
	}
	return msg
}

// startPyListener starts a Python notification listener, stopped when the
// test ends.
func (e *env) startPyListener(t testing.TB, fields map[string]any) {
	t.Helper()
	if err := e.peer.Do(testContext(t), "listener", fields, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
		defer cancel()
		if err := e.peer.Do(ctx, "stop", map[string]any{"name": fields["name"]}, nil); err != nil {
			t.Errorf("stop Python listener: %v", err)
		}
	})
}

// pyNotification is what a Python listener reports.
type pyNotification struct {
	Priority    string                     `json:"priority"`
	Ctxt        map[string]json.RawMessage `json:"ctxt"`
	PublisherID string                     `json:"publisher_id"`
	EventType   string                     `json:"event_type"`
	Payload     json.RawMessage            `json:"payload"`
	Metadata    struct {
		MessageID string `json:"message_id"`
		Timestamp string `json:"timestamp"`
	} `json:"metadata"`
}

// TestNotifyGoToPython: a Go Notifier (drivers messaging and messagingv2)
// publishes at every priority to oslo.messaging listeners, with and
// without a pool, and to one with a NotificationFilter.
func TestNotifyGoToPython(t *testing.T) {
	t.Parallel()
	forEachStack(t, func(t *testing.T, stack brokertest.Stack) {
		e := newEnv(t, stack)
		rc := notificationContext()
		allowed, _ := json.Marshal(allowedNotificationContext())
		payload := json.RawMessage(`{"id": 9223372036854775807, "size": 2.0, "name": "vm-\u00e9", "tags": ["a", null]}`)

		for _, driver := range []notify.Driver{notify.Messaging, notify.MessagingV2} {
			for _, withPool := range []bool{false, true} {
				name := string(driver) + "/no_pool"
				if withPool {
					name = string(driver) + "/pool"
				}
				t.Run(name, func(t *testing.T) {
					ctx := testContext(t)
					topic := uniqueName("notif")
					stream := uniqueName("listener")
					pool := ""
					if withPool {
						pool = uniqueName("pool")
					}
					e.startPyListener(t, map[string]any{"name": stream, "topics": []string{topic}, "pool": pool})
					raw := rawCapture(t, e.tr, topic)
					n, err := notify.NewNotifier(e.tr, "compute.host1", notify.WithTopics(topic), notify.WithDriver(driver))
					if err != nil {
						t.Fatal(err)
					}
					nctx := rpc.WithRequestContext(ctx, rpc.RequestContext(rc))
					for _, p := range notify.Priorities() {
						if err := n.Notify(nctx, p, "compute.instance."+string(p), payload); err != nil {
							t.Fatal(err)
						}
					}
					wire := map[string]map[string]json.RawMessage{} // by message_id
					for range notify.Priorities() {
						msg := readRaw(ctx, t, raw, driver)
						var id string
						_ = json.Unmarshal(msg["message_id"], &id)
						wire[id] = msg
					}
					events, err := e.peer.WaitEvents(ctx, stream, len(notify.Priorities()))
					if err != nil {
						t.Fatal(err)
					}
					var priorities []string
					for _, ev := range events {
						var got pyNotification
						if err := json.Unmarshal(ev, &got); err != nil {
							t.Fatal(err)
						}
						priorities = append(priorities, got.Priority)
						if got.PublisherID != "compute.host1" || got.EventType != "compute.instance."+got.Priority {
							t.Errorf("publisher_id %q, event_type %q", got.PublisherID, got.EventType)
						}
						if !sameJSON(t, payload, got.Payload) {
							t.Errorf("payload %s, sent %s", got.Payload, payload)
						}
						// oslo's receiving side adds client_timeout (the
						// absent _timeout); it is not on the wire.
						if string(got.Ctxt["client_timeout"]) != "null" {
							t.Errorf("client_timeout %s, want null", got.Ctxt["client_timeout"])
						}
						delete(got.Ctxt, "client_timeout")
						ctxt, _ := json.Marshal(got.Ctxt)
						if !sameJSON(t, allowed, ctxt) {
							t.Errorf("Python's ctxt %s, want the allow-listed %s", ctxt, allowed)
						}
						if !dashedUUID4.MatchString(got.Metadata.MessageID) {
							t.Errorf("message_id %q is not a dashed uuid4", got.Metadata.MessageID)
						}
						checkTimestamp(t, got.Metadata.Timestamp)
						msg, ok := wire[got.Metadata.MessageID]
						if !ok {
							t.Fatalf("Python got message_id %s, which was not on the wire", got.Metadata.MessageID)
						}
						if want := `"` + strings.ToUpper(got.Priority) + `"`; string(msg["priority"]) != want {
							t.Errorf("wire priority %s, want %s", msg["priority"], want)
						}
						if string(msg["timestamp"]) != `"`+got.Metadata.Timestamp+`"` {
							t.Errorf("Python read timestamp %q, the wire has %s", got.Metadata.Timestamp, msg["timestamp"])
						}
					}
					slices.Sort(priorities)
					want := []string{"audit", "critical", "debug", "error", "info", "sample", "warn"}
					if !slices.Equal(priorities, want) {
						t.Fatalf("Python handled priorities %v, want %v", priorities, want)
					}
				})
			}
		}

		t.Run("filter", func(t *testing.T) {
			ctx := testContext(t)
			topic := uniqueName("notif")
			stream := uniqueName("listener")
			filter := map[string]any{"event_type": `^compute\.instance\.create\.`, "context": map[string]string{"user": "^alice$"}}
			e.startPyListener(t, map[string]any{"name": stream, "topics": []string{topic}, "pool": uniqueName("filtered"), "filter": filter})
			n, err := notify.NewNotifier(e.tr, "compute.host1", notify.WithTopics(topic))
			if err != nil {
				t.Fatal(err)
			}
			alice := rpc.WithRequestContext(ctx, rpc.RequestContext{"user": "alice"})
			bob := rpc.WithRequestContext(ctx, rpc.RequestContext{"user": "bob"})
			sends := []struct {
				ctx       context.Context
				eventType string
			}{
				{alice, "compute.instance.delete.end"}, // filtered out: event type
				{bob, "compute.instance.create.start"}, // filtered out: context
				{alice, "compute.instance.create.start"},
				{alice, "compute.instance.create.end"},
			}
			for i, s := range sends {
				if err := n.Info(s.ctx, s.eventType, map[string]int{"n": i}); err != nil {
					t.Fatal(err)
				}
			}
			events, err := e.peer.WaitEvents(ctx, stream, 2)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, ev := range events {
				var pn pyNotification
				_ = json.Unmarshal(ev, &pn)
				got = append(got, pn.EventType+" "+string(pn.Payload))
			}
			slices.Sort(got)
			want := []string{`compute.instance.create.end {"n": 3}`, `compute.instance.create.start {"n": 2}`}
			if !slices.Equal(got, want) {
				t.Fatalf("the filtered listener got %q, want %q", got, want)
			}
		})
	})
}

// TestNotifyPythonToGo: an oslo.messaging Notifier (drivers messaging and
// messagingv2) publishes at every priority to Go listeners: two pools
// (each gets every notification) and a listener without a pool.
func TestNotifyPythonToGo(t *testing.T) {
	t.Parallel()
	forEachStack(t, func(t *testing.T, stack brokertest.Stack) {
		e := newEnv(t, stack)
		payload := json.RawMessage(`{"id": 9223372036854775807, "size": 2.0, "name": "vm-\u00e9", "tags": ["a", null]}`)
		notified, _ := json.Marshal(notifiedContext(t, e.osloVersion(t), true))

		for _, driver := range []notify.Driver{notify.Messaging, notify.MessagingV2} {
			for _, pools := range [][]string{{"pool-a", "pool-b"}, {""}} {
				name := string(driver) + "/two_pools"
				if pools[0] == "" {
					name = string(driver) + "/no_pool"
				}
				t.Run(name, func(t *testing.T) {
					ctx := testContext(t)
					topic := uniqueName("notif")
					events := newEventLog()
					for _, pool := range pools {
						var opts []notify.ListenerOption
						if pool != "" {
							opts = append(opts, notify.WithPool(pool))
						}
						l, err := notify.NewListener(e.tr, []transport.Target{{Topic: topic}}, []notify.Endpoint{{
							Handle: func(_ context.Context, n *notify.Notification) error {
								events.add(pool, n)
								return nil
							},
						}}, opts...)
						if err != nil {
							t.Fatal(err)
						}
						if err := l.Start(ctx); err != nil {
							t.Fatal(err)
						}
						t.Cleanup(func() { _ = l.Stop(context.Background()) })
					}
					raw := rawCapture(t, e.tr, topic)
					for _, p := range notify.Priorities() {
						if err := e.peer.Do(ctx, "notify", map[string]any{
							"driver": string(driver), "topics": []string{topic}, "publisher_id": "compute.host1",
							"priority": string(p), "event_type": "compute.instance." + string(p), "payload": payload,
							"ctxt": notificationContext(), "request_context": true,
						}, nil); err != nil {
							t.Fatal(err)
						}
					}
					wire := map[string]map[string]json.RawMessage{}
					for range notify.Priorities() {
						msg := readRaw(ctx, t, raw, driver)
						var id string
						_ = json.Unmarshal(msg["message_id"], &id)
						wire[id] = msg
					}
					for _, pool := range pools {
						got, err := events.wait(ctx, pool, len(notify.Priorities()))
						if err != nil {
							t.Fatalf("pool %q: %v", pool, err)
						}
						var priorities []string
						for _, ev := range got {
							n := ev.(*notify.Notification)
							priorities = append(priorities, string(n.Priority))
							if n.PublisherID != "compute.host1" || n.EventType != "compute.instance."+string(n.Priority) {
								t.Errorf("publisher_id %q, event_type %q", n.PublisherID, n.EventType)
							}
							if !sameJSON(t, payload, n.Payload) {
								t.Errorf("payload %s, sent %s", n.Payload, payload)
							}
							ctxt, _ := json.Marshal(n.Context)
							if !sameJSON(t, notified, ctxt) {
								t.Errorf("context %s, want what oslo.messaging %s sends, %s", ctxt, e.osloVersion(t), notified)
							}
							msg, ok := wire[n.MessageID]
							if !ok {
								t.Fatalf("Go got message_id %q, which was not on the wire", n.MessageID)
							}
							if !dashedUUID4.MatchString(n.MessageID) {
								t.Errorf("message_id %q is not a dashed uuid4", n.MessageID)
							}
							if string(msg["timestamp"]) != `"`+n.Timestamp+`"` {
								t.Errorf("Go read timestamp %q, the wire has %s", n.Timestamp, msg["timestamp"])
							}
							checkTimestamp(t, n.Timestamp)
							if want := `"` + strings.ToUpper(string(n.Priority)) + `"`; string(msg["priority"]) != want {
								t.Errorf("wire priority %s, want %s", msg["priority"], want)
							}
						}
						slices.Sort(priorities)
						want := []string{"audit", "critical", "debug", "error", "info", "sample", "warn"}
						if !slices.Equal(priorities, want) {
							t.Fatalf("pool %q handled priorities %v, want %v", pool, priorities, want)
						}
					}
				})
			}
		}

		t.Run("context", func(t *testing.T) {
			// The request context as a dict and as a RequestContext:
			// what each oslo.messaging sends of it reaches the Go
			// listener as it is on the wire.
			for _, kind := range []struct {
				name           string
				requestContext bool
			}{{"dict", false}, {"request_context", true}} {
				t.Run(kind.name, func(t *testing.T) {
					ctx := testContext(t)
					topic := uniqueName("notif_ctxt")
					got := make(chan *notify.Notification, 1)
					l, err := notify.NewListener(e.tr, []transport.Target{{Topic: topic}}, []notify.Endpoint{{
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
					if err := e.peer.Do(ctx, "notify", map[string]any{
						"driver": string(notify.MessagingV2), "topics": []string{topic}, "publisher_id": "compute.host1",
						"priority": "info", "event_type": "compute.instance.context", "payload": map[string]any{},
						"ctxt": notificationContext(), "request_context": kind.requestContext,
					}, nil); err != nil {
						t.Fatal(err)
					}
					want, _ := json.Marshal(notifiedContext(t, e.osloVersion(t), kind.requestContext))
					select {
					case n := <-got:
						if ctxt, _ := json.Marshal(n.Context); !sameJSON(t, want, ctxt) {
							t.Errorf("context %s, want what oslo.messaging %s sends, %s", ctxt, e.osloVersion(t), want)
						}
					case <-ctx.Done():
						t.Fatal("the notification never reached the Go listener")
					}
				})
			}
		})
	})
}
