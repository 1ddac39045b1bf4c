package rabbit_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

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

// Example_underlyingClient reaches beneath the model: what the broker
// refuses keeps amqp091-go's own error, with the reply code and the
// broker's reason, in the chain; and Transport.As gives the connection in
// use, here to count a queue's messages with a passive declaration, which
// the model does not offer. (Compiled, not run: it needs a broker.)
func Example_underlyingClient() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := transport.Open(ctx, "rabbit://guest:guest@127.0.0.1:5672/")
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()

	_, err = tr.Consume(ctx, "no-such-queue", transport.ConsumeOptions{})
	var reply *amqp091.Error
	if errors.Is(err, transport.ErrNotFound) && errors.As(err, &reply) {
		fmt.Printf("AMQP reply %d: %s\n", reply.Code, reply.Reason)
	}

	// The connection is the transport's: it is replaced when the driver
	// reconnects, so ask again each time, and never close it.
	var conn *amqp091.Connection
	if !tr.As(&conn) {
		log.Fatal("not connected")
	}
	ch, err := conn.Channel()
	if err != nil {
		log.Fatal(err)
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive("task_queue", true, false, false, false, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d messages ready\n", q.Messages)
}
