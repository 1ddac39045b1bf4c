package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"go.uber.org/fx"

	"github.com/switchyard-mq/switchyard/config"
	"github.com/switchyard-mq/switchyard/notify"
	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/switchyardfx"
	"github.com/switchyard-mq/switchyard/transport"
)

// settings are the service's own flags.
type settings struct {
	topic  string
	server string
}

// options is the service's fx application: Switchyard's module, the
// configuration, and the RPC server of Service.
func options(cfg config.Config, svc settings, logger *slog.Logger) fx.Option {
	return fx.Options(
		fx.Supply(cfg, logger, switchyardfx.PublisherID(svc.topic+"."+svc.server)),
		switchyardfx.Module(),
		fx.Provide(
			newService,
			switchyardfx.AsRPCServer(func(s *Service) switchyardfx.RPCServer {
				return switchyardfx.RPCServer{
					Target:    transport.Target{Topic: svc.topic, Server: svc.server},
					Endpoints: []rpc.Endpoint{{Receiver: s}},
				}
			}),
		),
	)
}

// Service is the RPC endpoint: its exported methods are the RPC methods
// greet and work.
type Service struct {
	notifier *notify.Notifier
	logger   *slog.Logger
}

func newService(n *notify.Notifier, logger *slog.Logger) *Service {
	return &Service{notifier: n, logger: logger}
}

// GreetArgs are greet's arguments.
type GreetArgs struct {
	Name string `json:"name"`
}

// Greet returns a greeting and emits fxservice.greeted.
func (s *Service) Greet(ctx context.Context, args GreetArgs) (string, error) {
	greeting := "Hello, " + args.Name
	if err := s.notifier.Info(ctx, "fxservice.greeted", map[string]string{"name": args.Name}); err != nil {
		return "", fmt.Errorf("greet: %w", err)
	}
	return greeting, nil
}

// WorkArgs are work's arguments.
type WorkArgs struct {
	// Millis is how long the work takes, at most a minute.
	Millis int `json:"ms"`
}

// WorkResult is work's result.
type WorkResult struct {
	Millis int `json:"ms"`
}

// maxWork bounds work's duration.
const maxWork = time.Minute

// Work takes args.Millis milliseconds (stand-in for real work, so that
// calls are in flight when the service stops), then emits
// fxservice.worked. It logs "work started" when it begins.
func (s *Service) Work(ctx context.Context, args WorkArgs) (WorkResult, error) {
	d := time.Duration(args.Millis) * time.Millisecond
	if d < 0 || d > maxWork {
		return WorkResult{}, fmt.Errorf("work: ms=%d is not from 0 to %d", args.Millis, maxWork.Milliseconds())
	}
	s.logger.InfoContext(ctx, "work started", "ms", args.Millis)
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
		return WorkResult{}, fmt.Errorf("work: %w", ctx.Err())
	}
	result := WorkResult{Millis: args.Millis} //lint:ignore S1016 a result is not the arguments converted, though their fields agree today
	if err := s.notifier.Info(ctx, "fxservice.worked", result); err != nil {
		return WorkResult{}, fmt.Errorf("work: %w", err)
	}
	return result, nil
}
