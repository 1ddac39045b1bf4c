package memory_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-mq/switchyard/drivers/memory"
	"github.com/switchyard-mq/switchyard/transport"
)

var brokerSeq atomic.Int64

// uniqueBroker names a broker of the test's own: brokers live as long as
// the process, and a test may run more than once in it.
func uniqueBroker(t testing.TB) string {
	return fmt.Sprintf("%s %d", t.Name(), brokerSeq.Add(1))
}

// startServer serves a broker of the test's own on a loopback port and
// returns its amqp:// URL; the server closes with the test.
func startServer(t testing.TB, cfg memory.ServerConfig) string {
	t.Helper()
	if cfg.Broker == "" {
		cfg.Broker = uniqueBroker(t)
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

// amqpCode is the reply code of a channel or connection error.
func amqpCode(err error) int {
	var ae *amqp.Error
	if errors.As(err, &ae) {
		return ae.Code
	}
	return 0
}

func declareQueue(t testing.TB, ch *amqp.Channel, name string, args amqp.Table) string {
	t.Helper()
	q, err := ch.QueueDeclare(name, false, false, false, false, args)
	if err != nil {
		t.Fatal(err)
	}
	return q.Name
}

func publish(t testing.TB, ch *amqp.Channel, exchange, key string, mandatory bool, body string) {
	t.Helper()
	if err := ch.PublishWithContext(context.Background(), exchange, key, mandatory, false, amqp.Publishing{Body: []byte(body)}); err != nil {
		t.Fatal(err)
	}
}

func TestAMQPConfirmsAndReturns(t *testing.T) {
	url := startServer(t, memory.ServerConfig{})
	_, ch := dial(t, url)
	q := declareQueue(t, ch, "confirmed", nil)
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 4))
	returns := ch.NotifyReturn(make(chan amqp.Return, 1))
	publish(t, ch, "", q, true, "routed")
	publish(t, ch, "amq.direct", "nowhere", true, "returned")
	for i, want := range []uint64{1, 2} {
		select {
		case c := <-confirms:
			if c.DeliveryTag != want || !c.Ack {
				t.Errorf("confirm %d: %+v", i, c)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no confirm")
		}
	}
	select {
	case r := <-returns:
		if r.ReplyCode != 312 || string(r.Body) != "returned" || r.RoutingKey != "nowhere" {
			t.Errorf("return %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no basic.return")
	}
	d, ok, err := ch.Get(q, true)
	if err != nil || !ok || string(d.Body) != "routed" {
		t.Fatalf("get: %q %v %v", d.Body, ok, err)
	}
	if _, ok, err := ch.Get(q, true); ok || err != nil {
		t.Fatalf("get from an empty queue: %v %v", ok, err)
	}
}

func TestAMQPAckNackRejectRecover(t *testing.T) {
	url := startServer(t, memory.ServerConfig{})
	_, ch := dial(t, url)
	q := declareQueue(t, ch, "settle", nil)
	for i := 1; i <= 4; i++ {
		publish(t, ch, "", q, false, fmt.Sprint(i))
	}
	deliveries, err := ch.Consume(q, "c1", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ds []amqp.Delivery
	for range 4 {
		ds = append(ds, nextDelivery(t, deliveries))
	}
	if err := ds[1].Ack(true); err != nil { // acks 1 and 2
		t.Fatal(err)
	}
	if err := ds[2].Reject(false); err != nil { // drops 3
		t.Fatal(err)
	}
	if err := ds[3].Nack(false, true); err != nil { // requeues 4
		t.Fatal(err)
	}
	d := nextDelivery(t, deliveries)
	if string(d.Body) != "4" || !d.Redelivered {
		t.Fatalf("after nack: %q redelivered=%v", d.Body, d.Redelivered)
	}
	//lint:ignore SA1019 the server implements basic.recover, which old clients still send
	if err := ch.Recover(true); err != nil {
		t.Fatal(err)
	}
	d = nextDelivery(t, deliveries)
	if string(d.Body) != "4" || !d.Redelivered {
		t.Fatalf("after recover: %q redelivered=%v", d.Body, d.Redelivered)
	}
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
	// A tag acked twice is a channel error: 406, and only the channel.
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	if err := ch.Ack(d.DeliveryTag, false); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-closed:
		if e == nil || e.Code != 406 || !strings.Contains(e.Reason, "unknown delivery tag") {
			t.Fatalf("channel closed with %v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("double ack did not close the channel")
	}
}

func TestAMQPQos(t *testing.T) {
	for _, global := range []bool{false, true} {
		t.Run(fmt.Sprintf("global=%v", global), func(t *testing.T) {
			url := startServer(t, memory.ServerConfig{})
			_, ch := dial(t, url)
			q := declareQueue(t, ch, "qos", nil)
			for i := range 5 {
				publish(t, ch, "", q, false, fmt.Sprint(i))
			}
			if err := ch.Qos(2, 0, global); err != nil {
				t.Fatal(err)
			}
			deliveries, err := ch.Consume(q, "", false, false, false, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			first := nextDelivery(t, deliveries)
			nextDelivery(t, deliveries)
			select {
			case d := <-deliveries:
				t.Fatalf("a third delivery %q beyond prefetch 2", d.Body)
			case <-time.After(100 * time.Millisecond):
			}
			if err := first.Ack(false); err != nil {
				t.Fatal(err)
			}
			nextDelivery(t, deliveries)
			if err := ch.Qos(1, 1, false); amqpCode(err) != 540 {
				t.Fatalf("prefetch_size: %v, want 540", err)
			}
		})
	}
}

func TestAMQPCancelNotifyOnQueueDelete(t *testing.T) {
	url := startServer(t, memory.ServerConfig{})
	_, ch := dial(t, url)
	_, admin := dial(t, url)
	q := declareQueue(t, ch, "doomed", nil)
	cancels := ch.NotifyCancel(make(chan string, 1))
	deliveries, err := ch.Consume(q, "watcher", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.QueueDelete(q, false, false, false); err != nil {
		t.Fatal(err)
	}
	select {
	case tag := <-cancels:
		if tag != "watcher" {
			t.Fatalf("cancelled %q", tag)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no basic.cancel after the queue was deleted")
	}
	if _, ok := <-deliveries; ok {
		t.Fatal("deliveries still open")
	}
}

func TestAMQPChannelErrors(t *testing.T) {
	url := startServer(t, memory.ServerConfig{})
	conn, setup := dial(t, url)
	declareQueue(t, setup, "existing", amqp.Table{"x-message-ttl": int32(1000)})
	other, _ := dial(t, url)
	otherCh, err := other.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := otherCh.QueueDeclare("mine", false, false, true, false, nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		run  func(ch *amqp.Channel) error
		code int
		text string
	}{
		{"passive declare of a missing queue", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclarePassive("missing", false, false, false, false, nil)
			return err
		}, 404, "no queue 'missing'"},
		{"inequivalent ttl", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare("existing", false, false, false, false, amqp.Table{"x-message-ttl": int32(2000)})
			return err
		}, 406, "inequivalent arg 'x-message-ttl'"},
		{"another connection's exclusive queue", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare("mine", false, false, true, false, nil)
			return err
		}, 405, "exclusive access to locked queue 'mine'"},
		{"publish to a missing exchange", func(ch *amqp.Channel) error {
			closed := ch.NotifyClose(make(chan *amqp.Error, 1))
			if err := ch.PublishWithContext(context.Background(), "missing", "", false, false, amqp.Publishing{}); err != nil {
				return err
			}
			select {
			case e := <-closed:
				return e
			case <-time.After(5 * time.Second):
				return errors.New("the channel stayed open")
			}
		}, 404, "no exchange 'missing'"},
		{"bind to a missing exchange", func(ch *amqp.Channel) error {
			return ch.QueueBind("existing", "k", "missing", false, nil)
		}, 404, "no exchange 'missing'"},
		{"stream queue", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare("q", true, false, false, false, amqp.Table{"x-queue-type": "stream"})
			return err
		}, 540, "queue type 'stream'"},
		{"transient quorum queue", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare("q", false, false, false, false, amqp.Table{"x-queue-type": "quorum"})
			return err
		}, 406, "invalid property 'non-durable'"},
		{"quorum queue redeclared classic", func(ch *amqp.Channel) error {
			if _, err := ch.QueueDeclare("qq", true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
				return err
			}
			_, err := ch.QueueDeclare("qq", true, false, false, false, nil)
			return err
		}, 406, "inequivalent arg 'x-queue-type'"},
		{"max priority", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare("q", false, false, false, false, amqp.Table{"x-max-priority": int32(10)})
			return err
		}, 540, "x-max-priority"},
		{"ttl of the wrong type", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare("q", false, false, false, false, amqp.Table{"x-message-ttl": "soon"})
			return err
		}, 406, "invalid arg 'x-message-ttl'"},
		{"reserved queue name", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare("amq.mine", false, false, false, false, nil)
			return err
		}, 403, "reserved prefix"},
		{"inequivalent exchange", func(ch *amqp.Channel) error {
			return ch.ExchangeDeclare("amq.direct", "fanout", true, false, false, false, nil)
		}, 406, "inequivalent arg 'type'"},
		{"flow off", func(ch *amqp.Channel) error {
			return ch.Flow(false)
		}, 540, "active=false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch, err := conn.Channel()
			if err != nil {
				t.Fatal(err)
			}
			err = tt.run(ch)
			var ae *amqp.Error
			if !errors.As(err, &ae) || ae.Code != tt.code || !strings.Contains(ae.Reason, tt.text) {
				t.Fatalf("err %v, want %d containing %q", err, tt.code, tt.text)
			}
			if conn.IsClosed() {
				t.Fatal("a channel error closed the connection")
			}
		})
	}
}

