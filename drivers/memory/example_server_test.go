package memory_test

import (
	"context"
	"fmt"
	"net"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-mq/switchyard/drivers/memory"
)

// ExampleNewServer serves the in-process broker memory://example over
// AMQP 0-9-1 and talks to it with amqp091-go, as another process would.
func ExampleNewServer() {
	s, err := memory.NewServer(memory.ServerConfig{Broker: "example"})
	if err != nil {
		fmt.Println(err)
		return
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	go func() { _ = s.Serve(context.Background(), l) }()
	defer s.Close()

	conn, err := amqp.Dial("amqp://guest:guest@" + l.Addr().String() + "/")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		fmt.Println(err)
		return
	}
	q, err := ch.QueueDeclare("greetings", false, false, false, false, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	err = ch.PublishWithContext(context.Background(), "", q.Name, false, false, amqp.Publishing{Body: []byte("hello over TCP")})
	if err != nil {
		fmt.Println(err)
		return
	}
	d, ok, err := ch.Get(q.Name, true)
	fmt.Println(string(d.Body), ok, err)
	// Output: hello over TCP true <nil>
}
