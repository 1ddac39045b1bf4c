// Package rabbitnode starts RabbitMQ nodes and clusters of a test's own,
// from the system's RabbitMQ install (Debian 12's rabbitmq-server, RabbitMQ
// 3.10), so that fault tests can kill, freeze and restart brokers without
// touching the shared ones (the system's node on 5672 and the RabbitMQ 4.3
// node on 5682), which other tests use at the same time.
//
// Each node is a child process of the test: the Erlang VM (beam.smp) runs
// in a process group of its own, with its own node name, loopback ports,
// data and log directories, configuration, Erlang cookie and epmd, and the
// kernel kills it if the test process dies. Kill sends SIGKILL, as a crash
// or an OOM kill would; Freeze and Thaw send SIGSTOP and SIGCONT, as a
// stalled VM or host would; Restart starts a node again on its data, and
// a cluster member rejoins its cluster. rabbitmqctl and rabbitmq-queues
// run with each call bounded (a call against a frozen node hangs).
//
// StartNode and StartCluster skip the test when RabbitMQ is not installed,
// or fail it under SWITCHYARD_BROKERS=required, as brokertest does for
// shared brokers; t.Cleanup kills the nodes and their epmd by pid and
// removes their files, whether the test passed, failed or panicked.
//
// A node starts in about 5–10 s and uses 130–300 MB; a 3-node cluster is
// up in about 20 s.
package rabbitnode

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/internal/brokertest"
)

// binDir holds the scripts of Debian's rabbitmq-server package. They are
// called directly: the /usr/sbin wrappers switch to user rabbitmq and its
// cookie.
const binDir = "/usr/lib/rabbitmq/bin"

var (
	serverScript = filepath.Join(binDir, "rabbitmq-server")
	ctlScript    = filepath.Join(binDir, "rabbitmqctl")
	queuesScript = filepath.Join(binDir, "rabbitmq-queues")
)

// Bounds on the waits of the harness.
const (
	// bootTimeout bounds a node's start, until await_startup succeeds,
	// on a loaded two-core machine.
	bootTimeout = 2 * time.Minute
	// ctlTimeout bounds one CLI call unless the caller's context is
	// shorter.
	ctlTimeout = 30 * time.Second
	// exitTimeout bounds the wait for a killed process to be reaped.
	exitTimeout = 30 * time.Second
	// setupTimeout bounds StartCluster as a whole.
	setupTimeout = 5 * time.Minute
)

// ErrNotRunning is returned by what needs a node's process when the node
// is not running (never started, killed, or stopped).
var ErrNotRunning = errors.New("rabbitnode: node is not running")

// Available reports why this machine cannot run nodes (RabbitMQ or epmd
// is not installed, or the system is not Linux), or nil if it can.
func Available() error {
	if err := supported(); err != nil {
		return err
	}
	for _, f := range []string{serverScript, ctlScript, queuesScript} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("RabbitMQ is not installed: %w", err)
		}
	}
	if _, err := epmdPath(); err != nil {
		return err
	}
	return nil
}

// epmdPath finds Erlang's port mapper daemon, which comes with Erlang.
func epmdPath() (string, error) {
	if p, err := exec.LookPath("epmd"); err == nil {
		return p, nil
	}
	const debian = "/usr/lib/erlang/bin/epmd"
	if _, err := os.Stat(debian); err != nil {
		return "", fmt.Errorf("epmd (Erlang's port mapper) is not installed: %w", err)
	}
	return debian, nil
}

// requireRabbitMQ skips t when nodes cannot run here, or fails it under
// SWITCHYARD_BROKERS=required.
func requireRabbitMQ(t testing.TB) {
	t.Helper()
	err := Available()
	if err == nil {
		return
	}
	msg := "rabbitnode: " + err.Error() + "; apt-get install rabbitmq-server (as .ci/run does)"
	if brokertest.Required() {
		t.Fatal(msg + " [SWITCHYARD_BROKERS=required]")
	}
	t.Skip(msg)
}

// Cluster is a test's own RabbitMQ nodes, clustered together (or a single
// node), sharing an Erlang cookie and an epmd.
type Cluster struct {
	id       string // "sy" and random hex: unique among parallel tests
	dir      string
	home     string // HOME of the nodes and their CLI: the cookie is there
	epmdPort int
	lease    *portLease
	nodes    []*Node

	epmd *process
}