// TestAMQPSharedWithMemoryTransport: the server's broker is memory://NAME
// in the process too.
func TestAMQPSharedWithMemoryTransport(t *testing.T) {
	broker := strings.ReplaceAll(uniqueBroker(t), " ", "-")
	url := startServer(t, memory.ServerConfig{Broker: broker})
	ctx := context.Background()
	tr, err := transport.Open(ctx, "memory://"+broker)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, err := tr.DeclareQueue(ctx, transport.Queue{Name: "from-process"}); err != nil {
		t.Fatal(err)
	}
	_, ch := dial(t, url)
	if err := ch.PublishWithContext(ctx, "", "from-process", false, false, amqp.Publishing{Body: []byte("over tcp"), Headers: amqp.Table{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	c, err := tr.Consume(ctx, "from-process", transport.ConsumeOptions{AutoAck: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	d, err := c.Receive(rctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(d.Body) != "over tcp" || d.Headers["k"] != "v" {
		t.Fatalf("got %q %v", d.Body, d.Headers)
	}
}

func TestAMQPAuthentication(t *testing.T) {
	url := startServer(t, memory.ServerConfig{Users: map[string]string{"app": "secret"}})
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "amqp://guest:guest@"), "/")
	tests := []struct {
		name string
		url  string
		auth []amqp.Authentication
		ok   bool
	}{
		{"PLAIN", "amqp://app:secret@" + addr + "/", nil, true},
		{"AMQPLAIN", "amqp://" + addr + "/", []amqp.Authentication{&amqp.AMQPlainAuth{Username: "app", Password: "secret"}}, true},
		{"wrong password", "amqp://app:nope@" + addr + "/", nil, false},
		{"guest not configured", "amqp://guest:guest@" + addr + "/", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := amqp.DialConfig(tt.url, amqp.Config{SASL: tt.auth})
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				conn.Close()
				return
			}
			if err == nil {
				conn.Close()
				t.Fatal("connected")
			}
			if amqpCode(err) != 403 {
				t.Fatalf("err %v, want 403", err)
			}
		})
	}
}

func TestAMQPQueueOperations(t *testing.T) {
	url := startServer(t, memory.ServerConfig{})
	conn, ch := dial(t, url)
	q := declareQueue(t, ch, "ops", nil)
	if err := ch.ExchangeDeclare("ops-ex", "direct", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q, "k", "ops-ex", false, nil); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		publish(t, ch, "ops-ex", "k", false, "m")
	}
	got, err := ch.QueueDeclarePassive(q, false, false, false, false, nil)
	if err != nil || got.Messages != 3 || got.Consumers != 0 {
		t.Fatalf("passive declare: %+v %v", got, err)
	}
	if err := ch.QueueUnbind(q, "k", "ops-ex", nil); err != nil {
		t.Fatal(err)
	}
	publish(t, ch, "ops-ex", "k", false, "unrouted")
	if n, err := ch.QueuePurge(q, false); err != nil || n != 3 {
		t.Fatalf("purge: %d %v, want 3", n, err)
	}
	publish(t, ch, "", q, false, "one")

	refusals := []struct {
		name string
		run  func(ch *amqp.Channel) error
		code int
	}{
		{"delete if empty", func(ch *amqp.Channel) error { _, err := ch.QueueDelete(q, false, true, false); return err }, 406},
		{"exclusive consume beside a consumer", func(ch *amqp.Channel) error {
			if _, err := ch.Consume(q, "first", false, false, false, false, nil); err != nil {
				return err
			}
			_, err := ch.Consume(q, "second", false, true, false, false, nil)
			return err
		}, 403},
		{"delete the default exchange", func(ch *amqp.Channel) error { return ch.ExchangeDelete("", false, false) }, 403},
		{"consumer tag reused", func(ch *amqp.Channel) error {
			if _, err := ch.Consume(q, "same", false, false, false, false, nil); err != nil {
				return err
			}
			_, err := ch.Consume(q, "same", false, false, false, false, nil)
			return err
		}, 530},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			c, err := conn.Channel()
			if conn.IsClosed() {
				conn, c = dial(t, url)
			} else if err != nil {
				t.Fatal(err)
			}
			if err := tt.run(c); amqpCode(err) != tt.code {
				t.Fatalf("err %v, want %d", err, tt.code)
			}
		})
	}
	_, ch = dial(t, url)
	// The connection the 530 closed returns its consumers' message to the
	// queue as the server cleans it up.
	for deadline := time.Now().Add(5 * time.Second); ; {
		got, err := ch.QueueDeclarePassive(q, false, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got.Messages == 1 && got.Consumers == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the queue holds %d messages and %d consumers, want 1 and 0", got.Messages, got.Consumers)
		}
	}
	if n, err := ch.QueueDelete(q, false, false, false); err != nil || n != 1 {
		t.Fatalf("delete: %d %v, want 1", n, err)
	}
	if n, err := ch.QueueDelete(q, false, false, false); err != nil || n != 0 {
		t.Fatalf("deleting a missing queue: %d %v, want 0 and no error, as on RabbitMQ", n, err)
	}
	if err := ch.ExchangeDelete("ops-ex", false, false); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclarePassive("ops-ex", "direct", false, false, false, false, nil); amqpCode(err) != 404 {
		t.Fatalf("passive declare of a deleted exchange: %v, want 404", err)
	}
}

