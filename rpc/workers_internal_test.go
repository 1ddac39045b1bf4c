package rpc

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/transport"
)

// blocker's Block runs until release is closed, saying when it starts.
type blocker struct {
	started chan struct{}
	release chan struct{}
}

func (b blocker) Block(ctx context.Context, _ struct{}) error {
	b.started <- struct{}{}
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestWorkersOnDemand: a server starts with a goroutine per queue, starts
// more as requests come, runs no more than its max concurrency at once,
// and goes back to one per queue once they have been idle.
func TestWorkersOnDemand(t *testing.T) {
	for _, maxConcurrency := range []int{1, 8} {
		t.Run(fmt.Sprint("max", maxConcurrency), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			tr, err := transport.Open(ctx, fmt.Sprint("memory://workers-max", maxConcurrency))
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			b := blocker{started: make(chan struct{}), release: make(chan struct{})}
			target := transport.Target{Topic: "work", Server: "s1"}
			srv, err := NewServer(tr, target, []Endpoint{{Receiver: b}}, WithMaxConcurrency(maxConcurrency))
			if err != nil {
				t.Fatal(err)
			}
			srv.workerIdle = 20 * time.Millisecond
			if err := srv.Start(ctx); err != nil {
				t.Fatal(err)
			}
			defer srv.Stop(context.Background())
			queues := srv.runningWorkers()
			if queues != 3 {
				t.Fatalf("%d goroutines at start, want 3 (topic, server and fanout queues)", queues)
			}
			client, err := NewClient(tr)
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			// One more request than the bound: the bound's worth run at
			// once, the last waits for a worker.
			for range maxConcurrency + 1 {
				if err := client.Cast(ctx, transport.Target{Topic: "work"}, "block", nil); err != nil {
					t.Fatal(err)
				}
			}
			for i := range maxConcurrency {
				select {
				case <-b.started:
				case <-ctx.Done():
					t.Fatalf("%d of %d requests running at once", i, maxConcurrency)
				}
			}
			// Those running, and one waiting on each other queue.
			if got, want := srv.runningWorkers(), maxConcurrency+queues-1; got != want {
				t.Errorf("%d goroutines with %d requests running, want %d", got, maxConcurrency, want)
			}
			select {
			case <-b.started:
				t.Fatalf("more than %d requests running at once", maxConcurrency)
			default:
			}
			close(b.release)
			select {
			case <-b.started: // the last one, once a worker is free
			case <-ctx.Done():
				t.Fatal("the request past the bound never ran")
			}
			for srv.runningWorkers() != queues {
				select {
				case <-ctx.Done():
					t.Fatalf("%d goroutines after the requests ended, want %d once idle", srv.runningWorkers(), queues)
				case <-time.After(10 * time.Millisecond):
				}
			}
		})
	}
}

// runningWorkers is how many goroutines the server's pool runs now.
func (s *Server) runningWorkers() int { return s.requests.Goroutines() }