// Node is one RabbitMQ node of a Cluster: a child process of the test
// while it runs.
type Node struct {
	c        *Cluster
	name     string // sy<hex>-<i>@localhost
	port     int    // AMQP
	distPort int    // Erlang distribution
	dir      string

	mu     sync.Mutex
	proc   *process // nil when not running
	frozen bool
}

// StartNode starts a single RabbitMQ node of t's own and returns it once
// it accepts connections; t.Cleanup kills it. It skips t when RabbitMQ is
// not installed (fails it under SWITCHYARD_BROKERS=required) and fails t
// if the node does not start.
func StartNode(t testing.TB) *Node {
	t.Helper()
	return StartCluster(t, 1).nodes[0]
}

// StartCluster starts n RabbitMQ nodes of t's own, joins the second and
// later ones to the first, and returns the cluster once every node runs;
// t.Cleanup kills the nodes and their epmd and removes their files. It
// skips t when RabbitMQ is not installed (fails it under
// SWITCHYARD_BROKERS=required) and fails t if a node does not start or
// join.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	requireRabbitMQ(t)
	if n < 1 {
		t.Fatalf("rabbitnode: a cluster of %d nodes", n)
	}
	began := time.Now()
	c, err := newCluster(n)
	if c != nil {
		t.Cleanup(func() { c.cleanup(t) }) // before anything can fail
	}
	if err != nil {
		t.Fatalf("rabbitnode: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if err := c.start(ctx); err != nil {
		t.Fatalf("rabbitnode: %v", err)
	}
	t.Logf("rabbitnode: %d node(s) %s up in %v", n, strings.Join(c.names(), ", "), time.Since(began).Round(100*time.Millisecond))
	return c
}

// newCluster prepares the files, ports and epmd of a cluster of n nodes.
// On error it returns what it made so far, for cleanup.
func newCluster(n int) (*Cluster, error) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	c := &Cluster{id: "sy" + hex.EncodeToString(b[:])}
	removeStale()
	dir, err := os.MkdirTemp("", dirPrefix+strconv.Itoa(os.Getpid())+"-"+c.id+"-")
	if err != nil {
		return nil, fmt.Errorf("cluster directory: %w", err)
	}
	c.dir = dir
	ports, lease, err := reservePorts(1 + 2*n)
	if err != nil {
		return c, err
	}
	c.lease = lease
	c.epmdPort = ports[0]

	// One cookie for the nodes and their CLI: the cluster's own, so that
	// nothing else can talk to its nodes, nor they to the shared ones.
	c.home = filepath.Join(dir, "home")
	if err := os.Mkdir(c.home, 0o700); err != nil {
		return c, fmt.Errorf("home directory: %w", err)
	}
	var cookie [20]byte
	_, _ = rand.Read(cookie[:])
	for i := range cookie {
		cookie[i] = 'A' + cookie[i]%26
	}
	if err := os.WriteFile(filepath.Join(c.home, ".erlang.cookie"), cookie[:], 0o400); err != nil {
		return c, fmt.Errorf("erlang cookie: %w", err)
	}
	// Empty files that keep Debian's defaults out: rabbitmq-env.conf sets
	// the node name, and enabled_plugins the management plugin, whose
	// port the system's node holds.
	for _, name := range []string{"rabbitmq-env.conf", "enabled_plugins"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			return c, fmt.Errorf("%s: %w", name, err)
		}
	}

	for i := range n {
		node := &Node{
			c:        c,
			name:     fmt.Sprintf("%s-%d@localhost", c.id, i+1),
			port:     ports[1+2*i],
			distPort: ports[2+2*i],
			dir:      filepath.Join(dir, "node"+strconv.Itoa(i+1)),
		}
		if err := os.Mkdir(node.dir, 0o755); err != nil {
			return c, fmt.Errorf("node directory: %w", err)
		}
		conf := "# written by rabbitnode\n" +
			"vm_memory_high_watermark.absolute = 512MiB\n" +
			"disk_free_limit.absolute = 50MB\n" +
			"log.console = false\n" +
			"log.file.level = info\n"
		if err := os.WriteFile(filepath.Join(node.dir, "rabbitmq.conf"), []byte(conf), 0o644); err != nil {
			return c, fmt.Errorf("rabbitmq.conf: %w", err)
		}
		c.nodes = append(c.nodes, node)
	}
	if err := c.startEpmd(); err != nil {
		return c, err
	}
	return c, nil
}

