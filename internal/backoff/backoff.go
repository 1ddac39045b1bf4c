// Package backoff is the one schedule of waits between retries that
// Switchyard uses: drivers reconnecting to a broker, and publishes the rpc
// and notify layers retry.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is a schedule of waits: the first is Initial; each next one is
// the previous times Multiplier plus Step, up to Max. oslo.messaging's
// schedules fit it: kombu's reconnection grows by a step
// (rabbit_retry_backoff), its publish retries double.
type Backoff struct {
	// Initial is the first wait.
	Initial time.Duration
	// Multiplier grows each wait; below 1 it counts as 1.
	Multiplier float64
	// Step is added to each wait after the first.
	Step time.Duration
	// Max caps the waits; 0 is no cap.
	Max time.Duration
	// Jitter shortens each wait by a random fraction of it, up to Jitter
	// (0.5: by up to half), so that clients cut off together do not come
	// back together.
	Jitter float64
}

// Delay is the wait before retry n (0 for the first retry).
func (b Backoff) Delay(n int) time.Duration {
	return b.delay(n, rand.Float64)
}

func (b Backoff) delay(n int, random func() float64) time.Duration {
	d := b.Initial
	mult := max(b.Multiplier, 1)
	for i := 0; i < n && (b.Max == 0 || d < b.Max); i++ {
		d = time.Duration(float64(d)*mult) + b.Step
	}
	if b.Max > 0 {
		d = min(d, b.Max)
	}
	if b.Jitter > 0 {
		d -= time.Duration(float64(d) * min(b.Jitter, 1) * random())
	}
	return d
}

// Wait waits Delay(n), or until ctx ends, returning ctx's error then.
func (b Backoff) Wait(ctx context.Context, n int) error {
	t := time.NewTimer(b.Delay(n))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
