package bench

import (
	"context"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// meter measures one run: operations done, the time they took, the
// allocations made meanwhile and, for calls, their latencies.
type meter struct {
	ops     atomic.Int64
	started atomic.Int64 // UnixNano when measuring began, 0 before
	// timer, when set, is a benchmark's timer: it runs only while the
	// measured part does, so that its ns/op and allocs/op are those of
	// the workload, not of setting it up.
	timer interface {
		ResetTimer()
		StopTimer()
	}

	mu      sync.Mutex
	lat     *latencies // merged from the callers; nil for streams
	elapsed time.Duration
	mallocs uint64 // heap allocations of the whole process while measuring
}

// done counts n operations (messages received, calls answered).
func (m *meter) done(n int64) { m.ops.Add(n) }

// measure runs fn, the measured part of a workload, with a context that
// ends after d. fn's loops stop at their count or when that context ends;
// an error they meet after it ended is the end of the run, not a failure
// (see stopped). Allocations are counted from runtime.MemStats, read once
// before and once after: two stops of the world per run.
func (m *meter) measure(ctx context.Context, d time.Duration, fn func(ctx context.Context) error) error {
	runtime.GC() // start every run from a collected heap
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.Mallocs
	mctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if m.timer != nil {
		m.timer.ResetTimer()
	}
	start := time.Now()
	m.started.Store(start.UnixNano())
	err := fn(mctx)
	elapsed := time.Since(start)
	if m.timer != nil {
		m.timer.StopTimer()
	}
	runtime.ReadMemStats(&ms)
	m.mu.Lock()
	m.elapsed, m.mallocs = elapsed, ms.Mallocs-before
	m.mu.Unlock()
	if ctx.Err() != nil {
		return ctx.Err() // interrupted, or out of setup time
	}
	return err
}

// addLatencies merges one caller's latencies.
func (m *meter) addLatencies(l *latencies) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lat == nil {
		m.lat = &latencies{}
	}
	m.lat.merge(l)
}

// latencies is a histogram of durations with buckets 1/latencySub wide
// relative to their value (3 %), so recording allocates nothing and
// millions of calls take a few kilobytes.
type latencies struct {
	counts [latencyBuckets]uint64
	n      uint64
}

const (
	latencySubBits = 5
	latencySub     = 1 << latencySubBits
	latencyBuckets = (64 - latencySubBits + 1) * latencySub
)

func latencyBucket(ns uint64) int {
	if ns < latencySub {
		return int(ns)
	}
	shift := bits.Len64(ns) - latencySubBits - 1
	return (shift+1)*latencySub + int(ns>>shift) - latencySub
}

// latencyValue is the middle of bucket b.
func latencyValue(b int) time.Duration {
	if b < latencySub {
		return time.Duration(b)
	}
	shift := b/latencySub - 1
	low := uint64(latencySub+b%latencySub) << shift
	return time.Duration(low + (uint64(1)<<shift)/2)
}

func (l *latencies) record(d time.Duration) {
	l.counts[latencyBucket(uint64(max(d, 0)))]++
	l.n++
}

func (l *latencies) merge(o *latencies) {
	for i, c := range o.counts {
		l.counts[i] += c
	}
	l.n += o.n
}

// quantile returns the duration below which a fraction q of the recorded
// ones lie (to the bucket's precision).
func (l *latencies) quantile(q float64) time.Duration {
	if l.n == 0 {
		return 0
	}
	rank := uint64(q*float64(l.n) + 0.5)
	rank = min(max(rank, 1), l.n)
	var seen uint64
	for b, c := range l.counts {
		if seen += c; seen >= rank {
			return latencyValue(b)
		}
	}
	return latencyValue(latencyBuckets - 1)
}
