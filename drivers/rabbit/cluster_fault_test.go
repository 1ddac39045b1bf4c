package rabbit

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-mq/switchyard/internal/brokertest"
	"github.com/switchyard-mq/switchyard/internal/oslo"
	"github.com/switchyard-mq/switchyard/internal/rabbitnode"
	"github.com/switchyard-mq/switchyard/notify"
	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

// Faults on a real 3-node RabbitMQ cluster (issue 15): kill -9 of a node,
// of a quorum queue's leader, of the node holding every connection and the
// leader; a node frozen past the heartbeat timeout; a server's queue
// deleted, the virtual host deleted and created again; every connection
// closed. Each runs, on one cluster of the test's own (rabbitnode), in a
// virtual host of its own, through traffic: a stream of confirmed
// persistent messages with manual acks on a quorum queue, RPC calls and
// casts to two servers, fanout casts, and notifications to a pool.

const (
	// clusterHeartbeat is the heartbeat_timeout_threshold of the cluster
	// tests: amqp091-go takes a silent connection for dead after one and a
	// half of it.
	clusterHeartbeat = 4 * time.Second
	// clusterResumeBound is how soon after a fault publishing and
	// consuming must resume: a dead connection noticed (one and a half
	// heartbeat intervals), and a few seconds to reconnect and restore,
	// generous for a loaded 2-core CI machine.
	clusterResumeBound = 3*clusterHeartbeat/2 + 10*time.Second
	// clusterStreamLen is each fault's stream of confirmed messages.
	clusterStreamLen = 10000
	// clusterTestTimeout bounds each fault's subtest, in place of
	// testTimeout: a node killed with -9 boots again within it, which
	// took over 45 s on a loaded 2-core CI machine.
	clusterTestTimeout = 4 * time.Minute
	// clusterQuery is oslo.messaging's modern set of options (quorum
	// queues everywhere, a stream for fanout, the queue manager) with a
	// short heartbeat and quick reconnection.
	clusterQuery = "rabbit_quorum_queue=true&rabbit_transient_quorum_queue=true&rabbit_stream_fanout=true" +
		"&use_queue_manager=true&rabbit_qos_prefetch_count=10&heartbeat_timeout_threshold=4&" + fastRetry
)

// clusterService is one RPC server's endpoint: the shared faultService
// (echo, record) and fanned, which notes the fanout casts it got.
type clusterService struct {
	*faultService
	mu     sync.Mutex
	fanned map[string]bool
}

func (s *clusterService) Fanned(_ context.Context, args faultArgs) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fanned[args.Token] = true
	return nil
}

func (s *clusterService) gotFanout(prefix string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for token := range s.fanned {
		if strings.HasPrefix(token, prefix) {
			return true
		}
	}
	return false
}

// notes are the notifications of a fault test: sent (Notify returned nil)
// and received by the pool's listener, with how often.
type notes struct {
	mu     sync.Mutex
	sent   map[string]bool
	seen   map[string]int
	failed int
}

// clusterSetup is one fault's clients, on transports of their own: the
// stream's publisher on spub; the RPC client and the notifier on pub; the
// stream's consumer and the notification listener on con; the RPC servers
// s1 and s2 on srv1 and srv2. The stream's publisher has a transport of
// its own because a transport's publishes share a channel, and on
// RabbitMQ 3.10 a channel that routes a message to a queue on a frozen
// node stalls, confirms and all, until the node answers or its peers give
// it up (net_ticktime, 60 s by default): the RPC requests and the
// notifications go to queues on the frozen node in the freeze fault.
type clusterSetup struct {
	t    *testing.T
	x    *tester
	cl   *rabbitnode.Cluster
	vh   *brokertest.RabbitVHost
	pub  *transport.Transport
	spub *transport.Transport
	con  *transport.Transport
	srv1 *transport.Transport
	srv2 *transport.Transport

	svc      *faultService
	servers  [2]*clusterService
	client   *rpc.Client
	target   transport.Target
	s        *stream
	notifier *notify.Notifier
	notes    notes
	topicN   string
}

