// Package switchyardfx wires Switchyard into go.uber.org/fx applications:
// Module provides a *transport.Transport, an *rpc.Client and a
// *notify.Notifier built from a config.Config in the graph, and runs the
// RPC servers and notification listeners the application provides, each
// started and stopped by fx.Lifecycle hooks.
//
//	fx.New(
//		fx.Supply(cfg), // a config.Config, e.g. from config.Load
//		switchyardfx.Module(),
//		fx.Provide(switchyardfx.AsRPCServer(func(n *notify.Notifier) switchyardfx.RPCServer {
//			return switchyardfx.RPCServer{
//				Target:    transport.Target{Topic: "compute", Server: "host1"},
//				Endpoints: []rpc.Endpoint{{Receiver: &Compute{notifier: n}}},
//			}
//		})),
//	).Run()
//
// Lifecycle: the transport is opened when fx builds the graph (bounded by
// OpenTimeout); on start, RPC servers and listeners start consuming; on
// stop, in the reverse order, listeners and servers stop gracefully within
// fx's stop timeout (requests in hand are finished and answered), the RPC
// client closes, and the transports close last.
//
// The core packages (transport, rpc, notify and the drivers) do not import
// fx; only this package does.
package switchyardfx

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/fx"

	"github.com/switchyard-mq/switchyard/config"
	"github.com/switchyard-mq/switchyard/notify"
	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

// OpenTimeout bounds opening a transport while fx builds the graph, which
// gives constructors no context; it is fx's default start timeout.
const OpenTimeout = 15 * time.Second

// The value groups Module reads.
const (
	rpcServersGroup = `group:"switchyard.rpc_servers"`
	listenersGroup  = `group:"switchyard.listeners"`
)

// Module provides, from a config.Config the application supplies:
//
//   - *transport.Transport, opened with config.Config.Open (and the
//     application's *slog.Logger, if the graph has one);
//   - NotificationTransport: the same transport, or a second one when
//     [oslo_messaging_notifications] transport_url is set;
//   - *rpc.Client, with the configuration's call timeout;
//   - *notify.Notifier, with its driver, topics and retry, publishing as
//     the graph's PublisherID (default "<program>.<host name>");
//
// and it runs every RPCServer and Listener provided with AsRPCServer and
// AsListener.
func Module() fx.Option {
	return fx.Module("switchyard",
		fx.Provide(newTransport, newNotificationTransport, newRPCClient, newNotifier),
		fx.Invoke(runRPCServers, runListeners),
	)
}

// RPCServer describes an RPC server for Module to run: an rpc.Server on
// Target (Topic and Server required) over Endpoints, with the
// configuration's executor_thread_pool_size and then Options.
type RPCServer struct {
	Target    transport.Target
	Endpoints []rpc.Endpoint
	Options   []rpc.ServerOption
}

// Listener describes a notification listener for Module to run: a
// notify.Listener on the NotificationTransport.
type Listener struct {
	Targets   []transport.Target
	Endpoints []notify.Endpoint
	Options   []notify.ListenerOption
}

// AsRPCServer annotates a constructor returning an RPCServer (and
// optionally an error) so that Module runs the server; use it in
// fx.Provide.
func AsRPCServer(constructor any) any {
	return fx.Annotate(constructor, fx.ResultTags(rpcServersGroup))
}

// AsListener annotates a constructor returning a Listener (and optionally
// an error) so that Module runs the listener; use it in fx.Provide.
func AsListener(constructor any) any {
	return fx.Annotate(constructor, fx.ResultTags(listenersGroup))
}

// PublisherID is the publisher id of the Module's notifier, e.g.
// "compute.host1"; supply one with fx.Supply.
type PublisherID string

// NotificationTransport is the transport notifications go through: the
// main transport unless the configuration names another.
type NotificationTransport struct{ *transport.Transport }

type transportIn struct {
	fx.In
	Lifecycle fx.Lifecycle
	Config    config.Config
	Logger    *slog.Logger `optional:"true"`
}

