package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/switchyard-mq/switchyard/transport"
)

// headerFlags collects repeated -header key=value flags.
type headerFlags transport.Headers

func (h headerFlags) String() string { return "" }

func (h headerFlags) Set(kv string) error {
	k, v, ok := strings.Cut(kv, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not key=value", kv)
	}
	h[k] = v
	return nil
}

// sendOptions are send's flags.
type sendOptions struct {
	backend     backendFlags
	exchange    string
	key         string
	queue       string
	declare     string
	contentType string
	persistent  bool
	mandatory   bool
	expiration  time.Duration
	count       int
	headers     headerFlags
}

func sendCommand() command {
	return command{
		name:    "send",
		summary: "publish a message to an exchange with a routing key, or to a queue",
		args:    "BODY | -",
		doc: `Publishes BODY (or standard input, for -) to -exchange with routing key -key,
or to the queue -queue through the default exchange. A missing exchange is
an error unless -declare gives its kind; an existing queue is needed with
-queue unless -declare queue. Without -mandatory a message no queue takes
is dropped silently, as on a broker.

  switchyard send -queue hello 'Hello World!'
  switchyard send -exchange logs_topic -declare topic -key kern.critical 'A critical kernel error'`,
		flags: func(fs *flag.FlagSet) func(context.Context, []string, io.Writer) error {
			o := sendOptions{headers: headerFlags{}}
			o.backend.register(fs)
			fs.StringVar(&o.exchange, "exchange", "", "`exchange` to publish to (default: the default exchange)")
			fs.StringVar(&o.key, "key", "", "routing `key`")
			fs.StringVar(&o.queue, "queue", "", "publish to this `queue` (through the default exchange; not with -exchange or -key)")
			fs.StringVar(&o.declare, "declare", "", "declare the exchange first, of this `kind` (direct, fanout, topic), or the -queue (queue)")
			fs.StringVar(&o.contentType, "content-type", "text/plain", "the message's content `type`")
			fs.BoolVar(&o.persistent, "persistent", false, "mark the message persistent")
			fs.BoolVar(&o.mandatory, "mandatory", false, "fail if no queue takes the message")
			fs.DurationVar(&o.expiration, "expiration", 0, "per-message TTL (0: none)")
			fs.IntVar(&o.count, "count", 1, "send the message this many `times`")
			fs.Var(o.headers, "header", "application header `key=value` (repeatable)")
			return func(ctx context.Context, args []string, stdout io.Writer) error {
				if len(args) != 1 {
					return fmt.Errorf("%w: want one BODY argument (or - for standard input), got %d", errUsage, len(args))
				}
				if o.queue != "" && (o.exchange != "" || o.key != "") {
					return fmt.Errorf("%w: -queue cannot be combined with -exchange or -key", errUsage)
				}
				if o.count < 1 {
					return fmt.Errorf("%w: -count %d is less than 1", errUsage, o.count)
				}
				if o.expiration < 0 {
					return fmt.Errorf("%w: -expiration %v is negative", errUsage, o.expiration)
				}
				switch {
				case o.declare == "":
				case o.declare == "queue" && o.queue == "":
					return fmt.Errorf("%w: -declare queue needs -queue", errUsage)
				case o.declare == "queue":
				case o.queue != "":
					return fmt.Errorf("%w: with -queue, -declare is queue", errUsage)
				case !transport.ExchangeKind(o.declare).Valid():
					return fmt.Errorf("%w: -declare %q: want direct, fanout, topic or queue", errUsage, o.declare)
				case o.exchange == "":
					return fmt.Errorf("%w: -declare %s needs -exchange", errUsage, o.declare)
				}
				body := []byte(args[0])
				if args[0] == "-" {
					var err error
					if body, err = io.ReadAll(os.Stdin); err != nil {
						return fmt.Errorf("read standard input: %w", err)
					}
				}
				return send(ctx, stdout, o, body)
			}
		},
	}
}

func send(ctx context.Context, stdout io.Writer, o sendOptions, body []byte) (err error) {
	cfg, err := o.backend.load(nil)
	if err != nil {
		return err
	}
	tr, err := o.backend.open(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, tr.Close()) }()
	exchange, key := o.exchange, o.key
	if o.queue != "" {
		exchange, key = "", o.queue
	}
	switch o.declare {
	case "":
	case "queue":
		if _, err := tr.DeclareQueue(ctx, transport.Queue{Name: o.queue}); err != nil {
			return err
		}
	default:
		if err := tr.DeclareExchange(ctx, transport.Exchange{Name: o.exchange, Kind: transport.ExchangeKind(o.declare)}); err != nil {
			return err
		}
	}
	msg := transport.Message{
		Body: body, ContentType: o.contentType, Persistent: o.persistent, Mandatory: o.mandatory,
		Expiration: o.expiration, Timestamp: time.Now(),
	}
	if len(o.headers) > 0 {
		msg.Headers = transport.Headers(o.headers)
	}
	for range o.count {
		if err := tr.Publish(ctx, exchange, key, msg); err != nil {
			return err
		}
	}
	where := fmt.Sprintf("exchange %q with key %q", exchange, key)
	if o.queue != "" {
		where = fmt.Sprintf("queue %q", o.queue)
	}
	fmt.Fprintf(stdout, "sent %s (%d bytes) to %s on %s\n", count(o.count, "message"), len(body), where, tr)
	return nil
}
