package rabbitnode

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-mq/switchyard/transport"
)

// testTimeout bounds each test's waits.
const testTimeout = 3 * time.Minute

func TestPidNode(t *testing.T) {
	for _, tc := range []struct{ pid, want string }{
		{"<sy1a2b3c4d-1@localhost.1796614288.677.0>", "sy1a2b3c4d-1@localhost"},
		{"<rabbit@host.example.com.1.2.3>", "rabbit@host.example.com"},
	} {
		if got := pidNode(tc.pid); got != tc.want {
			t.Errorf("pidNode(%q) = %q, want %q", tc.pid, got, tc.want)
		}
	}
}

func TestClientName(t *testing.T) {
	for _, tc := range []struct{ props, want string }{
		{`[["capabilities","table",[["basic.nack","bool",true]]],["connection_name","longstr","prog:1:abc"]]`, "prog:1:abc"},
		{`[["product","longstr","Switchyard"]]`, ""},
		{`[]`, ""},
	} {
		var props []json.RawMessage
		if err := json.Unmarshal([]byte(tc.props), &props); err != nil {
			t.Fatal(err)
		}
		if got := clientName(props); got != tc.want {
			t.Errorf("clientName(%s) = %q, want %q", tc.props, got, tc.want)
		}
	}
}

// TestClusterURL: the cluster's URL is one that transport.ParseURL takes
// as a failover list of its nodes.
func TestClusterURL(t *testing.T) {
	c := &Cluster{}
	for i, port := range []int{21001, 21003, 21005} {
		c.nodes = append(c.nodes, &Node{c: c, name: "n" + strconv.Itoa(i), port: port})
	}
	u, err := transport.ParseURL(c.URL())
	if err != nil {
		t.Fatal(err)
	}
	if u.User != "guest" || u.Password != "guest" || len(u.Hosts) != 3 {
		t.Fatalf("%s parses as %+v", c.URL(), u)
	}
	for i, h := range u.Hosts {
		if h.Name != "127.0.0.1" || h.Port != c.nodes[i].port {
			t.Errorf("host %d: %+v, want 127.0.0.1:%d", i, h, c.nodes[i].port)
		}
	}
	if got, want := c.nodes[1].URL(), "rabbit://guest:guest@127.0.0.1:21003/"; got != want {
		t.Errorf("node URL %q, want %q", got, want)
	}
}

func TestReservePorts(t *testing.T) {
	if err := supported(); err != nil {
		t.Skip(err)
	}
	ports, lease, err := reservePorts(5)
	if err != nil {
		t.Fatal(err)
	}
	defer lease.release()
	for i, p := range ports {
		if p < portLow || p >= portHigh || slices.Contains(ports[:i], p) {
			t.Errorf("ports %v: %d is out of range or twice", ports, p)
		}
		// Another process opening the lock file cannot take it.
		f, err := os.Open(filepath.Join(portLockDir, strconv.Itoa(p)+".lock"))
		if err != nil {
			t.Fatal(err)
		}
		if ok, _ := tryLock(f); ok {
			t.Errorf("port %d: its lock was free while reserved", p)
		}
		_ = f.Close()
	}
}

// TestEpmdMovesOffATakenPort takes the cluster's epmd port before epmd
// starts, as a process outside the harness can between the pick and the
// bind: epmd exits, and the harness starts it on a fresh port.
func TestEpmdMovesOffATakenPort(t *testing.T) {
	requireRabbitMQ(t)
	ports, lease, err := reservePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{dir: t.TempDir(), lease: lease, epmdPort: ports[0]}
	defer lease.release()
	taker, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])))
	if err != nil {
		t.Fatal(err)
	}
	defer taker.Close()

	if err := c.startEpmd(); err != nil {
		t.Fatalf("startEpmd: %v", err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := c.epmd.kill(ctx); err != nil {
			t.Error(err)
		}
	}()
	if c.epmdPort == ports[0] {
		t.Fatalf("epmd's port is still the taken %d", ports[0])
	}
	if err := epmdAnswers(context.Background(), c.epmdPort); err != nil {
		t.Errorf("epmd does not listen on %d: %v", c.epmdPort, err)
	}
	if len(lease.files) != 2 {
		t.Errorf("the lease holds %d ports, want the taken one and the fresh one", len(lease.files))
	}
}

// amqpURL is the node's address for amqp091-go, which wants amqp://.
func amqpURL(n *Node) string { return "amqp://guest:guest@" + n.addr() + "/" }

// dial connects to the node, bounding the TCP connect and the handshake.
func dial(n *Node, within time.Duration) (*amqp.Connection, error) {
	return amqp.DialConfig(amqpURL(n), amqp.Config{Dial: amqp.DefaultDial(within)})
}

// notifyClose tells of conn's closing, by the broker or a reset.
func notifyClose(conn *amqp.Connection) <-chan *amqp.Error {
	return conn.NotifyClose(make(chan *amqp.Error, 1))
}

