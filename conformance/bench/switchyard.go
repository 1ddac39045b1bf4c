package bench

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"

	"github.com/switchyard-mq/switchyard/internal/oslo"
	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

// Options are how Switchyard's side of a benchmark opens and calls its
// backend.
type Options struct {
	// Logger receives the transports' logs; nil is slog.Default().
	Logger *slog.Logger
	// ServerOptions and ClientOptions configure the RPC cases' server
	// and client, as a service's configuration would.
	ServerOptions []rpc.ServerOption
	ClientOptions []rpc.Option
}

// switchyardName is the client name of Switchyard's side.
const switchyardName = "switchyard"

// switchyardClient runs the workloads through Switchyard's portable API
// (transport, rpc) on one backend. Each side (publisher and consumer,
// caller and server) has a transport of its own, as two processes would.
type switchyardClient struct {
	url  *transport.URL
	opts Options
}

func (*switchyardClient) name() string { return switchyardName }

func (s *switchyardClient) open(ctx context.Context) (*transport.Transport, error) {
	return transport.OpenURL(ctx, s.url, transport.WithLogger(s.opts.Logger))
}

// openPair opens the two sides' transports; close closes both.
func (s *switchyardClient) openPair(ctx context.Context) (a, b *transport.Transport, close func() error, err error) {
	if a, err = s.open(ctx); err != nil {
		return nil, nil, nil, err
	}
	if b, err = s.open(ctx); err != nil {
		return nil, nil, nil, errors.Join(err, a.Close())
	}
	return a, b, func() error { return errors.Join(b.Close(), a.Close()) }, nil
}

func (s *switchyardClient) publish(ctx context.Context, lim Limits, ack bool, m *meter) (err error) {
	pub, sub, closeBoth, err := s.openPair(ctx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, closeBoth()) }()
	q, err := sub.DeclareQueue(ctx, transport.Queue{Name: uniqueName("publish")})
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := cleanupContext(ctx)
		defer cancel()
		_, derr := sub.DeleteQueue(cctx, q)
		err = errors.Join(err, derr)
	}()
	opts := transport.ConsumeOptions{AutoAck: true}
	if ack {
		opts = transport.ConsumeOptions{Prefetch: AckPrefetch}
	}
	c, err := sub.Consume(ctx, q, opts)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, c.Close()) }()

	msg := transport.Message{Body: body(lim.Size)}
	publish := func(ctx context.Context) error { return pub.Publish(ctx, "", q, msg) }
	receive := func(ctx context.Context) error {
		d, err := c.Receive(ctx)
		if err != nil || !ack {
			return err
		}
		return d.Ack()
	}
	return measureStream(ctx, lim, m, publish, receive)
}

// echo is the RPC endpoint of the benchmarks' server.
type echo struct{}

// Echo returns its arguments.
func (echo) Echo(_ context.Context, args json.RawMessage) (json.RawMessage, error) {
	return args, nil
}

// echoArgs are the RPC workload's arguments: {"data": "xxx…"} with size
// bytes of data.
func echoArgs(size int) json.RawMessage {
	return json.RawMessage(`{"data":` + strconv.Quote(string(body(size))) + `}`)
}

func (s *switchyardClient) rpc(ctx context.Context, lim Limits, callers int, m *meter) (err error) {
	serverTr, clientTr, closeBoth, err := s.openPair(ctx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, closeBoth()) }()
	// A target of its own, exchange included, so that nothing of the run
	// is shared with other services, and all of it can be deleted.
	name := uniqueName("rpc")
	target := transport.Target{Exchange: name, Topic: name, Server: "bench"}
	server, err := rpc.NewServer(serverTr, target, []rpc.Endpoint{{Receiver: echo{}}}, s.opts.ServerOptions...)
	if err != nil {
		return err
	}
	if err := server.Start(ctx); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stopServer(ctx, server, serverTr, target)) }()
	client, err := rpc.NewClient(clientTr, s.opts.ClientOptions...)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, client.Close()) }()

	to := transport.Target{Exchange: name, Topic: name}
	args := echoArgs(lim.Size)
	return measureCalls(ctx, lim, callers, m, func(ctx context.Context, _ int) error {
		var reply json.RawMessage
		return client.Call(ctx, to, "echo", args, &reply)
	})
}

// stopServer stops the server and deletes what it declared: its topic
// and server queues and the exchanges (Stop deletes its fanout queue).
func stopServer(ctx context.Context, server *rpc.Server, tr *transport.Transport, t transport.Target) error {
	cctx, cancel := cleanupContext(ctx)
	defer cancel()
	errs := []error{server.Stop(cctx)}
	for _, q := range []string{oslo.TopicQueue(t.Topic), oslo.ServerQueue(t.Topic, t.Server)} {
		_, err := tr.DeleteQueue(cctx, q)
		errs = append(errs, err)
	}
	errs = append(errs, tr.DeleteExchange(cctx, oslo.FanoutExchange(t.Topic)), tr.DeleteExchange(cctx, t.Exchange))
	return errors.Join(errs...)
}
