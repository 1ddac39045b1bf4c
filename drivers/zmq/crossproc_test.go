package zmq_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/drivers/zmq"
	"github.com/switchyard-mq/switchyard/drivers/zmq/internal/matchmaker"
	"github.com/switchyard-mq/switchyard/internal/brokertest"
	"github.com/switchyard-mq/switchyard/transport"
	"github.com/switchyard-mq/switchyard/transport/driver"
)

// Cross-process tests re-run this test binary as a child process whose
// role an environment variable selects; TestMain runs the role instead of
// the tests.
const (
	envRole     = "SWITCHYARD_ZMQ_CHILD"
	envURL      = "SWITCHYARD_ZMQ_URL"
	envQueue    = "SWITCHYARD_ZMQ_QUEUE"
	envPrefetch = "SWITCHYARD_ZMQ_PREFETCH"
)

func TestMain(m *testing.M) {
	if role := os.Getenv(envRole); role != "" {
		os.Exit(runChild(role))
	}
	os.Exit(m.Run())
}

// runChild runs a child role until its standard input closes or it is
// killed. It reports on standard output: "ready", then what it did.
func runChild(role string) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // the parent closes our stdin to stop us
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	tr, err := transport.Open(ctx, os.Getenv(envURL))
	if err != nil {
		return fail(err)
	}
	defer tr.Close()
	prefetch, _ := strconv.Atoi(os.Getenv(envPrefetch))
	cons, err := tr.Consume(ctx, os.Getenv(envQueue), transport.ConsumeOptions{Prefetch: prefetch})
	if err != nil {
		return fail(err)
	}
	fmt.Println("ready")
	held := 0
	for {
		d, err := cons.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return 0
			}
			return fail(err)
		}
		switch role {
		case "echo-server": // replies to each request, then acks it
			reply := transport.Message{Body: append([]byte("echo: "), d.Body...), CorrelationID: d.CorrelationID}
			if err := tr.Publish(ctx, "", d.ReplyTo, reply); err != nil {
				return fail(err)
			}
			if err := d.Ack(); err != nil {
				return fail(err)
			}
		case "holder": // takes deliveries and never settles them
			held++
			fmt.Printf("holding %d\n", held)
		default:
			return fail(fmt.Errorf("unknown role %q", role))
		}
	}
}

// child is a running child process.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

// startChild starts a child role and waits for it to be ready.
func startChild(t *testing.T, role, url, queue string, prefetch int) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envRole+"="+role, envURL+"="+url, envQueue+"="+queue, envPrefetch+"="+strconv.Itoa(prefetch))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin, lines: make(chan string, 1024)}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	t.Cleanup(c.kill)
	c.expect(t, "ready")
	return c
}

// expect waits for a line from the child.
func (c *child) expect(t *testing.T, want string) {
	t.Helper()
	timer := time.NewTimer(20 * time.Second)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				t.Fatalf("child exited before printing %q", want)
			}
			if line == want {
				return
			}
		case <-timer.C:
			t.Fatalf("child did not print %q within 20s", want)
		}
	}
}

// stop asks the child to exit and waits for it.
func (c *child) stop(t *testing.T) {
	t.Helper()
	_ = c.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("child exited with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("child did not exit within 20s of its stdin closing")
		c.kill()
	}
}

// kill ends the child at once (SIGKILL), as a crash would.
func (c *child) kill() {
	if c.cmd.ProcessState != nil {
		return
	}
	_ = c.cmd.Process.Kill()
	_ = c.cmd.Wait()
}

