// Package cli runs the tutorials' commands (examples/tutorials/cmd/...):
// their flags, arguments, usage text and exit status, in one place so that
// each main package is one line and tests can run a command in-process.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	// Every driver: memory://, rabbit://, amqp:// and zmq://.
	_ "github.com/switchyard-mq/switchyard/drivers/all"
	"github.com/switchyard-mq/switchyard/examples/tutorials"
	"github.com/switchyard-mq/switchyard/transport"
)

// Timeouts of a command's steps that must not hang: opening the transport
// (dialling a broker), and a producer's whole run (the originals give
// their publish five seconds).
const (
	openTimeout    = 10 * time.Second
	produceTimeout = 5 * time.Second
)

// command is one tutorial program.
type command struct {
	name     string
	tutorial string // e.g. `tutorial 4, "Routing"`
	args     string // the synopsis after the flags
	doc      string
	minArgs  int
	maxArgs  int // -1: no limit
	receiver bool
	// interrupted: stopped by a signal, the receiver prints "Interrupted",
	// as its original does on Ctrl+C (worker.py does not).
	interrupted bool
	run         func(ctx context.Context, tr *transport.Transport, w io.Writer, args []string) error
}

// The originals' default message.
const helloWorld = "Hello World!"

// waiting is what the originals' receivers print once they are consuming.
func waiting(w io.Writer, what string) tutorials.RunOptions {
	return tutorials.RunOptions{Ready: func() { fmt.Fprintf(w, " [*] Waiting for %s. To exit press CTRL+C\n", what) }}
}

// joinOr joins args with spaces, or returns def when that is empty, as the
// originals' `" ".join(sys.argv[1:]) or def` does.
func joinOr(args []string, def string) string {
	if s := strings.Join(args, " "); s != "" {
		return s
	}
	return def
}

// keyAndBody splits the arguments of emit_log_direct and emit_log_topic as
// their originals do: the first is the routing key only when a message
// follows it (def otherwise, so that a key alone is ignored), and the rest
// is the message ("Hello World!" when absent).
func keyAndBody(args []string, def string) (key, body string) {
	key = def
	if len(args) > 1 {
		key = args[0]
	}
	if len(args) > 0 {
		args = args[1:]
	}
	return key, joinOr(args, helloWorld)
}

func commands() []command {
	return []command{
		{
			name: "send", tutorial: `tutorial 1, "Hello World!"`, args: "[MESSAGE...]", maxArgs: -1,
			doc: `Sends MESSAGE (default "Hello World!") to the durable (on RabbitMQ, quorum)
queue "hello".`,
			run: func(ctx context.Context, tr *transport.Transport, w io.Writer, args []string) error {
				return tutorials.Send(ctx, tr, w, joinOr(args, helloWorld))
			},
		},
		{
			name: "receive", tutorial: `tutorial 1, "Hello World!"`, receiver: true, interrupted: true,
			doc: `Prints the messages of the durable (on RabbitMQ, quorum) queue "hello" until
interrupted.`,
			run: func(ctx context.Context, tr *transport.Transport, w io.Writer, _ []string) error {
				return tutorials.Receive(ctx, tr, w, waiting(w, "messages"))
			},
		},
		{
			name: "new_task", tutorial: `tutorial 2, "Work Queues"`, args: "[TASK...]", maxArgs: -1,
			doc: `Queues TASK (default "Hello World!") as a persistent message on the durable
(on RabbitMQ, quorum) queue "task_queue"; each dot in it is one second of
work for a worker.`,
			run: func(ctx context.Context, tr *transport.Transport, w io.Writer, args []string) error {
				return tutorials.NewTask(ctx, tr, w, joinOr(args, helloWorld))
			},
		},
		{
			name: "worker", tutorial: `tutorial 2, "Work Queues"`, receiver: true,
			doc: `Does the tasks of the queue "task_queue", one at a time (prefetch 1), one
second per dot, acknowledging each when done, until interrupted. Start several:
they share the tasks fairly.`,
			run: func(ctx context.Context, tr *transport.Transport, w io.Writer, _ []string) error {
				return tutorials.Worker(ctx, tr, w, time.Second, waiting(w, "messages"))
			},
		},
		{
			name: "emit_log", tutorial: `tutorial 3, "Publish/Subscribe"`, args: "[MESSAGE...]", maxArgs: -1,
			doc: `Publishes MESSAGE (default "info: Hello World!") to the fanout exchange "logs".`,
			run: func(ctx context.Context, tr *transport.Transport, w io.Writer, args []string) error {
				return tutorials.EmitLog(ctx, tr, w, joinOr(args, "info: "+helloWorld))
			},
		},
		{
			name: "receive_logs", tutorial: `tutorial 3, "Publish/Subscribe"`, receiver: true, interrupted: true,
			doc: `Prints every log published to the fanout exchange "logs", through a
server-named exclusive queue of its own, until interrupted.`,
			run: func(ctx context.Context, tr *transport.Transport, w io.Writer, _ []string) error {
				return tutorials.ReceiveLogs(ctx, tr, w, waiting(w, "logs"))
			},
		},
		{
			name: "emit_log_direct", tutorial: `tutorial 4, "Routing"`, args: "[SEVERITY [MESSAGE...]]", maxArgs: -1,
			doc: `Publishes MESSAGE (default "Hello World!") to the direct exchange
"direct_logs" with SEVERITY (e.g. info, warning, error) as its routing key;
as in the original, SEVERITY is taken only when a MESSAGE follows it, and
is "info" otherwise.`,
			run: func(ctx context.Context, tr *transport.Transport, w io.Writer, args []string) error {
				severity, body := keyAndBody(args, "info")
				return tutorials.EmitLogDirect(ctx, tr, w, severity, body)
			},
		},
		{
			name: "receive_logs_direct", tutorial: `tutorial 4, "Routing"`, args: "SEVERITY...", minArgs: 1, maxArgs: -1,
			receiver: true, interrupted: true,
			doc: `Prints the logs of the direct exchange "direct_logs" whose severity is one of
SEVERITY (e.g. info warning error), until interrupted.`,
			run: func(ctx context.Context, tr *transport.Transport, w io.Writer, args []string) error {
				return tutorials.ReceiveLogsDirect(ctx, tr, w, args, waiting(w, "logs"))
			},
		},
		{
			name: "emit_log_topic", tutorial: `tutorial 5, "Topics"`, args: "[ROUTING_KEY [MESSAGE...]]", maxArgs: -1,
			doc: `Publishes MESSAGE (default "Hello World!") to the topic exchange "topic_logs"
with ROUTING_KEY, <facility>.<severity> such as "kern.critical"; as in the
original, ROUTING_KEY is taken only when a MESSAGE follows it, and is
"anonymous.info" otherwise.`,
			run: func(ctx context.Context, tr *transport.Transport, w io.Writer, args []string) error {
				key, body := keyAndBody(args, "anonymous.info")
				return tutorials.EmitLogTopic(ctx, tr, w, key, body)
			},
		},
		{
			name: "receive_logs_topic", tutorial: `tutorial 5, "Topics"`, args: "BINDING_KEY...", minArgs: 1, maxArgs: -1,
			receiver: true, interrupted: true,
			doc: `Prints the logs of the topic exchange "topic_logs" whose routing key matches a
BINDING_KEY, where * stands for exactly one word and # for zero or more
(e.g. "#", "kern.*", "*.critical"), until interrupted.`,
			run: func(ctx context.Context, tr *transport.Transport, w io.Writer, args []string) error {
				return tutorials.ReceiveLogsTopic(ctx, tr, w, args, waiting(w, "logs"))
			},
		},
	}
}

