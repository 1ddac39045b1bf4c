// Command server runs the Compute RPC service until interrupted.
//
//	go run ./examples/rpc/cmd/server -url rabbit://guest:guest@127.0.0.1:5672/ -host host1
//
// memory:// lives inside one process, so to call this server from another
// process use a broker URL. On RabbitMQ, Python oslo.messaging clients can
// call it too (topic "compute").
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	_ "github.com/switchyard-mq/switchyard/drivers/all"
	rpcexample "github.com/switchyard-mq/switchyard/examples/rpc"
	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

func main() {
	url := flag.String("url", "memory://", "transport URL")
	host := flag.String("host", "host1", "this server's name (Target.Server)")
	flag.Parse()
	if err := run(*url, *host); err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

func run(url, host string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tr, err := transport.Open(ctx, url)
	if err != nil {
		return err
	}
	defer tr.Close()
	srv, err := rpc.NewServer(tr, transport.Target{Topic: rpcexample.Topic, Server: host},
		[]rpc.Endpoint{{Receiver: &rpcexample.Compute{Host: host}}})
	if err != nil {
		return err
	}
	if err := srv.Start(ctx); err != nil {
		return err
	}
	log.Printf("serving topic %q as %q on %s; interrupt to stop", rpcexample.Topic, host, tr)
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return srv.Stop(stopCtx)
}