// redisRegistry returns a zmq:// URL on Redis with a registry of its own,
// whose keys are deleted when the test ends.
func redisRegistry(t testing.TB) string {
	t.Helper()
	redisURL := brokertest.Redis().URL(t)
	name := registryName(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r, err := matchmaker.NewRedis(ctx, redisURL, zmq.RedisPrefix(name), time.Second, slog.Default())
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		defer r.Close()
		if err := r.DeleteAll(ctx); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return "zmq://" + name + "?matchmaker=" + redisURL + "&liveness_ttl=1500ms&liveness_refresh=250ms"
}

func openT(t *testing.T, url string) *transport.Transport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := transport.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// call publishes a request to queue and waits for its reply on replies.
func call(ctx context.Context, tr *transport.Transport, queue string, replies *transport.Consumer, body string) (string, error) {
	err := tr.Publish(ctx, "", queue, transport.Message{Body: []byte(body), ReplyTo: replies.Queue(), CorrelationID: body})
	if err != nil {
		return "", err
	}
	return awaitReply(ctx, replies, body)
}

// awaitReply receives the reply to request id. Delivery is at least once:
// a server killed between replying and acking gets its request again, and
// its successor replies again; such a duplicate reply to an earlier
// request is skipped.
func awaitReply(ctx context.Context, replies *transport.Consumer, id string) (string, error) {
	for {
		d, err := replies.Receive(ctx)
		if err != nil {
			return "", err
		}
		if d.CorrelationID == id {
			return string(d.Body), nil
		}
		if !strings.HasPrefix(string(d.Body), "echo: ") {
			return "", fmt.Errorf("reply %q to %q, want one to %q", d.Body, d.CorrelationID, id)
		}
	}
}

// TestCrossProcessRequestReply: a request/reply exchange between two OS
// processes that find each other through the Redis matchmaker.
func TestCrossProcessRequestReply(t *testing.T) {
	url := redisRegistry(t)
	tr := openT(t, url)
	if !tr.Capabilities().Has(driver.CapCrossProcess) {
		t.Errorf("zmq:// with Redis lacks %s", driver.CapCrossProcess)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	requests, err := tr.DeclareQueue(ctx, transport.Queue{Name: "requests"})
	if err != nil {
		t.Fatal(err)
	}
	server := startChild(t, "echo-server", url, requests, 10)
	replyQueue, err := tr.DeclareQueue(ctx, transport.Queue{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	replies, err := tr.Consume(ctx, replyQueue, transport.ConsumeOptions{AutoAck: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		body := fmt.Sprintf("request-%d", i)
		got, err := call(ctx, tr, requests, replies, body)
		if err != nil || got != "echo: "+body {
			t.Fatalf("call %d: %q, %v", i, got, err)
		}
	}
	server.stop(t)
}

// TestKilledConsumerLosesNothing: a consumer process killed while holding
// unacknowledged deliveries loses nothing: its sender redelivers them.
func TestKilledConsumerLosesNothing(t *testing.T) {
	url := redisRegistry(t)
	tr := openT(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q, err := tr.DeclareQueue(ctx, transport.Queue{Name: "work"})
	if err != nil {
		t.Fatal(err)
	}
	const total, prefetch = 100, 10
	holder := startChild(t, "holder", url, q, prefetch)
	for i := range total {
		if err := tr.Publish(ctx, "", q, transport.Message{Body: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	holder.expect(t, fmt.Sprintf("holding %d", prefetch))
	holder.kill()

	cons, err := tr.Consume(ctx, q, transport.ConsumeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	seen, redelivered := map[string]bool{}, 0
	for len(seen) < total {
		d, err := cons.Receive(ctx)
		if err != nil {
			t.Fatalf("after %d of %d: %v", len(seen), total, err)
		}
		if seen[string(d.Body)] {
			t.Errorf("%q delivered twice", d.Body)
		}
		seen[string(d.Body)] = true
		if d.Redelivered {
			redelivered++
		}
		if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if redelivered != prefetch {
		t.Errorf("%d deliveries marked redelivered, want the %d the killed consumer held", redelivered, prefetch)
	}
}

// TestRestartedServerFoundAgain: after a server process is killed, a
// request waits with its sender; a new server process is found through
// the matchmaker and answers it.
func TestRestartedServerFoundAgain(t *testing.T) {
	url := redisRegistry(t)
	tr := openT(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	requests, err := tr.DeclareQueue(ctx, transport.Queue{Name: "requests"})
	if err != nil {
		t.Fatal(err)
	}
	replyQueue, err := tr.DeclareQueue(ctx, transport.Queue{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	replies, err := tr.Consume(ctx, replyQueue, transport.ConsumeOptions{AutoAck: true})
	if err != nil {
		t.Fatal(err)
	}
	first := startChild(t, "echo-server", url, requests, 1)
	if got, err := call(ctx, tr, requests, replies, "before"); err != nil || got != "echo: before" {
		t.Fatalf("call before the restart: %q, %v", got, err)
	}
	first.kill()

	// Published while no server lives: the sender holds it.
	if err := tr.Publish(ctx, "", requests, transport.Message{Body: []byte("during"), ReplyTo: replyQueue, CorrelationID: "during"}); err != nil {
		t.Fatal(err)
	}
	startChild(t, "echo-server", url, requests, 1)
	if got, err := awaitReply(ctx, replies, "during"); err != nil || got != "echo: during" {
		t.Fatalf("reply from the restarted server: %q, %v", got, err)
	}
	if got, err := call(ctx, tr, requests, replies, "after"); err != nil || got != "echo: after" {
		t.Fatalf("call after the restart: %q, %v", got, err)
	}
}

// TestRedisMatchmakerUnreachable: a Redis that does not answer is a clear
// error at Open, not a hang.
func TestRedisMatchmakerUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := transport.Open(ctx, "zmq://?matchmaker=redis://127.0.0.1:1/0")
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("open with an unreachable Redis: %v", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("open hung until its deadline: %v", err)
	}
}
