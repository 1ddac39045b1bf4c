package messaging_test

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	_ "github.com/switchyard-mq/switchyard/drivers/memory"
	_ "github.com/switchyard-mq/switchyard/drivers/zmq"
	"github.com/switchyard-mq/switchyard/internal/messaging"
	"github.com/switchyard-mq/switchyard/transport"
)

// openMemory opens a memory broker of the test's own with the URL query
// given.
func openMemory(t *testing.T, query string) *transport.Transport {
	t.Helper()
	tr, err := transport.Open(context.Background(), "memory://"+strings.ReplaceAll(t.Name(), "/", ".")+query)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func TestTopology(t *testing.T) {
	tests := []struct {
		name, query string
		want        messaging.Topology // its exported fields
		wantErr     error
	}{
		{"defaults", "", messaging.Topology{ControlExchange: "openstack", TransientTTL: 30 * time.Minute}, nil},
		{"every option", "?control_exchange=nova&amqp_durable_queues=true&amqp_auto_delete=yes&rabbit_transient_queues_ttl=60",
			messaging.Topology{ControlExchange: "nova", Durable: true, AutoDelete: true, TransientTTL: time.Minute}, nil},
		// Refused by NewTopology, or already by Open where the option
		// schema says a name cannot be empty.
		{"an empty control exchange", "?control_exchange=", messaging.Topology{}, transport.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got messaging.Topology
			tr, err := transport.Open(context.Background(), "memory://"+strings.ReplaceAll(t.Name(), "/", ".")+tt.query)
			if err == nil {
				defer tr.Close()
				got, err = messaging.NewTopology(tr)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("NewTopology: %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.ControlExchange != tt.want.ControlExchange || got.Durable != tt.want.Durable ||
				got.AutoDelete != tt.want.AutoDelete || got.TransientTTL != tt.want.TransientTTL {
				t.Errorf("NewTopology = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestTopologyDeclarations: what the topology declares, on a backend that
// has auto-delete and queue expiry (memory).
func TestTopologyDeclarations(t *testing.T) {
	topo, err := messaging.NewTopology(openMemory(t, "?amqp_durable_queues=true&amqp_auto_delete=true&rabbit_transient_queues_ttl=60"))
	if err != nil {
		t.Fatal(err)
	}
	reply, err := topo.ReplyQueue()
	if err != nil {
		t.Fatal(err)
	}
	fanout, shared, err := topo.FanoutQueue("compute")
	if err != nil || shared {
		t.Fatalf("FanoutQueue: %+v, shared %v, %v; want the server's own", fanout, shared, err)
	}
	if !strings.HasPrefix(reply.Name, "reply_") || !strings.HasPrefix(fanout.Name, "compute_fanout_") {
		t.Errorf("reply queue %q, fanout queue %q: want reply_... and compute_fanout_...", reply.Name, fanout.Name)
	}
	reply.Name, fanout.Name = "", "" // random
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"exchange name of a target without one", topo.ExchangeName(transport.Target{Topic: "t"}), "openstack"},
		{"exchange name of a target with one", topo.ExchangeName(transport.Target{Topic: "t", Exchange: "nova"}), "nova"},
		{"control exchange", topo.Exchange("openstack"),
			transport.Exchange{Name: "openstack", Kind: transport.Topic, Durable: true, AutoDelete: true}},
		{"shared queue", topo.SharedQueue("compute"), transport.Queue{Name: "compute", Durable: true, AutoDelete: true}},
		{"reply queue", reply, transport.Queue{Expires: time.Minute}},
		{"fanout queue", fanout, transport.Queue{Expires: time.Minute}},
		{"fanout exchange", topo.FanoutExchange("compute"),
			transport.Exchange{Name: "compute_fanout", Kind: transport.Fanout, AutoDelete: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("got %+v, want %+v", tt.got, tt.want)
			}
		})
	}
}

// TestTopologyDurableOnlyWhereKept: amqp_durable_queues=true makes the
// control exchange and shared queues durable, and messages persistent,
// only where the backend keeps anything (CapDurable); on zmq:// it declares
// them transient and warns, so that the same options run there instead of
// failing with ErrUnsupported.
func TestTopologyDurableOnlyWhereKept(t *testing.T) {
	for _, tt := range []struct {
		scheme      string
		wantDurable bool
		wantWarning bool
	}{
		{"memory", true, false},
		{"zmq", false, true},
	} {
		t.Run(tt.scheme, func(t *testing.T) {
			var logs strings.Builder
			logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
			tr, err := transport.Open(t.Context(), tt.scheme+"://"+strings.ReplaceAll(t.Name(), "/", ".")+"?amqp_durable_queues=true", transport.WithLogger(logger))
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			topo, err := messaging.NewTopology(tr)
			if err != nil {
				t.Fatal(err)
			}
			if topo.Durable != tt.wantDurable || topo.Persistent() != tt.wantDurable ||
				topo.Exchange("x").Durable != tt.wantDurable || topo.SharedQueue("q").Durable != tt.wantDurable {
				t.Errorf("Durable %v, Persistent %v, exchange %+v, queue %+v: want durable %v",
					topo.Durable, topo.Persistent(), topo.Exchange("x"), topo.SharedQueue("q"), tt.wantDurable)
			}
			if got := strings.Contains(logs.String(), "amqp_durable_queues=true has no effect"); got != tt.wantWarning {
				t.Errorf("warning logged: %v, want %v; logs:\n%s", got, tt.wantWarning, logs.String())
			}
			// What the topology asks for, the transport takes.
			if err := tr.DeclareExchange(t.Context(), topo.Exchange("x")); err != nil {
				t.Error(err)
			}
			if _, err := tr.DeclareQueue(t.Context(), topo.SharedQueue("q")); err != nil {
				t.Error(err)
			}
			if err := tr.Publish(t.Context(), "", "q", transport.Message{Persistent: topo.Persistent()}); err != nil {
				t.Error(err)
			}
		})
	}
}