// dirPrefix begins the name of a cluster's directory under os.TempDir(),
// followed by the test process's pid, the cluster's id and a random suffix.
const dirPrefix = "switchyard-rabbitnode-"

// removeStale removes the directories of clusters whose test process died
// before its cleanup ran (the kernel killed their nodes with it).
func removeStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*-sy*"))
	for _, dir := range dirs {
		pid, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(dir), dirPrefix), "-")
		if n, err := strconv.Atoi(pid); err == nil && n > 0 && n != os.Getpid() && gone(n) {
			_ = os.RemoveAll(dir)
		}
	}
}

// epmdAttempts bounds how often startEpmd moves to a fresh port when epmd
// exits before it listens.
const epmdAttempts = 3

// startEpmd runs the cluster's epmd in the foreground, as a child process
// whose pid the harness knows, and waits until it listens. A port is
// picked by finding it free, and a process outside the harness can bind it
// before epmd does; epmd then exits, and startEpmd tries a fresh port.
func (c *Cluster) startEpmd() error {
	path, err := epmdPath()
	if err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		err := c.runEpmd(path)
		if err == nil || c.epmd == nil || !c.epmd.exited() || attempt == epmdAttempts {
			return err
		}
		ports, lease, rerr := reservePorts(1)
		if rerr != nil {
			return errors.Join(err, rerr)
		}
		c.lease.files = append(c.lease.files, lease.files...)
		c.epmdPort = ports[0]
	}
}

// runEpmd starts epmd on c.epmdPort and waits until it listens there, or
// exits.
func (c *Cluster) runEpmd(path string) error {
	cmd := exec.Command(path, "-port", strconv.Itoa(c.epmdPort), "-address", "127.0.0.1")
	cmd.Env = []string{"PATH=" + searchPath()}
	logPath := filepath.Join(c.dir, "epmd.log")
	log, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("epmd log: %w", err)
	}
	defer log.Close() // the child has its own descriptor
	cmd.Stdout, cmd.Stderr = log, log
	if c.epmd, err = spawnProcess(cmd); err != nil {
		return fmt.Errorf("start epmd: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Probe by asking epmd: a probe that binds the port to see whether it
	// is free can take it from epmd while epmd starts, and epmd exits.
	err = pollUntil(ctx, c.epmd.exited, "epmd listening on "+strconv.Itoa(c.epmdPort), func() error {
		if err := epmdAnswers(ctx, c.epmdPort); err != nil {
			return err
		}
		if c.epmd.exited() {
			return errors.New("an epmd answers, but not the harness's")
		}
		return nil
	})
	if err != nil {
		if out, _ := os.ReadFile(logPath); len(out) > 0 {
			err = fmt.Errorf("%w; epmd (%v) wrote: %s", err, c.epmd, strings.TrimSpace(string(out)))
		}
	}
	return err
}

// start boots every node at once, then joins the second and later ones to
// the first, one at a time.
func (c *Cluster) start(ctx context.Context) error {
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		wg.Go(func() { errs[i] = n.boot(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, n := range c.nodes[1:] {
		if err := n.join(ctx, c.nodes[0]); err != nil {
			return err
		}
	}
	return nil
}

// join makes n a member of seed's cluster.
func (n *Node) join(ctx context.Context, seed *Node) error {
	for _, args := range [][]string{{"stop_app"}, {"join_cluster", seed.name}, {"start_app"}} {
		if _, err := n.Ctl(ctx, args...); err != nil {
			return fmt.Errorf("join %s to %s: %w", n.name, seed.name, err)
		}
	}
	return n.awaitStartup(ctx)
}

// cleanup kills the cluster's nodes and epmd and removes its files,
// showing the nodes' logs first if t failed.
func (c *Cluster) cleanup(t testing.TB) {
	t.Helper()
	if t.Failed() {
		for _, n := range c.nodes {
			t.Logf("rabbitnode: %s (AMQP port %d), last lines of its log:\n%s", n.name, n.port, n.logTail(40))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), exitTimeout)
	defer cancel()
	for _, n := range c.nodes {
		if err := n.Kill(ctx); err != nil && !errors.Is(err, ErrNotRunning) {
			t.Errorf("rabbitnode: cleanup: %v", err)
		}
	}
	if c.epmd != nil {
		if err := c.epmd.kill(ctx); err != nil {
			t.Errorf("rabbitnode: cleanup: kill epmd: %v", err)
		}
	}
	if c.lease != nil {
		c.lease.release()
	}
	if err := os.RemoveAll(c.dir); err != nil {
		t.Errorf("rabbitnode: cleanup: %v", err)
	}
}

// names lists the nodes' names.
func (c *Cluster) names() []string {
	names := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		names[i] = n.name
	}
	return names
}

// Nodes returns the cluster's nodes, the first one the seed the others
// joined.
func (c *Cluster) Nodes() []*Node { return append([]*Node(nil), c.nodes...) }

// URL is the transport URL of every node of the cluster, for failover:
// rabbit://guest:guest@127.0.0.1:P1,guest:guest@127.0.0.1:P2,.../ (guest
// may log in from the loopback interface only, which is where the nodes
// listen).
func (c *Cluster) URL() string {
	hosts := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		hosts[i] = "guest:guest@" + n.addr()
	}
	return "rabbit://" + strings.Join(hosts, ",") + "/"
}

// Name is the node's Erlang node name, such as sy1a2b3c4d-1@localhost.
func (n *Node) Name() string { return n.name }

// Port is the node's AMQP port on 127.0.0.1.
func (n *Node) Port() int { return n.port }

// Cluster is the cluster the node belongs to.
func (n *Node) Cluster() *Cluster { return n.c }

// URL is the node's transport URL: rabbit://guest:guest@127.0.0.1:PORT/.
func (n *Node) URL() string { return "rabbit://guest:guest@" + n.addr() + "/" }

func (n *Node) addr() string { return "127.0.0.1:" + strconv.Itoa(n.port) }

// Pid is the process id of the node's Erlang VM (beam.smp), or 0 when the
// node is not running.
func (n *Node) Pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return 0
	}
	return n.proc.pid()
}

