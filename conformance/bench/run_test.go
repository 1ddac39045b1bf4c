package bench

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	_ "github.com/switchyard-mq/switchyard/drivers/memory"
	_ "github.com/switchyard-mq/switchyard/drivers/zmq"
	"github.com/switchyard-mq/switchyard/transport"
)

// tinyLimits are enough to see every case work, and quick.
var tinyLimits = Limits{Messages: 200, Duration: 2 * time.Second, Size: 100, Inflight: 4}

// newBackend is the backend of url, failing t if it cannot be.
func newBackend(t *testing.T, url string) *Backend {
	t.Helper()
	u, err := transport.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewBackend(u, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRun runs every case on the in-process backends, through Switchyard
// and the raw clients, and checks each result.
func TestRun(t *testing.T) {
	tests := []struct{ url, raw string }{
		{"memory://bench-run", "raw go channel"},
		{"zmq://bench-run", "raw zmq4"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			var progress bytes.Buffer
			results, err := Run(t.Context(), &progress, []*Backend{newBackend(t, tt.url)}, Cases(), tinyLimits)
			if err != nil {
				t.Fatal(err)
			}
			// Switchyard's run, then the raw client's; the notify case has
			// no raw side on these backends.
			type run struct {
				c      Case
				client string
			}
			var want []run
			for _, c := range Cases() {
				want = append(want, run{c, switchyardName})
				if !c.Notify {
					want = append(want, run{c, tt.raw})
				}
			}
			if len(results) != len(want) {
				t.Fatalf("%d results, want %d", len(results), len(want))
			}
			for i, r := range results {
				c, client := want[i].c, want[i].client
				if r.Case.Name != c.Name || r.Client != client || r.Backend != tt.url || r.Raw != (client != switchyardName) {
					t.Errorf("result %d is %s on %s through %s, want %s through %s", i, r.Case.Name, r.Backend, r.Client, c.Name, client)
				}
				if r.Ops != int64(tinyLimits.Messages) || r.Rate <= 0 || r.AllocsPerOp <= 0 {
					t.Errorf("%s through %s: %d ops, rate %v, %v allocs/op", r.Case.Name, r.Client, r.Ops, r.Rate, r.AllocsPerOp)
				}
				if (r.P50 > 0) != c.RPC || r.P99 < r.P50 {
					t.Errorf("%s through %s: p50 %v, p99 %v; want latencies for calls only", r.Case.Name, r.Client, r.P50, r.P99)
				}
				if hasRatio := !r.Raw && !c.Notify; (r.Ratio > 0) != hasRatio {
					t.Errorf("%s through %s: ratio %v", r.Case.Name, r.Client, r.Ratio)
				}
			}
			if lines := strings.Count(progress.String(), "\n"); lines != len(Cases()) {
				t.Errorf("%d progress lines, want one per case:\n%s", lines, progress.String())
			}
		})
	}
}

// TestRunInterrupted: Run stops after the run in progress when its
// context ends, with that run's result.
func TestRunInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	results, err := Run(ctx, &bytes.Buffer{}, []*Backend{newBackend(t, "memory://bench-interrupted")}, Cases(), tinyLimits)
	if len(results) != 1 || !errors.Is(err, context.Canceled) {
		t.Errorf("%d results, error %v; want 1 and context.Canceled", len(results), err)
	}
}

func TestNewBackend(t *testing.T) {
	tests := []struct {
		url, note, err string
	}{
		{url: "memory://"},
		{url: "zmq://"},
		{url: "nope://", err: `no driver for scheme "nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			u, err := transport.ParseURL(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			b, err := NewBackend(u, Options{})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.Label() != tt.url || b.Note() != tt.note || len(b.sides) != 2 {
				t.Errorf("label %q, note %q, %d sides", b.Label(), b.Note(), len(b.sides))
			}
		})
	}
}

// TestCalls runs the benchmark loop of calls: every call made once, by
// the callers asked for, with latencies when asked; an error fails it.
func TestCalls(t *testing.T) {
	var calls int
	r := testing.Benchmark(func(b *testing.B) {
		calls = b.N
		seen := make([]bool, b.N)
		Calls{Callers: 4, Unit: "rt/s", Latencies: true}.Run(b, func(i int) error {
			if seen[i] {
				return errors.New("a call made twice")
			}
			seen[i] = true
			return nil
		})
	})
	if r.N != calls || r.Extra["rt/s"] <= 0 || r.Extra["p50-µs"] < 0 || r.Extra["p99-µs"] < r.Extra["p50-µs"] {
		t.Errorf("N %d (calls %d), metrics %v", r.N, calls, r.Extra)
	}
	failed := testing.Benchmark(func(b *testing.B) {
		Calls{}.Run(b, func(int) error { return errors.New("broken") })
	})
	if failed.N != 0 {
		t.Errorf("a failing call: N %d, want the benchmark failed", failed.N)
	}
}