// urlFrom is the virtual host's URL with every node, node i first: the
// driver connects to the first host first.
func (cs *clusterSetup) urlFrom(i int) string {
	nodes := cs.cl.Nodes()
	hosts := make([]string, 0, len(nodes))
	for k := range nodes {
		hosts = append(hosts, "guest:guest@127.0.0.1:"+strconv.Itoa(nodes[(i+k)%len(nodes)].Port()))
	}
	return fmt.Sprintf("rabbit://%s/%s?%s", strings.Join(hosts, ","), url.PathEscape(cs.vh.Name), clusterQuery)
}

// nodeOf is the node that tr is connected to now, or nil.
func (cs *clusterSetup) nodeOf(tr *transport.Transport) *rabbitnode.Node {
	var ac *amqp.Connection
	if !tr.As(&ac) {
		return nil
	}
	addr, ok := ac.LocalAddr().(*net.TCPAddr)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(cs.x.ctx, 20*time.Second)
	defer cancel()
	conns, err := cs.cl.Connections(ctx, cs.vh.Name)
	if err != nil {
		cs.t.Logf("list connections: %v", err)
		return nil
	}
	for _, c := range conns {
		if c.PeerPort == addr.Port {
			return c.Node
		}
	}
	return nil
}

// clusterContext is a fault's subtest's context, bounded by
// clusterTestTimeout in place of setupTester's testTimeout.
func clusterContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), clusterTestTimeout)
	t.Cleanup(cancel)
	return ctx
}

// newClusterSetup opens the clients with their connections on node
// clients, and declares the stream's quorum queue with its leader on node
// leader (RabbitMQ 3.10 places a new quorum queue's leader on the node of
// the connection that declares it).
func newClusterSetup(t *testing.T, cl *rabbitnode.Cluster, stack brokertest.Stack, clients, leader int) *clusterSetup {
	vh := stack.NewVHost(t)
	x := setupTester(t, stack, vh)
	x.ctx = clusterContext(t)
	cs := &clusterSetup{t: t, x: x, cl: cl, vh: vh, svc: &faultService{seen: map[string]int{}}}
	cs.notes.sent, cs.notes.seen = map[string]bool{}, map[string]int{}
	at := cs.urlFrom(clients)
	cs.pub, cs.spub, cs.con, cs.srv1, cs.srv2 = x.openURL(at), x.openURL(at), x.openURL(at), x.openURL(at), x.openURL(at)

	// The stream's queue, its leader placed by a transport on that node.
	q := transport.Queue{Name: uniq("stream"), Durable: true}
	placer := x.openURL(cs.urlFrom(leader))
	x.queue(placer, q)
	if err := placer.Close(); err != nil {
		t.Fatal(err)
	}
	x.queue(cs.con, q) // recorded by the consumer's transport, declared again after a fault
	cs.s = &stream{x: x, tr: cs.spub, ctr: cs.con, q: q.Name, retry: true, ok: map[string]bool{}, after: map[string]bool{}, seen: map[string]int{}}

	// RPC: two servers on the topic, a client.
	cs.target = transport.Target{Topic: "cluster_" + oslo.NewID()[:8]}
	for i, tr := range []*transport.Transport{cs.srv1, cs.srv2} {
		cs.servers[i] = &clusterService{faultService: cs.svc, fanned: map[string]bool{}}
		srv, err := rpc.NewServer(tr, transport.Target{Topic: cs.target.Topic, Server: fmt.Sprintf("s%d", i+1)}, []rpc.Endpoint{{Receiver: cs.servers[i]}})
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(x.ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := srv.Stop(ctx); err != nil {
				t.Errorf("stop server s%d: %v", i+1, err)
			}
		})
	}
	var err error
	if cs.client, err = rpc.NewClient(cs.pub, rpc.WithTimeout(rpcCallTimeout)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.client.Close() })

	// Notifications to a pool.
	cs.topicN = "notes_" + oslo.NewID()[:8]
	if cs.notifier, err = notify.NewNotifier(cs.pub, "cluster-test", notify.WithTopics(cs.topicN)); err != nil {
		t.Fatal(err)
	}
	l, err := notify.NewListener(cs.con, []transport.Target{{Topic: cs.topicN}}, []notify.Endpoint{{
		Handle: func(_ context.Context, n *notify.Notification) error {
			var id string
			if err := json.Unmarshal(n.Payload, &id); err != nil {
				return err
			}
			cs.notes.mu.Lock()
			cs.notes.seen[id]++
			cs.notes.mu.Unlock()
			return nil
		},
	}}, notify.WithPool("cluster_pool"))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(x.ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := l.Stop(ctx); err != nil {
			t.Errorf("stop the listener: %v", err)
		}
	})

	nodes := cl.Nodes()
	for _, tr := range []*transport.Transport{cs.pub, cs.spub, cs.con} {
		if n := cs.nodeOf(tr); n != nodes[clients] {
			t.Fatalf("a client is connected to %v, want %s", n, nodes[clients].Name())
		}
	}
	ctx, cancel := context.WithTimeout(x.ctx, 20*time.Second)
	defer cancel()
	if n, err := cl.QueueLeader(ctx, vh.Name, q.Name); err != nil || n != nodes[leader] {
		t.Fatalf("the stream's leader is %v (%v), want %s", n, err, nodes[leader].Name())
	}
	return cs
}