// Running reports whether the node's process runs (frozen or not).
func (n *Node) Running() bool { return n.Pid() != 0 }

// Frozen reports whether the node is frozen (Freeze).
func (n *Node) Frozen() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.frozen
}

// searchPath is the PATH of the nodes and their CLI: the test's, and the
// system directories where Debian's erl and friends live.
func searchPath() string {
	if p := os.Getenv("PATH"); p != "" {
		return p + ":/usr/bin:/bin"
	}
	return "/usr/bin:/bin"
}

// env is the environment of the node's server and CLI: nothing of the
// test's own but PATH and TMPDIR, so that no RABBITMQ_ or ERL_ variable of
// the shared brokers leaks in.
func (n *Node) env() []string {
	c := n.c
	// Loopback only, no epmd started behind the harness's back (erl starts
	// one as a daemon when it finds none), one scheduler to stay light.
	const loopback = "-kernel inet_dist_use_interface {127,0,0,1}"
	env := []string{
		"PATH=" + searchPath(),
		"HOME=" + c.home,
		"LANG=C.UTF-8",
		"LC_ALL=C.UTF-8",
		"ERL_EPMD_ADDRESS=127.0.0.1",
		"ERL_EPMD_PORT=" + strconv.Itoa(c.epmdPort),
		"RABBITMQ_NODENAME=" + n.name,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT=" + strconv.Itoa(n.port),
		"RABBITMQ_DIST_PORT=" + strconv.Itoa(n.distPort),
		"RABBITMQ_MNESIA_BASE=" + filepath.Join(n.dir, "mnesia"),
		"RABBITMQ_LOG_BASE=" + filepath.Join(n.dir, "log"),
		"RABBITMQ_PID_FILE=" + filepath.Join(n.dir, "rabbitmq.pid"),
		"RABBITMQ_CONFIG_FILE=" + filepath.Join(n.dir, "rabbitmq.conf"),
		"RABBITMQ_ADVANCED_CONFIG_FILE=" + filepath.Join(n.dir, "advanced.config"), // absent
		"RABBITMQ_CONF_ENV_FILE=" + filepath.Join(c.dir, "rabbitmq-env.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE=" + filepath.Join(c.dir, "enabled_plugins"),
		// The script execs erl instead of waiting on it in a shell: the
		// test's child process is the VM itself. -noinput keeps the shell
		// away, as the script would.
		"RABBITMQ_ALLOW_INPUT=true",
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-noinput +S 1:1 +sbwt none -start_epmd false " + loopback,
		// The CLI's own Erlang node: any free port, loopback only.
		"RABBITMQ_CTL_DIST_PORT_MIN=0",
		"RABBITMQ_CTL_DIST_PORT_MAX=0",
		"RABBITMQ_CTL_ERL_ARGS=-start_epmd false " + loopback,
	}
	if tmp := os.Getenv("TMPDIR"); tmp != "" {
		env = append(env, "TMPDIR="+tmp)
	}
	return env
}

// boot starts the node's process and waits until the node runs.
func (n *Node) boot(ctx context.Context) error {
	if err := n.spawn(); err != nil {
		return err
	}
	return n.awaitStartup(ctx)
}

// spawn starts the node's Erlang VM as a child process.
func (n *Node) spawn() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil {
		return fmt.Errorf("start %s: it is running (%v)", n.name, n.proc)
	}
	console, err := os.OpenFile(filepath.Join(n.dir, "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start %s: %w", n.name, err)
	}
	defer console.Close() // the child has its own descriptor
	cmd := exec.Command(serverScript)
	cmd.Env, cmd.Dir = n.env(), n.dir
	cmd.Stdout, cmd.Stderr = console, console
	p, err := spawnProcess(cmd)
	if err != nil {
		return fmt.Errorf("start %s: %w", n.name, err)
	}
	n.proc, n.frozen = p, false
	return nil
}

