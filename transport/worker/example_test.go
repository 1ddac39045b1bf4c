package worker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	_ "github.com/switchyard-mq/switchyard/drivers/memory"
	"github.com/switchyard-mq/switchyard/transport"
	"github.com/switchyard-mq/switchyard/transport/worker"
)

// A worker resizing photos: a task it cannot do is poisoned, with the
// reason, to the queue "poisoned"; one that fails is retried first.
func Example() {
	ctx := context.Background()
	tr, err := transport.Open(ctx, "memory://worker-example")
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()
	if _, err := tr.DeclareQueue(ctx, transport.Queue{Name: "tasks"}); err != nil {
		log.Fatal(err)
	}
	// Where poison messages go.
	if err := tr.DeclareExchange(ctx, transport.Exchange{Name: "poison", Kind: transport.Direct}); err != nil {
		log.Fatal(err)
	}
	if _, err := tr.DeclareQueue(ctx, transport.Queue{Name: "poisoned"}); err != nil {
		log.Fatal(err)
	}
	if err := tr.Bind(ctx, transport.Binding{Exchange: "poison", Queue: "poisoned", Key: "tasks"}); err != nil {
		log.Fatal(err)
	}
	for _, task := range []string{"resize photo 1", "resize photo ?"} {
		if err := tr.Publish(ctx, "", "tasks", transport.Message{Body: []byte(task)}); err != nil {
			log.Fatal(err)
		}
	}

	resize := func(ctx context.Context, d *transport.Delivery) error {
		if bytes.HasSuffix(d.Body, []byte("?")) {
			return worker.Permanent(errors.New("no such photo")) // no retry can help
		}
		fmt.Printf("done: %s\n", d.Body)
		return nil
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- worker.Run(runCtx, tr, "tasks", resize,
			worker.WithConcurrency(1),
			worker.WithMiddleware(
				worker.Poison(tr, worker.PoisonOptions{Exchange: "poison", RoutingKey: "tasks", MaxDeliveries: 3}),
				worker.Retry(worker.RetryOptions{MaxAttempts: 3}),
				worker.Timeout(time.Minute),
				worker.Recover(), // innermost: Retry and Poison see a panic as an error
			))
	}()

	poisoned, err := tr.Consume(ctx, "poisoned", transport.ConsumeOptions{})
	if err != nil {
		log.Fatal(err)
	}
	d, err := poisoned.Receive(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("poisoned: %s (%s in queue %s: %s)\n", d.Body,
		d.Headers[worker.HeaderPoisonReason], d.Headers[worker.HeaderPoisonQueue], d.Headers[worker.HeaderPoisonError])
	if err := d.Ack(); err != nil {
		log.Fatal(err)
	}

	stop() // the worker finishes what it holds, then Run returns
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	// Output:
	// done: resize photo 1
	// poisoned: resize photo ? (permanent in queue tasks: no such photo)
}
