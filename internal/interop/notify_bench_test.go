package interop

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/conformance/bench"
	"github.com/switchyard-mq/switchyard/internal/brokertest"
)

// notifyBenchPublishers is how many notifiers publish at once on every
// side of BenchmarkNotify: the benchmark harness's default -inflight.
const notifyBenchPublishers = 16

// notifyBenchMaxSeconds bounds one pass of the Python side.
const notifyBenchMaxSeconds = 60

// notifyBenchChunk is how many notifications each side passes in turn
// in BenchmarkNotify/interleaved.
const notifyBenchChunk = 500

// BenchmarkNotify measures notifications on one RabbitMQ virtual host,
// in one run, three ways, each b.N notifications of 100-byte payloads
// from 16 notifiers at once to a listener with a pool, end to end (from
// the first publish until the listener has handled the last), in msg/s:
//
//   - notify/switchyard: notify.Notifier → notify.Listener (WithPool),
//   - notify/raw: amqp091-go making the same publishes with the same
//     guarantees and acks (see the notify case in conformance/bench:
//     persistent messages, each publish waiting for its confirm, to a
//     topic exchange bound to the notifier's "<topic>.info" queue and the
//     pool's queue, the listener acking each delivery with prefetch 64,
//     notify.Listener's default),
//   - python: oslo.messaging 14's Notifier (messagingv2) → a notification
//     listener with a pool (threading executor), timed inside the Python
//     process (testdata/notify_bench.py); oslo publishes persistent
//     messages with confirms too, from a pool of connections, and its
//     listener acks each message after its endpoint returns, with no
//     prefetch limit (oslo's rabbit_qos_prefetch_count=0).
//
// The first two are the switchyard bench command's notify case, under
// the same names as in the drivers' BenchmarkBackend. Every side has
// connections of its own; every side's publishers stay at most 1024
// notifications ahead of its listener. interleaved runs the three in
// ABBA turns of 500 notifications (bench.RunNotifyInterleaved), so that
// load from elsewhere weighs on each alike, and reports Switchyard's
// ratio to the raw loop and to Python:
//
//	SWITCHYARD_BROKERS=required go test -run '^$' -bench BenchmarkNotify -benchtime 4000x ./internal/interop/
func BenchmarkNotify(b *testing.B) {
	python := RequirePython(b)
	vhost := brokertest.NewRabbitVHost(b)
	bench.RunBenchmarks(b, vhost.URL, "notify")
	b.Run("python", func(b *testing.B) {
		py := startNotifyBench(b, python, vhost.URL, "bench_notify_py")
		ctx, cancel := context.WithTimeout(context.Background(), (notifyBenchMaxSeconds+30)*time.Second)
		defer cancel()
		b.ResetTimer()
		elapsed, err := py.pass(ctx, b.N)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		// Python's clock: ns/op is per notification, not per benchmark
		// iteration of this process.
		b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N), "ns/op")
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msg/s")
	})
	b.Run("interleaved", func(b *testing.B) {
		py := startNotifyBench(b, python, vhost.URL, "bench_notify_py_interleaved")
		bench.RunNotifyInterleaved(b, vhost.URL, notifyBenchChunk, bench.Turn{Name: "python", Pass: py.pass})
	})
}

// notifyBench is a running testdata/notify_bench.py, warmed up: its
// listener consumes, its notifiers are ready. It ends with the test.
type notifyBench struct {
	stdin io.WriteCloser
	lines chan string // stdout, line by line; closed at its end
	cmd   *exec.Cmd
}

// startNotifyBench starts notify_bench.py on url, with topic and a pool
// of its own, and waits until it is warmed up.
func startNotifyBench(b *testing.B, python, url, topic string) *notifyBench {
	b.Helper()
	cmd := exec.Command(python, script("notify_bench.py"), "--url", url, "--topic", topic, "--pool", topic+"_pool",
		"--publishers", strconv.Itoa(notifyBenchPublishers), "--size", "100", "--max-seconds", strconv.Itoa(notifyBenchMaxSeconds))
	cmd.Env = Env()
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	nb := &notifyBench{stdin: stdin, lines: make(chan string), cmd: cmd}
	go func() {
		defer close(nb.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			nb.lines <- sc.Text()
		}
	}()
	b.Cleanup(func() {
		_ = stdin.Close()
		for range nb.lines { // until it exits, or is killed
		}
		if err := cmd.Wait(); err != nil {
			b.Errorf("notify_bench.py: %v\n%s", err, stderr.String())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), peerStartTimeout+notifyBenchMaxSeconds*time.Second)
	defer cancel()
	var ready struct {
		Ready bool `json:"ready"`
	}
	if err := nb.read(ctx, &ready); err != nil || !ready.Ready {
		_ = cmd.Process.Kill()
		b.Fatalf("notify_bench.py did not get ready (%v)\n%s", err, stderr.String())
	}
	return nb
}

// read reads the next line of the script's output into v.
func (nb *notifyBench) read(ctx context.Context, v any) error {
	select {
	case line, ok := <-nb.lines:
		if !ok {
			return fmt.Errorf("notify_bench.py exited")
		}
		return json.Unmarshal([]byte(line), v)
	case <-ctx.Done():
		_ = nb.cmd.Process.Kill()
		return fmt.Errorf("notify_bench.py did not answer: %w", ctx.Err())
	}
}

// pass has the script pass n notifications and returns the time they
// took by its clock.
func (nb *notifyBench) pass(ctx context.Context, n int) (time.Duration, error) {
	if _, err := io.WriteString(nb.stdin, strconv.Itoa(n)+"\n"); err != nil {
		return 0, fmt.Errorf("notify_bench.py: %w", err)
	}
	var res struct {
		Count   int     `json:"count"`
		Elapsed float64 `json:"elapsed"`
	}
	if err := nb.read(ctx, &res); err != nil {
		return 0, err
	}
	if res.Count < n || res.Elapsed <= 0 {
		return 0, fmt.Errorf("notify_bench.py: %d of %d notifications handled in %.1f s", res.Count, n, res.Elapsed)
	}
	return time.Duration(res.Elapsed * float64(time.Second)), nil
}