// Names lists the commands, in tutorial order.
func Names() []string {
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	return names
}

func find(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func (c command) usage(w io.Writer, fs *flag.FlagSet) {
	synopsis := c.name + " [-url URL]"
	if c.args != "" {
		synopsis += " " + c.args
	}
	fmt.Fprintf(w, "Usage: %s\n\n%s\nRabbitMQ's %s, on Switchyard.\n\nFlags:\n", synopsis, c.doc, c.tutorial)
	fs.PrintDefaults()
	fmt.Fprintf(w, `
memory:// is a broker inside this one process, so programs started separately
do not meet on it: run each with a broker URL they share, such as
-url rabbit://guest:guest@127.0.0.1:5672/ (schemes in this build: %s). To run every tutorial in one process on memory://:
go run ./examples/switchyard tour
`, strings.Join(transport.Schemes(), ", "))
}

// Run runs the named command with its command-line arguments (without the
// program name) and returns its exit status: 0 on success or -h, 1 on a
// usage error (the message and usage on stderr) or a failure. A receiver
// runs until ctx ends, and then prints "Interrupted" if its original does
// on Ctrl+C.
func Run(ctx context.Context, name string, args []string, stdout, stderr io.Writer) int {
	c, ok := find(name)
	if !ok {
		fmt.Fprintf(stderr, "no tutorial command %q (have: %s)\n", name, strings.Join(Names(), ", "))
		return 1
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "memory://", "transport `URL`")
	fs.Usage = func() { c.usage(stderr, fs) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 1
	}
	if n := fs.NArg(); n < c.minArgs || c.maxArgs >= 0 && n > c.maxArgs {
		if n < c.minArgs {
			fmt.Fprintf(stderr, "%s: missing %s\n", name, c.args)
		} else {
			fmt.Fprintf(stderr, "%s: unexpected arguments %q\n", name, fs.Args())
		}
		fs.Usage()
		return 1
	}
	if err := run(ctx, c, *url, stdout, fs.Args()); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	if c.interrupted && ctx.Err() != nil {
		fmt.Fprintln(stdout, "Interrupted")
	}
	return 0
}

func run(ctx context.Context, c command, url string, stdout io.Writer, args []string) (err error) {
	openCtx, cancel := context.WithTimeout(ctx, openTimeout)
	tr, err := transport.Open(openCtx, url)
	cancel()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, tr.Close()) }()
	if !c.receiver {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, produceTimeout)
		defer cancel()
	}
	return c.run(ctx, tr, stdout, args)
}

// Main runs the named command as a program: with os.Args, stopping a
// receiver cleanly on SIGINT or SIGTERM, and exiting with its status.
func Main(name string) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Run(ctx, name, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
