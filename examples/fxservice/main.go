// Command fxservice is a complete Switchyard service wired with
// go.uber.org/fx: it reads its configuration from flags, the environment
// and an oslo.config file (package config), serves the RPC
// methods greet and work on the topic "fxservice", emits a notification
// for every call, and on SIGTERM or SIGINT stops cleanly: it stops taking
// requests, finishes and answers the calls in hand, then closes its
// transport and exits 0.
//
//	go run ./examples/fxservice                          # memory:// (in-process only)
//	SWITCHYARD_URL=rabbit://guest:guest@127.0.0.1:5672/ go run ./examples/fxservice
//	go run ./examples/fxservice -config-file /etc/nova/nova.conf
//
// The same binary runs on every backend: only SWITCHYARD_URL (or the
// file's transport_url) changes. Call it with the switchyard tool:
//
//	go run ./examples/switchyard call -url rabbit://guest:guest@127.0.0.1:5672/ -topic fxservice greet '{"name": "Ada"}'
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"

	"github.com/switchyard-mq/switchyard/config"
	_ "github.com/switchyard-mq/switchyard/drivers/all"
	"github.com/switchyard-mq/switchyard/notify"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.LookupEnv, os.Stderr)
	stop()
	os.Exit(code)
}

// stopTimeout bounds the graceful stop: the calls in hand must finish
// within it.
const stopTimeout = 30 * time.Second

// run runs the service until ctx ends and returns the exit status: 0
// after a clean stop, 1 on failure (a bad configuration included), 2 on a
// usage error.
// It logs to logOut.
func run(ctx context.Context, args []string, env func(string) (string, bool), logOut io.Writer) int {
	fs := flag.NewFlagSet("fxservice", flag.ContinueOnError)
	fs.SetOutput(logOut)
	flags := config.RegisterFlags(fs)
	host, _ := os.Hostname()
	var svc settings
	fs.StringVar(&svc.topic, "topic", "fxservice", "RPC `topic` to serve")
	fs.StringVar(&svc.server, "server", host, "this server's `name` on the topic")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(logOut, "fxservice: unexpected arguments %q\n", fs.Args())
		fs.Usage()
		return 2
	}
	logger := slog.New(slog.NewTextHandler(logOut, nil))

	// This service announces its calls, so notifications are on unless the
	// configuration says otherwise (oslo's default is off).
	defaults := config.Default()
	defaults.Notifications.Driver = notify.MessagingV2
	cfg, err := config.Load(config.Sources{Defaults: &defaults, Env: env, Flags: flags})
	if err != nil {
		fmt.Fprintf(logOut, "fxservice: configuration: %v\n", err)
		return 1
	}

	app := fx.New(
		fx.WithLogger(func() fxevent.Logger {
			l := &fxevent.SlogLogger{Logger: logger}
			l.UseLogLevel(slog.LevelDebug)
			return l
		}),
		fx.StopTimeout(stopTimeout),
		options(cfg, svc, logger),
	)
	if err := app.Err(); err != nil {
		logger.ErrorContext(ctx, "fxservice cannot start", "err", err)
		return 1
	}
	startCtx, cancel := context.WithTimeout(ctx, app.StartTimeout())
	defer cancel()
	if err := app.Start(startCtx); err != nil {
		logger.ErrorContext(ctx, "fxservice cannot start", "err", err)
		return 1
	}
	logger.InfoContext(ctx, "fxservice ready", "config", cfg, "topic", svc.topic, "server", svc.server)
	<-ctx.Done()
	logger.InfoContext(ctx, "fxservice stopping")
	stopCtx, cancelStop := context.WithTimeout(context.Background(), app.StopTimeout())
	defer cancelStop()
	if err := app.Stop(stopCtx); err != nil {
		logger.ErrorContext(ctx, "fxservice did not stop cleanly", "err", err)
		return 1
	}
	logger.InfoContext(ctx, "fxservice stopped")
	return 0
}
