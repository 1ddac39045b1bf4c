package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/switchyard-mq/switchyard/conformance/bench"
)

// maxBenchSize bounds -size: 16 MiB, far beyond any message worth
// benchmarking.
const maxBenchSize = 16 << 20

// benchOptions are bench's flags.
type benchOptions struct {
	configFile string
	urls       stringList
	limits     bench.Limits
	svg        string
	cases      string
}

func benchCommand() command {
	return command{
		name:    "bench",
		summary: "run the same workloads on each backend and on its raw client, and compare",
		args:    "",
		doc: `Runs each workload on every -url given, through Switchyard's portable API,
and beside it the same workload on the backend family's raw client, in the
same process and the same run, then prints a table: the rate, latency
percentiles of calls, allocations per operation (of the whole process,
both sides included) and the ratio of Switchyard's rate to the raw one.
Every run stops after -messages operations or -duration, whichever comes
first. While it runs, each case's progress on each backend is shown on one
line, rewritten in place on a terminal.

Workloads (-cases, comma-separated; default all):
  publish        publish→consume, one publisher and one consumer on their
                 own connections, auto-ack, at most 1024 messages in flight
  publish-ack    the same with manual ack of each delivery, prefetch 100
  rpc            sequential RPC calls: calls/s and latency p50/p99
  rpc-inflight   RPC calls from -inflight concurrent callers
  notify         notifications: -inflight notifiers, each publish
                 persistent and confirmed, to a listener with a pool that
                 acks each one (prefetch 2), end to end; on rabbit://
                 beside amqp091-go doing the same, elsewhere Switchyard
                 alone (no raw notifications for that scheme)

Raw baselines, by URL scheme:
  memory://   a buffered Go channel passing the same messages
  rabbit://   github.com/rabbitmq/amqp091-go on the same broker and virtual
              host, publishing with confirms when the driver does (its
              confirms option, default true); RPC as a reply_to and
              correlation-id loop with an exclusive reply queue;
              notifications as oslo's topology: a topic exchange bound to
              the notifier's <topic>.info queue and the pool's; and, for
              the RPC workloads, raw-oslo-client: amqp091-go calls that
              oslo.messaging's peers could answer, with Switchyard's
              promises (oslo's envelope, fresh ids, requests through a
              topic exchange, mandatory confirmed publishes, duplicates
              dropped), the "vs floor" column's base
  zmq://      github.com/go-zeromq/zmq4: PUSH/PULL, DEALER/ROUTER round trips
  amqp://     github.com/Azure/go-amqp, when an AMQP 1.0 driver is registered

Queues and exchanges get unique names and are deleted afterwards. The
machine's load changes every figure: compare ratios, not rates, between
runs, and run on a quiet machine. The drivers' benchmark tests run the
same workloads: go test -run='^$' -bench=Backend ./drivers/...

  switchyard bench
  switchyard bench -url memory:// -url rabbit://guest:guest@127.0.0.1:5672/ -url zmq:// -svg bench.svg`,
		flags: func(fs *flag.FlagSet) func(context.Context, []string, io.Writer) error {
			o := benchOptions{}
			fs.Var(&o.urls, "url", "transport `URL` to benchmark (repeatable; default $SWITCHYARD_URL, else memory://)")
			fs.StringVar(&o.configFile, "config", "", "oslo.config `file` (nova.conf style) for the default transport URL and messaging options")
			fs.DurationVar(&o.limits.Duration, "duration", 5*time.Second, "stop each run after this measured `time`")
			fs.IntVar(&o.limits.Messages, "messages", 10_000_000, "stop each run after `count` messages or calls")
			fs.IntVar(&o.limits.Size, "size", 100, "message body `bytes`")
			fs.IntVar(&o.limits.Inflight, "inflight", 16, "concurrent `callers` of rpc-inflight, and notifiers of notify")
			fs.StringVar(&o.svg, "svg", "", "also write a bar chart of the results to this SVG `file`")
			fs.StringVar(&o.cases, "cases", strings.Join(bench.CaseNames(), ","), "the `workloads` to run, comma-separated")
			return func(ctx context.Context, args []string, stdout io.Writer) error {
				lim := o.limits
				switch {
				case len(args) > 0:
					return fmt.Errorf("%w: unexpected arguments %q", errUsage, args)
				case lim.Duration <= 0:
					return fmt.Errorf("%w: -duration %v is not positive", errUsage, lim.Duration)
				case lim.Messages < 1:
					return fmt.Errorf("%w: -messages %d is less than 1", errUsage, lim.Messages)
				case lim.Size < 0 || lim.Size > maxBenchSize:
					return fmt.Errorf("%w: -size %d is not from 0 to %d", errUsage, lim.Size, maxBenchSize)
				case lim.Inflight < 1:
					return fmt.Errorf("%w: -inflight %d is less than 1", errUsage, lim.Inflight)
				}
				cases, err := bench.SelectCases(o.cases)
				if err != nil {
					return fmt.Errorf("%w: -cases: %w", errUsage, err)
				}
				return runBench(ctx, stdout, o, cases)
			}
		},
	}
}