// sendNotes sends notifications, 100 a second, until stop is closed.
func (cs *clusterSetup) sendNotes(stop <-chan struct{}) (done <-chan struct{}) {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			id := fmt.Sprintf("note-%d", i)
			ctx, cancel := context.WithTimeout(cs.x.ctx, 30*time.Second)
			err := cs.notifier.Info(ctx, "cluster.test", id)
			cancel()
			cs.notes.mu.Lock()
			if err == nil {
				cs.notes.sent[id] = true
			} else {
				cs.notes.failed++
			}
			cs.notes.mu.Unlock()
		}
	}()
	return ch
}

// checkNotes waits until every notification sent was received, and
// returns the figures.
func (cs *clusterSetup) checkNotes(within time.Duration) (sent, received, lost, dups int) {
	cs.t.Helper()
	count := func() {
		cs.notes.mu.Lock()
		defer cs.notes.mu.Unlock()
		sent, received, lost, dups = len(cs.notes.sent), len(cs.notes.seen), 0, 0
		for id := range cs.notes.sent {
			if cs.notes.seen[id] == 0 {
				lost++
			}
		}
		for _, k := range cs.notes.seen {
			dups += k - 1
		}
	}
	deadline := time.Now().Add(within)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for count(); lost > 0 && time.Now().Before(deadline); count() {
		<-tick.C
	}
	if lost > 0 {
		cs.t.Errorf("%d of %d notifications sent never received", lost, sent)
	}
	return sent, received, lost, dups
}

// checkFanout casts to every server (again every half second: a fanout
// cast sent before a server consumes again is lost to it, by design)
// until both servers got one.
func (cs *clusterSetup) checkFanout(within time.Duration) {
	cs.t.Helper()
	prefix := "fan-" + oslo.NewID()[:6] + "-"
	deadline := time.Now().Add(within)
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(cs.x.ctx, rpcCallTimeout)
		err := cs.client.Cast(ctx, transport.Target{Topic: cs.target.Topic, Fanout: true}, "fanned", faultArgs{Token: fmt.Sprint(prefix, i)})
		cancel()
		if err != nil {
			cs.t.Logf("fanout cast: %v", err)
		}
		wait := time.Now().Add(500 * time.Millisecond)
		tick := time.NewTicker(10 * time.Millisecond)
		for time.Now().Before(wait) {
			if cs.servers[0].gotFanout(prefix) && cs.servers[1].gotFanout(prefix) {
				tick.Stop()
				return
			}
			<-tick.C
		}
		tick.Stop()
		if time.Now().After(deadline) {
			cs.t.Fatalf("a fanout cast reached s1: %v, s2: %v, within %v", cs.servers[0].gotFanout(prefix), cs.servers[1].gotFanout(prefix), within)
		}
	}
}

