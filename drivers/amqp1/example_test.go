package amqp1_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/switchyard-mq/switchyard/transport"
)

// Example_underlyingClient reaches beneath the model: what the broker
// refuses over AMQP 1.0 keeps go-amqp's own error, with its condition and
// the broker's description, in the chain; and Transport.As gives the
// connection in use, here to send to an address of RabbitMQ's plugin that
// the model has no name for. (Compiled, not run: it needs a broker.)
func Example_underlyingClient() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := transport.Open(ctx, "amqp://guest:guest@127.0.0.1:5672/")
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()

	_, err = tr.Consume(ctx, "no-such-queue", transport.ConsumeOptions{})
	var refusal *amqp.Error
	if errors.Is(err, transport.ErrNotFound) && errors.As(err, &refusal) {
		fmt.Printf("%s: %s\n", refusal.Condition, refusal.Description)
	}

	// The connection is the transport's: it is replaced when the driver
	// reconnects, so ask again each time, and never close it.
	var conn *amqp.Conn
	if !tr.As(&conn) {
		log.Fatal("not connected")
	}
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer sess.Close(ctx)
	snd, err := sess.NewSender(ctx, "/topic/audit.login", nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := snd.Send(ctx, amqp.NewMessage([]byte("alice")), nil); err != nil {
		log.Fatal(err)
	}
}
