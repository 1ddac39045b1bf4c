package amqp1_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/switchyard-mq/switchyard/drivers/amqp1"
	"github.com/switchyard-mq/switchyard/transport"
)

// TestRabbitMQ4Refusals: what RabbitMQ 4.3 refuses, on an AMQP 1.0 link or
// through its management node, is the model's sentinel, with the client's
// *amqp.Error or the driver's *amqp1.ManagementError (and its status) in
// the chain, and the transport goes on working. The node denies transient
// queues: that is ErrUnsupported, naming the deprecated feature.
func TestRabbitMQ4Refusals(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	url := rabbit4URL(t)
	tr, other := openT(t, ctx, url), openT(t, ctx, url)
	missing := "missing." + randomHex(4)
	queue, err := tr.DeclareQueue(ctx, transport.Queue{Name: "refusals." + randomHex(4), Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.DeleteQueue(context.Background(), queue)
	exclusive, err := tr.DeclareQueue(ctx, transport.Queue{Name: "exclusive." + randomHex(4), Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		call    func() error
		want    error
		cond    amqp.ErrCond // the AMQP 1.0 condition, if a link refused
		status  int          // the management status, if the management node refused
		mention string
	}{
		{"consume a missing queue", func() error { _, err := tr.Consume(ctx, missing, transport.ConsumeOptions{}); return err },
			transport.ErrNotFound, amqp.ErrCondNotFound, 0, missing},
		{"publish to a missing exchange", func() error { return tr.Publish(ctx, missing, "k", transport.Message{}) },
			transport.ErrNotFound, amqp.ErrCondNotFound, 0, missing},
		{"purge a missing queue", func() error { _, err := tr.PurgeQueue(ctx, missing); return err },
			transport.ErrNotFound, "", 404, missing},
		{"bind to a missing exchange", func() error { return tr.Bind(ctx, transport.Binding{Exchange: missing, Queue: queue}) },
			transport.ErrNotFound, "", 400, missing},
		{"redeclare with other flags", func() error {
			_, err := tr.DeclareQueue(ctx, transport.Queue{Name: queue, Durable: true, MaxLength: 3})
			return err
		}, transport.ErrPrecondition, "", 409, queue},
		{"a transient queue", func() error {
			_, err := tr.DeclareQueue(ctx, transport.Queue{Name: "transient." + randomHex(4)})
			return err
		}, transport.ErrUnsupported, "", 400, "transient_nonexcl_queues"},
		{"another connection's exclusive queue", func() error {
			_, err := other.DeclareQueue(ctx, transport.Queue{Name: exclusive, Exclusive: true})
			return err
		}, transport.ErrInUse, "", 0, exclusive},
		{"publish to the queue afterwards", func() error {
			return tr.Publish(ctx, "", queue, transport.Message{Body: []byte("fine")})
		}, nil, "", 0, ""},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			err := s.call()
			if !errors.Is(err, s.want) || (s.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, s.want)
			}
			if err != nil && !strings.Contains(err.Error(), s.mention) {
				t.Errorf("error %q does not mention %q", err, s.mention)
			}
			var refusal *amqp.Error
			if got := errors.As(err, &refusal); got != (s.cond != "") || (got && refusal.Condition != s.cond) {
				t.Errorf("error %q: AMQP 1.0 error %v, want condition %q", err, refusal, s.cond)
			}
			var mgmt *amqp1.ManagementError
			if s.status != 0 && (!errors.As(err, &mgmt) || mgmt.Status != s.status) {
				t.Errorf("error %q: management error %v, want status %d", err, mgmt, s.status)
			}
		})
	}
}

// TestRabbitMQ4Names: names that v2 addresses and management paths must
// percent-encode ("/", "%", spaces, ";", "=", non-ASCII) declare, bind,
// route, consume, unbind, purge and delete as any other.
func TestRabbitMQ4Names(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	tr := openT(t, ctx, rabbit4URL(t))
	names := []string{"plain", "a/b", "100%", "sp ace", "k;e=y", "ünï", "a%2Fb", "q?x#y"}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			ex := "x " + name
			if err := tr.DeclareExchange(ctx, transport.Exchange{Name: ex, Kind: transport.Direct, Durable: true}); err != nil {
				t.Fatal(err)
			}
			defer tr.DeleteExchange(context.Background(), ex)
			q, err := tr.DeclareQueue(ctx, transport.Queue{Name: name, Durable: true})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.DeleteQueue(context.Background(), q)
			if err := tr.Bind(ctx, transport.Binding{Exchange: ex, Queue: q, Key: name}); err != nil {
				t.Fatal(err)
			}
			for _, via := range []string{"", ex} {
				if err := tr.Publish(ctx, via, name, transport.Message{Body: []byte("via " + via)}); err != nil {
					t.Fatalf("publish via %q: %v", via, err)
				}
			}
			c, err := tr.Consume(ctx, q, transport.ConsumeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for _, via := range []string{"", ex} {
				d, err := c.Receive(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if string(d.Body) != "via "+via || d.RoutingKey != name || d.Exchange != via {
					t.Errorf("got %q, key %q, exchange %q; want %q, key %q, exchange %q", d.Body, d.RoutingKey, d.Exchange, "via "+via, name, via)
				}
				if err := d.Ack(); err != nil {
					t.Fatal(err)
				}
			}
			if err := tr.Unbind(ctx, transport.Binding{Exchange: ex, Queue: q, Key: name}); err != nil {
				t.Fatal(err)
			}
			if err := tr.Publish(ctx, ex, name, transport.Message{Body: []byte("unbound")}); err != nil {
				t.Fatal(err)
			}
			if n, err := tr.PurgeQueue(ctx, q); err != nil || n != 0 {
				t.Errorf("purge after unbind: %d, %v; want 0 (the message was not routed)", n, err)
			}
		})
	}
}
