package rpc

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// waitDone fails the test unless ch closes within a second.
func waitDone(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(time.Second):
		t.Fatalf("%s: Done not closed", what)
	}
}

// TestLazyContext holds lazyContext to context.WithDeadline's behaviour,
// whether or not Done was asked for before the context ended.
func TestLazyContext(t *testing.T) {
	defer goleak.VerifyNone(t)
	soon := func() time.Time { return time.Now().Add(20 * time.Millisecond) }
	for _, tc := range []struct {
		name      string
		deadline  func() time.Time
		end       func(cancelParent, cancel context.CancelFunc)
		doneFirst bool
		want      error
	}{
		{"deadline passes, Done asked first", soon, nil, true, context.DeadlineExceeded},
		{"deadline passes, Err only", soon, nil, false, context.DeadlineExceeded},
		{"parent cancelled, Done asked first", nil, func(p, _ context.CancelFunc) { p() }, true, context.Canceled},
		{"parent cancelled, Err only", nil, func(p, _ context.CancelFunc) { p() }, false, context.Canceled},
		{"cancelled by its owner, Done asked first", soon, func(_, c context.CancelFunc) { c() }, true, context.Canceled},
		{"cancelled by its owner, Err only", soon, func(_, c context.CancelFunc) { c() }, false, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent, cancelParent := context.WithCancel(context.Background())
			defer cancelParent()
			deadline := time.Time{}
			if tc.deadline != nil {
				deadline = tc.deadline()
			}
			ctx := newLazyContext(parent, deadline, nil)
			cancel := ctx.end
			defer cancel()
			if err := ctx.Err(); err != nil {
				t.Fatalf("Err before the end: %v", err)
			}
			var done <-chan struct{}
			if tc.doneFirst {
				done = ctx.Done()
				select {
				case <-done:
					t.Fatal("Done closed before the end")
				default:
				}
			}
			if tc.end != nil {
				tc.end(cancelParent, cancel)
			}
			if !tc.doneFirst {
				// Without a Done channel nothing is told: Err finds out.
				poll := time.NewTicker(time.Millisecond)
				defer poll.Stop()
				deadlineAt := time.Now().Add(time.Second)
				for ctx.Err() == nil && time.Now().Before(deadlineAt) {
					<-poll.C
				}
				done = ctx.Done()
			}
			waitDone(t, tc.name, done)
			if err := ctx.Err(); !errors.Is(err, tc.want) {
				t.Errorf("Err = %v, want %v", err, tc.want)
			}
			if err := context.Cause(ctx); !errors.Is(err, tc.want) {
				t.Errorf("Cause = %v, want %v", err, tc.want)
			}
			if ctx.Done() != done {
				t.Error("Done returned another channel")
			}
		})
	}
}

func TestLazyContextDeadlineAndValues(t *testing.T) {
	parentDeadline := time.Now().Add(time.Hour)
	type key struct{}
	parent, cancel := context.WithDeadline(context.WithValue(context.Background(), key{}, "v"), parentDeadline)
	defer cancel()
	rc := RequestContext{"user": "alice"}

	ctx := newLazyContext(parent, time.Now().Add(2*time.Hour), rc)
	end := ctx.end
	defer end()
	if d, ok := ctx.Deadline(); !ok || !d.Equal(parentDeadline) {
		t.Errorf("Deadline = %v, %v; want the parent's earlier %v", d, ok, parentDeadline)
	}
	if got := RequestContextFrom(ctx); got["user"] != "alice" {
		t.Errorf("request context = %v", got)
	}
	if got := ctx.Value(key{}); got != "v" {
		t.Errorf("parent's value = %v", got)
	}
	// A child made with the context package ends with it.
	child, endChild := context.WithCancel(ctx)
	defer endChild()
	end()
	waitDone(t, "child", child.Done())
}

// TestCallTimerEndsItsContext: a call's context needs no timer of its
// own; the call's pendingCall timer ends it, and the wait, at the
// deadline. A call released before its deadline leaves both alone.
func TestCallTimerEndsItsContext(t *testing.T) {
	defer goleak.VerifyNone(t)
	var s clientShared
	for _, tc := range []struct {
		name         string
		timeout      time.Duration
		releaseEarly bool
	}{
		{"the deadline passes", 20 * time.Millisecond, false},
		{"released first", time.Hour, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			deadline := time.Now().Add(tc.timeout)
			ctx := newLazyContext(context.Background(), deadline, nil)
			defer ctx.end()
			pc := s.newPending(ctx, deadline)
			done := ctx.Done()
			if ctx.timer != nil {
				t.Fatal("the call's context made a timer of its own")
			}
			if tc.releaseEarly {
				s.release("id", pc)
				if err := ctx.Err(); err != nil {
					t.Fatalf("Err after an early release: %v", err)
				}
				return
			}
			waitDone(t, "the call's context", done)
			if err := ctx.Err(); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Err = %v, want DeadlineExceeded", err)
			}
			<-pc.notify
			if _, _, err := pc.take(); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("the wait ended with %v, want DeadlineExceeded", err)
			}
			s.release("id", pc)
		})
	}
}
