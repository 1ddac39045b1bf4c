package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/switchyard-mq/switchyard/config"
	"github.com/switchyard-mq/switchyard/transport"
)

// Bounds of bench's flags.
const (
	maxBenchSize = 16 << 20 // -size: 16 MiB, far beyond any message worth benchmarking
	// benchSetupTimeout bounds what a run does besides measuring:
	// connecting, declaring, warming up and cleaning up.
	benchSetupTimeout = time.Minute
)

// benchOptions are bench's flags.
type benchOptions struct {
	configFile string
	urls       stringList
	limits     benchLimits
	svg        string
	cases      string
}

// benchLimits bound every run of every case; a run ends at whichever
// bound it reaches first.
type benchLimits struct {
	messages int           // messages or calls per run
	duration time.Duration // measured time per run
	size     int           // body bytes (RPC: the length of the echoed string)
	inflight int           // concurrent callers of the rpc-inflight case
}

// benchCase is one workload.
type benchCase struct {
	name  string // its -cases name
	title string // what it measures, for the table's notes and the chart
	unit  string // of its rate
	rpc   bool   // an RPC case, else publish→consume
	ack   bool   // publish→consume: manual ack, prefetch ackPrefetch; else auto-ack
	// concurrent: -inflight callers; else one caller, one call at a time.
	concurrent bool
}

// ackPrefetch is the prefetch of the manual-ack publish→consume case.
const ackPrefetch = 100

// benchCases are bench's workloads, in the order they run.
func benchCases() []benchCase {
	return []benchCase{
		{name: "publish", title: "publish→consume, auto-ack", unit: "msg/s"},
		{name: "publish-ack", title: fmt.Sprintf("publish→consume, manual ack, prefetch %d", ackPrefetch), unit: "msg/s", ack: true},
		{name: "rpc", title: "RPC, sequential calls", unit: "call/s", rpc: true},
		{name: "rpc-inflight", title: "RPC, concurrent callers (-inflight)", unit: "call/s", rpc: true, concurrent: true},
	}
}

func benchCaseNames() []string {
	var names []string
	for _, c := range benchCases() {
		names = append(names, c.name)
	}
	return names
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

Raw baselines, by URL scheme:
  memory://   a buffered Go channel passing the same messages
  rabbit://   github.com/rabbitmq/amqp091-go on the same broker and virtual
              host, publishing with confirms when the driver does (its
              confirms option, default true); RPC as a reply_to and
              correlation-id loop with an exclusive reply queue
  zmq://      github.com/go-zeromq/zmq4: PUSH/PULL, DEALER/ROUTER round trips
  amqp://     github.com/Azure/go-amqp, when an AMQP 1.0 driver is registered

Queues and exchanges get unique names and are deleted afterwards. The
machine's load changes every figure: compare ratios, not rates, between
runs, and run on a quiet machine.

  switchyard bench
  switchyard bench -url memory:// -url rabbit://guest:guest@127.0.0.1:5672/ -url zmq:// -svg bench.svg`,
		flags: func(fs *flag.FlagSet) func(context.Context, []string, io.Writer) error {
			o := benchOptions{}
			fs.Var(&o.urls, "url", "transport `URL` to benchmark (repeatable; default $SWITCHYARD_URL, else memory://)")
			fs.StringVar(&o.configFile, "config", "", "oslo.config `file` (nova.conf style) for the default transport URL and messaging options")
			fs.DurationVar(&o.limits.duration, "duration", 5*time.Second, "stop each run after this measured `time`")
			fs.IntVar(&o.limits.messages, "messages", 10_000_000, "stop each run after `count` messages or calls")
			fs.IntVar(&o.limits.size, "size", 100, "message body `bytes`")
			fs.IntVar(&o.limits.inflight, "inflight", 16, "concurrent `callers` of rpc-inflight")
			fs.StringVar(&o.svg, "svg", "", "also write a bar chart of the results to this SVG `file`")
			fs.StringVar(&o.cases, "cases", strings.Join(benchCaseNames(), ","), "the `workloads` to run, comma-separated")
			return func(ctx context.Context, args []string, stdout io.Writer) error {
				lim := o.limits
				switch {
				case len(args) > 0:
					return fmt.Errorf("%w: unexpected arguments %q", errUsage, args)
				case lim.duration <= 0:
					return fmt.Errorf("%w: -duration %v is not positive", errUsage, lim.duration)
				case lim.messages < 1:
					return fmt.Errorf("%w: -messages %d is less than 1", errUsage, lim.messages)
				case lim.size < 0 || lim.size > maxBenchSize:
					return fmt.Errorf("%w: -size %d is not from 0 to %d", errUsage, lim.size, maxBenchSize)
				case lim.inflight < 1:
					return fmt.Errorf("%w: -inflight %d is less than 1", errUsage, lim.inflight)
				}
				cases, err := selectCases(o.cases)
				if err != nil {
					return err
				}
				return bench(ctx, stdout, o, cases)
			}
		},
	}
}

