package rpc_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	_ "github.com/switchyard-mq/switchyard/drivers/memory"
	"github.com/switchyard-mq/switchyard/internal/oslo"
	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

type calc struct{}

type addArgs struct {
	A int `json:"a"`
	B int `json:"b"`
}

func (calc) Add(ctx context.Context, args addArgs) (int, error) { return args.A + args.B, nil }

func (calc) Fail(ctx context.Context, args struct{}) error {
	return &rpc.RemoteError{Class: "ValueError", Module: "builtins", Message: "bad"}
}

func (calc) Boom(ctx context.Context, args struct{}) error { panic("kaboom") }

func (calc) Whoami(ctx context.Context, args struct{}) (rpc.RequestContext, error) {
	return rpc.RequestContextFrom(ctx), nil
}

func (calc) Sleep(ctx context.Context, args struct {
	Ms int `json:"ms"`
}) error {
	select {
	case <-time.After(time.Duration(args.Ms) * time.Millisecond):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func open(t *testing.T) *transport.Transport {
	t.Helper()
	tr, err := transport.Open(context.Background(), "memory://"+strings.ReplaceAll(t.Name(), "/", "-"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func TestCallBasics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr := open(t)
	srv, err := rpc.NewServer(tr, transport.Target{Topic: "calc", Server: "s1"}, []rpc.Endpoint{{Receiver: calc{}, Version: "1.2"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(ctx)
	client, err := rpc.NewClient(tr, rpc.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	target := transport.Target{Topic: "calc"}

	var sum int
	if err := client.Call(ctx, target, "add", addArgs{2, 3}, &sum); err != nil || sum != 5 {
		t.Fatalf("add: %v %d", err, sum)
	}
	err = client.Call(ctx, target, "fail", nil, nil)
	var re *rpc.RemoteError
	if !errors.As(err, &re) || re.Class != "ValueError" || re.Message != "bad" {
		t.Fatalf("fail: %v", err)
	}
	err = client.Call(ctx, target, "boom", nil, nil)
	if !errors.As(err, &re) || re.Class != "Panic" {
		t.Fatalf("boom: %v", err)
	}
	if err := client.Call(ctx, target, "nope", nil, nil); !errors.Is(err, rpc.ErrNoSuchMethod) {
		t.Fatalf("nope: %v", err)
	}
	if err := client.Prepare(rpc.WithVersion("1.3")).Call(ctx, target, "add", addArgs{}, nil); !errors.Is(err, rpc.ErrUnsupportedVersion) {
		t.Fatalf("version: %v", err)
	}
	if err := client.Prepare(rpc.WithVersion("1.1"), rpc.WithServer("s1")).Call(ctx, target, "add", addArgs{1, 1}, &sum); err != nil || sum != 2 {
		t.Fatalf("version 1.1 to s1: %v", err)
	}
	err = client.Call(ctx, target, "add", map[string]any{"a": "x"}, nil)
	if !errors.As(err, &re) || re.Class != "TypeError" {
		t.Fatalf("bad args: %v", err)
	}
	var got rpc.RequestContext
	rctx := rpc.WithRequestContext(ctx, rpc.RequestContext{"request_id": "req-1", "roles": []string{"admin"}})
	if err := client.Call(rctx, target, "whoami", nil, &got); err != nil || got["request_id"] != "req-1" {
		t.Fatalf("whoami: %v %v", err, got)
	}
	err = client.Prepare(rpc.WithTimeout(100*time.Millisecond)).Call(ctx, target, "sleep", map[string]int{"ms": 2000}, nil)
	if !errors.Is(err, transport.ErrTimeout) {
		t.Fatalf("timeout: %v", err)
	}
	t.Run("concurrent", func(t *testing.T) {
		for i := 0; i < 64; i++ {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				var sum int
				if err := client.Call(ctx, target, "add", addArgs{i, i}, &sum); err != nil || sum != 2*i {
					t.Errorf("add %d: %v %d", i, err, sum)
				}
			})
		}
	})
	_ = oslo.NewID
}

// TestConstructorsRefuseNilTransport: a missing transport is an
// ErrInvalid, not a nil-pointer panic.
func TestConstructorsRefuseNilTransport(t *testing.T) {
	target := transport.Target{Topic: "calc", Server: "s1"}
	tests := []struct {
		name string
		err  func() error
	}{
		{"NewClient", func() error { _, err := rpc.NewClient(nil); return err }},
		{"NewServer", func() error {
			_, err := rpc.NewServer(nil, target, []rpc.Endpoint{{Receiver: calc{}}})
			return err
		}},
	}
	for _, tt := range tests {
		if err := tt.err(); !errors.Is(err, transport.ErrInvalid) {
			t.Errorf("%s(nil): %v, want an ErrInvalid", tt.name, err)
		}
	}
}

// TestServerQueueDeleted: a server whose queue is deleted under it (by an
// operator, another service, a broker node's loss) is not left deaf: it
// says so at error level, declares its topology again, consumes again,
// and counts it; calls succeed again.
func TestServerQueueDeleted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tr, logs := openLogged(t, slog.LevelInfo)
	srv := startCalc(t, tr)
	client, err := rpc.NewClient(tr, rpc.WithTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	target := transport.Target{Topic: "calc"}
	var sum int
	if err := client.Call(ctx, target, "add", addArgs{1, 2}, &sum); err != nil {
		t.Fatal(err)
	}

	operator, err := transport.Open(ctx, "memory://"+t.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer operator.Close()
	if _, err := operator.DeleteQueue(ctx, "calc"); err != nil {
		t.Fatal(err)
	}
	for {
		err := client.Call(ctx, target, "add", addArgs{2, 2}, &sum)
		if err == nil && sum == 4 {
			break
		}
		if !errors.Is(err, transport.ErrTimeout) && !errors.Is(err, transport.ErrUnroutable) {
			t.Fatalf("call after the queue was deleted: %v", err)
		}
		if ctx.Err() != nil {
			t.Fatal("the server never consumed its queue again")
		}
	}
	st := srv.Stats()
	if st.ConsumersLost != 1 || st.Unconsumed != 0 {
		t.Errorf("stats: %d consumers lost, %d queues unconsumed; want 1 and 0", st.ConsumersLost, st.Unconsumed)
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "consuming it again") {
		t.Errorf("the lost consumer was not logged at error level:\n%s", logs)
	}
}
