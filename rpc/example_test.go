package rpc_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strings"

	_ "github.com/switchyard-mq/switchyard/drivers/memory"
	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

// Greeter is an RPC endpoint: its exported methods of the shape
// func(context.Context, Args) (Result, error) are callable by name.
type Greeter struct{}

// GreetArgs are greet's keyword arguments.
type GreetArgs struct {
	Name string `json:"name"`
}

// Greet answers the call "greet".
func (Greeter) Greet(ctx context.Context, args GreetArgs) (string, error) {
	return "hello, " + strings.ToUpper(args.Name), nil
}

func Example() {
	ctx := context.Background()
	tr, err := transport.Open(ctx, "memory://example-rpc")
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()

	target := transport.Target{Topic: "greeter", Server: "host1"}
	server, err := rpc.NewServer(tr, target, []rpc.Endpoint{{Receiver: Greeter{}}})
	if err != nil {
		log.Fatal(err)
	}
	if err := server.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer server.Stop(ctx)

	client, err := rpc.NewClient(tr)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	var greeting string
	if err := client.Call(ctx, transport.Target{Topic: "greeter"}, "greet", GreetArgs{Name: "world"}, &greeting); err != nil {
		log.Fatal(err)
	}
	fmt.Println(greeting)
	// Output: hello, WORLD
}

// Inventory raises the exceptions of a Python service's module.
type Inventory struct{}

// Find fails as nova's InstanceNotFound(instance_id=...).
func (Inventory) Find(ctx context.Context, args struct {
	ID string `json:"instance_id"`
}) (string, error) {
	return "", &rpc.RemoteError{
		Module: "nova.exception", Class: "InstanceNotFound",
		Message: "Instance " + args.ID + " could not be found.",
		Args:    []any{}, // InstanceNotFound makes its message from its kwargs
		Kwargs:  map[string]any{"instance_id": args.ID},
	}
}

// A method raises a class a Python caller rebuilds, with its kwargs; a Go
// caller gets them back in the *RemoteError.
func ExampleRemoteError() {
	ctx := context.Background()
	tr, err := transport.Open(ctx, "memory://example-remote-error")
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()
	server, err := rpc.NewServer(tr, transport.Target{Topic: "inventory", Server: "host1"}, []rpc.Endpoint{{Receiver: Inventory{}}})
	if err != nil {
		log.Fatal(err)
	}
	if err := server.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer server.Stop(ctx)
	client, err := rpc.NewClient(tr)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	err = client.Call(ctx, transport.Target{Topic: "inventory"}, "find", map[string]any{"instance_id": "i-1"}, nil)
	var re *rpc.RemoteError
	if errors.As(err, &re) {
		fmt.Println(re.Module+"."+re.Class, re.Kwargs["instance_id"])
		fmt.Print(re.Traceback[len(re.Traceback)-1])
	}
	// Output:
	// nova.exception.InstanceNotFound i-1
	// nova.exception.InstanceNotFound: Instance i-1 could not be found.
}

// The errors of an orders service: a sentinel and a type with fields.
var ErrOrderNotFound = errors.New("order not found")

// ShippedError says an order has left the warehouse.
type ShippedError struct {
	Order   string `json:"order"`
	Carrier string `json:"carrier"`
}

func (e *ShippedError) Error() string { return "order " + e.Order + " has shipped with " + e.Carrier }

// Orders is an endpoint that fails with the orders service's errors.
type Orders struct{}

// Cancel cancels an order, unless it is unknown or has shipped.
func (Orders) Cancel(ctx context.Context, args struct {
	Order string `json:"order"`
}) error {
	if args.Order == "o-1" {
		return &ShippedError{Order: args.Order, Carrier: "dhl"}
	}
	return fmt.Errorf("cancel %s: %w", args.Order, ErrOrderNotFound)
}

// A Go caller matches a Go endpoint's errors with errors.Is and errors.As
// when the server and the client register them.
func ExampleErrorRegistry() {
	ctx := context.Background()
	tr, err := transport.Open(ctx, "memory://example-error-registry")
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()
	reg, err := rpc.NewErrorRegistry(
		rpc.ErrorValue("orders", "NotFound", ErrOrderNotFound),
		rpc.ErrorType[*ShippedError]("orders", "Shipped"),
	)
	if err != nil {
		log.Fatal(err)
	}
	server, err := rpc.NewServer(tr, transport.Target{Topic: "orders", Server: "host1"},
		[]rpc.Endpoint{{Receiver: Orders{}}}, rpc.WithServerErrors(reg))
	if err != nil {
		log.Fatal(err)
	}
	if err := server.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer server.Stop(ctx)
	client, err := rpc.NewClient(tr, rpc.WithErrors(reg))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	for _, order := range []string{"o-1", "o-2"} {
		err := client.Call(ctx, transport.Target{Topic: "orders"}, "cancel", map[string]string{"order": order}, nil)
		var shipped *ShippedError
		var re *rpc.RemoteError
		switch {
		case errors.As(err, &shipped):
			fmt.Println("shipped with", shipped.Carrier)
		case errors.Is(err, ErrOrderNotFound):
			fmt.Println("not found")
		}
		if errors.As(err, &re) {
			fmt.Print(re.Traceback[len(re.Traceback)-1])
		}
	}
	// Output:
	// shipped with dhl
	// orders.Shipped: order o-1 has shipped with dhl
	// not found
	// orders.NotFound: cancel o-2: order not found
}