// selectCases parses -cases.
func selectCases(list string) ([]benchCase, error) {
	var cases []benchCase
	for name := range strings.SplitSeq(list, ",") {
		name = strings.TrimSpace(name)
		i := slices.IndexFunc(benchCases(), func(c benchCase) bool { return c.name == name })
		if i < 0 {
			return nil, fmt.Errorf("%w: -cases: unknown workload %q (want some of %s)", errUsage, name, strings.Join(benchCaseNames(), ", "))
		}
		if !slices.ContainsFunc(cases, func(c benchCase) bool { return c.name == name }) {
			cases = append(cases, benchCases()[i])
		}
	}
	return cases, nil
}

// benchBackend is one -url and its raw baseline.
type benchBackend struct {
	label  string        // the URL, without its password
	family string        // the URL scheme, which picks the raw baseline
	cfg    config.Config // for RPC options; its TransportURL is this backend's
	tc     *transport.URL
	raw    benchClient // nil: no raw baseline (a note says why)
}

// benchClient runs the workloads through one client: Switchyard, or a raw
// baseline. Each method sets up, warms up, calls m.measure once around the
// measured loop, and cleans up what it declared.
type benchClient interface {
	name() string
	publish(ctx context.Context, lim benchLimits, ack bool, m *meter) error
	rpc(ctx context.Context, lim benchLimits, callers int, m *meter) error
}

// benchBackends resolves the -url flags: each URL with the configuration's
// options, checked, with its raw baseline. notes say what is skipped.
func benchBackends(o benchOptions) (backends []*benchBackend, notes []string, err error) {
	cfg, err := (&backendFlags{configFile: o.configFile}).load(nil)
	if err != nil {
		return nil, nil, err
	}
	urls := []string(o.urls)
	if len(urls) == 0 {
		urls = []string{cfg.TransportURL}
	}
	for _, u := range urls {
		c := cfg.Clone()
		c.TransportURL = u
		tc, err := c.TransportConfig()
		if err != nil {
			return nil, nil, fmt.Errorf("%w: -url: %w", errUsage, err)
		}
		b := &benchBackend{label: tc.String(), family: tc.Scheme, cfg: c, tc: tc}
		if !slices.Contains(transport.Schemes(), tc.Scheme) {
			return nil, nil, fmt.Errorf("%w: -url %s: no driver for scheme %q (registered: %s)", errUsage, b.label, tc.Scheme, strings.Join(transport.Schemes(), ", "))
		}
		raw, note, err := rawBaseline(tc)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: -url %s: %w", errUsage, b.label, err)
		}
		if note != "" {
			notes = append(notes, fmt.Sprintf("%s: %s", b.label, note))
		}
		b.raw = raw
		backends = append(backends, b)
	}
	if len(backends) == 0 {
		return nil, notes, fmt.Errorf("no backend to benchmark: %s", strings.Join(notes, "; "))
	}
	return backends, notes, nil
}