// awaitStartup waits until the node's application runs. rabbitmqctl
// await_startup fails at once until the node has registered with epmd,
// so it is retried until bootTimeout (or ctx) ends, and the wait fails at
// once if the node's process exits.
func (n *Node) awaitStartup(ctx context.Context) error {
	n.mu.Lock()
	p := n.proc
	n.mu.Unlock()
	if p == nil {
		return fmt.Errorf("await %s: %w", n.name, ErrNotRunning)
	}
	ctx, cancel := context.WithTimeout(ctx, bootTimeout)
	defer cancel()
	err := pollUntil(ctx, p.exited, n.name+" started", func() error {
		_, err := n.Ctl(ctx, "await_startup")
		return err
	})
	if p.exited() {
		return fmt.Errorf("%s exited while starting (%v); last lines of its log:\n%s", n.name, p, n.logTail(20))
	}
	return err
}

// pollUntil calls try every 200 ms until it succeeds, ctx ends or stop
// reports true, and returns try's last error if it never succeeded.
func pollUntil(ctx context.Context, stop func() bool, what string, try func() error) error {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		err := try()
		if err == nil {
			return nil
		}
		if stop() {
			return fmt.Errorf("%s: gave up: %w", what, err)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last: %w)", what, ctx.Err(), err)
		}
	}
}

// Kill kills the node's Erlang VM and everything it started with SIGKILL,
// as a crash or the OOM killer would (frozen or not), and returns once the
// process is gone. Its clients see their connections reset, and its
// cluster sees it down. Restart starts it again.
func (n *Node) Kill(ctx context.Context) error {
	n.mu.Lock()
	p := n.proc
	n.proc, n.frozen = nil, false
	n.mu.Unlock()
	if p == nil {
		return fmt.Errorf("kill %s: %w", n.name, ErrNotRunning)
	}
	if err := p.kill(ctx); err != nil {
		return fmt.Errorf("kill %s: %w", n.name, err)
	}
	return nil
}

// Freeze stops the node's Erlang VM with SIGSTOP: it holds its sockets
// open and answers nothing, as a stalled VM or host does. CLI calls
// against it hang until their timeout. Thaw resumes it.
func (n *Node) Freeze() error { return n.signal("freeze", sigStop, true) }

// Thaw resumes a frozen node with SIGCONT.
func (n *Node) Thaw() error { return n.signal("thaw", sigCont, false) }

func (n *Node) signal(what string, sig syscall.Signal, frozen bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return fmt.Errorf("%s %s: %w", what, n.name, ErrNotRunning)
	}
	if err := n.proc.signal(sig); err != nil {
		return fmt.Errorf("%s %s (%v): %w", what, n.name, n.proc, err)
	}
	n.frozen = frozen
	return nil
}

