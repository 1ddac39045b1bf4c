package rabbit

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/internal/brokertest"
	"github.com/switchyard-mq/switchyard/internal/oslo"
	"github.com/switchyard-mq/switchyard/notify"
	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

// The broker's own view of the topology that a Go RPC server, a Go RPC
// client and a Go notifier create, read with rabbitmqctl, against what
// oslo.messaging's rabbit driver creates (reference/oslo-wire.md, sections
// 2 and 3), for oslo's defaults and each option that changes it.

// brokerExchange is a row of rabbitmqctl list_exchanges.
type brokerExchange struct {
	Name       string
	Type       string
	Durable    bool
	AutoDelete bool
	Args       map[string]string
}

// brokerQueue is a row of rabbitmqctl list_queues. Exclusive is "" for a
// quorum queue, which rabbitmqctl shows blank.
type brokerQueue struct {
	Name       string
	Durable    bool
	AutoDelete bool
	Exclusive  string
	Args       map[string]string
}

// brokerBinding is a row of rabbitmqctl list_bindings.
type brokerBinding struct {
	Source, Destination, Key string
}

// brokerTopology is what the broker holds in a virtual host, apart from
// the exchanges every virtual host has.
type brokerTopology struct {
	exchanges map[string]brokerExchange
	queues    map[string]brokerQueue
	bindings  []brokerBinding
}

// listTopology reads a virtual host's exchanges, queues and, if asked, its
// bindings with rabbitmqctl, as an operator would.
func listTopology(t *testing.T, vhost string, withBindings bool) brokerTopology {
	t.Helper()
	topo := brokerTopology{exchanges: map[string]brokerExchange{}, queues: map[string]brokerQueue{}}
	for _, row := range ctlRows(t, "list_exchanges", "-p", vhost, "name", "type", "durable", "auto_delete", "arguments") {
		ex := brokerExchange{
			Name: str(row["name"]), Type: str(row["type"]), Durable: row["durable"] == true,
			AutoDelete: row["auto_delete"] == true, Args: ctlArgs(t, row["arguments"]),
		}
		if ex.Name == "" || strings.HasPrefix(ex.Name, "amq.") {
			continue // every virtual host has these
		}
		topo.exchanges[ex.Name] = ex
	}
	for _, row := range ctlRows(t, "list_queues", "-p", vhost, "name", "durable", "auto_delete", "exclusive", "arguments") {
		q := brokerQueue{
			Name: str(row["name"]), Durable: row["durable"] == true, AutoDelete: row["auto_delete"] == true,
			Args: ctlArgs(t, row["arguments"]),
		}
		if exclusive, ok := row["exclusive"].(bool); ok {
			q.Exclusive = strconv.FormatBool(exclusive)
		}
		topo.queues[q.Name] = q
	}
	if !withBindings {
		return topo
	}
	for _, row := range ctlRows(t, "list_bindings", "-p", vhost, "source_name", "destination_name", "routing_key") {
		topo.bindings = append(topo.bindings, brokerBinding{str(row["source_name"]), str(row["destination_name"]), str(row["routing_key"])})
	}
	slices.SortFunc(topo.bindings, compareBindings)
	return topo
}

func compareBindings(a, b brokerBinding) int {
	return strings.Compare(a.Source+"\x00"+a.Destination+"\x00"+a.Key, b.Source+"\x00"+b.Destination+"\x00"+b.Key)
}

// ctlRows runs a rabbitmqctl listing with JSON output.
func ctlRows(t *testing.T, args ...string) []map[string]any {
	t.Helper()
	out := brokertest.RabbitCtl(t, append(args, "--formatter", "json", "--quiet")...)
	// Warnings, if any, come before the JSON document.
	start := strings.IndexByte(out, '[')
	if start < 0 {
		t.Fatalf("rabbitmqctl %s: no JSON in %q", strings.Join(args, " "), out)
	}
	var rows []map[string]any
	dec := json.NewDecoder(strings.NewReader(out[start:]))
	dec.UseNumber() // 1800000, not 1.8e+06
	if err := dec.Decode(&rows); err != nil {
		t.Fatalf("rabbitmqctl %s: %v in %q", strings.Join(args, " "), err, out)
	}
	return rows
}

