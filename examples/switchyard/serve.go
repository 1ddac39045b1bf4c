package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

// serveOptions are serve's flags.
type serveOptions struct {
	backend backendFlags
	target  targetFlags
	count   int
}

func serveCommand() command {
	return command{
		name:    "serve",
		summary: "run an echo RPC server: echo, sleep, fail and context methods",
		args:    "",
		doc: `Serves RPC requests on -topic as -server until interrupted (or -count
requests), printing each. Methods:

  echo     returns its arguments
  sleep    {"seconds": N}: waits N seconds (at most 3600), then returns {"slept": N}
  fail     {"message": M}: fails with M, so the caller gets a remote error
  context  returns the caller's request context

-namespace and -version set the endpoint's namespace and version (default
1.0), which requests must match as oslo.messaging's dispatcher requires.

  switchyard serve -topic echo &
  switchyard call -topic echo echo '{"hello": "world"}'`,
		flags: func(fs *flag.FlagSet) func(context.Context, []string, io.Writer) error {
			var o serveOptions
			o.backend.register(fs)
			o.target.register(fs, forServer)
			fs.IntVar(&o.count, "count", 0, "stop after this many `requests` (0: when interrupted)")
			return func(ctx context.Context, args []string, stdout io.Writer) error {
				switch {
				case len(args) > 0:
					return fmt.Errorf("%w: unexpected arguments %q", errUsage, args)
				case o.count < 0:
					return fmt.Errorf("%w: -count %d is negative", errUsage, o.count)
				}
				if o.target.server == "" {
					return fmt.Errorf("%w: -server is empty", errUsage)
				}
				endpoint := rpc.Endpoint{Namespace: o.target.namespace, Version: o.target.version}
				o.target.namespace, o.target.version = "", ""
				target, err := o.target.target()
				if err != nil {
					return err
				}
				if endpoint.Version != "" {
					if _, _, err := transport.ParseVersion(endpoint.Version); err != nil {
						return fmt.Errorf("%w: -version: %w", errUsage, err)
					}
				}
				return serve(ctx, stdout, o, target, endpoint)
			}
		},
	}
}

func serve(ctx context.Context, stdout io.Writer, o serveOptions, target transport.Target, endpoint rpc.Endpoint) (err error) {
	cfg, err := o.backend.load(nil)
	if err != nil {
		return err
	}
	tr, err := o.backend.open(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, tr.Close()) }()
	out := &lockedWriter{w: stdout}
	done := make(chan struct{})
	endpoint.Receiver = &echoServer{out: out, limit: int64(o.count), done: done}
	srv, err := rpc.NewServer(tr, target, []rpc.Endpoint{endpoint}, cfg.RPCServerOptions()...)
	if err != nil {
		return err
	}
	if err := srv.Start(ctx); err != nil {
		return err
	}
	exchange := target.Exchange
	if exchange == "" {
		exchange = cfg.ControlExchange
	}
	out.printf("serving topic %q as server %q on %s, exchange %q: methods echo, sleep, fail, context\n", target.Topic, target.Server, tr, exchange)
	select {
	case <-ctx.Done():
	case <-done:
	}
	// Finish the requests in hand and answer them, within a bound.
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := srv.Stop(stopCtx); err != nil {
		return err
	}
	s := srv.Stats()
	out.printf("stopped after %s\n", count(int(s.Handled), "request"))
	return nil
}

// echoServer is serve's endpoint.
type echoServer struct {
	out   *lockedWriter
	limit int64 // 0: none
	n     atomic.Int64
	done  chan struct{}
}

// note prints a request and closes done at the limit.
func (e *echoServer) note(method string, args any) {
	n := e.n.Add(1)
	text, _ := json.Marshal(args)
	e.out.printf("[%d] %s %s\n", n, method, text)
	if n == e.limit {
		close(e.done)
	}
}

// Echo returns its arguments.
func (e *echoServer) Echo(_ context.Context, args json.RawMessage) (json.RawMessage, error) {
	e.note("echo", args)
	return args, nil
}

// SleepArgs are sleep's arguments.
type SleepArgs struct {
	Seconds float64 `json:"seconds"`
}

// Sleep waits, to try timeouts and graceful stops.
func (e *echoServer) Sleep(ctx context.Context, args SleepArgs) (map[string]float64, error) {
	e.note("sleep", args)
	if args.Seconds < 0 || args.Seconds > 3600 {
		return nil, fmt.Errorf("seconds %g is not from 0 to 3600", args.Seconds)
	}
	timer := time.NewTimer(time.Duration(args.Seconds * float64(time.Second)))
	defer timer.Stop()
	select {
	case <-timer.C:
		return map[string]float64{"slept": args.Seconds}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// FailArgs are fail's arguments.
type FailArgs struct {
	Message string `json:"message"`
}

// Fail fails with the message, to try remote errors.
func (e *echoServer) Fail(_ context.Context, args FailArgs) error {
	e.note("fail", args)
	return errors.New(args.Message)
}

// Context returns the caller's request context.
func (e *echoServer) Context(ctx context.Context, _ json.RawMessage) (rpc.RequestContext, error) {
	rc := rpc.RequestContextFrom(ctx)
	e.note("context", rc)
	if rc == nil {
		rc = rpc.RequestContext{}
	}
	return rc, nil
}
