package rabbit_test

import (
	"context"
	"fmt"
	"log"
	"time"

	_ "github.com/switchyard-mq/switchyard/drivers/rabbit"
	"github.com/switchyard-mq/switchyard/transport"
)

// Example is the work-queue tutorial on RabbitMQ: a durable queue,
// persistent messages confirmed by the broker, and a consumer that takes
// one message at a time and acknowledges it. (It needs a broker, so it
// is compiled but not run by go test.)
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := transport.Open(ctx, "rabbit://guest:guest@127.0.0.1:5672/?heartbeat_timeout_threshold=30")
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()

	q, err := tr.DeclareQueue(ctx, transport.Queue{Name: "task_queue", Durable: true})
	if err != nil {
		log.Fatal(err)
	}
	// Publish returns once the broker has confirmed the message.
	err = tr.Publish(ctx, "", q, transport.Message{Body: []byte("hello"), Persistent: true, ContentType: "text/plain"})
	if err != nil {
		log.Fatal(err)
	}

	c, err := tr.Consume(ctx, q, transport.ConsumeOptions{Prefetch: 1})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	d, err := c.Receive(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("received %s\n", d.Body)
	// Ack fails with transport.ErrClosed if the connection dropped since
	// the delivery; the broker then delivers the message again.
	if err := d.Ack(); err != nil {
		log.Fatal(err)
	}
}