// ctlArgs reads rabbitmqctl's JSON form of an arguments table, a list of
// [name, AMQP type, value] triples, as name → "type value".
func ctlArgs(t *testing.T, v any) map[string]string {
	t.Helper()
	args := map[string]string{}
	list, ok := v.([]any)
	if !ok {
		t.Fatalf("arguments %#v: want a list", v)
	}
	for _, entry := range list {
		triple, ok := entry.([]any)
		if !ok || len(triple) != 3 {
			t.Fatalf("arguments %v: want [name, type, value] triples", v)
		}
		args[str(triple[0])] = fmt.Sprintf("%v %v", triple[1], triple[2])
	}
	return args
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// topologyEcho is the RPC endpoint of the topology test.
type topologyEcho struct{}

func (topologyEcho) Echo(_ context.Context, args map[string]any) (map[string]any, error) {
	return args, nil
}

var (
	fanoutQueueName = regexp.MustCompile(`^(.+)_fanout_[0-9a-f]{32}$`)
	replyQueueName  = regexp.MustCompile(`^reply_[0-9a-f]{32}$`)
)

// TestOsloTopology: after a Go RPC server starts, a Go client makes its
// first call and a Go notifier sends one notification, the broker holds
// exactly the exchanges, queues (flags and arguments) and bindings that
// oslo.messaging's rabbit driver declares with the same options; a clean
// Stop deletes the server's fanout queue, and with it the fanout exchange.
func TestOsloTopology(t *testing.T) {
	type flags struct {
		durable bool              // exchange and shared queues
		shared  map[string]string // arguments of the topic and notification queues
		// transient are the arguments of the reply and fanout queues.
		transient map[string]string
		exclusive string // of the shared queues: quorum queues show it blank
	}
	expires1800 := map[string]string{"x-expires": "long 1800000"} // oslo's default TTL, 30 minutes
	for _, tc := range []struct {
		name  string
		query string
		want  flags
	}{
		{"defaults", "", flags{
			shared: map[string]string{}, transient: expires1800, exclusive: "false",
		}},
		{"amqp_durable_queues", "amqp_durable_queues=true", flags{
			durable: true, shared: map[string]string{}, transient: expires1800, exclusive: "false",
		}},
		{"rabbit_quorum_queue", "rabbit_quorum_queue=true", flags{
			durable: true, shared: map[string]string{"x-queue-type": "longstr quorum"}, transient: expires1800,
		}},
		{"rabbit_ha_queues", "rabbit_ha_queues=true", flags{
			shared:    map[string]string{"x-ha-policy": "longstr all"},
			transient: map[string]string{"x-expires": "long 1800000", "x-ha-policy": "longstr all"}, exclusive: "false",
		}},
		{"rabbit_transient_queues_ttl", "rabbit_transient_queues_ttl=60", flags{
			shared: map[string]string{}, transient: map[string]string{"x-expires": "long 60000"}, exclusive: "false",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newTester(t)
			tr := x.open(tc.query)
			topic, server := "topo_"+oslo.NewID()[:8], "host1"
			target := transport.Target{Topic: topic, Server: server}

			srv, err := rpc.NewServer(tr, target, []rpc.Endpoint{{Receiver: topologyEcho{}}})
			if err != nil {
				t.Fatal(err)
			}
			if err := srv.Start(x.ctx); err != nil {
				t.Fatal(err)
			}
			stopped := false
			t.Cleanup(func() {
				if !stopped {
					_ = srv.Stop(context.Background())
				}
			})
			client, err := rpc.NewClient(tr, rpc.WithTimeout(10*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = client.Close() })
			notifier, err := notify.NewNotifier(tr, "topology.test")
			if err != nil {
				t.Fatal(err)
			}

			var got map[string]any
			if err := client.Call(x.ctx, transport.Target{Topic: topic}, "echo", map[string]any{"x": 1}, &got); err != nil {
				t.Fatal(err)
			}
			if err := notifier.Info(x.ctx, "topology.test", map[string]any{"n": 1}); err != nil {
				t.Fatal(err)
			}

			topo := listTopology(t, x.vh.Name, true)
			t.Logf("rabbitmqctl shows:\n exchanges %+v\n queues %+v\n bindings %+v", topo.exchanges, topo.queues, topo.bindings)
			var fanoutQ, replyQ string
			for name := range topo.queues {
				if m := fanoutQueueName.FindStringSubmatch(name); m != nil && m[1] == topic {
					if fanoutQ != "" {
						t.Errorf("two fanout queues: %s and %s", fanoutQ, name)
					}
					fanoutQ = name
				}
				if replyQueueName.MatchString(name) {
					if replyQ != "" {
						t.Errorf("two reply queues: %s and %s", replyQ, name)
					}
					replyQ = name
				}
			}
			if fanoutQ == "" || replyQ == "" {
				t.Fatalf("fanout queue %q, reply queue %q: missing among %v", fanoutQ, replyQ, slices.Sorted(maps.Keys(topo.queues)))
			}

			wantExchanges := map[string]brokerExchange{
				"openstack":       {Name: "openstack", Type: "topic", Durable: tc.want.durable, Args: map[string]string{}},
				topic + "_fanout": {Name: topic + "_fanout", Type: "fanout", AutoDelete: true, Args: map[string]string{}},
			}
			shared := func(name string) brokerQueue {
				return brokerQueue{Name: name, Durable: tc.want.durable, Exclusive: tc.want.exclusive, Args: tc.want.shared}
			}
			transient := func(name string) brokerQueue {
				return brokerQueue{Name: name, Exclusive: "false", Args: tc.want.transient}
			}
			notifications := "notifications.info"
			wantQueues := map[string]brokerQueue{
				topic:                shared(topic),
				topic + "." + server: shared(topic + "." + server),
				notifications:        shared(notifications),
				fanoutQ:              transient(fanoutQ),
				replyQ:               transient(replyQ),
			}
			wantBindings := []brokerBinding{
				{"openstack", topic, topic},
				{"openstack", topic + "." + server, topic + "." + server},
				{"openstack", notifications, notifications},
				{topic + "_fanout", fanoutQ, topic},
			}
			for name := range wantQueues { // every queue's default-exchange binding
				wantBindings = append(wantBindings, brokerBinding{"", name, name})
			}
			slices.SortFunc(wantBindings, compareBindings)

			diff(t, "exchange", wantExchanges, topo.exchanges)
			diff(t, "queue", wantQueues, topo.queues)
			if !slices.Equal(wantBindings, topo.bindings) {
				t.Errorf("bindings:\n got  %v\n want %v", topo.bindings, wantBindings)
			}

			// A clean stop deletes the fanout queue; the fanout exchange,
			// auto-delete, goes with its last binding (in the same broker
			// transaction). The rest stays.
			if err := srv.Stop(x.ctx); err != nil {
				t.Fatal(err)
			}
			stopped = true
			delete(wantQueues, fanoutQ)
			delete(wantExchanges, topic+"_fanout")
			after := listTopology(t, x.vh.Name, false)
			diff(t, "queue after Stop", wantQueues, after.queues)
			diff(t, "exchange after Stop", wantExchanges, after.exchanges)
		})
	}
}

// TestOsloTopologyReplyQueueLazy: a client declares its reply queue on its
// first call, not before (oslo's client does the same), and a cast
// declares only the exchange it publishes to.
func TestOsloTopologyReplyQueueLazy(t *testing.T) {
	x := newTester(t)
	tr := x.open("")
	client, err := rpc.NewClient(tr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	if err := client.Cast(x.ctx, transport.Target{Topic: "lazy"}, "echo", nil); err != nil {
		t.Fatal(err)
	}
	topo := listTopology(t, x.vh.Name, true)
	if len(topo.queues) != 0 {
		t.Errorf("a client that never called declared queues: %v", topo.queues)
	}
	diff(t, "exchange", map[string]brokerExchange{
		"openstack": {Name: "openstack", Type: "topic", Args: map[string]string{}},
	}, topo.exchanges)
}

// diff reports the entities missing, unexpected or different.
func diff[E any](t *testing.T, kind string, want, got map[string]E) {
	t.Helper()
	for _, name := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("%s %s missing", kind, name)
		case fmt.Sprintf("%+v", g) != fmt.Sprintf("%+v", want[name]):
			t.Errorf("%s %s:\n got  %+v\n want %+v", kind, name, g, want[name])
		}
	}
	for _, name := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[name]; !ok {
			t.Errorf("unexpected %s %s: %+v", kind, name, got[name])
		}
	}
}

