package conformance

import (
	"context"
	"errors"
	"fmt"

	"github.com/switchyard-mq/switchyard/rpc"
)

// The errors of the orders endpoint: two registered, one not.
var (
	errOrderNotFound = errors.New("order not found")
	errOrdersClosed  = errors.New("orders closed")
)

// orderShippedError is a registered error type with fields.
type orderShippedError struct {
	Order   string `json:"order"`
	Carrier string `json:"carrier"`
	Parcels int    `json:"parcels"`
}

func (e *orderShippedError) Error() string {
	return fmt.Sprintf("order %s has shipped with %s in %d parcels", e.Order, e.Carrier, e.Parcels)
}

// ordersService fails with the orders errors.
type ordersService struct{}

// Cancel fails: o-1 has shipped, o-2 is unknown, anything else finds the
// service closed.
func (ordersService) Cancel(ctx context.Context, args struct {
	Order string `json:"order"`
}) error {
	switch args.Order {
	case "o-1":
		return fmt.Errorf("cancel: %w", &orderShippedError{Order: "o-1", Carrier: "dhl", Parcels: 2})
	case "o-2":
		return fmt.Errorf("cancel %s: %w", args.Order, errOrderNotFound)
	}
	return fmt.Errorf("cancel %s: %w", args.Order, errOrdersClosed)
}

// Count takes no arguments.
func (ordersService) Count(ctx context.Context) (int, error) { return 3, nil }

// rpcTypedErrors: errors a Go endpoint returns that the server and the
// client registered are what the caller's errors.Is and errors.As find,
// with the *RemoteError and its traceback in the chain too; an
// unregistered error, and every error a client without the registry
// gets, stays a plain *RemoteError.
func rpcTypedErrors(e *env) {
	r := newRPCEnv(e)
	reg, err := rpc.NewErrorRegistry(
		rpc.ErrorValue("orders", "NotFound", errOrderNotFound),
		rpc.ErrorType[*orderShippedError]("orders", "Shipped"),
	)
	if err != nil {
		r.t.Fatal(err)
	}
	r.serve("s1", []rpc.Endpoint{{Receiver: ordersService{}}}, rpc.WithServerErrors(reg))
	c := r.client(rpc.WithErrors(reg))

	var count int
	if err := c.Call(r.ctx, r.target, "count", nil, &count); err != nil || count != 3 {
		r.t.Errorf("count (a method without arguments): %d, %v", count, err)
	}

	err = c.Call(r.ctx, r.target, "cancel", map[string]string{"order": "o-1"}, nil)
	var shipped *orderShippedError
	if !errors.As(err, &shipped) {
		r.t.Errorf("registered type: errors.As(%v, *orderShippedError) is false", err)
	} else if *shipped != (orderShippedError{Order: "o-1", Carrier: "dhl", Parcels: 2}) {
		r.t.Errorf("registered type rebuilt as %+v", *shipped)
	}
	r.wantRemote("registered type", err, "orders", "Shipped", "cancel: order o-1 has shipped with dhl in 2 parcels")

	err = c.Call(r.ctx, r.target, "cancel", map[string]string{"order": "o-2"}, nil)
	r.wantErr("registered value", err, errOrderNotFound)
	r.wantRemote("registered value", err, "orders", "NotFound", "cancel o-2: order not found")

	err = c.Call(r.ctx, r.target, "cancel", map[string]string{"order": "o-3"}, nil)
	if errors.Is(err, errOrdersClosed) {
		r.t.Errorf("unregistered value: errors.Is(%v, errOrdersClosed) is true", err)
	}
	if re := r.wantRemote("unregistered value", err, "go", "Error", "cancel o-3: orders closed"); re != nil && re.Unwrap() != nil {
		r.t.Errorf("unregistered value unwraps to %v", re.Unwrap())
	}

	// A client without the registry, as an oslo client whose
	// allowed_remote_exmods lacks the module.
	err = r.client().Call(r.ctx, r.target, "cancel", map[string]string{"order": "o-2"}, nil)
	if errors.Is(err, errOrderNotFound) {
		r.t.Errorf("client without the registry: errors.Is(%v, errOrderNotFound) is true", err)
	}
	r.wantRemote("client without the registry", err, "orders", "NotFound", "cancel o-2: order not found")
}

// wantRemote checks that err holds a *RemoteError of module.class with
// message, and a traceback ending in its exception line; it returns it.
func (r *rpcEnv) wantRemote(what string, err error, module, class, message string) *rpc.RemoteError {
	r.t.Helper()
	var re *rpc.RemoteError
	if !errors.As(err, &re) {
		r.t.Errorf("%s: got %v, want a *rpc.RemoteError in the chain", what, err)
		return nil
	}
	wantLine := module + "." + class + ": " + message + "\n"
	if re.Module != module || re.Class != class || re.Message != message ||
		len(re.Traceback) == 0 || re.Traceback[len(re.Traceback)-1] != wantLine {
		r.t.Errorf("%s: remote error %s.%s %q with traceback %q, want %s.%s %q ending in %q",
			what, re.Module, re.Class, re.Message, re.Traceback, module, class, message, wantLine)
	}
	return re
}