// awaitClose waits for a connection to be closed (notifyClose).
func awaitClose(t *testing.T, closed <-chan *amqp.Error, within time.Duration) *amqp.Error {
	t.Helper()
	select {
	case err := <-closed:
		return err
	case <-time.After(within):
		t.Fatalf("the connection was not closed within %v", within)
		return nil
	}
}

// TestNode kills, restarts, freezes, thaws and stops a node of the test's
// own, then checks that the node's cleanup left no process nor file.
func TestNode(t *testing.T) {
	t.Parallel()
	var pids []int
	var dir string
	var epmdPid int
	t.Run("node", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		n := StartNode(t)
		dir, epmdPid = n.c.dir, n.c.epmd.pid()
		pids = append(pids, n.Pid())
		conn, err := dial(n, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		closed := notifyClose(conn)
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ch.QueueDeclare("durable", true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if got, err := n.c.ConnectionNode(ctx, "/", ""); err != nil || got != n {
			t.Fatalf("ConnectionNode = %v, %v; want the node", got, err)
		}

		t.Run("kill and restart", func(t *testing.T) {
			pid := n.Pid()
			if err := n.Kill(ctx); err != nil {
				t.Fatal(err)
			}
			if !gone(pid) || n.Running() {
				t.Fatalf("pid %d still there after Kill", pid)
			}
			awaitClose(t, closed, 10*time.Second)
			if c, err := dial(n, 2*time.Second); err == nil {
				_ = c.Close()
				t.Fatal("connected to a killed node")
			}
			if err := n.Kill(ctx); !errors.Is(err, ErrNotRunning) {
				t.Errorf("Kill of a killed node: %v, want ErrNotRunning", err)
			}
			began := time.Now()
			if err := n.Restart(ctx); err != nil {
				t.Fatal(err)
			}
			t.Logf("restarted in %v", time.Since(began).Round(100*time.Millisecond))
			pids = append(pids, n.Pid())
			c, err := dial(n, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ch, err := c.Channel()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ch.QueueDeclarePassive("durable", true, false, false, false, nil); err != nil {
				t.Fatalf("the durable queue did not survive the restart: %v", err)
			}
		})

		t.Run("freeze and thaw", func(t *testing.T) {
			if err := n.Freeze(); err != nil {
				t.Fatal(err)
			}
			if !n.Frozen() {
				t.Fatal("not Frozen after Freeze")
			}
			if c, err := dial(n, time.Second); err == nil {
				_ = c.Close()
				t.Fatal("completed a handshake with a frozen node")
			}
			short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
			defer cancelShort()
			began := time.Now()
			if _, err := n.Ctl(short, "status"); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("rabbitmqctl against a frozen node: %v, want a deadline exceeded", err)
			}
			if took := time.Since(began); took > 10*time.Second {
				t.Errorf("a 2 s rabbitmqctl call against a frozen node took %v", took)
			}
			if _, err := n.c.Ctl(ctx, "status"); !errors.Is(err, ErrNotRunning) {
				t.Errorf("Cluster.Ctl with its only node frozen: %v, want ErrNotRunning", err)
			}
			if err := n.Thaw(); err != nil {
				t.Fatal(err)
			}
			if err := n.awaitStartup(ctx); err != nil {
				t.Fatal(err)
			}
			c, err := dial(n, 5*time.Second)
			if err != nil {
				t.Fatalf("after Thaw: %v", err)
			}
			_ = c.Close()
		})

		t.Run("stop_app and start_app", func(t *testing.T) {
			c, err := dial(n, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			closed := notifyClose(c)
			if err := n.StopApp(ctx); err != nil {
				t.Fatal(err)
			}
			// The node sends connection.close (320, CONNECTION_FORCED) and
			// closes the socket: the client sees either first.
			if e := awaitClose(t, closed, 10*time.Second); e == nil {
				t.Error("closed without an error")
			}
			if err := n.StartApp(ctx); err != nil {
				t.Fatal(err)
			}
			c2, err := dial(n, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			_ = c2.Close()
		})
	})
	if dir == "" {
		return // skipped
	}
	for _, pid := range append(pids, epmdPid) {
		if !gone(pid) {
			t.Errorf("pid %d outlived the test", pid)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s outlived the test: %v", dir, err)
	}
}

// TestCluster: in a cluster of three, a quorum queue's leader is found
// and killed; the queue elects another one and stays available with its
// message, and the killed node restarts and rejoins.
func TestCluster(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c := StartCluster(t, 3)
	nodes := c.Nodes()
	if running, err := c.RunningNodes(ctx); err != nil || len(running) != 3 {
		t.Fatalf("running nodes %v, %v; want all three", running, err)
	}
	vhost := "quorum"
	if err := c.AddVHost(ctx, vhost); err != nil {
		t.Fatal(err)
	}

	// A connection to each node, found where it is.
	conns := make([]*amqp.Connection, len(nodes))
	for i, n := range nodes {
		conn, err := amqp.DialConfig(amqpURL(n)+vhost, amqp.Config{
			Dial:       amqp.DefaultDial(5 * time.Second),
			Properties: amqp.Table{"connection_name": "conn-" + strconv.Itoa(i)},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conns[i] = conn
	}
	for i, n := range nodes {
		if got, err := c.ConnectionNode(ctx, vhost, "conn-"+strconv.Itoa(i)); err != nil || got != n {
			t.Errorf("connection %d is on %v (%v), want %s", i, got, err, n.Name())
		}
	}

	const queue = "replicated"
	ch, err := conns[0].Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	publish(ctx, t, conns[0], queue, "before")
	leader, err := c.QueueLeader(ctx, vhost, queue)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the leader is %s", leader.Name())

	if err := leader.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	var next *Node
	poll(ctx, t, "another leader", func() bool {
		next, err = c.QueueLeader(ctx, vhost, queue)
		return err == nil && next != leader
	})
	t.Logf("the new leader is %s", next.Name())
	survivor := conns[slices.Index(nodes, next)]
	publish(ctx, t, survivor, queue, "after")
	for _, want := range []string{"before", "after"} {
		if got := get(ctx, t, survivor, queue); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}

	began := time.Now()
	if err := leader.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	poll(ctx, t, "the restarted node back in the cluster", func() bool {
		running, err := c.RunningNodes(ctx)
		return err == nil && slices.Contains(running, leader) && len(running) == 3
	})
	t.Logf("the killed node rejoined in %v", time.Since(began).Round(100*time.Millisecond))

	// close_all_connections acts on every node; the connection to the
	// killed node is gone already.
	var closing []<-chan *amqp.Error
	for i, conn := range conns {
		if nodes[i] != leader {
			closing = append(closing, notifyClose(conn))
		}
	}
	if err := c.CloseAllConnections(ctx, vhost, "rabbitnode test"); err != nil {
		t.Fatal(err)
	}
	for _, closed := range closing {
		if e := awaitClose(t, closed, 10*time.Second); e == nil || e.Code != amqp.ConnectionForced {
			t.Errorf("closed with %v, want connection-forced (320)", e)
		}
	}
	if err := c.DeleteVHost(ctx, vhost); err != nil {
		t.Fatal(err)
	}
	if conns, err := c.Connections(ctx, ""); err != nil || len(conns) != 0 {
		t.Errorf("connections left: %v, %v", conns, err)
	}
}

// publish publishes a persistent message to queue and waits for its
// confirm.
func publish(ctx context.Context, t *testing.T, conn *amqp.Connection, queue, body string) {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirm, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, true, false,
		amqp.Publishing{Body: []byte(body), DeliveryMode: amqp.Persistent})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := confirm.WaitContext(ctx); !ok || err != nil {
		t.Fatalf("publish %q: acked %v, %v", body, ok, err)
	}
}

// get takes the next message of queue.
func get(ctx context.Context, t *testing.T, conn *amqp.Connection, queue string) string {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	var body string
	poll(ctx, t, "a message in "+queue, func() bool {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatalf("get from %s: %v", queue, err)
		}
		body = string(d.Body)
		return ok
	})
	return body
}

// poll checks cond every 100 ms until it holds, failing t when ctx ends.
func poll(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("%s: not before %v", what, ctx.Err())
		}
	}
}

// TestRemoveStale: a cluster directory whose test process is gone is
// removed; this process's stays.
func TestRemoveStale(t *testing.T) {
	if err := supported(); err != nil {
		t.Skip(err)
	}
	done := exec.Command("true")
	if err := done.Run(); err != nil {
		t.Skip(err)
	}
	dead, err := os.MkdirTemp("", dirPrefix+strconv.Itoa(done.Process.Pid)+"-sytest-")
	if err != nil {
		t.Fatal(err)
	}
	mine, err := os.MkdirTemp("", dirPrefix+strconv.Itoa(os.Getpid())+"-sytest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dead); _ = os.RemoveAll(mine) })
	removeStale()
	if _, err := os.Stat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s, of a dead process, is still there: %v", dead, err)
	}
	if _, err := os.Stat(mine); err != nil {
		t.Errorf("%s, of this process: %v", mine, err)
	}
}

// TestAvailableWithoutRabbitMQ: without RabbitMQ's scripts, Available says
// so (and StartNode would skip, or fail under SWITCHYARD_BROKERS=required).
func TestAvailableWithoutRabbitMQ(t *testing.T) {
	if err := supported(); err != nil {
		t.Skip(err)
	}
	saved := serverScript
	t.Cleanup(func() { serverScript = saved })
	serverScript = filepath.Join(t.TempDir(), "rabbitmq-server")
	if err := Available(); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Available() = %v, want an error wrapping os.ErrNotExist", err)
	}
}