// checkAlive checks that everything declared is back: calls succeed, a
// fanout cast reaches both servers, and a short stream on the stream's
// queue and notifications get through. The stream's consumer must be
// stopped.
func (cs *clusterSetup) checkAlive() {
	cs.t.Helper()
	// A call made before the servers' queues are back goes nowhere and
	// times out (after the virtual host came back, say): calls are tried
	// until 5 in a row succeed.
	deadline := time.Now().Add(30 * time.Second)
	for i, ok := 0, 0; ok < 5; i++ {
		ctx, cancel := context.WithTimeout(cs.x.ctx, rpcCallTimeout)
		args := faultArgs{Token: fmt.Sprintf("alive-%d", i)}
		var got faultArgs
		err := cs.client.Call(ctx, cs.target, "echo", args, &got)
		cancel()
		switch {
		case err == nil && got == args:
			ok++
		case err == nil:
			cs.t.Fatalf("call %d after the fault: got %+v", i, got)
		case time.Now().After(deadline):
			cs.t.Fatalf("call %d after the fault: %v; calls do not succeed again within 30 s", i, err)
		default:
			ok = 0
			cs.t.Logf("call %d after the fault: %v", i, err)
		}
	}
	cs.checkFanout(30 * time.Second)
	const n = 200
	s := &stream{x: cs.x, tr: cs.spub, ctr: cs.con, q: cs.s.q, retry: true, ok: map[string]bool{}, after: map[string]bool{}, seen: map[string]int{}}
	stop := s.consume(100, 0, nil)
	defer stop()
	s.publish(n, 4, 0, 0, nil)
	s.waitReceived(30 * time.Second)
	stop()
	s.check(n)
}

// clusterFault is one fault of TestClusterFaults.
type clusterFault struct {
	name string
	// clients and leader are the nodes of the clients' connections and of
	// the stream queue's leader.
	clients, leader int
	// inject causes the fault, once a fifth of the stream is confirmed,
	// and returns once it is over.
	inject func(t *testing.T, cs *clusterSetup)
	// after, if set, runs once the stream is over and checked.
	after func(t *testing.T, cs *clusterSetup)
	// castsLost: casts to server s1 may be lost, routed nowhere while its
	// queue is deleted (a cast is not mandatory, as in oslo.messaging).
	castsLost bool
}

// logDriver logs the driver's reconnections and what it could not
// restore.
func (cs *clusterSetup) logDriver() {
	n := 0
	for _, line := range strings.Split(cs.x.logs.String(), "\n") {
		if strings.Contains(line, "rabbit: reconnected") || strings.Contains(line, "could not") || strings.Contains(line, "level=ERROR") {
			if n++; n <= 12 {
				cs.t.Log(line)
			}
		}
	}
	if n > 12 {
		cs.t.Logf("... and %d more such lines", n-12)
	}
}

// progress says how far the stream got since the fault.
func (cs *clusterSetup) progress() string {
	s := cs.s
	at := s.faultAt.Load()
	since := func(v int64) string {
		if v == 0 {
			return "not yet"
		}
		return time.Duration(v - at).Round(100 * time.Millisecond).String()
	}
	return fmt.Sprintf("%d confirmed, %d received; a publish after the fault confirmed: %s, received: %s",
		s.confirmed.Load(), s.received.Load(), since(s.pubResumed.Load()), since(s.recvResumed.Load()))
}

// waitResumed waits until publishing and consuming resumed after the
// fault, within clusterResumeBound.
func (cs *clusterSetup) waitResumed(t *testing.T, what string) {
	t.Helper()
	deadline := time.Now().Add(clusterResumeBound)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for cs.s.resumed() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %s", what, clusterResumeBound, cs.progress())
		}
		<-tick.C
	}
}

// markFault notes that the fault has just taken effect: publishing and
// consuming resume is measured from here.
func (cs *clusterSetup) markFault() { cs.s.faultAt.Store(time.Now().UnixNano()) }

