// Package rpcexample is a small RPC service, Compute, used by the example
// server and client programs and by the tour. Its methods show the endpoint
// shape, the request context, errors a Python caller sees as native
// exceptions, and long calls.
package rpcexample

import (
	"context"
	"fmt"
	"time"

	"github.com/switchyard-mq/switchyard/rpc"
)

// Topic is the RPC topic the Compute service listens on.
const Topic = "compute"

// Compute is the service's endpoint.
type Compute struct {
	// Host names this server in replies.
	Host string
}

// EchoArgs are echo's keyword arguments.
type EchoArgs struct {
	Message string `json:"message"`
}

// Echo returns the message, prefixed with the server's host.
func (c *Compute) Echo(ctx context.Context, args EchoArgs) (string, error) {
	return c.Host + ": " + args.Message, nil
}

// AddArgs are add's keyword arguments.
type AddArgs struct {
	A int64 `json:"a"`
	B int64 `json:"b"`
}

// Add returns a+b.
func (c *Compute) Add(ctx context.Context, args AddArgs) (int64, error) {
	return args.A + args.B, nil
}

// DivideArgs are divide's keyword arguments.
type DivideArgs struct {
	A float64 `json:"a"`
	B float64 `json:"b"`
}

// Divide returns a/b; dividing by zero raises ZeroDivisionError in a Python
// caller, as a Python service would.
func (c *Compute) Divide(ctx context.Context, args DivideArgs) (float64, error) {
	if args.B == 0 {
		return 0, &rpc.RemoteError{Class: "ZeroDivisionError", Module: "builtins", Message: "division by zero"}
	}
	return args.A / args.B, nil
}

// Whoami returns the caller's request context, as the handler sees it.
func (c *Compute) Whoami(ctx context.Context, args struct{}) (rpc.RequestContext, error) {
	return rpc.RequestContextFrom(ctx), nil
}

// SleepArgs are sleep's keyword arguments.
type SleepArgs struct {
	Seconds float64 `json:"seconds"`
}

// Sleep works for a while; the call's deadline interrupts it.
func (c *Compute) Sleep(ctx context.Context, args SleepArgs) (string, error) {
	select {
	case <-time.After(time.Duration(args.Seconds * float64(time.Second))):
		return fmt.Sprintf("%s slept %gs", c.Host, args.Seconds), nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}