// Restart starts the node again on its data and returns once it runs, as
// an operator or a supervisor would after a crash; it kills the node first
// if it still runs. A member of a cluster rejoins it (its data directory
// keeps the membership), with its durable queues and their messages.
func (n *Node) Restart(ctx context.Context) error {
	if n.Running() {
		if err := n.Kill(ctx); err != nil {
			return fmt.Errorf("restart: %w", err)
		}
	}
	if err := n.boot(ctx); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	return nil
}

// StopApp stops the RabbitMQ application of the node, leaving its Erlang
// VM up (rabbitmqctl stop_app): the clean shutdown an operator makes, in
// which the node closes its clients' connections. StartApp starts it
// again.
func (n *Node) StopApp(ctx context.Context) error {
	if _, err := n.Ctl(ctx, "stop_app"); err != nil {
		return err
	}
	return nil
}

// StartApp starts the RabbitMQ application of the node again after
// StopApp and returns once it runs.
func (n *Node) StartApp(ctx context.Context) error {
	if _, err := n.Ctl(ctx, "start_app"); err != nil {
		return err
	}
	return n.awaitStartup(ctx)
}

// logTail is the last lines of the node's log, or of its console output
// if the log is empty (a node that failed early).
func (n *Node) logTail(lines int) string {
	for _, f := range []string{filepath.Join(n.dir, "log", n.name+".log"), filepath.Join(n.dir, "console.log")} {
		data, err := os.ReadFile(f)
		if err != nil || len(bytes.TrimSpace(data)) == 0 {
			continue
		}
		all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(all) > lines {
			all = all[len(all)-lines:]
		}
		return "== " + f + "\n" + strings.Join(all, "\n")
	}
	return "(no log)"
}

// Ctl runs rabbitmqctl against the node with args (such as "list_queues",
// "-p", vhost) and returns its standard output. The call is bounded by ctx
// and by 30 s, since a call to a frozen node never ends.
func (n *Node) Ctl(ctx context.Context, args ...string) (string, error) {
	return n.cli(ctx, ctlScript, args...)
}

// Queues runs rabbitmq-queues against the node (quorum_status,
// add_member, ...) as Ctl runs rabbitmqctl.
func (n *Node) Queues(ctx context.Context, args ...string) (string, error) {
	return n.cli(ctx, queuesScript, args...)
}

func (n *Node) cli(ctx context.Context, script string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, ctlTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, append([]string{"-n", n.name}, args...)...)
	cmd.Env, cmd.Dir = n.env(), n.c.dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	ownProcess(cmd)
	cmd.Cancel = func() error { return signalGroup(cmd.Process.Pid, sigKill) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		out := strings.TrimSpace(stderr.String() + "\n" + stdout.String())
		return stdout.String(), fmt.Errorf("%s -n %s %s: %w: %s", filepath.Base(script), n.name, strings.Join(args, " "), err, out)
	}
	return stdout.String(), nil
}

// ctlCommand is the command line that runs rabbitmqctl against the node,
// its environment included, for brokertest.Broker.Ctl.
func (n *Node) ctlCommand() []string {
	return append(append([]string{"env", "-i"}, n.env()...), ctlScript, "-n", n.name)
}

// Broker describes the node for brokertest, so that its helpers work on
// it: Broker().NewVHost gives a test a virtual host of its own there, with
// RabbitVHost.CloseConnections by the node's rabbitmqctl. The node has no
// management API: what needs it skips the test.
func (n *Node) Broker() brokertest.Broker {
	return brokertest.Broker{
		Name:         "RabbitMQ node " + n.name + " of rabbitnode",
		DefaultURL:   n.URL(),
		HowToStart:   "rabbitnode.StartNode starts it",
		Ctl:          n.ctlCommand(),
		NoManagement: true,
	}
}

// Broker is Node.Broker for the cluster: its URL has every node's address,
// and rabbitmqctl runs against the first node.
func (c *Cluster) Broker() brokertest.Broker {
	b := c.nodes[0].Broker()
	b.Name, b.DefaultURL = "RabbitMQ cluster "+c.id+" of rabbitnode", c.URL()
	return b
}