func openTransport(in transportIn, cfg config.Config) (*transport.Transport, error) {
	ctx, cancel := context.WithTimeout(context.Background(), OpenTimeout)
	defer cancel()
	var opts []transport.Option
	if in.Logger != nil {
		opts = append(opts, transport.WithLogger(in.Logger))
	}
	tr, err := cfg.Open(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("switchyardfx: %w", err)
	}
	// Appended before any hook of what uses the transport, so that it runs
	// after them on stop: the transport closes last.
	in.Lifecycle.Append(fx.StopHook(tr.Close))
	return tr, nil
}

func newTransport(in transportIn) (*transport.Transport, error) { return openTransport(in, in.Config) }

type notificationTransportIn struct {
	fx.In
	Lifecycle fx.Lifecycle
	Config    config.Config
	Logger    *slog.Logger `optional:"true"`
	Transport *transport.Transport
}

func newNotificationTransport(in notificationTransportIn) (NotificationTransport, error) {
	if in.Config.Notifications.TransportURL == "" {
		return NotificationTransport{in.Transport}, nil
	}
	tr, err := openTransport(transportIn{Lifecycle: in.Lifecycle, Config: in.Config, Logger: in.Logger}, in.Config.ForNotifications())
	return NotificationTransport{tr}, err
}

func newRPCClient(lc fx.Lifecycle, cfg config.Config, tr *transport.Transport) (*rpc.Client, error) {
	client, err := rpc.NewClient(tr, cfg.RPCClientOptions()...)
	if err != nil {
		return nil, fmt.Errorf("switchyardfx: %w", err)
	}
	lc.Append(fx.StopHook(client.Close))
	return client, nil
}

type notifierIn struct {
	fx.In
	Config      config.Config
	Transport   NotificationTransport
	PublisherID PublisherID `optional:"true"`
}

func newNotifier(in notifierIn) (*notify.Notifier, error) {
	id := string(in.PublisherID)
	if id == "" {
		id = defaultPublisherID()
	}
	n, err := notify.NewNotifier(in.Transport.Transport, id, in.Config.NotifierOptions()...)
	if err != nil {
		return nil, fmt.Errorf("switchyardfx: %w", err)
	}
	return n, nil
}

// defaultPublisherID is "<program>.<host name>", the shape of oslo's
// "compute.host1".
func defaultPublisherID() string {
	host, err := os.Hostname()
	if err != nil {
		host = "localhost"
	}
	return filepath.Base(os.Args[0]) + "." + host
}

type serversIn struct {
	fx.In
	Lifecycle fx.Lifecycle
	Config    config.Config
	Transport *transport.Transport
	Servers   []RPCServer `group:"switchyard.rpc_servers"`
}

func runRPCServers(in serversIn) error {
	for _, s := range in.Servers {
		opts := append(in.Config.RPCServerOptions(), s.Options...)
		srv, err := rpc.NewServer(in.Transport, s.Target, s.Endpoints, opts...)
		if err != nil {
			return fmt.Errorf("switchyardfx: %w", err)
		}
		// Stop finishes the requests in hand and answers them, or gives up
		// when fx's stop context ends.
		in.Lifecycle.Append(fx.StartStopHook(srv.Start, srv.Stop))
	}
	return nil
}

type listenersIn struct {
	fx.In
	Lifecycle fx.Lifecycle
	Config    config.Config
	Transport NotificationTransport
	Listeners []Listener `group:"switchyard.listeners"`
}

func runListeners(in listenersIn) error {
	for _, l := range in.Listeners {
		// The configuration's first (queue bounds alike with the
		// notifiers'), then the listener's own.
		opts := append(in.Config.ListenerOptions(), l.Options...)
		listener, err := notify.NewListener(in.Transport.Transport, l.Targets, l.Endpoints, opts...)
		if err != nil {
			return fmt.Errorf("switchyardfx: %w", err)
		}
		in.Lifecycle.Append(fx.StartStopHook(listener.Start, listener.Stop))
	}
	return nil
}
