package transport_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/switchyard-mq/switchyard/transport"

	_ "github.com/switchyard-mq/switchyard/drivers/memory" // memory://, the in-process broker
)

// Open chooses the backend by the URL's scheme alone. memory://NAME is an
// in-process broker of that name; rabbit://user:pass@host:5672/vhost,
// amqp://... and zmq://... reach the others, once their drivers are
// imported (drivers/all imports every one).
func ExampleOpen() {
	ctx := context.Background()
	tr, err := transport.Open(ctx, "memory://example-open")
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()
	fmt.Println(tr, tr.Capabilities().Has(transport.CapTopic))

	_, err = transport.Open(ctx, "nosuch://host/")
	fmt.Println(errors.Is(err, transport.ErrInvalid))
	// Output:
	// memory://example-open true
	// true
}

// ParseURL reads oslo.messaging's transport_url form: several hosts for
// failover, a virtual host, and options in the query. The password never
// shows in the URL's String form.
func ExampleParseURL() {
	u, err := transport.ParseURL("rabbit://nova:secret@rabbit1:5672,rabbit2/nova?heartbeat_timeout_threshold=30")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(u.Hosts, u.VirtualHost, u.Options.Get("heartbeat_timeout_threshold"))
	fmt.Println(u)
	// Output:
	// [rabbit1:5672 rabbit2] nova 30
	// rabbit://nova:xxxxx@rabbit1:5672,rabbit2/nova?heartbeat_timeout_threshold=30
}

// A queue with a message TTL and a dead-letter exchange: what expires or is
// rejected goes to the exchange, and from there to the queues bound to it.
// Declaring it again with other properties fails with ErrPrecondition.
func ExampleTransport_DeclareQueue() {
	ctx := context.Background()
	tr, err := transport.Open(ctx, "memory://example-declare")
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()

	if err := tr.DeclareExchange(ctx, transport.Exchange{Name: "dead", Kind: transport.Fanout}); err != nil {
		log.Fatal(err)
	}
	name, err := tr.DeclareQueue(ctx, transport.Queue{Name: "jobs", MessageTTL: time.Minute, DeadLetterExchange: "dead"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(name)

	_, err = tr.DeclareQueue(ctx, transport.Queue{Name: "jobs"})
	fmt.Println(errors.Is(err, transport.ErrPrecondition))
	// Output:
	// jobs
	// true
}

// A topic exchange routes by pattern: `*` is one word, `#` any number. A
// Mandatory message that no queue takes fails with ErrUnroutable instead of
// being dropped.
func ExampleTransport_Publish() {
	ctx := context.Background()
	tr, err := transport.Open(ctx, "memory://example-publish")
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()
	must := func(err error) {
		if err != nil {
			log.Fatal(err)
		}
	}
	must(tr.DeclareExchange(ctx, transport.Exchange{Name: "logs", Kind: transport.Topic}))
	q, err := tr.DeclareQueue(ctx, transport.Queue{Name: "kernel"})
	must(err)
	must(tr.Bind(ctx, transport.Binding{Exchange: "logs", Queue: q, Key: "kern.*"}))

	must(tr.Publish(ctx, "logs", "kern.critical", transport.Message{Body: []byte("disk on fire")}))
	err = tr.Publish(ctx, "logs", "cron.info", transport.Message{Body: []byte("nobody listens"), Mandatory: true})
	fmt.Println(errors.Is(err, transport.ErrUnroutable))
	// Output: true
}

// Receive blocks for the next delivery. Prefetch 1 is fair dispatch: a
// consumer gets nothing more until it settles what it holds. A delivery
// given back with Nack(true) comes again, marked Redelivered.
func ExampleTransport_Consume() {
	ctx := context.Background()
	tr, err := transport.Open(ctx, "memory://example-consume")
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()
	q, err := tr.DeclareQueue(ctx, transport.Queue{Name: "task_queue", Durable: true})
	if err != nil {
		log.Fatal(err)
	}
	if err := tr.Publish(ctx, "", q, transport.Message{Body: []byte("Hello..."), Persistent: true}); err != nil {
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
	fmt.Println(string(d.Body), d.Redelivered)
	if err := d.Nack(true); err != nil { // give it back
		log.Fatal(err)
	}
	d, err = c.Receive(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(d.Body), d.Redelivered)
	fmt.Println(d.Ack(), errors.Is(d.Ack(), transport.ErrSettled))
	// Output:
	// Hello... false
	// Hello... true
	// <nil> true
}

// Reject sends a message that cannot be handled to its queue's dead-letter
// exchange; a DeliveryLimit does the same for a message requeued too often.
func ExampleDelivery_Reject() {
	ctx := context.Background()
	tr, err := transport.Open(ctx, "memory://example-reject")
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()
	must := func(err error) {
		if err != nil {
			log.Fatal(err)
		}
	}
	must(tr.DeclareExchange(ctx, transport.Exchange{Name: "poison", Kind: transport.Fanout}))
	_, err = tr.DeclareQueue(ctx, transport.Queue{Name: "poisoned"})
	must(err)
	must(tr.Bind(ctx, transport.Binding{Exchange: "poison", Queue: "poisoned"}))
	_, err = tr.DeclareQueue(ctx, transport.Queue{Name: "work", DeadLetterExchange: "poison", DeliveryLimit: 3})
	must(err)
	must(tr.Publish(ctx, "", "work", transport.Message{Body: []byte("not JSON")}))

	work, err := tr.Consume(ctx, "work", transport.ConsumeOptions{})
	must(err)
	d, err := work.Receive(ctx)
	must(err)
	must(d.Reject())

	poisoned, err := tr.Consume(ctx, "poisoned", transport.ConsumeOptions{AutoAck: true})
	must(err)
	d, err = poisoned.Receive(ctx)
	must(err)
	fmt.Printf("%s from %s\n", d.Body, d.RoutingKey)
	// Output: not JSON from work
}

// As reaches the driver's underlying client, where the driver documents one
// (rabbit:// gives its *amqp091.Connection); memory:// has none.
func ExampleTransport_As() {
	tr, err := transport.Open(context.Background(), "memory://example-as")
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()
	var conn any
	fmt.Println(tr.As(&conn))
	// Output: false
}
