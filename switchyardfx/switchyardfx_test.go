package switchyardfx_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/switchyard-mq/switchyard/config"
	_ "github.com/switchyard-mq/switchyard/drivers/memory"
	"github.com/switchyard-mq/switchyard/notify"
	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/switchyardfx"
	"github.com/switchyard-mq/switchyard/transport"
)

// Greeter is an RPC endpoint that announces each greeting.
type Greeter struct{ notifier *notify.Notifier }

// Greet returns a greeting and emits a notification.
func (g *Greeter) Greet(ctx context.Context, args struct {
	Name string `json:"name"`
}) (string, error) {
	if err := g.notifier.Info(ctx, "greeter.greeted", map[string]string{"name": args.Name}); err != nil {
		return "", err
	}
	return "Hello, " + args.Name, nil
}

func Example() {
	cfg := config.Default()
	cfg.TransportURL = "memory://switchyardfx-example"
	cfg.Notifications.Driver = notify.MessagingV2

	var client *rpc.Client
	handled := make(chan struct{})
	app := fx.New(
		fx.NopLogger,
		fx.Supply(cfg, switchyardfx.PublisherID("greeter.host1")),
		switchyardfx.Module(),
		fx.Provide(switchyardfx.AsRPCServer(func(n *notify.Notifier) switchyardfx.RPCServer {
			return switchyardfx.RPCServer{
				Target:    transport.Target{Topic: "greeter", Server: "host1"},
				Endpoints: []rpc.Endpoint{{Receiver: &Greeter{notifier: n}}},
			}
		})),
		fx.Provide(switchyardfx.AsListener(func() switchyardfx.Listener {
			return switchyardfx.Listener{
				Targets: []transport.Target{{Topic: "notifications"}},
				Endpoints: []notify.Endpoint{{Handle: func(_ context.Context, n *notify.Notification) error {
					fmt.Printf("notification %s from %s: %s\n", n.EventType, n.PublisherID, n.Payload)
					close(handled)
					return nil
				}}},
			}
		})),
		fx.Populate(&client),
	)
	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	var greeting string
	if err := client.Call(ctx, transport.Target{Topic: "greeter"}, "greet", map[string]string{"name": "Ada"}, &greeting); err != nil {
		fmt.Println(err)
	}
	fmt.Println(greeting)
	<-handled
	if err := app.Stop(ctx); err != nil {
		fmt.Println(err)
	}
	// Unordered output:
	// Hello, Ada
	// notification greeter.greeted from greeter.host1: {"name":"Ada"}
}

// slow is an endpoint whose calls take a while, to be in flight when the
// application stops.
type slow struct {
	started chan struct{}
	work    time.Duration
}

