// Command listener prints every notification on a topic until interrupted.
//
//	go run ./examples/notifications/cmd/listener -url rabbit://guest:guest@127.0.0.1:5672/ -pool audit-log
//
// Without -pool it shares the queue "notifications.<priority>" with every
// other pool-less listener (and they compete for messages); with a pool
// it gets its own copy of every notification.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	_ "github.com/switchyard-mq/switchyard/drivers/all"
	"github.com/switchyard-mq/switchyard/notify"
	"github.com/switchyard-mq/switchyard/transport"
)

func main() {
	url := flag.String("url", "memory://", "transport URL")
	topic := flag.String("topic", notify.DefaultTopic, "notification topic")
	pool := flag.String("pool", "", "listener pool")
	flag.Parse()
	if err := run(*url, *topic, *pool); err != nil {
		fmt.Fprintln(os.Stderr, "listener:", err)
		os.Exit(1)
	}
}

func run(url, topic, pool string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tr, err := transport.Open(ctx, url)
	if err != nil {
		return err
	}
	defer tr.Close()
	var opts []notify.ListenerOption
	if pool != "" {
		opts = append(opts, notify.WithPool(pool))
	}
	l, err := notify.NewListener(tr, []transport.Target{{Topic: topic}}, []notify.Endpoint{{
		Handle: func(ctx context.Context, n *notify.Notification) error {
			fmt.Printf("%s %-8s %s %s %s\n", n.Timestamp, n.Priority, n.PublisherID, n.EventType, n.Payload)
			return nil
		},
	}}, opts...)
	if err != nil {
		return err
	}
	if err := l.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return l.Stop(stopCtx)
}
