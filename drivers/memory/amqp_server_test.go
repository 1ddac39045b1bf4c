package memory_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-mq/switchyard/drivers/memory"
)

// startServer serves a broker of the test's own on a loopback port and
// returns its amqp:// URL; the server closes with the test.
func startServer(t testing.TB, cfg memory.ServerConfig) string {
	t.Helper()
	if cfg.Broker == "" {
		cfg.Broker = "amqp-" + t.Name()
	}
	s, err := memory.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(context.Background(), l) }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
		if err := <-served; !errors.Is(err, memory.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return "amqp://guest:guest@" + l.Addr().String() + "/"
}

func dial(t testing.TB, url string) (*amqp.Connection, *amqp.Channel) {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return conn, ch
}

// nextDelivery waits for one delivery, failing the test after a few seconds.
func nextDelivery(t testing.TB, deliveries <-chan amqp.Delivery) amqp.Delivery {
	t.Helper()
	select {
	case d, ok := <-deliveries:
		if !ok {
			t.Fatal("deliveries closed")
		}
		return d
	case <-time.After(5 * time.Second):
		t.Fatal("no delivery within 5 s")
	}
	return amqp.Delivery{}
}

func TestAMQPPublishConsume(t *testing.T) {
	url := startServer(t, memory.ServerConfig{})
	_, ch := dial(t, url)
	if err := ch.ExchangeDeclare("logs", "topic", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, false, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(q.Name, "amq.gen-") {
		t.Errorf("server-named queue %q", q.Name)
	}
	if err := ch.QueueBind(q.Name, "kern.*", "logs", false, nil); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(q.Name, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(1700000000, 0)
	pub := amqp.Publishing{
		Headers: amqp.Table{"n": int32(7), "nested": amqp.Table{"s": "x"}}, ContentType: "text/plain", ContentEncoding: "utf-8",
		DeliveryMode: 1, Priority: 3, CorrelationId: "c1", ReplyTo: "r", Expiration: "60000", MessageId: "m1",
		Timestamp: ts, Type: "t", UserId: "guest", AppId: "app", Body: []byte("hello"),
	}
	if err := ch.PublishWithContext(context.Background(), "logs", "kern.crit", false, false, pub); err != nil {
		t.Fatal(err)
	}
	d := nextDelivery(t, deliveries)
	got := fmt.Sprintf("%v %s %s %d %d %s %s %s %s %v %s %s %s %q %s %s", d.Headers, d.ContentType, d.ContentEncoding, d.DeliveryMode, d.Priority,
		d.CorrelationId, d.ReplyTo, d.Expiration, d.MessageId, d.Timestamp.Unix(), d.Type, d.UserId, d.AppId, d.Body, d.Exchange, d.RoutingKey)
	want := fmt.Sprintf("%v text/plain utf-8 1 3 c1 r 60000 m1 %v t guest app \"hello\" logs kern.crit", pub.Headers, ts.Unix())
	if got != want {
		t.Errorf("delivery\n got %s\nwant %s", got, want)
	}
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
}
