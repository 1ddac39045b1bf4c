// Command switchyard is Switchyard's command-line tool. Install it with
//
//	go install github.com/switchyard-mq/switchyard/examples/switchyard@latest
//
// (go install ./examples/switchyard from a checkout), which puts it in
// $(go env GOPATH)/bin, or $GOBIN; then
//
//	switchyard <command> [flags] [arguments]
//
// Commands:
//
//	tour    run RabbitMQ's five tutorials in one process and print what each program sent and received
//	send    publish a message to an exchange with a routing key, or to a queue
//	listen  bind a queue to an exchange and print what arrives, decoding oslo messages
//	call    call an RPC method and print its result
//	cast    send an RPC request that gets no reply
//	serve   run an echo RPC server
//	notify  send an oslo notification
//	bench   run the same workloads on each backend and on its raw client, and compare
//	broker  serve the in-process broker over AMQP 0-9-1, for pika, oslo.messaging and rabbit://
//	help    describe the commands, or one command
//
// Every command that talks to a backend takes -url (default memory://, the
// in-process broker, which needs no server). send, listen, call, cast, serve
// and notify default to $SWITCHYARD_URL, and also take -config FILE, an
// oslo.config file such as nova.conf (see package config).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	// Every driver: memory://, rabbit://, amqp:// and zmq://.
	_ "github.com/switchyard-mq/switchyard/drivers/all"
)

// command is one subcommand of the tool. To add one, write a function
// returning its command and list it in commands.
type command struct {
	name    string
	summary string // one line, for the command list
	// flags declares the command's flags on fs and returns the function
	// that runs it once they are parsed; it writes its usage with fs.Usage.
	flags func(fs *flag.FlagSet) func(ctx context.Context, args []string, stdout io.Writer) error
	args  string // the synopsis after the flags
	doc   string // what the command does, for its usage
}

// errUsage marks an error in the command line; the command's usage follows it.
var errUsage = errors.New("usage error")

// commands lists the tool's commands in the order help shows them.
func commands() []command {
	return []command{tourCommand(), sendCommand(), listenCommand(), callCommand(), castCommand(), serveCommand(), notifyCommand(), benchCommand(), brokerCommand()}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the tool with its arguments and returns the exit status: 0 on
// success, 1 on failure, 2 on a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "switchyard: no command given")
		usage(stderr)
		return 2
	}
	name, args := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		return help(args, stdout, stderr)
	}
	c, ok := find(name)
	if !ok {
		fmt.Fprintf(stderr, "switchyard: unknown command %q\n", name)
		usage(stderr)
		return 2
	}
	fs := c.flagSet(stderr)
	runCmd := c.flags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if err := runCmd(ctx, fs.Args(), stdout); err != nil {
		fmt.Fprintf(stderr, "switchyard %s: %v\n", name, err)
		if errors.Is(err, errUsage) {
			fs.Usage()
			return 2
		}
		return 1
	}
	return 0
}

func find(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func (c command) flagSet(out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("switchyard "+c.name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: switchyard %s [flags] %s\n\n%s\n\nFlags:\n", c.name, c.args, c.doc)
		fs.PrintDefaults()
	}
	return fs
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: switchyard <command> [flags] [arguments]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "  %-8s %s\n\nRun \"switchyard help <command>\" for a command's flags.\n", "help", "describe the commands, or one command")
}

func help(args []string, stdout, stderr io.Writer) int {
	switch len(args) {
	case 0:
		usage(stdout)
		return 0
	case 1:
		c, ok := find(args[0])
		if !ok {
			fmt.Fprintf(stderr, "switchyard help: unknown command %q\n", args[0])
			usage(stderr)
			return 2
		}
		fs := c.flagSet(stdout)
		c.flags(fs)
		fs.Usage()
		return 0
	}
	fmt.Fprintln(stderr, "switchyard help: at most one command")
	return 2
}
