// Command oslo-interop is a Go service that Python oslo.messaging services
// call, and that calls them, over RabbitMQ with nothing to configure but
// the transport URL (or the oslo.config file both sides read) and the
// Target: the README's "Interoperating with Python oslo.messaging" section
// walks through it.
//
//	go run ./examples/oslo-interop serve -url rabbit://guest:guest@127.0.0.1:5672/
//	OS_DEFAULT__TRANSPORT_URL=rabbit://guest:guest@127.0.0.1:5672/ /usr/bin/python3 examples/oslo-interop/client.py
//
//	/usr/bin/python3 examples/oslo-interop/server.py   # with the same OS_DEFAULT__TRANSPORT_URL
//	go run ./examples/oslo-interop call -url rabbit://guest:guest@127.0.0.1:5672/ -name Gopher
//
// With RabbitMQ 4 and oslo.messaging 18, both sides read the settings
// oslo.messaging recommends from one oslo.config file, modern.conf:
//
//	go run ./examples/oslo-interop serve -config-file examples/oslo-interop/modern.conf
//	.ci/sid-python3 examples/oslo-interop/client.py --config-file examples/oslo-interop/modern.conf
//
// serve answers oslo's documented RPC client (client.py): topic "test",
// version 2.0, method test(arg). call calls server.py's hello(name) on
// topic "hello".
//
// The configuration is package config's: -config-file (repeatable, as
// oslo's --config-file), the environment (SWITCHYARD_URL,
// SWITCHYARD_CONFIG_FILE, SWITCHYARD_<OPTION>) and a flag for each option
// (-transport-url, -rabbit-quorum-queue, ...); -url is -transport-url.
// Without any, the transport is rabbit://guest:guest@127.0.0.1:5672/.
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

	"github.com/switchyard-mq/switchyard/config"
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

// DefaultURL is the transport when no source sets one: RabbitMQ on
// localhost, as oslo.messaging's default.
const DefaultURL = "rabbit://guest:guest@127.0.0.1:5672/"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr, nil)
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil && !errors.Is(err, context.Canceled):
		fmt.Fprintln(os.Stderr, "oslo-interop:", err)
		os.Exit(1)
	}
}

// run runs the command args name, "serve" (the default) or "call", with
// its flags, reading the configuration from them and from env (as
// os.LookupEnv); call prints its answer to stdout, and both log to stderr.
// serve runs until ctx ends and calls ready, when not nil, once it
// consumes.
func run(ctx context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer, ready func()) error {
	cmd := "serve"
	if len(args) > 0 && (args[0] == "serve" || args[0] == "call") {
		cmd, args = args[0], args[1:]
	}
	flags := flag.NewFlagSet("oslo-interop "+cmd, flag.ContinueOnError)
	flags.SetOutput(stderr)
	cfgFlags := config.RegisterFlags(flags)
	flags.Func("url", "transport `URL`: -transport-url", func(u string) error {
		return flags.Set("transport-url", u)
	})
	host := flags.String("host", "go-1", "serve: this server's name (Target.Server)")
	name := flags.String("name", "Gopher", "call: the name to greet")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (commands: serve, call)", flags.Args())
	}
	defaults := config.Default()
	defaults.TransportURL = DefaultURL
	cfg, err := config.Load(config.Sources{Defaults: &defaults, Env: env, Flags: cfgFlags})
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	switch cmd {
	case "call":
		return callHello(ctx, cfg, *name, stdout)
	default:
		return serve(ctx, cfg, *host, logger, func() {
			logger.InfoContext(ctx, "serving oslo.messaging clients", "topic", ServeTopic, "version", ServeVersion, "server", *host, "config", cfg)
			if ready != nil {
				ready()
			}
		})
	}
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
func serve(ctx context.Context, cfg config.Config, host string, logger *slog.Logger, ready func()) error {
	tr, err := cfg.Open(ctx, transport.WithLogger(logger))
	if err != nil {
		return err
	}
	defer tr.Close()
	srv, err := rpc.NewServer(tr, transport.Target{Topic: ServeTopic, Server: host},
		[]rpc.Endpoint{{Receiver: Service{}, Version: ServeVersion}}, cfg.RPCServerOptions()...)
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
func callHello(ctx context.Context, cfg config.Config, name string, out io.Writer) error {
	tr, err := cfg.Open(ctx)
	if err != nil {
		return err
	}
	defer tr.Close()
	client, err := rpc.NewClient(tr, cfg.RPCClientOptions()...)
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