func (s *slow) Work(ctx context.Context, _ struct{}) (string, error) {
	s.started <- struct{}{}
	select {
	case <-time.After(s.work):
		return "done", nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// TestStopAnswersCallsInFlight: stopping the application answers the
// calls its servers hold, then closes the transport.
func TestStopAnswersCallsInFlight(t *testing.T) {
	const calls = 5
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cfg := config.Default()
	cfg.TransportURL = "memory://switchyardfx-stop"
	s := &slow{started: make(chan struct{}, calls), work: 300 * time.Millisecond}
	var tr *transport.Transport
	app := fxtest.New(t,
		fx.Supply(cfg),
		switchyardfx.Module(),
		fx.Provide(switchyardfx.AsRPCServer(func() switchyardfx.RPCServer {
			return switchyardfx.RPCServer{Target: transport.Target{Topic: "slow", Server: "s1"}, Endpoints: []rpc.Endpoint{{Receiver: s}}}
		})),
		fx.Populate(&tr),
	)
	app.RequireStart()

	// A client of its own, on its own transport, as another process would be.
	clientTr, err := transport.Open(ctx, cfg.TransportURL)
	if err != nil {
		t.Fatal(err)
	}
	defer clientTr.Close()
	client, err := rpc.NewClient(clientTr, rpc.WithTimeout(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	var wg sync.WaitGroup
	results := make(chan error, calls)
	for range calls {
		wg.Go(func() {
			var got string
			err := client.Call(ctx, transport.Target{Topic: "slow"}, "work", map[string]any{}, &got)
			if err == nil && got != "done" {
				err = fmt.Errorf("result %q, want done", got)
			}
			results <- err
		})
	}
	for range calls {
		select {
		case <-s.started:
		case <-ctx.Done():
			t.Fatal("the calls did not reach the server")
		}
	}
	// Every call is being handled: stop now. Stop must wait for the
	// handlers and send their replies before the transport closes.
	if err := app.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil {
			t.Errorf("call in flight at stop: %v", err)
		}
	}
	if err := tr.Healthy(ctx); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("after Stop, the transport's Healthy() = %v, want ErrClosed", err)
	}
}

// TestSeparateNotificationTransport: [oslo_messaging_notifications]
// transport_url gives notifiers and listeners a transport of their own,
// closed on stop.
func TestSeparateNotificationTransport(t *testing.T) {
	cfg := config.Default()
	cfg.TransportURL = "memory://switchyardfx-rpc"
	cfg.Notifications.TransportURL = "memory://switchyardfx-notifications"
	cfg.Notifications.Driver = notify.MessagingV2
	received := make(chan string, 1)
	var (
		tr       *transport.Transport
		ntr      switchyardfx.NotificationTransport
		notifier *notify.Notifier
	)
	app := fxtest.New(t,
		fx.Supply(cfg),
		switchyardfx.Module(),
		fx.Provide(switchyardfx.AsListener(func() switchyardfx.Listener {
			return switchyardfx.Listener{
				Targets: []transport.Target{{Topic: "notifications"}},
				Endpoints: []notify.Endpoint{{Handle: func(_ context.Context, n *notify.Notification) error {
					received <- n.EventType
					return nil
				}}},
			}
		})),
		fx.Populate(&tr, &ntr, &notifier),
	)
	app.RequireStart()
	if tr == ntr.Transport || ntr.String() != "memory://switchyardfx-notifications" {
		t.Errorf("notification transport %v, want its own, memory://switchyardfx-notifications", ntr.Transport)
	}
	if err := notifier.Info(t.Context(), "x.happened", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-received:
		if ev != "x.happened" {
			t.Errorf("event %q, want x.happened", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the listener got no notification")
	}
	app.RequireStop()
	for _, tr := range []*transport.Transport{tr, ntr.Transport} {
		if err := tr.Healthy(t.Context()); !errors.Is(err, transport.ErrClosed) {
			t.Errorf("%v after stop: Healthy() = %v, want ErrClosed", tr, err)
		}
	}
}

// TestBadConfigurationFailsTheApplication: a configuration the transport
// refuses, or a server without a server name, stops the application from
// starting, with the reason.
func TestBadConfigurationFailsTheApplication(t *testing.T) {
	tests := []struct {
		name string
		opts fx.Option
		want string
	}{
		{"unknown scheme", fx.Supply(config.Config{TransportURL: "nosuch://", ControlExchange: "x", RPCResponseTimeout: time.Second,
			ExecutorThreadPoolSize: 1, Notifications: config.Notifications{Driver: notify.Noop, Topics: []string{"n"}}}), `no driver for scheme "nosuch"`},
		{"server without a server name", fx.Options(fx.Supply(config.Default()), fx.Provide(switchyardfx.AsRPCServer(func() switchyardfx.RPCServer {
			return switchyardfx.RPCServer{Target: transport.Target{Topic: "t"}, Endpoints: []rpc.Endpoint{{Receiver: &slow{}}}}
		}))), "has no server name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := fx.New(fx.NopLogger, switchyardfx.Module(), tt.opts)
			if err := app.Err(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("app.Err() = %v, want %q", err, tt.want)
			}
		})
	}
}