// killRestart kills node and starts it again.
func killRestart(t *testing.T, cs *clusterSetup, node *rabbitnode.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(cs.x.ctx, 45*time.Second)
	defer cancel()
	if err := node.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	cs.markFault()
	// Publishing and consuming resume while the node is down.
	cs.waitResumed(t, "publishing and consuming resumed with the node down")
	// The boot is the harness's, bounded by its own boot timeout: the
	// clients have already shown they go on without the node.
	if err := node.Restart(cs.x.ctx); err != nil {
		t.Fatal(err)
	}
}

// TestClusterFaults runs the faults of issue 15 on one 3-node RabbitMQ
// 3.10 cluster of the test's own, one after the other, each in a virtual
// host of its own.
func TestClusterFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and freezes RabbitMQ nodes")
	}
	start := time.Now()
	cl := rabbitnode.StartCluster(t, 3)
	t.Logf("3-node cluster up in %v", time.Since(start).Round(100*time.Millisecond))
	stack := brokertest.DebianStack()
	stack.Broker = cl.Broker()
	nodes := cl.Nodes()
	leaderCtx := func(t *testing.T, cs *clusterSetup) (*rabbitnode.Node, context.CancelFunc) {
		ctx, cancel := context.WithTimeout(cs.x.ctx, 20*time.Second)
		n, err := cl.QueueLeader(ctx, cs.vh.Name, cs.s.q)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		return n, cancel
	}
	var table []string
	for _, tc := range []clusterFault{
		{name: "kill -9 the publisher's node", clients: 1, leader: 2, inject: func(t *testing.T, cs *clusterSetup) {
			n := cs.nodeOf(cs.spub)
			if n == nil {
				t.Fatal("the publisher's node is unknown")
			}
			killRestart(t, cs, n)
		}},
		{name: "kill -9 the quorum leader", clients: 0, leader: 2, inject: func(t *testing.T, cs *clusterSetup) {
			n, cancel := leaderCtx(t, cs)
			defer cancel()
			killRestart(t, cs, n)
		}},
		{name: "kill -9 the node of publisher, consumer and leader", clients: 1, leader: 1, inject: func(t *testing.T, cs *clusterSetup) {
			n, cancel := leaderCtx(t, cs)
			defer cancel()
			if p, c := cs.nodeOf(cs.spub), cs.nodeOf(cs.con); p != n || c != n {
				t.Fatalf("publisher on %v, consumer on %v, leader on %v: want one node", p, c, n)
			}
			killRestart(t, cs, n)
		}},
		{name: "freeze the clients' node", clients: 1, leader: 2, inject: func(t *testing.T, cs *clusterSetup) {
			n := cs.nodeOf(cs.spub)
			if n == nil {
				t.Fatal("the publisher's node is unknown")
			}
			if err := n.Freeze(); err != nil {
				t.Fatal(err)
			}
			cs.markFault()
			thaw := func() {
				if n.Frozen() {
					if err := n.Thaw(); err != nil {
						t.Error(err)
					}
				}
			}
			t.Cleanup(thaw)
			// Publishing and consuming must resume while the node is frozen,
			// past the heartbeat timeout.
			frozen := time.Now()
			cs.waitResumed(t, "publishing and consuming resumed with a node frozen")
			// The node stays frozen past twice the heartbeat timeout.
			<-time.After(time.Until(frozen.Add(2 * clusterHeartbeat)))
			thaw()
		}},
		{name: "delete a server's queue", clients: 0, leader: 1, inject: func(t *testing.T, cs *clusterSetup) {
			ctx, cancel := context.WithTimeout(cs.x.ctx, 30*time.Second)
			defer cancel()
			if _, err := cl.Ctl(ctx, "delete_queue", "-p", cs.vh.Name, cs.target.Topic+".s1"); err != nil {
				t.Fatal(err)
			}
			cs.markFault()
		}, castsLost: true},
		{name: "close all connections", clients: 2, leader: 0, inject: func(t *testing.T, cs *clusterSetup) {
			ctx, cancel := context.WithTimeout(cs.x.ctx, 30*time.Second)
			defer cancel()
			if err := cl.CloseAllConnections(ctx, cs.vh.Name, "cluster fault test"); err != nil {
				t.Fatal(err)
			}
			cs.markFault()
		}},
		{name: "delete and create the vhost again", clients: 0, leader: 0, inject: func(t *testing.T, cs *clusterSetup) {}, after: func(t *testing.T, cs *clusterSetup) {
			ctx, cancel := context.WithTimeout(cs.x.ctx, 30*time.Second)
			defer cancel()
			if err := cl.DeleteVHost(ctx, cs.vh.Name); err != nil {
				t.Fatal(err)
			}
			poll(t, 10*time.Second, "the transports see the vhost gone", func() bool { return cs.pub.Healthy(ctx) != nil })
			if err := cl.AddVHost(ctx, cs.vh.Name); err != nil {
				t.Fatal(err)
			}
			begin := time.Now()
			cs.checkAlive()
			t.Logf("%s: everything back %v after the vhost came back", t.Name(), time.Since(begin).Round(100*time.Millisecond))
		}},
	} {
		ok := t.Run(tc.name, func(t *testing.T) {
			for _, n := range nodes {
				if !n.Running() {
					t.Fatalf("node %s is down at the start", n.Name())
				}
			}
			t.Cleanup(func() {
				// A node left down by a failure would spoil the next faults.
				ctx, cancel := context.WithTimeout(context.Background(), clusterTestTimeout)
				defer cancel()
				for _, n := range nodes {
					if !n.Running() {
						if err := n.Restart(ctx); err != nil {
							t.Errorf("restart %s: %v", n.Name(), err)
						}
					}
				}
			})
			cs := newClusterSetup(t, cl, stack, tc.clients, tc.leader)
			stopStream := cs.s.consume(100, 0, nil)
			defer stopStream()
			stopNotes := make(chan struct{})
			notesDone := cs.sendNotes(stopNotes)
			defer func() {
				select {
				case <-stopNotes:
				default:
					close(stopNotes)
				}
				<-notesDone
			}()
			rs := startRPCStreamN(t, cs.client, cs.target, cs.svc, 4, 1)
			stopped := false
			defer func() {
				if !stopped {
					close(rs.stopCh)
					<-rs.done
				}
			}()
			rs.waitOK(100, false, 30*time.Second)
			trigger := make(chan struct{})
			published := make(chan struct{})
			go func() {
				defer close(published)
				cs.s.publish(clusterStreamLen, 8, 1000, clusterStreamLen/5, trigger)
			}()
			wait(t, trigger, "a fifth of the stream confirmed")
			tc.inject(t, cs)
			cs.s.faultAt.CompareAndSwap(0, time.Now().UnixNano())
			rs.markFaultOver()
			cs.waitResumed(t, "publishing and consuming resumed")
			select {
			case <-published:
			case <-time.After(2 * time.Minute):
				t.Fatal("the stream's publishes did not end")
			}
			cs.s.waitReceived(60 * time.Second)
			stopStream()
			rs.waitOK(100, true, 60*time.Second)
			stopped = true
			rs.stop()
			rs.check()
			castsLost := 0
			if !tc.castsLost {
				rs.checkCasts(30 * time.Second)
			} else {
				for _, token := range rs.missingCasts(10 * time.Second) {
					// cast-CASTER-I-ID: odd I went to s1.
					f := strings.Split(token, "-")
					if i, err := strconv.Atoi(f[2]); err != nil || i%2 == 0 {
						t.Errorf("cast %s, not to s1, never reached a server", token)
					}
					castsLost++
				}
			}
			close(stopNotes)
			<-notesDone
			nSent, nReceived, nLost, nDups := cs.checkNotes(30 * time.Second)
			cs.s.check(clusterStreamLen)
			cs.checkAlive()
			cs.checkNoChannelLeak(t)

			s := cs.s
			s.mu.Lock()
			lost, dups := 0, 0
			for id := range s.ok {
				if s.seen[id] == 0 {
					lost++
				}
			}
			for _, k := range s.seen {
				dups += k - 1
			}
			confirmed, received, retriedDups, pubErrs := len(s.ok), len(s.seen), s.retriedDups, s.pubErrs
			s.mu.Unlock()
			if len(pubErrs) > 0 {
				t.Logf("publishes failed (and were published again) with, e.g.: %q", pubErrs)
			}
			resumed := s.resumed()
			if resumed > clusterResumeBound {
				t.Errorf("publishing and consuming resumed %v after the fault, past %v", resumed.Round(100*time.Millisecond), clusterResumeBound)
			}
			callsOK, callsFailed, callsHung, castsFailed := rs.figures()
			t.Logf("FIGURES %s: stream %d sent, %d confirmed (%d publishes failed and published again), %d received, %d lost, %d duplicates (%d flagged redelivered, %d copies published again by the application); resumed in %v; RPC calls %d ok / %d failed / %d hung, casts %d failed, %d lost; notifications %d sent, %d received, %d lost, %d duplicates",
				tc.name, clusterStreamLen, confirmed, s.pubFailed.Load(), received, lost, dups, dups-retriedDups, retriedDups, resumed.Round(100*time.Millisecond),
				callsOK, callsFailed, callsHung, castsFailed, castsLost, nSent, nReceived, nLost, nDups)
			table = append(table, fmt.Sprintf("| %s | %d / %d / %d | %d | %d | %d (%d flagged, %d republished by the test) | %v | %d / %d / %d | %d / %d | %d / %d / %d |",
				tc.name, clusterStreamLen, confirmed, received, s.pubFailed.Load(), lost, dups, dups-retriedDups, retriedDups, resumed.Round(100*time.Millisecond),
				callsOK, callsFailed, callsHung, castsFailed, castsLost, nSent, nLost, nDups))
			cs.logDriver()
			if tc.after != nil {
				tc.after(t, cs)
			}
		})
		if !ok {
			// A node left down or frozen spoils the next faults.
			for _, n := range nodes {
				if !n.Running() {
					t.Fatalf("node %s left down", n.Name())
				}
			}
		}
	}
	t.Logf("| fault | messages sent / confirmed / received | publishes failed, sent again | lost | duplicates | resumed in | RPC calls ok / failed / hung | casts failed / lost | notifications sent / lost / duplicates |\n|---|---|---|---|---|---|---|---|---|\n%s\nin %v", strings.Join(table, "\n"), time.Since(start).Round(time.Second))
}

