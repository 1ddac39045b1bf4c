package rabbitmq

import (
	"maps"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-mq/switchyard/transport/driver"
)

func TestDeclaration(t *testing.T) {
	limited := driver.Queue{Name: "q", DeliveryLimit: 3}
	quorum := QueueOptions{Quorum: true}
	for _, tc := range []struct {
		name    string
		o       QueueOptions
		q       driver.Queue
		durable bool
		quorum  bool
		args    amqp091.Table
	}{
		{"plain", QueueOptions{}, driver.Queue{Name: "q"}, false, false, nil},
		{"every argument", QueueOptions{}, driver.Queue{
			Name: "q", Durable: true, MessageTTL: 1500 * time.Millisecond, Expires: 30 * time.Minute, MaxLength: 10,
			DeadLetterExchange: "dlx", DeadLetterRoutingKey: "dead",
		}, true, false, amqp091.Table{
			"x-message-ttl": int64(1500), "x-expires": int64(1800000), "x-max-length": int64(10),
			"x-dead-letter-exchange": "dlx", "x-dead-letter-routing-key": "dead",
		}},
		// No x-overflow: drop-head is the broker's default, and an explicit
		// one would make the queue inequivalent to oslo.messaging's.
		{"max length alone", QueueOptions{}, driver.Queue{Name: "q", MaxLength: 1}, false, false, amqp091.Table{"x-max-length": int64(1)}},
		{"sub-millisecond TTL rounds up", QueueOptions{}, driver.Queue{Name: "q", MessageTTL: time.Microsecond}, false, false,
			amqp091.Table{"x-message-ttl": int64(1)}},
		{"classic delivery limit: no argument", QueueOptions{}, limited, false, false, nil},
		{"quorum", quorum, driver.Queue{Name: "T"}, true, true, amqp091.Table{"x-queue-type": "quorum"}},
		{"quorum delivery limit from the queue", QueueOptions{Quorum: true, QuorumDeliveryLimit: 9}, limited, true, true,
			amqp091.Table{"x-queue-type": "quorum", "x-delivery-limit": int64(3)}},
		{"quorum delivery limit from the option", QueueOptions{Quorum: true, QuorumDeliveryLimit: 9}, driver.Queue{Name: "T"}, true, true,
			amqp091.Table{"x-queue-type": "quorum", "x-delivery-limit": int64(9)}},
		{"queues with expiry stay classic (oslo reply and fanout queues)", quorum,
			driver.Queue{Name: "reply_x", Expires: 30 * time.Minute}, false, false, amqp091.Table{"x-expires": int64(1800000)}},
		{"exclusive queues stay classic", quorum, driver.Queue{Name: "e", Exclusive: true}, false, false, nil},
		{"auto-delete queues stay classic", quorum, driver.Queue{Name: "a", AutoDelete: true}, false, false, nil},
		{"ha on every queue", QueueOptions{HA: true}, driver.Queue{Name: "reply_x", Expires: time.Second}, false, false,
			amqp091.Table{"x-expires": int64(1000), "x-ha-policy": "all"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.o.Declaration(tc.q)
			if d.Name != tc.q.Name || d.Durable != tc.durable || d.AutoDelete != tc.q.AutoDelete || d.Exclusive != tc.q.Exclusive || d.Quorum != tc.quorum {
				t.Errorf("declaration = %+v, want name %q, durable %v, auto-delete %v, exclusive %v, quorum %v",
					d, tc.q.Name, tc.durable, tc.q.AutoDelete, tc.q.Exclusive, tc.quorum)
			}
			if !maps.Equal(d.Args, tc.args) {
				t.Errorf("args = %v, want exactly %v", d.Args, tc.args)
			}
		})
	}
}

func TestServerNamedQueue(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		name := ServerNamedQueue()
		if !strings.HasPrefix(name, ServerNamedPrefix) || strings.ContainsAny(name, "/%") {
			t.Fatalf("ServerNamedQueue() = %q, want %s and no / or %%", name, ServerNamedPrefix)
		}
		if seen[name] {
			t.Fatalf("ServerNamedQueue() gave %q twice", name)
		}
		seen[name] = true
	}
}
