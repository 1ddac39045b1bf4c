package bench

import (
	"cmp"
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/transport"
)

// The limits of RunBenchmarks' runs besides b.N: the switchyard bench
// command's defaults.
const (
	benchmarkSize     = 100
	benchmarkInflight = 16
	// benchmarkBound bounds a run's measured part: b.N operations take
	// far less on a backend that works.
	benchmarkBound = 2 * time.Minute
)

// RunBenchmarks runs every case (or, given names, those cases) on the
// backend of url as sub-benchmarks of b named case/side
// (publish/switchyard, publish/raw, …, notify/raw), in the manner of
// go-cloud's drivertest.RunBenchmarks: every driver's tests call it, so
// that every backend is measured by the same workloads, under the same
// names and by the same code as the switchyard bench command's. A side
// makes b.N messages or calls, of 100-byte bodies, with 16 callers in
// rpc-inflight and 16 notifiers in notify, and reports its rate in the
// case's unit (msg/s, call/s) and, for calls, the p50-µs and p99-µs
// latencies; allocs/op counts the whole process. The driver of url's
// scheme must be registered; the raw side runs where the scheme has a
// raw client (for notify, where it has raw notifications: rabbit://).
func RunBenchmarks(b *testing.B, url string, names ...string) {
	b.Helper()
	cases := Cases()
	if len(names) > 0 {
		var err error
		if cases, err = SelectCases(strings.Join(names, ",")); err != nil {
			b.Fatal(err)
		}
	}
	u, err := transport.ParseURL(url)
	if err != nil {
		b.Fatal(err)
	}
	warnings := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	backend, err := NewBackend(u, Options{Logger: warnings})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range cases {
		b.Run(c.Name, func(b *testing.B) {
			for _, cl := range backend.sidesFor(c) {
				b.Run(sideName(cl), func(b *testing.B) { runBenchmark(b, c, cl) })
			}
		})
	}
}

// sideName names a client's sub-benchmark: switchyard, or raw.
func sideName(cl client) string {
	if cl.name() == switchyardName {
		return switchyardName
	}
	return "raw"
}

// runBenchmark runs c through cl for b.N operations, timing only the
// measured part.
func runBenchmark(b *testing.B, c Case, cl client) {
	lim := Limits{Messages: b.N, Duration: benchmarkBound, Size: benchmarkSize, Inflight: benchmarkInflight}
	ctx, cancel := context.WithTimeout(b.Context(), lim.Duration+setupTimeout)
	defer cancel()
	b.ReportAllocs()
	m := &meter{timer: b}
	if err := runCase(ctx, c, cl, lim, m); err != nil {
		b.Fatalf("%s: %v", cl.name(), err)
	}
	r := newResult(c, cl, m, nil)
	if r.Ops < int64(b.N) {
		b.Fatalf("%s: %d of %d operations within %v", cl.name(), r.Ops, b.N, lim.Duration)
	}
	b.ReportMetric(r.Rate, c.Unit)
	if c.RPC {
		b.ReportMetric(microseconds(r.P50), "p50-µs")
		b.ReportMetric(microseconds(r.P99), "p99-µs")
	}
}

func microseconds(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// Calls is a benchmark of calls (RPC calls, request/reply round trips)
// for the drivers' and rpc's own benchmarks, those the cases do not
// cover, so that they count and report calls as the cases do.
type Calls struct {
	// Callers is how many goroutines call at once, each waiting for its
	// call to return before it makes the next; 0 is 1.
	Callers int
	// Unit names the rate's metric; "" is calls/s.
	Unit string
	// Latencies adds each call's latency percentiles, p50-µs and p99-µs,
	// at the cost of reading the clock twice per call.
	Latencies bool
}

// Run resets b's timer, makes b.N calls of call, numbered 0 to b.N-1,
// stops the timer and reports their rate and, with Latencies, their
// latencies; b.ReportAllocs is on. The first error stops the calls and
// fails b.
func (c Calls) Run(b *testing.B, call func(i int) error) {
	callers := max(c.Callers, 1)
	lats := make([]latencies, callers)
	var next atomic.Int64
	var failed atomic.Bool
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for g := range callers {
		wg.Go(func() {
			for !failed.Load() {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				var t0 time.Time
				if c.Latencies {
					t0 = time.Now()
				}
				if err := call(int(i)); err != nil {
					once.Do(func() { first = err; failed.Store(true) })
					return
				}
				if c.Latencies {
					lats[g].record(time.Since(t0))
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if first != nil {
		b.Fatal(first)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), cmp.Or(c.Unit, "calls/s"))
	if c.Latencies {
		all := &lats[0]
		for i := range lats[1:] {
			all.merge(&lats[i+1])
		}
		b.ReportMetric(microseconds(all.quantile(0.50)), "p50-µs")
		b.ReportMetric(microseconds(all.quantile(0.99)), "p99-µs")
	}
}