// rawBaseline returns the raw client of tc's backend family, or a note
// saying why there is none.
func rawBaseline(tc *transport.URL) (benchClient, string, error) {
	switch tc.Scheme {
	case "memory":
		return chanBaseline{}, "", nil
	case "rabbit":
		r, err := newRabbitBaseline(tc)
		if err != nil {
			return nil, "", err
		}
		if r.confirms {
			return r, "every publish waits for the broker's confirm, the raw client's too (the driver's default; add ?confirms=false to the URL for neither)", nil
		}
		return r, "publishes do not wait for confirms (confirms=false), nor do the raw client's", nil
	case "zmq":
		return zmqBaseline{}, "", nil
	case "amqp":
		r, err := newAMQP1Baseline(tc)
		return r, "", err
	}
	return nil, fmt.Sprintf("no raw baseline for scheme %s (TLS and other schemes are measured without one)", tc.Scheme), nil
}

// bench runs every case on every backend, Switchyard then raw, and
// reports.
func bench(ctx context.Context, stdout io.Writer, o benchOptions, cases []benchCase) error {
	// Drivers log warnings only, to stderr: the results go to stdout.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	backends, notes, err := benchBackends(o)
	if err != nil {
		return err
	}
	for _, n := range notes {
		fmt.Fprintf(stdout, "note: %s\n", n)
	}
	lim := o.limits
	fmt.Fprintf(stdout, "switchyard bench: each run stops after %d messages or calls, or %v; %d-byte bodies; %d callers for rpc-inflight\n",
		lim.messages, lim.duration, lim.size, lim.inflight)
	p := newProgress(stdout)
	var results []benchResult
	var failures []error
run:
	for _, c := range cases {
		for _, b := range backends {
			clients := []benchClient{switchyardClient{b: b, logger: logger}}
			if b.raw != nil {
				clients = append(clients, b.raw)
			}
			line := p.line(c, b)
			for _, cl := range clients {
				r, err := runBench(ctx, c, b, cl, lim, line)
				results = append(results, r)
				if err != nil {
					failures = append(failures, fmt.Errorf("%s on %s, %s: %w", c.name, b.label, cl.name(), err))
				}
				if ctx.Err() != nil {
					line.finish()
					break run
				}
			}
			line.finish()
		}
	}
	setRatios(results)
	fmt.Fprintln(stdout)
	writeTable(stdout, cases, results)
	for _, n := range notes {
		fmt.Fprintf(stdout, "note: %s\n", n)
	}
	if o.svg != "" {
		if err := writeSVGFile(o.svg, cases, results); err != nil {
			failures = append(failures, err)
		} else {
			fmt.Fprintf(stdout, "chart written to %s\n", o.svg)
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
	return errors.Join(failures...)
}

// runBench runs one case on one client, showing its progress on line.
func runBench(ctx context.Context, c benchCase, b *benchBackend, cl benchClient, lim benchLimits, line *progressLine) (benchResult, error) {
	r := benchResult{c: c, backend: b.label, family: b.family, client: cl.name(), raw: cl.name() != switchyardName}
	// Setup and cleanup are bounded too: a broker that stops answering
	// fails the run rather than hanging it.
	ctx, cancel := context.WithTimeout(ctx, lim.duration+benchSetupTimeout)
	defer cancel()
	m := &meter{}
	stop := line.watch(cl.name(), c.unit, m)
	var err error
	if c.rpc {
		callers := 1
		if c.concurrent {
			callers = lim.inflight
		}
		err = cl.rpc(ctx, lim, callers, m)
	} else {
		err = cl.publish(ctx, lim, c.ack, m)
	}
	stop()
	r.fill(m)
	if err == nil && r.ops == 0 {
		err = errors.New("no operation completed")
	}
	r.err = err
	line.result(r)
	return r, err
}
