package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"math/bits"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// meter measures one run: operations done, the time they took, the
// allocations made meanwhile and, for calls, their latencies.
type meter struct {
	ops     atomic.Int64
	started atomic.Int64 // UnixNano when measuring began, 0 before

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
	start := time.Now()
	m.started.Store(start.UnixNano())
	err := fn(mctx)
	elapsed := time.Since(start)
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

// stopped returns nil when err met a loop after its context ended (the
// run's bound, or another loop's failure), and err otherwise. A deadline
// that has passed counts as ended even before the context says so: a call
// bounded by it (an RPC timeout) may fail a moment earlier.
func stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	if deadline, ok := ctx.Deadline(); ok && !time.Now().Before(deadline) {
		return nil
	}
	return err
}

// runAll runs fns concurrently and waits for them all; the first error
// cancels the others' context and is returned.
func runAll(ctx context.Context, fns ...func(ctx context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for _, fn := range fns {
		wg.Go(func() {
			if err := fn(ctx); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		})
	}
	wg.Wait()
	return first
}

// streamWindow is how many messages a publisher may be ahead of its
// consumer, as a Go channel of that capacity would be: both sides then
// measure a steady flow, not a queue growing for the whole run.
const streamWindow = 1024

// window keeps a publisher at most streamWindow messages ahead of its
// consumer. One publisher and one consumer use it.
type window struct {
	outstanding atomic.Int64
	wake        chan struct{}
}

func newWindow() *window { return &window{wake: make(chan struct{}, 1)} }

// acquire waits until the publisher may send one more message.
func (w *window) acquire(ctx context.Context) error {
	for w.outstanding.Load() >= streamWindow {
		select {
		case <-w.wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	w.outstanding.Add(1)
	return nil
}

// release marks one message received, waking a waiting publisher when
// half the window has drained (a full window always drains past half).
func (w *window) release() {
	if w.outstanding.Add(-1) == streamWindow/2 {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// streamLoop is the publish→consume workload: one publisher and one
// consumer, total messages, at most streamWindow in flight. receive must
// return when its context ends.
func streamLoop(ctx context.Context, total int, m *meter, publish, receive func(ctx context.Context) error) error {
	w := newWindow()
	return runAll(ctx,
		func(ctx context.Context) error {
			for range total {
				if err := w.acquire(ctx); err != nil {
					return stopped(ctx, err)
				}
				if err := publish(ctx); err != nil {
					return stopped(ctx, fmt.Errorf("publish: %w", err))
				}
			}
			return nil
		},
		func(ctx context.Context) error {
			for range total {
				if err := receive(ctx); err != nil {
					return stopped(ctx, fmt.Errorf("receive: %w", err))
				}
				m.done(1)
				w.release()
			}
			return nil
		})
}

// callLoop is the RPC workload: callers goroutines making total calls
// between them, each waiting for its reply before the next, recording
// every call's latency. call's second argument is the caller's index.
func callLoop(ctx context.Context, total, callers int, m *meter, call func(ctx context.Context, caller int) error) error {
	var tickets atomic.Int64
	fns := make([]func(context.Context) error, callers)
	for i := range fns {
		fns[i] = func(ctx context.Context) error {
			lat := &latencies{}
			defer m.addLatencies(lat)
			for ctx.Err() == nil && tickets.Add(1) <= int64(total) {
				start := time.Now()
				if err := call(ctx, i); err != nil {
					return stopped(ctx, fmt.Errorf("call: %w", err))
				}
				lat.record(time.Since(start))
				m.done(1)
			}
			return nil
		}
	}
	return runAll(ctx, fns...)
}

// benchName returns a unique name for a queue, exchange or topic of one
// run, so that runs never meet each other's messages, nor other users'.
func benchName(what string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "switchyard-bench-" + what + "-" + hex.EncodeToString(b[:])
}

// benchBody returns a message body of size bytes.
func benchBody(size int) []byte { return bytes.Repeat([]byte("x"), size) }

// cleanupContext bounds cleaning up after a run, even an interrupted one.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
}

// benchResult is one run's outcome.
type benchResult struct {
	c       benchCase
	backend string // the URL, without password
	family  string
	client  string
	raw     bool
	ops     int64
	elapsed time.Duration
	rate    float64 // ops per second
	// p50 and p99 are call latencies; zero for streams.
	p50, p99    time.Duration
	allocsPerOp float64
	ratio       float64 // Switchyard's rate over the raw one's; 0 if none
	err         error
}

func (r *benchResult) fill(m *meter) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r.ops, r.elapsed = m.ops.Load(), m.elapsed
	if r.elapsed > 0 {
		r.rate = float64(r.ops) / r.elapsed.Seconds()
	}
	if r.ops > 0 {
		r.allocsPerOp = float64(m.mallocs) / float64(r.ops)
	}
	if m.lat != nil {
		r.p50, r.p99 = m.lat.quantile(0.50), m.lat.quantile(0.99)
	}
}

// setRatios sets each Switchyard result's ratio to the raw result of the
// same case and backend.
func setRatios(results []benchResult) {
	for i := range results {
		r := &results[i]
		if r.raw || r.err != nil || r.rate == 0 {
			continue
		}
		for _, raw := range results {
			if raw.raw && raw.err == nil && raw.c.name == r.c.name && raw.backend == r.backend && raw.rate > 0 {
				r.ratio = r.rate / raw.rate
			}
		}
	}
}

// progress shows the runs as they go: on a terminal, one line per case
// and backend, rewritten in place (\r) while its runs go on; elsewhere, that
// line once its runs are over.
type progress struct {
	w    io.Writer
	live bool
	// width bounds the text rewritten in place: a line the terminal wraps
	// can no longer be rewritten with \r.
	width int
}

func newProgress(w io.Writer) *progress {
	width := 80
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 20 {
		width = n
	}
	return &progress{w: w, live: isTerminal(w), width: width}
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// progressLine is one case's line for one backend.
type progressLine struct {
	p      *progress
	prefix string
	parts  []string // finished runs
	mu     sync.Mutex
	width  int // runes of the text last written, to blank what a shorter one leaves
}

func (p *progress) line(c benchCase, b *benchBackend) *progressLine {
	return &progressLine{p: p, prefix: fmt.Sprintf("%-13s %s:", c.name, b.label)}
}

// show rewrites the line in place with the finished runs and current,
// cut to the terminal's width.
func (l *progressLine) show(current string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	text := l.text(current)
	if runes := []rune(text); len(runes) >= l.p.width {
		text = string(runes[:l.p.width-2]) + "…"
	}
	l.rewrite(text)
}

// rewrite replaces the text on the line, blanking what a shorter text
// leaves of the last. Called with l.mu held.
func (l *progressLine) rewrite(text string) {
	n := utf8.RuneCountInString(text)
	fmt.Fprintf(l.p.w, "\r%s%s", text, strings.Repeat(" ", max(l.width-n, 0)))
	l.width = n
}

func (l *progressLine) text(current string) string {
	parts := l.parts
	if current != "" {
		parts = append(parts[:len(parts):len(parts)], current)
	}
	return l.prefix + " " + strings.Join(parts, " | ")
}

// watch shows a run's rate so far, four times a second, until the
// returned stop is called; only on a terminal.
func (l *progressLine) watch(client, unit string, m *meter) (stop func()) {
	if !l.p.live {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		l.show(client + " …")
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				started := m.started.Load()
				if started == 0 {
					continue // still setting up
				}
				elapsed := time.Since(time.Unix(0, started))
				l.show(fmt.Sprintf("%s %s %s … %.1fs", client, formatRate(float64(m.ops.Load())/elapsed.Seconds()), unit, elapsed.Seconds()))
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// result adds a finished run to the line.
func (l *progressLine) result(r benchResult) {
	part := fmt.Sprintf("%s %s %s", r.client, formatRate(r.rate), r.c.unit)
	if r.err != nil {
		part = r.client + " failed"
	}
	l.mu.Lock()
	l.parts = append(l.parts, part)
	l.mu.Unlock()
	if l.p.live {
		l.show("")
	}
}

// finish ends the line, whole: it is rewritten no more, so it may wrap.
func (l *progressLine) finish() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.p.live {
		l.rewrite(l.text(""))
		fmt.Fprintln(l.p.w)
		return
	}
	fmt.Fprintln(l.p.w, l.text(""))
}
