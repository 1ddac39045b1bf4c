package config_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/config"
	"github.com/switchyard-mq/switchyard/notify"
	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

type echo struct{ release chan struct{} }

func (e *echo) Echo(_ context.Context, args map[string]any) (map[string]any, error) { return args, nil }

func (e *echo) Block(ctx context.Context, _ struct{}) error {
	select {
	case <-e.release:
	case <-ctx.Done():
	}
	return nil
}

// TestOpenUsesTheConfiguration: a transport, client, server and notifier
// built from a Config use its control exchange, call timeout and
// notification options.
func TestOpenUsesTheConfiguration(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cfg := config.Default()
	cfg.TransportURL = "memory://config-open"
	cfg.ControlExchange = "nova"
	cfg.RPCResponseTimeout = 200 * time.Millisecond
	cfg.Notifications.Driver = notify.MessagingV2
	cfg.Notifications.Topics = []string{"events"}
	tr, err := cfg.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()

	e := &echo{release: make(chan struct{})}
	defer close(e.release)
	srv, err := rpc.NewServer(tr, transport.Target{Topic: "svc", Server: "s1"}, []rpc.Endpoint{{Receiver: e}}, cfg.RPCServerOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(ctx)
	client, err := rpc.NewClient(tr, cfg.RPCClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	var got map[string]any
	if err := client.Call(ctx, transport.Target{Topic: "svc"}, "echo", map[string]any{"x": "y"}, &got); err != nil || got["x"] != "y" {
		t.Fatalf("echo = %v, %v", got, err)
	}
	// The request went to the control exchange "nova": a target naming the
	// default exchange "openstack" reaches no server, and the call says so
	// at once rather than waiting out its timeout.
	err = client.Call(ctx, transport.Target{Topic: "svc", Exchange: "openstack"}, "echo", map[string]any{}, nil)
	if !errors.Is(err, transport.ErrUnroutable) {
		t.Errorf("call through exchange openstack: %v, want ErrUnroutable", err)
	}
	start := time.Now()
	if err := client.Call(ctx, transport.Target{Topic: "svc"}, "block", map[string]any{}, nil); !errors.Is(err, transport.ErrTimeout) {
		t.Errorf("block: %v, want the configured timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("block timed out after %v, want about 200ms", d)
	}

	got2 := make(chan *notify.Notification, 1)
	listener, err := notify.NewListener(tr, []transport.Target{{Topic: "events"}}, []notify.Endpoint{{
		Handle: func(_ context.Context, n *notify.Notification) error { got2 <- n; return nil },
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := listener.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer listener.Stop(ctx)
	notifier, err := notify.NewNotifier(tr, "svc.s1", cfg.NotifierOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := notifier.Info(ctx, "svc.done", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-got2:
		var payload map[string]int
		if err := json.Unmarshal(n.Payload, &payload); err != nil || n.EventType != "svc.done" || payload["n"] != 1 {
			t.Errorf("notification %+v, want svc.done {n: 1}", n)
		}
	case <-ctx.Done():
		t.Fatal("no notification on topic events of exchange nova")
	}
}

// Example reads a Nova configuration file, as a Go service beside Nova
// would, and shows what it configures.
func Example() {
	cfg, err := config.Load(config.Sources{Files: []string{"testdata/nova.conf"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	tc, err := cfg.TransportConfig()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(tc)
	fmt.Println(cfg.RPCResponseTimeout, cfg.Notifications.Driver, cfg.Notifications.Topics)
	// Output:
	// rabbit://nova:xxxxx@rabbit1:5672,rabbit2:5672/nova?amqp_auto_delete=false&amqp_durable_queues=true&control_exchange=nova&heartbeat_timeout_threshold=30&rabbit_ha_queues=false&rabbit_interval_max=30&rabbit_qos_prefetch_count=10&rabbit_retry_backoff=2&rabbit_retry_interval=1&rabbit_transient_queues_ttl=600&ssl=false
	// 3m0s messagingv2 [notifications notifications_designate]
}