// benchBackends resolves the -url flags: each URL with the configuration's
// options, checked, with its raw baseline. notes say what a reader of the
// results should know about them.
func benchBackends(o benchOptions) (backends []*bench.Backend, notes []string, err error) {
	cfg, err := (&backendFlags{configFile: o.configFile}).load(nil)
	if err != nil {
		return nil, nil, err
	}
	urls := []string(o.urls)
	if len(urls) == 0 {
		urls = []string{cfg.TransportURL}
	}
	// Drivers log warnings only, to stderr: the results go to stdout.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	for _, u := range urls {
		c := cfg.Clone()
		c.TransportURL = u
		tc, err := c.TransportConfig()
		if err != nil {
			return nil, nil, fmt.Errorf("%w: -url: %w", errUsage, err)
		}
		b, err := bench.NewBackend(tc, bench.Options{Logger: logger, ServerOptions: c.RPCServerOptions(), ClientOptions: c.RPCClientOptions()})
		if err != nil {
			return nil, nil, fmt.Errorf("%w: -url %s: %w", errUsage, tc, err)
		}
		if b.Note() != "" {
			notes = append(notes, fmt.Sprintf("%s: %s", b.Label(), b.Note()))
		}
		backends = append(backends, b)
	}
	return backends, notes, nil
}

// runBench runs the cases on the backends and reports: the notes, the
// progress, the table and, with -svg, the chart.
func runBench(ctx context.Context, stdout io.Writer, o benchOptions, cases []bench.Case) error {
	backends, notes, err := benchBackends(o)
	if err != nil {
		return err
	}
	for _, n := range notes {
		fmt.Fprintf(stdout, "note: %s\n", n)
	}
	lim := o.limits
	fmt.Fprintf(stdout, "switchyard bench: each run stops after %d messages or calls, or %v; %d-byte bodies; %d callers for rpc-inflight, notifiers for notify\n",
		lim.Messages, lim.Duration, lim.Size, lim.Inflight)
	results, failures := bench.Run(ctx, stdout, backends, cases, lim)
	fmt.Fprintln(stdout)
	bench.WriteTable(stdout, cases, results)
	for _, n := range notes {
		fmt.Fprintf(stdout, "note: %s\n", n)
	}
	if o.svg != "" {
		var chart bytes.Buffer
		bench.WriteSVG(&chart, cases, results)
		if err := os.WriteFile(o.svg, chart.Bytes(), 0o644); err != nil {
			failures = errors.Join(failures, fmt.Errorf("write the chart: %w", err))
		} else {
			fmt.Fprintf(stdout, "chart written to %s\n", o.svg)
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
	return failures
}
