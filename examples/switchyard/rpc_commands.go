package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

// targetFlags are the transport.Target flags of call, cast and serve.
type targetFlags struct {
	exchange  string
	topic     string
	namespace string
	version   string
	server    string
	fanout    bool
}

// targetRole says which command the target flags are for.
type targetRole int

const (
	forCall targetRole = iota
	forCast
	forServer
)

func (t *targetFlags) register(fs *flag.FlagSet, role targetRole) {
	fs.StringVar(&t.topic, "topic", "", "the target's `topic` (required)")
	fs.StringVar(&t.exchange, "exchange", "", "the target's `exchange` (default: the control exchange)")
	if role == forServer {
		host, _ := os.Hostname()
		fs.StringVar(&t.server, "server", host, "this server's `name` on the topic")
		fs.StringVar(&t.namespace, "namespace", "", "the endpoint's `namespace`, which requests must name")
		fs.StringVar(&t.version, "version", "", "the endpoint's API `version`, major.minor (default 1.0)")
		return
	}
	fs.StringVar(&t.server, "server", "", "the target's `server` (default: any server of the topic)")
	fs.StringVar(&t.namespace, "namespace", "", "the target's endpoint `namespace`")
	fs.StringVar(&t.version, "version", "", "the target's API `version`, major.minor")
	if role == forCast {
		fs.BoolVar(&t.fanout, "fanout", false, "send to every server of the topic")
	}
}

// target returns the flags' target, checked.
func (t *targetFlags) target() (transport.Target, error) {
	if t.topic == "" {
		return transport.Target{}, fmt.Errorf("%w: -topic is required", errUsage)
	}
	target := transport.Target{Exchange: t.exchange, Topic: t.topic, Namespace: t.namespace, Version: t.version, Server: t.server, Fanout: t.fanout}
	if err := target.Validate(); err != nil {
		return transport.Target{}, fmt.Errorf("%w: %w", errUsage, err)
	}
	return target, nil
}

// rpcOptions are call's and cast's flags.
type rpcOptions struct {
	backend backendFlags
	target  targetFlags
	timeout time.Duration
	context string
}

func callCommand() command { return rpcCommand(true) }

func castCommand() command { return rpcCommand(false) }

func rpcCommand(isCall bool) command {
	c := command{
		name:    "cast",
		summary: "send an RPC request that gets no reply (oslo.messaging's cast)",
		args:    "METHOD [ARGS]",
		doc: `Casts METHOD with ARGS, a JSON object of keyword arguments (default {}), to
the target the flags name, and returns once the backend has taken it.

  switchyard cast -topic compute -server host1 reboot '{"instance": "vm-1"}'
  switchyard cast -topic compute -fanout refresh_cache`,
	}
	if isCall {
		c.name = "call"
		c.summary = "call an RPC method and print its result (oslo.messaging's call)"
		c.doc = `Calls METHOD with ARGS, a JSON object of keyword arguments (default {}), on
one server of the target the flags name, waits for the reply and prints
the result as JSON. A failure raised by the method is printed and the
command exits 1.

  switchyard call -topic compute echo '{"x": 1}'
  switchyard call -url rabbit://guest:guest@127.0.0.1:5672/ -topic compute -server host1 -version 1.3 get_host_info`
	}
	c.flags = func(fs *flag.FlagSet) func(context.Context, []string, io.Writer) error {
		var o rpcOptions
		o.backend.register(fs)
		role := forCast
		if isCall {
			role = forCall
		}
		o.target.register(fs, role)
		if isCall {
			fs.DurationVar(&o.timeout, "timeout", 0, "how long to wait for the reply (default: rpc_response_timeout, 60s)")
		}
		fs.StringVar(&o.context, "context", "", "request context, a JSON `object` (e.g. '{\"user_id\": \"u1\"}')")
		return func(ctx context.Context, args []string, stdout io.Writer) error {
			if len(args) < 1 || len(args) > 2 {
				return fmt.Errorf("%w: want METHOD and optionally ARGS, got %d arguments", errUsage, len(args))
			}
			target, err := o.target.target()
			if err != nil {
				return err
			}
			if o.timeout < 0 {
				return fmt.Errorf("%w: -timeout %v is negative", errUsage, o.timeout)
			}
			method := args[0]
			var callArgs json.RawMessage = json.RawMessage("{}")
			if len(args) == 2 {
				if callArgs, err = jsonObjectArg("ARGS", args[1]); err != nil {
					return err
				}
			}
			rc, err := requestContextArg(o.context)
			if err != nil {
				return err
			}
			return sendRPC(ctx, stdout, o, isCall, target, method, callArgs, rc)
		}
	}
	return c
}

func sendRPC(ctx context.Context, stdout io.Writer, o rpcOptions, isCall bool, target transport.Target, method string,
	args json.RawMessage, rc rpc.RequestContext) (err error) {
	cfg, err := o.backend.load(nil)
	if err != nil {
		return err
	}
	tr, err := o.backend.open(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, tr.Close()) }()
	opts := cfg.RPCClientOptions()
	if o.timeout > 0 {
		opts = append(opts, rpc.WithTimeout(o.timeout))
	}
	client, err := rpc.NewClient(tr, opts...)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, client.Close()) }()
	if rc != nil {
		ctx = rpc.WithRequestContext(ctx, rc)
	}
	if !isCall {
		if err := client.Cast(ctx, target, method, args); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "cast %s to %s\n", method, target)
		return nil
	}
	var result json.RawMessage
	if err := client.Call(ctx, target, method, args, &result); err != nil {
		return err
	}
	if result == nil {
		result = json.RawMessage("null")
	}
	fmt.Fprintln(stdout, indentJSON(result))
	return nil
}

// requestContextArg parses the -context flag, a JSON object, keeping
// numbers exact; an empty flag is no context.
func requestContextArg(flagValue string) (rpc.RequestContext, error) {
	if flagValue == "" {
		return nil, nil
	}
	raw, err := jsonObjectArg("-context", flagValue)
	if err != nil {
		return nil, err
	}
	var rc rpc.RequestContext
	dec := json.NewDecoder(jsonReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&rc); err != nil {
		return nil, fmt.Errorf("%w: -context: %v", errUsage, err)
	}
	return rc, nil
}
