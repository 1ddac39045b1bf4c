package bench

import (
	"math"
	"slices"
	"testing"
	"time"
)

func TestLatencyQuantiles(t *testing.T) {
	tests := []struct {
		name     string
		samples  []time.Duration
		p50, p99 time.Duration
	}{
		{"one", []time.Duration{250 * time.Microsecond}, 250 * time.Microsecond, 250 * time.Microsecond},
		{"small exact", []time.Duration{3, 5, 7}, 5, 7},
		{"1 to 100 ms", func() []time.Duration {
			var s []time.Duration
			for i := 1; i <= 100; i++ {
				s = append(s, time.Duration(i)*time.Millisecond)
			}
			return s
		}(), 50 * time.Millisecond, 99 * time.Millisecond},
		{"an outlier", append(slices.Repeat([]time.Duration{time.Microsecond}, 99), time.Second), time.Microsecond, time.Microsecond},
		{"a minute", []time.Duration{time.Minute}, time.Minute, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l latencies
			for _, d := range tt.samples {
				l.record(d)
			}
			for _, q := range []struct {
				q    float64
				want time.Duration
			}{{0.5, tt.p50}, {0.99, tt.p99}} {
				got := l.quantile(q.q)
				if diff := math.Abs(float64(got-q.want)) / float64(q.want); diff > 1.0/latencySub {
					t.Errorf("quantile(%v) = %v, want %v within %.0f%%", q.q, got, q.want, 100.0/latencySub)
				}
			}
		})
	}
}
