package rpc_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/internal/oslo"
	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

// blocker's Block runs until its context ends, telling started first.
type blocker struct {
	started chan string
	ran     chan string
}

type blockArgs struct {
	ID string `json:"id"`
}

func (b blocker) Block(ctx context.Context, args blockArgs) error {
	b.started <- args.ID
	<-ctx.Done()
	return ctx.Err()
}

func (b blocker) Record(ctx context.Context, args blockArgs) error {
	b.ran <- args.ID
	return nil
}

// TestStopWithBacklogKeepsItsDeadline: with every worker busy and requests
// waiting, Stop returns at its deadline, having cancelled the handlers,
// and the requests that never ran go back to their queues: those on the
// topic queue for another server, and the one the server held, received
// on its own queue while it had no room to run it.
func TestStopWithBacklogKeepsItsDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr := open(t)
	busy := blocker{started: make(chan string, 10), ran: make(chan string, 10)}
	srv := startServer(t, tr, "work", busy, rpc.WithMaxConcurrency(1))
	client := newClient(t, tr)
	target := transport.Target{Topic: "work"}
	if err := client.Cast(ctx, target, "block", blockArgs{"first"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-busy.started:
	case <-ctx.Done():
		t.Fatal("the first request never started")
	}
	waiting := []string{"second", "third", "fourth"}
	for _, id := range waiting {
		if err := client.Cast(ctx, target, "record", blockArgs{id}); err != nil {
			t.Fatal(err)
		}
	}

	held := transport.Target{Topic: "work", Server: "s1"}
	if err := client.Cast(ctx, held, "record", blockArgs{"held"}); err != nil {
		t.Fatal(err)
	}
	// The server has it in hand, waiting for room to run it.
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for srv.Stats().Received < 2 {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("the server received %d requests, want 2", srv.Stats().Received)
		}
	}

	stopCtx, stopCancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer stopCancel()
	stopped := make(chan error, 1)
	go func() { stopped <- srv.Stop(stopCtx) }()
	select {
	case err := <-stopped:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Stop with a handler that outlives it: %v, want context.DeadlineExceeded", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Stop with a deadline of 200ms had not returned after 5s")
	}
	if err := srv.Stop(ctx); err != nil {
		t.Errorf("a second Stop once the first returned: %v", err)
	}
	if len(busy.ran) > 0 {
		t.Errorf("the stopping server ran %q, taken after its only worker was busy", <-busy.ran)
	}
	if n, err := tr.PurgeQueue(ctx, "work.s1"); err != nil || n != 1 {
		t.Errorf("the request the server held: %d in its queue after Stop (%v), want 1", n, err)
	}

	idle := blocker{started: make(chan string, 10), ran: make(chan string, 10)}
	srv2, err := rpc.NewServer(tr, transport.Target{Topic: "work", Server: "idle"}, []rpc.Endpoint{{Receiver: idle}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer srv2.Stop(ctx)
	got := map[string]bool{}
	for range waiting {
		select {
		case id := <-idle.ran:
			got[id] = true
		case <-ctx.Done():
			t.Fatalf("the next server got %v of the requests %v waiting when the first stopped", got, waiting)
		}
	}
	for _, id := range waiting {
		if !got[id] {
			t.Errorf("request %q lost", id)
		}
	}
}

// TestCallerGoneDoesNotHoldAWorker: a reply whose caller's queue is gone
// is retried for a minute, as oslo does, but not on the worker, and the
// heartbeats of such a call are not retried at all: a server with a
// single worker answers the next call as soon as the method returns.
func TestCallerGoneDoesNotHoldAWorker(t *testing.T) {
	monitor := 2.0 // a heartbeat every second
	tests := []struct {
		name string
		req  oslo.Request
	}{
		{"reply", oslo.Request{Method: "add", Args: []byte(`{"a": 1, "b": 2}`)}},
		{"heartbeats", oslo.Request{Method: "sleep", Args: []byte(`{"ms": 1300}`), Timeout: &monitor}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			tr := open(t)
			startCalc(t, tr, rpc.WithMaxConcurrency(1))
			req := tt.req
			req.MsgID, req.ReplyQ, req.UniqueID = oslo.NewID(), "reply_of_a_caller_gone", oslo.NewID()
			publishRequest(ctx, t, tr, &req)
			wantServing(ctx, t, newClient(t, tr, rpc.WithTimeout(5*time.Second)), "after one whose caller is gone")
		})
	}
}

// stubborn's Hold ignores its context: it returns when released.
type stubborn struct {
	started chan struct{}
	release chan struct{}
}

func (s stubborn) Hold(ctx context.Context, args struct{}) error {
	s.started <- struct{}{}
	<-s.release
	return nil
}

// TestLaterStopWaitsForHandlers: a Stop after one that gave up waits, in
// its own time, for the handler still running, rather than returning nil
// as if the server were drained.
func TestLaterStopWaitsForHandlers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr := open(t)
	s := stubborn{started: make(chan struct{}, 1), release: make(chan struct{})}
	srv := startServer(t, tr, "hold", s)
	client := newClient(t, tr)
	if err := client.Cast(ctx, transport.Target{Topic: "hold"}, "hold", nil); err != nil {
		t.Fatal(err)
	}
	<-s.started
	for i, wait := range []time.Duration{50 * time.Millisecond, 100 * time.Millisecond} {
		stopCtx, stopCancel := context.WithTimeout(ctx, wait)
		err := srv.Stop(stopCtx)
		stopCancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Stop %d with the handler still running: %v, want context.DeadlineExceeded", i+1, err)
		}
	}
	close(s.release)
	if err := srv.Stop(ctx); err != nil {
		t.Errorf("Stop once the handler returned: %v", err)
	}
}
