package backoff

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	const s = time.Second
	tests := []struct {
		name string
		b    Backoff
		want []time.Duration
	}{
		{"rabbit: doubles and steps, capped", Backoff{Initial: s, Multiplier: 2, Step: 2 * s, Max: 30 * s},
			[]time.Duration{s, 4 * s, 10 * s, 22 * s, 30 * s, 30 * s}},
		{"amqp1: steps, capped", Backoff{Initial: s, Step: 2 * s, Max: 6 * s},
			[]time.Duration{s, 3 * s, 5 * s, 6 * s, 6 * s}},
		{"publish retry: doubles", Backoff{Initial: 100 * time.Millisecond, Multiplier: 2, Max: 2 * s},
			[]time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond, 2 * s}},
		{"no cap", Backoff{Initial: s, Multiplier: 3}, []time.Duration{s, 3 * s, 9 * s}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []time.Duration
			for n := range tt.want {
				got = append(got, tt.b.delay(n, func() float64 { return 0 }))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("delays %v, want %v", got, tt.want)
			}
		})
	}
}

func TestJitterShortensByUpToItsFraction(t *testing.T) {
	b := Backoff{Initial: 10 * time.Second, Jitter: 0.5}
	if got := b.delay(0, func() float64 { return 1 }); got != 5*time.Second {
		t.Errorf("most jitter: %v, want 5s", got)
	}
	if got := b.delay(0, func() float64 { return 0 }); got != 10*time.Second {
		t.Errorf("no jitter: %v, want 10s", got)
	}
	for range 100 {
		if d := b.Delay(0); d < 5*time.Second || d > 10*time.Second {
			t.Fatalf("Delay(0) = %v, outside [5s, 10s]", d)
		}
	}
}

func TestWaitEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := (Backoff{Initial: time.Hour}).Wait(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait with a cancelled context: %v, want context.Canceled", err)
	}
	if err := (Backoff{Initial: time.Millisecond}).Wait(context.Background(), 0); err != nil {
		t.Errorf("Wait: %v", err)
	}
}
