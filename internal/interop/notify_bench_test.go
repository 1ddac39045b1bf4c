package interop

import (
	"bytes"
	"context"
	"encoding/json"
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
//     pool's queue, the listener acking each delivery with prefetch 2),
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
// notifications ahead of its listener. Measure in alternated turns from
// a test binary built once (see BENCHMARKS.md):
//
//	SWITCHYARD_BROKERS=required go test -run '^$' -bench BenchmarkNotify -benchtime 5000x ./internal/interop/
func BenchmarkNotify(b *testing.B) {
	python := RequirePython(b)
	vhost := brokertest.NewRabbitVHost(b)
	bench.RunBenchmarks(b, vhost.URL, "notify")
	b.Run("python", func(b *testing.B) {
		const maxSeconds = 60
		ctx, cancel := context.WithTimeout(context.Background(), (maxSeconds+30)*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, python, script("notify_bench.py"), "--url", vhost.URL,
			"--topic", "bench_notify_py", "--pool", "bench_notify_py_pool", "--n", strconv.Itoa(b.N),
			"--publishers", strconv.Itoa(notifyBenchPublishers), "--size", "100", "--max-seconds", strconv.Itoa(maxSeconds))
		cmd.Env = Env()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("notify_bench.py: %v\n%s", err, stderr.Bytes())
		}
		var res struct {
			Count   int     `json:"count"`
			Elapsed float64 `json:"elapsed"`
		}
		if err := json.Unmarshal(out, &res); err != nil {
			b.Fatalf("notify_bench.py printed %q: %v\n%s", out, err, stderr.Bytes())
		}
		if res.Count < b.N || res.Elapsed <= 0 {
			b.Fatalf("notify_bench.py: %d of %d notifications handled in %.1f s\n%s", res.Count, b.N, res.Elapsed, stderr.Bytes())
		}
		// Python's clock: ns/op is per notification, not per benchmark
		// iteration of this process.
		b.ReportMetric(res.Elapsed*1e9/float64(res.Count), "ns/op")
		b.ReportMetric(float64(res.Count)/res.Elapsed, "msg/s")
	})
}
