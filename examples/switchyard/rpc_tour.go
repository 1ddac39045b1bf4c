package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	rpcexample "github.com/switchyard-mq/switchyard/examples/rpc"
	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

// rpcSection is the tour's RPC part: the Compute service of examples/rpc
// on two servers, called the ways oslo.messaging callers call.
func rpcSection() section {
	return section{
		title: `RPC: the Compute service on topic "compute", servers host1 and host2`,
		about: `A call goes to one server of the topic and waits for its reply; a cast gets no
reply; a fanout cast reaches every server; Prepare(WithServer) picks one.`,
		run: rpcTour,
	}
}

// recordingCompute is the Compute service, noting each cast it runs.
type recordingCompute struct {
	*rpcexample.Compute
	casts chan<- string
}

// Record runs a cast and notes which server ran it.
func (c recordingCompute) Record(ctx context.Context, args struct {
	Event string `json:"event"`
}) error {
	c.casts <- c.Host + " recorded " + args.Event
	return nil
}

func rpcTour(ctx context.Context, tr *transport.Transport, w io.Writer) error {
	target := transport.Target{Topic: rpcexample.Topic}
	casts := make(chan string, 16)
	for _, host := range []string{"host1", "host2"} {
		srv, err := rpc.NewServer(tr, transport.Target{Topic: rpcexample.Topic, Server: host},
			[]rpc.Endpoint{{Receiver: recordingCompute{&rpcexample.Compute{Host: host}, casts}}})
		if err != nil {
			return err
		}
		if err := srv.Start(ctx); err != nil {
			return err
		}
		defer func() { _ = srv.Stop(context.WithoutCancel(ctx)) }()
	}
	client, err := rpc.NewClient(tr, rpc.WithTimeout(5*time.Second))
	if err != nil {
		return err
	}
	defer client.Close()
	show := func(what string, result any, err error) {
		var re *rpc.RemoteError
		switch {
		case errors.As(err, &re):
			fmt.Fprintf(w, "  %-42s -> remote error %s: %s\n", what, re.Class, re.Message)
		case err != nil:
			fmt.Fprintf(w, "  %-42s -> %v\n", what, err)
		default:
			fmt.Fprintf(w, "  %-42s -> %v\n", what, result)
		}
	}

	var sum int64
	err = client.Call(ctx, target, "add", rpcexample.AddArgs{A: 2, B: 40}, &sum)
	show(`call add(a=2, b=40)`, sum, err)
	if err != nil || sum != 42 {
		return fmt.Errorf("add: %d, %w", sum, err)
	}
	for _, host := range []string{"host2", "host1"} {
		var echo string
		err = client.Prepare(rpc.WithServer(host)).Call(ctx, target, "echo", rpcexample.EchoArgs{Message: "hi"}, &echo)
		show(fmt.Sprintf("call echo(message=hi) on server %s", host), echo, err)
		if err != nil || echo != host+": hi" {
			return fmt.Errorf("echo on %s answered %q: %w", host, echo, err)
		}
	}
	rctx := rpc.WithRequestContext(ctx, rpc.RequestContext{"request_id": "req-tour-1", "user_id": "alice"})
	var seen rpc.RequestContext
	err = client.Call(rctx, target, "whoami", nil, &seen)
	show("call whoami() with a request context", seen, err)
	if err != nil || seen["request_id"] != "req-tour-1" {
		return fmt.Errorf("whoami saw %v: %w", seen, err)
	}
	err = client.Call(ctx, target, "divide", rpcexample.DivideArgs{A: 1, B: 0}, nil)
	show("call divide(a=1, b=0)", nil, err)
	if re := (*rpc.RemoteError)(nil); !errors.As(err, &re) || re.Class != "ZeroDivisionError" {
		return fmt.Errorf("divide by zero: want a ZeroDivisionError, got %v", err)
	}
	err = client.Call(ctx, target, "reboot", nil, nil)
	show("call reboot() (no such method)", nil, err)
	if !errors.Is(err, rpc.ErrNoSuchMethod) {
		return fmt.Errorf("reboot: want NoSuchMethod, got %v", err)
	}
	err = client.Prepare(rpc.WithTimeout(200*time.Millisecond)).Call(ctx, target, "sleep", rpcexample.SleepArgs{Seconds: 1}, nil)
	show("call sleep(seconds=1) with a 200ms timeout", nil, err)
	if !errors.Is(err, transport.ErrTimeout) {
		return fmt.Errorf("sleep: want a timeout, got %v", err)
	}

	if err := client.Prepare(rpc.WithServer("host1")).Cast(ctx, target, "record", map[string]string{"event": "cast to host1"}); err != nil {
		return err
	}
	if err := client.Prepare(rpc.WithFanout(true)).Cast(ctx, target, "record", map[string]string{"event": "fanout"}); err != nil {
		return err
	}
	var got []string
	for len(got) < 3 {
		select {
		case c := <-casts:
			got = append(got, c)
		case <-ctx.Done():
			return fmt.Errorf("casts recorded so far %v: %w", got, ctx.Err())
		}
	}
	sort.Strings(got)
	for _, c := range got {
		fmt.Fprintf(w, "  %-42s -> %s\n", "cast", c)
	}
	fmt.Fprintln(w, "  => Calls were answered, errors arrived as oslo.messaging failures, the slow call timed out,")
	fmt.Fprintln(w, "     the cast to host1 ran on host1 only and the fanout cast ran on both servers.")
	return nil
}
