package rpc_test

import (
	"context"
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
