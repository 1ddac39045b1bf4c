package amqp1_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	_ "github.com/switchyard-mq/switchyard/drivers/rabbit"
	"github.com/switchyard-mq/switchyard/transport"
)

// TestQueuesDeclaredAsTheRabbitDriverDoes: a queue that one driver
// declares on RabbitMQ the other declares again without a 406: both give
// it the same flags and x-arguments (no x-overflow with a MaxLength). On
// RabbitMQ 4.3 the shapes are durable (the node denies transient queues),
// and quorum queues, which the driver declares there, are shapes too.
func TestQueuesDeclaredAsTheRabbitDriverDoes(t *testing.T) {
	eachRabbit(t, func(t *testing.T, amqpURL string) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		u, err := url.Parse(amqpURL)
		if err != nil {
			t.Fatal(err)
		}
		u.Scheme = "rabbit"
		byAMQP1, byRabbit := openT(t, ctx, amqpURL), openT(t, ctx, u.String())
		shapes := []struct {
			name string
			q    transport.Queue
		}{
			{"plain", transport.Queue{}},
			{"durable", transport.Queue{Durable: true}},
			{"auto-delete", transport.Queue{AutoDelete: true}},
			{"max length", transport.Queue{MaxLength: 5}},
			{"every argument", transport.Queue{Durable: true, MessageTTL: time.Minute, Expires: 10 * time.Minute, MaxLength: 100}},
		}
		if isRabbit4(t, amqpURL) {
			shapes = append(shapes, []struct {
				name string
				q    transport.Queue
			}{
				{"quorum", transport.Queue{Durable: true, Type: transport.QuorumQueue}},
				{"quorum with arguments", transport.Queue{Durable: true, Type: transport.QuorumQueue, MessageTTL: time.Minute, Expires: 10 * time.Minute, MaxLength: 100}},
			}...)
		}
		for _, order := range []struct {
			name          string
			first, second *transport.Transport
		}{{"amqp then rabbit", byAMQP1, byRabbit}, {"rabbit then amqp", byRabbit, byAMQP1}} {
			for _, shape := range shapes {
				t.Run(order.name+"/"+shape.name, func(t *testing.T) {
					q := orDurable(t, amqpURL, shape.q)
					q.Name = "alike." + randomHex(4)
					if _, err := order.first.DeclareQueue(ctx, q); err != nil {
						t.Fatalf("declare %+v: %v", q, err)
					}
					defer order.first.DeleteQueue(context.Background(), q.Name)
					if _, err := order.second.DeclareQueue(ctx, q); err != nil {
						t.Fatalf("declare %+v again through the other driver: %v", q, err)
					}
				})
			}
		}
	})
}