// TestOsloTopologyModern: with the options oslo.messaging's own guide
// recommends today (rabbit_quorum_queue, rabbit_transient_quorum_queue,
// rabbit_stream_fanout and use_queue_manager), the broker holds what
// oslo.messaging 18 declares with them: quorum topic, server and
// notification queues; one stream per topic for fanout, which every server
// reads and none deletes; a durable fanout exchange; and a quorum reply
// queue named after the host and the process, expiring when unused.
func TestOsloTopologyModern(t *testing.T) {
	x := newTester(t)
	const query = "rabbit_quorum_queue=true&rabbit_transient_quorum_queue=true&rabbit_stream_fanout=true" +
		"&use_queue_manager=true&hostname=vm&processname=go.test&rabbit_qos_prefetch_count=10"
	tr := x.open(query)
	topic := "modern_" + oslo.NewID()[:8]
	var servers []*rpc.Server
	for _, name := range []string{"s1", "s2"} {
		srv, err := rpc.NewServer(tr, transport.Target{Topic: topic, Server: name}, []rpc.Endpoint{{Receiver: topologyEcho{}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(x.ctx); err != nil {
			t.Fatal(err)
		}
		servers = append(servers, srv)
		t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	}
	client, err := rpc.NewClient(tr, rpc.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	var got map[string]any
	if err := client.Call(x.ctx, transport.Target{Topic: topic}, "echo", map[string]any{"x": 1}, &got); err != nil {
		t.Fatal(err)
	}
	notifier, err := notify.NewNotifier(tr, "topology.test")
	if err != nil {
		t.Fatal(err)
	}
	if err := notifier.Info(x.ctx, "topology.test", map[string]any{"n": 1}); err != nil {
		t.Fatal(err)
	}

	topo := listTopology(t, x.vh.Name, false)
	t.Logf("rabbitmqctl shows:\n exchanges %+v\n queues %+v", topo.exchanges, topo.queues)
	replyQ := ""
	for name := range topo.queues {
		if strings.HasPrefix(name, "reply_vm:go.test:") {
			replyQ = name
		}
	}
	if _, err := strconv.Atoi(strings.TrimPrefix(replyQ, "reply_vm:go.test:")); err != nil {
		t.Fatalf("no reply queue named reply_vm:go.test:<n> among %v", slices.Sorted(maps.Keys(topo.queues)))
	}
	quorum := func(name string) brokerQueue {
		return brokerQueue{Name: name, Durable: true, Args: map[string]string{"x-queue-type": "longstr quorum"}}
	}
	wantQueues := map[string]brokerQueue{
		topic:                quorum(topic),
		topic + ".s1":        quorum(topic + ".s1"),
		topic + ".s2":        quorum(topic + ".s2"),
		"notifications.info": quorum("notifications.info"),
		topic + "_fanout": {Name: topic + "_fanout", Durable: true,
			Args: map[string]string{"x-queue-type": "longstr stream", "x-max-age": "longstr 1800s"}},
		replyQ: {Name: replyQ, Durable: true,
			Args: map[string]string{"x-queue-type": "longstr quorum", "x-expires": "long 1800000"}},
	}
	wantExchanges := map[string]brokerExchange{
		"openstack":       {Name: "openstack", Type: "topic", Durable: true, Args: map[string]string{}},
		topic + "_fanout": {Name: topic + "_fanout", Type: "fanout", Durable: true, AutoDelete: true, Args: map[string]string{}},
	}
	diff(t, "queue", wantQueues, topo.queues)
	diff(t, "exchange", wantExchanges, topo.exchanges)

	// The stream is the topic's, not a server's: it stays when they stop.
	for _, srv := range servers {
		if err := srv.Stop(x.ctx); err != nil {
			t.Fatal(err)
		}
	}
	diff(t, "queue after Stop", wantQueues, listTopology(t, x.vh.Name, false).queues)
}
