// Command oslo-interop is a Go service that Python oslo.messaging services
// call, and that calls them, over RabbitMQ with nothing to configure but
// the transport URL and the Target: the README's "Interoperating with
// Python oslo.messaging" section walks through it.
//
//	go run ./examples/oslo-interop serve -url rabbit://guest:guest@127.0.0.1:5672/
//	OS_DEFAULT__TRANSPORT_URL=rabbit://guest:guest@127.0.0.1:5672/ /usr/bin/python3 examples/oslo-interop/client.py
//
//	/usr/bin/python3 examples/oslo-interop/server.py   # with the same OS_DEFAULT__TRANSPORT_URL
//	go run ./examples/oslo-interop call -url rabbit://guest:guest@127.0.0.1:5672/ -name Gopher
//
// serve answers oslo's documented RPC client (client.py): topic "test",
// version 2.0, method test(arg). call calls server.py's hello(name) on
// topic "hello".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	_ "github.com/switchyard-mq/switchyard/drivers/rabbit"
	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

// The targets both sides agree on.
const (
	// ServeTopic and ServeVersion are what oslo's documented client calls.
	ServeTopic   = "test"
	ServeVersion = "2.0"
	// HelloTopic is where server.py listens.
	HelloTopic = "hello"
)

func main() {
	flags := flag.NewFlagSet("oslo-interop", flag.ExitOnError)
	url := flags.String("url", envOr("SWITCHYARD_URL", "rabbit://guest:guest@127.0.0.1:5672/"), "transport URL (env SWITCHYARD_URL)")
	host := flags.String("host", "go-1", "serve: this server's name (Target.Server)")
	name := flags.String("name", "Gopher", "call: the name to greet")
	cmd := "serve"
	args := os.Args[1:]
	if len(args) > 0 && (args[0] == "serve" || args[0] == "call") {
		cmd, args = args[0], args[1:]
	}
	_ = flags.Parse(args)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, *url, *host, logger, func() {
			logger.Info("serving oslo.messaging clients", "topic", ServeTopic, "version", ServeVersion, "server", *host)
		})
	case "call":
		err = callHello(ctx, *url, *name, os.Stdout)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "oslo-interop:", err)
		os.Exit(1)
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// Service is the Go endpoint Python clients call.
type Service struct{}

// TestArgs are test's keyword arguments, as oslo's documented client sends them.
type TestArgs struct {
	Arg any `json:"arg"`
}

// Test answers oslo's documented client: client.call(ctxt, 'test', arg=arg).
func (Service) Test(ctx context.Context, args TestArgs) (string, error) {
	return fmt.Sprintf("Go got: %v", args.Arg), nil
}

// AddArgs are add's keyword arguments.
type AddArgs struct {
	A int64 `json:"a"`
	B int64 `json:"b"`
}

// Add returns a+b.
func (Service) Add(ctx context.Context, args AddArgs) (int64, error) { return args.A + args.B, nil }

// serve runs the service until ctx ends; ready is called once it consumes.
func serve(ctx context.Context, url, host string, logger *slog.Logger, ready func()) error {
	tr, err := transport.Open(ctx, url, transport.WithLogger(logger))
	if err != nil {
		return err
	}
	defer tr.Close()
	srv, err := rpc.NewServer(tr, transport.Target{Topic: ServeTopic, Server: host},
		[]rpc.Endpoint{{Receiver: Service{}, Version: ServeVersion}})
	if err != nil {
		return err
	}
	if err := srv.Start(ctx); err != nil {
		return err
	}
	ready()
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return errors.Join(srv.Stop(stopCtx), ctx.Err())
}

// callHello calls server.py's hello(name) and prints the answer.
func callHello(ctx context.Context, url, name string, out io.Writer) error {
	tr, err := transport.Open(ctx, url)
	if err != nil {
		return err
	}
	defer tr.Close()
	client, err := rpc.NewClient(tr, rpc.WithTimeout(30*time.Second))
	if err != nil {
		return err
	}
	defer client.Close()
	var greeting string
	if err := client.Call(ctx, transport.Target{Topic: HelloTopic}, "hello", map[string]any{"name": name}, &greeting); err != nil {
		return err
	}
	_, err = fmt.Fprintln(out, greeting)
	return err
}
