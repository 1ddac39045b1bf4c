package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/switchyard-mq/switchyard/drivers/memory"
)

// defaultBrokerListen is where switchyard broker listens unless told:
// loopback, and not 5672, which a RabbitMQ on the same machine holds.
const defaultBrokerListen = "127.0.0.1:5673"

// brokerOptions are broker's flags.
type brokerOptions struct {
	listen         string
	users          string
	loopbackUsers  string
	maxConnections int
	channelMax     int
	frameMax       int
	heartbeat      time.Duration
	maxMessageSize int
	maxQueued      int64
	tlsCert        string
	tlsKey         string
	verbose        bool
}

func brokerCommand() command {
	return command{
		name:    "broker",
		summary: "serve Switchyard's in-process broker over AMQP 0-9-1, for pika, oslo.messaging and rabbit://",
		args:    "",
		doc: `Runs Switchyard's in-process broker (memory://) as an AMQP 0-9-1 server, so
that RabbitMQ's clients (pika, oslo.messaging, amqp091-go and so rabbit://)
reach it over TCP with no RabbitMQ installed. It listens on ` + defaultBrokerListen + `
(loopback; 5672 is left to RabbitMQ) until interrupted, then closes every
connection with 320 CONNECTION_FORCED. Queues live in memory: nothing
survives the process. User guest (password guest) may connect only from
loopback, as on RabbitMQ; -users replaces the users.

  switchyard broker &
  switchyard listen -url rabbit://guest:guest@127.0.0.1:5673/ -exchange logs &
  AMQP_URL=amqp://guest:guest@127.0.0.1:5673/ python3 emit_log.py`,
		flags: func(fs *flag.FlagSet) func(context.Context, []string, io.Writer) error {
			var o brokerOptions
			fs.StringVar(&o.listen, "listen", defaultBrokerListen, "TCP `address` to listen on")
			fs.StringVar(&o.users, "users", "guest:guest", "comma-separated `name:password` pairs of the users who may log in")
			fs.StringVar(&o.loopbackUsers, "loopback-users", "guest", "comma-separated `names` of users who may log in only from loopback (empty: none)")
			fs.IntVar(&o.maxConnections, "max-connections", 0, "most client `connections` at once (0: no limit)")
			fs.IntVar(&o.channelMax, "channel-max", 2047, "channel_max proposed to clients: most `channels` per connection")
			fs.IntVar(&o.frameMax, "frame-max", 131072, "frame_max proposed to clients, in `bytes`")
			fs.DurationVar(&o.heartbeat, "heartbeat", 60*time.Second, "heartbeat `interval` proposed to clients (0: none); a client that misses two is closed")
			fs.IntVar(&o.maxMessageSize, "max-message-size", 128<<20, "largest message body in `bytes`")
			fs.Int64Var(&o.maxQueued, "max-queued-bytes", 0, "block publishers (connection.blocked) while the queues hold more than this many `bytes` of message bodies (0: no limit)")
			fs.StringVar(&o.tlsCert, "tls-cert", "", "PEM certificate `file`: serve AMQPS (with -tls-key)")
			fs.StringVar(&o.tlsKey, "tls-key", "", "PEM `file` of -tls-cert's key")
			fs.BoolVar(&o.verbose, "v", false, "log each connection")
			return func(ctx context.Context, args []string, stdout io.Writer) error {
				if len(args) > 0 {
					return fmt.Errorf("%w: unexpected arguments %q", errUsage, args)
				}
				cfg, err := o.config(stdout)
				if err != nil {
					return err
				}
				return runBroker(ctx, stdout, o.listen, cfg)
			}
		},
	}
}

// config turns the flags into the server's configuration.
func (o *brokerOptions) config(stdout io.Writer) (memory.ServerConfig, error) {
	cfg := memory.ServerConfig{Users: map[string]string{}, LoopbackUsers: []string{}, MaxConnections: o.maxConnections,
		FrameMax: uint32(o.frameMax), MaxMessageSize: o.maxMessageSize, MaxQueuedBytes: o.maxQueued}
	for _, pair := range strings.Split(o.users, ",") {
		name, password, ok := strings.Cut(strings.TrimSpace(pair), ":")
		if !ok || name == "" {
			return cfg, fmt.Errorf("%w: -users: %q is not name:password", errUsage, pair)
		}
		cfg.Users[name] = password
	}
	for _, name := range strings.Split(o.loopbackUsers, ",") {
		if name = strings.TrimSpace(name); name != "" {
			cfg.LoopbackUsers = append(cfg.LoopbackUsers, name)
		}
	}
	switch {
	case o.maxConnections < 0:
		return cfg, fmt.Errorf("%w: -max-connections %d is negative", errUsage, o.maxConnections)
	case o.channelMax < 1 || o.channelMax > 65535:
		return cfg, fmt.Errorf("%w: -channel-max %d is not between 1 and 65535", errUsage, o.channelMax)
	case o.frameMax < 4096 || int64(o.frameMax) > 1<<31:
		return cfg, fmt.Errorf("%w: -frame-max %d is not between 4096 and 2^31", errUsage, o.frameMax)
	case o.heartbeat < 0 || o.heartbeat%time.Second != 0:
		return cfg, fmt.Errorf("%w: -heartbeat %v is not a whole number of seconds", errUsage, o.heartbeat)
	case o.maxQueued < 0:
		return cfg, fmt.Errorf("%w: -max-queued-bytes %d is negative", errUsage, o.maxQueued)
	case o.maxMessageSize < 1:
		return cfg, fmt.Errorf("%w: -max-message-size %d is not positive", errUsage, o.maxMessageSize)
	case (o.tlsCert == "") != (o.tlsKey == ""):
		return cfg, fmt.Errorf("%w: -tls-cert and -tls-key go together", errUsage)
	}
	cfg.ChannelMax = uint16(o.channelMax)
	cfg.Heartbeat = o.heartbeat
	if o.heartbeat == 0 {
		cfg.Heartbeat = -1
	}
	if o.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return cfg, fmt.Errorf("loading -tls-cert and -tls-key: %w", err)
		}
		cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stdout, &slog.HandlerOptions{Level: level}))
	return cfg, nil
}

// runBroker serves until ctx ends (SIGINT or SIGTERM), then shuts down
// gracefully.
func runBroker(ctx context.Context, stdout io.Writer, listen string, cfg memory.ServerConfig) error {
	s, err := memory.NewServer(cfg)
	if err != nil {
		return err
	}
	l, err := s.Listen(listen)
	if err != nil {
		return err
	}
	scheme := "amqp"
	if cfg.TLS != nil {
		scheme = "amqps"
	}
	fmt.Fprintf(stdout, "switchyard broker: serving AMQP 0-9-1 on %s://%s/ (rabbit:// URLs: rabbit://USER:PASSWORD@%s/)\n", scheme, l.Addr(), l.Addr())
	if tcp, ok := l.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		fmt.Fprintln(stdout, "switchyard broker: listening beyond loopback; users of -loopback-users still connect only from loopback")
	}
	err = s.Serve(ctx, l)
	if errors.Is(err, memory.ErrServerClosed) {
		fmt.Fprintln(stdout, "switchyard broker: stopped")
		return nil
	}
	return err
}
