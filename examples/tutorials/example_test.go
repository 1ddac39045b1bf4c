package tutorials_test

import (
	"context"
	"fmt"
	"log"
	"time"

	_ "github.com/switchyard-mq/switchyard/drivers/memory"
	"github.com/switchyard-mq/switchyard/transport"
)

// The portable model in a few calls, as README.md shows it (there without
// the error checks).
func Example_portableModel() {
	ctx := context.Background()
	check := func(err error) {
		if err != nil {
			log.Fatal(err)
		}
	}

	tr, err := transport.Open(ctx, "memory://") // the backend is chosen by URL alone
	check(err)
	defer tr.Close()
	err = tr.DeclareExchange(ctx, transport.Exchange{Name: "events", Kind: transport.Topic})
	check(err)
	q, err := tr.DeclareQueue(ctx, transport.Queue{Name: "kernel", MessageTTL: time.Hour, DeadLetterExchange: "expired"})
	check(err)
	err = tr.Bind(ctx, transport.Binding{Exchange: "events", Queue: q, Key: "kern.*"})
	check(err)
	err = tr.Publish(ctx, "events", "kern.critical", transport.Message{Body: []byte("disk on fire"), Persistent: true})
	check(err)
	c, err := tr.Consume(ctx, q, transport.ConsumeOptions{Prefetch: 10})
	check(err)
	d, err := c.Receive(ctx)
	check(err)
	fmt.Printf("%s: %s\n", d.RoutingKey, d.Body)
	err = d.Ack() // or d.Nack(true) to requeue it, d.Reject() to dead-letter it
	check(err)
	// Output: kern.critical: disk on fire
}
