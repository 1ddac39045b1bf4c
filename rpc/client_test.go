package rpc_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/internal/oslo"
	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

// startCalc starts a calc server on topic "calc" for the test.
func startCalc(t *testing.T, tr *transport.Transport, opts ...rpc.ServerOption) *rpc.Server {
	t.Helper()
	return startServer(t, tr, "calc", calc{}, opts...)
}

// calcClient starts calc on a transport of the test's own and returns a
// client of it, closed when the test ends.
func calcClient(t *testing.T) *rpc.Client {
	t.Helper()
	tr := open(t)
	startCalc(t, tr)
	client, err := rpc.NewClient(tr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

// startServer starts, for the test, server s1 on topic with receiver as
// its one endpoint.
func startServer(t *testing.T, tr *transport.Transport, topic string, receiver any, opts ...rpc.ServerOption) *rpc.Server {
	t.Helper()
	srv, err := rpc.NewServer(tr, transport.Target{Topic: topic, Server: "s1"}, []rpc.Endpoint{{Receiver: receiver}}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop(context.Background()) })
	return srv
}

// newClient returns a client closed when the test ends.
func newClient(t *testing.T, tr *transport.Transport, opts ...rpc.Option) *rpc.Client {
	t.Helper()
	client, err := rpc.NewClient(tr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

// TestReplyQueueLostRecovers: when the client's reply consumer ends (an
// operator deleted the reply queue, the broker cancelled it), the calls
// waiting fail at once and a later call declares a new reply queue,
// instead of every call waiting out its timeout.
func TestReplyQueueLostRecovers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr := open(t)
	startCalc(t, tr)
	client, err := rpc.NewClient(tr, rpc.WithTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	// A call nobody answers shows the client's reply queue.
	spy, err := tr.DeclareQueue(ctx, transport.Queue{Name: "spy"})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Bind(ctx, transport.Binding{Exchange: "openstack", Queue: spy, Key: "spy"}); err != nil {
		t.Fatal(err)
	}
	requests, err := tr.Consume(ctx, spy, transport.ConsumeOptions{AutoAck: true})
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan error, 1)
	go func() { waiting <- client.Call(ctx, transport.Target{Topic: "spy"}, "nobody", nil, nil) }()
	d, err := requests.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req, err := oslo.UnwrapRequest(d.Body)
	if err != nil {
		t.Fatal(err)
	}

	began := time.Now()
	if _, err := tr.DeleteQueue(ctx, req.ReplyQ); err != nil {
		t.Fatal(err)
	}
	if err := <-waiting; err == nil || errors.Is(err, transport.ErrTimeout) {
		t.Errorf("the call waiting when its reply queue went: %v, want a failure other than a timeout", err)
	}
	if took := time.Since(began); took > 500*time.Millisecond {
		t.Errorf("the waiting call failed %v after its reply queue went", took)
	}
	var sum int
	if err := client.Call(ctx, transport.Target{Topic: "calc"}, "add", addArgs{1, 2}, &sum); err != nil || sum != 3 {
		t.Errorf("a call after the reply queue went: %d, %v", sum, err)
	}
}

// TestCallsRacingCloseEndPromptly: calls in flight when the client closes
// end at once, answered or with ErrClosed, never by waiting out their
// timeout, however they interleave with Close.
func TestCallsRacingCloseEndPromptly(t *testing.T) {
	for round := range 20 {
		// A transport and server of its own each round: replies to the
		// closed client's deleted queue keep the last server retrying.
		tr, err := transport.Open(context.Background(), fmt.Sprintf("memory://%s-%d", t.Name(), round))
		if err != nil {
			t.Fatal(err)
		}
		startCalc(t, tr)
		client, err := rpc.NewClient(tr, rpc.WithTimeout(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var closedAt atomic.Int64
		errs := make(chan error, 30)
		for range 30 {
			wg.Go(func() {
				err := client.Call(context.Background(), transport.Target{Topic: "calc"}, "sleep", map[string]int{"ms": 1}, nil)
				if at := closedAt.Load(); at != 0 && time.Since(time.Unix(0, at)) > 5*time.Second {
					errs <- fmt.Errorf("a call still waiting 5s after Close: %w", err)
				} else if err != nil && !errors.Is(err, transport.ErrClosed) {
					errs <- err
				}
			})
		}
		if round%2 == 1 { // half the rounds close with calls surely in flight
			var n int
			if err := client.Call(context.Background(), transport.Target{Topic: "calc"}, "add", addArgs{1, 1}, &n); err != nil {
				t.Fatal(err)
			}
		}
		closedAt.Store(time.Now().UnixNano())
		if err := client.Close(); err != nil {
			t.Errorf("round %d: Close: %v", round, err)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("round %d: %v", round, err)
		}
		tr.Close()
	}
}

// TestCallMonitorHeartbeats: a server sends heartbeats every
// int(_timeout)/2 seconds, 1.5 s for a 3 s monitor, so a call longer than
// its monitor lives; under 2 s it sends none, as a Python server does, so
// such a call fails at its monitor timeout (a sub-second monitor counts as
// the whole second sent on the wire).
func TestCallMonitorHeartbeats(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := open(t)
	startCalc(t, tr)
	client, err := rpc.NewClient(tr, rpc.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	tests := []struct {
		monitor     time.Duration
		sleepMs     int
		wantTimeout bool
	}{
		{3 * time.Second, 4000, false},
		{time.Second, 2500, true},
		{300 * time.Millisecond, 2500, true},
	}
	for _, tt := range tests {
		began := time.Now()
		err := client.Prepare(rpc.WithCallMonitorTimeout(tt.monitor)).Call(ctx, transport.Target{Topic: "calc"}, "sleep", map[string]int{"ms": tt.sleepMs}, nil)
		took := time.Since(began)
		switch {
		case !tt.wantTimeout && err != nil:
			t.Errorf("a %dms call with a %v call monitor: %v", tt.sleepMs, tt.monitor, err)
		case tt.wantTimeout && !errors.Is(err, transport.ErrTimeout):
			t.Errorf("a %dms call with a %v call monitor: %v, want ErrTimeout", tt.sleepMs, tt.monitor, err)
		case tt.wantTimeout && (took < time.Second || took > 3*time.Second):
			t.Errorf("a %dms call with a %v call monitor failed after %v, want about 1s", tt.sleepMs, tt.monitor, took)
		}
	}
}

// TestCallRefusesUnusableResult: a result Call could not store into is an
// ErrInvalid before anything is sent, so the remote method does not run.
func TestCallRefusesUnusableResult(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := calcClient(t)
	var typedNil *int
	for _, result := range []any{0, "text", typedNil, map[string]any{}} {
		err := client.Call(ctx, transport.Target{Topic: "calc"}, "add", addArgs{1, 2}, result)
		if !errors.Is(err, transport.ErrInvalid) {
			t.Errorf("Call with result %#v: %v, want ErrInvalid", result, err)
		}
	}
	var sum int
	if err := client.Call(ctx, transport.Target{Topic: "calc"}, "add", addArgs{1, 2}, &sum); err != nil || sum != 3 {
		t.Errorf("Call with a pointer result: %d, %v", sum, err)
	}
}

// wantServing fails the test unless calc on tr still answers add(20, 22),
// within ctx; what says after what.
func wantServing(ctx context.Context, t *testing.T, client *rpc.Client, what string) {
	t.Helper()
	var sum int
	if err := client.Call(ctx, transport.Target{Topic: "calc"}, "add", addArgs{20, 22}, &sum); err != nil || sum != 42 {
		t.Errorf("a call %s: %d, %v", what, sum, err)
	}
}

// TestSendRefusesInvalidTarget: a target that is not valid is an
// ErrInvalid, whichever target the client sent to before it (the client
// remembers the last valid one).
func TestSendRefusesInvalidTarget(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := calcClient(t)
	valid := transport.Target{Topic: "calc"}
	for _, tt := range []struct {
		name   string
		target transport.Target
	}{
		{"no topic", transport.Target{}},
		{"a space in the topic", transport.Target{Topic: "calc x"}},
		{"a version without a minor number", transport.Target{Topic: "calc", Version: "1"}},
		{"a valid topic with a bad server", transport.Target{Topic: "calc", Server: "s 1"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, after := range []string{"first", "after a valid call"} {
				if err := client.Cast(ctx, tt.target, "add", addArgs{1, 2}); !errors.Is(err, transport.ErrInvalid) {
					t.Errorf("cast %s: %v, want ErrInvalid", after, err)
				}
				wantServing(ctx, t, client, "to a valid target after an invalid one")
				if err := client.Cast(ctx, valid, "add", addArgs{1, 2}); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
