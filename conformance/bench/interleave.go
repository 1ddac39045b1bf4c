package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/transport"
)

// Turn is a side of RunNotifyInterleaved from outside the harness (an
// oslo.messaging process, say), set up and warmed up by its caller.
type Turn struct {
	// Name names its metrics: <Name>-msg/s, switchyard/<Name>.
	Name string
	// Pass passes n notifications, 16 notifiers at once, and returns the
	// time they took, from the first publish until the last was handled.
	Pass func(ctx context.Context, n int) (time.Duration, error)
}

// RunNotifyInterleaved measures the notify case on the backend of url
// through Switchyard and through the raw client (and through others, if
// given) taking turns in one run, so that load from elsewhere on the
// machine weighs on every side alike: the sides are set up and warmed up
// once, then pass chunk notifications each (16 notifiers, 100-byte
// payloads, as RunBenchmarks' notify case) in ABBA order (Switchyard,
// raw, others…, others…, raw, Switchyard, …) until each has passed b.N.
// It reports each side's rate over its own turns (switchyard-msg/s,
// raw-msg/s, <other>-msg/s), Switchyard's ratio to each other side
// (switchyard/raw, …) and the median of the ratios of Switchyard's turns
// to the raw client's taken side by side (median-pair-ratio). The scheme
// must have raw notifications (rabbit://).
func RunNotifyInterleaved(b *testing.B, url string, chunk int, others ...Turn) {
	b.Helper()
	u, err := transport.ParseURL(url)
	if err != nil {
		b.Fatal(err)
	}
	warnings := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	backend, err := NewBackend(u, Options{Logger: warnings})
	if err != nil {
		b.Fatal(err)
	}
	c, err := SelectCases("notify")
	if err != nil {
		b.Fatal(err)
	}
	sides := backend.sidesFor(c[0])
	if len(sides) != 2 {
		b.Fatalf("%s: no raw notifications to take turns with", backend.Label())
	}
	lim := Limits{Size: benchmarkSize}
	ctx, cancel := context.WithTimeout(b.Context(), benchmarkBound+setupTimeout)
	defer cancel()
	var turns []Turn
	for _, cl := range sides {
		r, err := cl.(notifier).notifyRig(ctx, lim)
		if err != nil {
			b.Fatalf("%s: %v", cl.name(), err)
		}
		defer func() {
			if err := r.close(); err != nil {
				b.Errorf("%s: %v", cl.name(), err)
			}
		}()
		if err := r.warm(ctx); err != nil {
			b.Fatalf("%s: %v", cl.name(), err)
		}
		turns = append(turns, Turn{Name: sideName(cl), Pass: func(ctx context.Context, n int) (time.Duration, error) {
			start := time.Now()
			err := r.pass(ctx, n, benchmarkInflight, nil)
			if err == nil && ctx.Err() != nil {
				err = fmt.Errorf("not done within %v: %w", benchmarkBound, ctx.Err())
			}
			return time.Since(start), err
		}})
	}
	turns = append(turns, others...)
	elapsed := make([]time.Duration, len(turns))
	var ratios []float64
	b.ResetTimer()
	for done, round := 0, 0; done < b.N; done, round = done+chunk, round+1 {
		n := min(chunk, b.N-done)
		took := make([]time.Duration, len(turns))
		for k := range turns {
			i := k
			if round%2 == 1 {
				i = len(turns) - 1 - k
			}
			d, err := turns[i].Pass(ctx, n)
			if err != nil {
				b.Fatalf("%s: %v", turns[i].Name, err)
			}
			took[i] = d
			elapsed[i] += d
		}
		ratios = append(ratios, took[1].Seconds()/took[0].Seconds())
	}
	b.StopTimer()
	rate := func(i int) float64 { return float64(b.N) / elapsed[i].Seconds() }
	for i, t := range turns {
		b.ReportMetric(rate(i), t.Name+"-msg/s")
		if i > 0 {
			b.ReportMetric(rate(0)/rate(i), "switchyard/"+t.Name)
		}
	}
	slices.Sort(ratios)
	b.ReportMetric(median(ratios), "median-pair-ratio")
}

// median is the median of sorted values.
func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}