// TestAMQPCancelKeepsUnacked: after basic.cancel the consumer's
// unacknowledged deliveries can still be acknowledged, as on RabbitMQ, and
// nothing more is delivered to it.
func TestAMQPCancelKeepsUnacked(t *testing.T) {
	url := startServer(t, memory.ServerConfig{})
	_, ch := dial(t, url)
	q := declareQueue(t, ch, "cancelled", nil)
	for i := range 3 {
		publish(t, ch, "", q, false, fmt.Sprint(i))
	}
	if err := ch.Qos(1, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(q, "c", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := nextDelivery(t, deliveries)
	if err := ch.Cancel("c", false); err != nil {
		t.Fatal(err)
	}
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
	got, err := ch.QueueDeclarePassive(q, false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Messages != 2 || got.Consumers != 0 {
		t.Fatalf("after cancel and ack: %d messages, %d consumers; want 2 and 0", got.Messages, got.Consumers)
	}
}

// TestAMQPUnackedReturnOnClose: what a channel or connection leaves
// unacknowledged, from a consumer or from basic.get, goes back to its
// queue marked redelivered, in order.
func TestAMQPUnackedReturnOnClose(t *testing.T) {
	for _, closeConn := range []bool{false, true} {
		t.Run(fmt.Sprintf("close connection %v", closeConn), func(t *testing.T) {
			url := startServer(t, memory.ServerConfig{})
			_, ch := dial(t, url)
			q := declareQueue(t, ch, "returned", nil)
			for i := range 3 {
				publish(t, ch, "", q, false, fmt.Sprint(i))
			}
			// A round trip on the same channel: the publishes are queued.
			if _, err := ch.QueueDeclarePassive(q, false, false, false, false, nil); err != nil {
				t.Fatal(err)
			}
			conn, other := dial(t, url)
			if _, ok, err := other.Get(q, false); !ok || err != nil {
				t.Fatalf("get: %v %v", ok, err)
			}
			deliveries, err := other.Consume(q, "", false, false, false, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			nextDelivery(t, deliveries)
			nextDelivery(t, deliveries)
			if closeConn {
				err = conn.Close()
			} else {
				err = other.Close()
			}
			if err != nil {
				t.Fatal(err)
			}
			again, err := ch.Consume(q, "", false, false, false, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				d := nextDelivery(t, again)
				if string(d.Body) != fmt.Sprint(i) || !d.Redelivered {
					t.Fatalf("delivery %d: %q redelivered=%v", i, d.Body, d.Redelivered)
				}
			}
		})
	}
}
