package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/switchyard-mq/switchyard/internal/brokertest"
	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

// TestMixedPool: a Python server and a Go server on the same topic share
// the casts sent to it, whoever sends them: each gets some, together they
// get all, and none is handled twice.
func TestMixedPool(t *testing.T) {
	t.Parallel()
	forEachStack(t, func(t *testing.T, stack brokertest.Stack) {
		e := newEnv(t, stack)
		const casts = 40
		senders := []struct {
			name string
			cast func(ctx context.Context, t *testing.T, topic, token string)
		}{
			{"go_client", func(ctx context.Context, t *testing.T, topic, token string) {
				client, err := rpc.NewClient(e.tr)
				if err != nil {
					t.Fatal(err)
				}
				defer client.Close()
				if err := client.Cast(ctx, transport.Target{Topic: topic}, "record", map[string]any{"token": token}); err != nil {
					t.Fatal(err)
				}
			}},
			{"python_client", func(ctx context.Context, t *testing.T, topic, token string) {
				if err := e.peer.Do(ctx, "cast", map[string]any{"topic": topic, "method": "record", "args": map[string]any{"token": token}}, nil); err != nil {
					t.Fatal(err)
				}
			}},
		}
		for _, sender := range senders {
			t.Run(sender.name, func(t *testing.T) {
				ctx := testContext(t)
				topic := uniqueName("mixed")
				goEvents := newEventLog()
				startGoServer(t, e.tr, topic, "go", goEvents)
				e.startPyServer(t, topic, topic, "py")
				// A Python server starts consuming in its poller thread after
				// start() returns; a call it answers shows it consumes all its
				// queues, so the casts below are shared from the first.
				if out := e.call(ctx, t, topic, "whoami", nil, map[string]any{"server": "py"}).mustSucceed(t); string(out.Result) != `"py"` {
					t.Fatalf("whoami = %s", out.Result)
				}

				want := map[string]bool{}
				for i := range casts {
					token := fmt.Sprintf("%s-%d", topic, i)
					want[token] = true
					sender.cast(ctx, t, topic, token)
				}
				byServer := map[string]int{}
				seen := map[string]string{}
				for {
					goGot, goChanged := goEvents.getChanged("record")
					pyGot, pyChanged := e.peer.EventsChanged(topic)
					if len(goGot)+len(pyGot) < casts {
						select {
						case <-goChanged:
						case <-pyChanged:
						case <-ctx.Done():
							t.Fatalf("the servers handled %d Go + %d Python of %d casts", len(goGot), len(pyGot), casts)
						}
						continue
					}
					var all []recorded
					for _, ev := range goGot {
						all = append(all, ev.(recorded))
					}
					for _, raw := range pyGot {
						var r recorded
						if err := json.Unmarshal(raw, &r); err != nil {
							t.Fatal(err)
						}
						all = append(all, r)
					}
					for _, r := range all {
						if prev, dup := seen[r.Token]; dup {
							t.Fatalf("cast %s handled twice: by %s and %s", r.Token, prev, r.Server)
						}
						if !want[r.Token] {
							t.Fatalf("unexpected cast %+v", r)
						}
						seen[r.Token] = r.Server
						byServer[r.Server]++
					}
					break
				}
				if len(seen) != casts || byServer["go"] == 0 || byServer["py"] == 0 {
					t.Fatalf("the casts were shared %v; want all %d, some to each", byServer, casts)
				}
				t.Logf("%d casts shared: %v", casts, byServer)
			})
		}
	})
}

// startPyServer starts a Python RPC server reporting to stream, stopped
// when the test ends.
func (e *env) startPyServer(t testing.TB, stream, topic, server string) {
	t.Helper()
	name := uniqueName(server)
	if err := e.peer.Do(testContext(t), "rpc_server", map[string]any{"name": name, "stream": stream, "topic": topic, "server": server}, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
		defer cancel()
		if err := e.peer.Do(ctx, "stop", map[string]any{"name": name}, nil); err != nil {
			t.Errorf("stop Python server: %v", err)
		}
	})
}
