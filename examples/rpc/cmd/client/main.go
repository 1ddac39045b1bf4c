// Command client calls the Compute RPC service.
//
//	go run ./examples/rpc/cmd/client -url rabbit://guest:guest@127.0.0.1:5672/ echo message=hi
//	go run ./examples/rpc/cmd/client -url ... -cast echo message=hi
//	go run ./examples/rpc/cmd/client -url ... -server host1 add a=1 b=2
//
// Arguments are key=value pairs; a value that parses as JSON is sent as
// JSON (numbers, true, null, lists), anything else as a string.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	_ "github.com/switchyard-mq/switchyard/drivers/all"
	rpcexample "github.com/switchyard-mq/switchyard/examples/rpc"
	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

func main() {
	url := flag.String("url", "memory://", "transport URL")
	server := flag.String("server", "", "call this server only")
	cast := flag.Bool("cast", false, "cast (no reply) instead of call")
	timeout := flag.Duration("timeout", 10*time.Second, "call timeout")
	flag.Parse()
	if flag.NArg() < 1 {
		fmt.Fprintln(os.Stderr, "usage: client [-url URL] [-server NAME] [-cast] METHOD [key=value ...]")
		os.Exit(2)
	}
	if err := run(*url, *server, *cast, *timeout, flag.Arg(0), flag.Args()[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
}

func run(url, server string, cast bool, timeout time.Duration, method string, kvs []string) error {
	args := map[string]any{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("argument %q is not key=value", kv)
		}
		var decoded any
		if json.Unmarshal([]byte(v), &decoded) == nil {
			args[k] = decoded
		} else {
			args[k] = v
		}
	}
	ctx := context.Background()
	tr, err := transport.Open(ctx, url)
	if err != nil {
		return err
	}
	defer tr.Close()
	client, err := rpc.NewClient(tr, rpc.WithTimeout(timeout))
	if err != nil {
		return err
	}
	defer client.Close()
	target := transport.Target{Topic: rpcexample.Topic, Server: server}
	if cast {
		return client.Cast(ctx, target, method, args)
	}
	var result json.RawMessage
	if err := client.Call(ctx, target, method, args, &result); err != nil {
		return err
	}
	fmt.Println(string(result))
	return nil
}