// checkNoChannelLeak checks, once the traffic is over, that the virtual
// host's connections hold no more channels than the driver uses: at most
// one for each consumer (consumers share channels, up to 64 on one, but a
// consumer of a stream has its own), and at most three of its own per
// connection (topology, publishing, and confirmed publishing). A channel left open across the
// fault's reconnections, or a retired publishing channel never closed,
// would show here. Channels still closing are waited for, up to 20 s.
func (cs *clusterSetup) checkNoChannelLeak(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var channels, consumers, connections int
	count := func() bool {
		var err error
		if channels, err = cs.countRows(ctx, "list_channels"); err == nil {
			if consumers, err = cs.countRows(ctx, "list_consumers"); err == nil {
				connections, err = cs.countRows(ctx, "list_connections")
			}
		}
		if err != nil {
			t.Fatalf("counting channels: %v", err)
		}
		return channels <= consumers+3*connections
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(20 * time.Second)
	for !count() {
		if time.Now().After(deadline) {
			t.Errorf("%d channels in virtual host %s for %d consumers on %d connections: channels leak", channels, cs.vh.Name, consumers, connections)
			return
		}
		<-tick.C
	}
}

// countRows counts the rows rabbitmqctl's list command (list_channels,
// list_consumers, list_connections) shows for the virtual host.
func (cs *clusterSetup) countRows(ctx context.Context, list string) (int, error) {
	args := []string{list, "--quiet", "--no-table-headers"}
	if list == "list_connections" { // no -p: filtered by its vhost column
		args = append(args, "vhost")
	} else {
		args = append(args, "-p", cs.vh.Name)
	}
	out, err := cs.cl.Ctl(ctx, args...)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		switch {
		case strings.TrimSpace(line) == "":
		case list == "list_connections" && strings.TrimSpace(line) != cs.vh.Name:
		default:
			n++
		}
	}
	return n, nil
}
