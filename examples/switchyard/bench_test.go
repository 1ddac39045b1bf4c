package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-mq/switchyard/internal/brokertest"
	"github.com/switchyard-mq/switchyard/transport"
)

// benchTiny returns the bounds of the tests' runs: enough to see every
// case work, small enough to keep the tests quick.
func benchTiny() []string { return []string{"-messages", "200", "-duration", "2s", "-inflight", "4"} }

// benchRow is one row of bench's table.
type benchRow struct {
	cas, backend, client, rate, p50, p99, allocs, ratio, ops string
}

// parseBenchTable returns the rows of the table in bench's output.
func parseBenchTable(t *testing.T, out string) []benchRow {
	t.Helper()
	lines := strings.Split(out, "\n")
	start := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "case ") && strings.Contains(l, "vs raw") })
	if start < 0 {
		t.Fatalf("no table in the output:\n%s", out)
	}
	columns := regexp.MustCompile(`\s{2,}`)
	var rows []benchRow
	for _, line := range lines[start+1:] {
		if strings.TrimSpace(line) == "" {
			break
		}
		f := columns.Split(strings.TrimSpace(line), -1)
		if len(f) != 9 {
			t.Fatalf("table row %q has %d columns, want 9", line, len(f))
		}
		rows = append(rows, benchRow{f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8]})
	}
	return rows
}

// parseRate reads a rate as formatRate writes it, with its unit: "1.5k msg/s".
func parseRate(s string) (float64, error) {
	num, _, _ := strings.Cut(s, " ")
	mult := 1.0
	switch {
	case strings.HasSuffix(num, "M"):
		mult, num = 1e6, strings.TrimSuffix(num, "M")
	case strings.HasSuffix(num, "k"):
		mult, num = 1e3, strings.TrimSuffix(num, "k")
	}
	v, err := strconv.ParseFloat(num, 64)
	return v * mult, err
}

// checkBenchRows checks that every case ran on backend through Switchyard
// and through rawClient, each with a positive rate, Switchyard's with a
// ratio to the raw one, calls with latencies.
func checkBenchRows(t *testing.T, rows []benchRow, backend, rawClient string) {
	t.Helper()
	for _, c := range benchCases() {
		for _, client := range []string{switchyardName, rawClient} {
			i := slices.IndexFunc(rows, func(r benchRow) bool { return r.cas == c.name && r.backend == backend && r.client == client })
			if i < 0 {
				t.Errorf("no row for %s on %s through %s in %+v", c.name, backend, client, rows)
				continue
			}
			r := rows[i]
			if rate, err := parseRate(r.rate); err != nil || rate <= 0 || !strings.HasSuffix(r.rate, c.unit) {
				t.Errorf("%s on %s, %s: rate %q, want a positive number of %s", c.name, backend, client, r.rate, c.unit)
			}
			if ops, err := strconv.Atoi(r.ops); err != nil || ops <= 0 {
				t.Errorf("%s on %s, %s: %q operations", c.name, backend, client, r.ops)
			}
			if allocs, err := strconv.ParseFloat(r.allocs, 64); err != nil || allocs < 0 {
				t.Errorf("%s on %s, %s: allocs/op %q", c.name, backend, client, r.allocs)
			}
			if (r.p50 != "-") != c.rpc || (r.p99 != "-") != c.rpc {
				t.Errorf("%s on %s, %s: p50 %q, p99 %q; want latencies for calls only", c.name, backend, client, r.p50, r.p99)
			}
			if client == rawClient {
				if r.ratio != "(base)" {
					t.Errorf("%s on %s, raw: ratio %q, want (base)", c.name, backend, r.ratio)
				}
				continue
			}
			if ratio, err := strconv.ParseFloat(r.ratio, 64); err != nil || ratio <= 0 {
				t.Errorf("%s on %s: ratio %q, want a positive number", c.name, backend, r.ratio)
			}
		}
	}
}

// runBenchTool runs bench with args and the tiny bounds, failing t unless it
// exits 0.
func runBenchTool(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	code, out, errOut := runTool(ctx, append(append([]string{"bench"}, benchTiny()...), args...)...)
	if code != 0 {
		t.Fatalf("bench exited %d; stderr:\n%s\nstdout:\n%s", code, errOut, out)
	}
	return out
}

func TestBenchMemory(t *testing.T) {
	before := runtime.NumGoroutine()
	url := uniqueURL("bench")
	svg := filepath.Join(t.TempDir(), "bench.svg")
	out := runBenchTool(t, "-url", url, "-svg", svg)
	checkNoGoroutineLeft(t, before)
	t.Log("\n" + out)

	t.Run("table", func(t *testing.T) {
		rows := parseBenchTable(t, out)
		if want := 2 * len(benchCases()); len(rows) != want {
			t.Errorf("%d rows, want %d", len(rows), want)
		}
		checkBenchRows(t, rows, url, "raw go channel")
	})
	t.Run("progress", func(t *testing.T) {
		// Not a terminal: a plain line per case, no carriage returns.
		if strings.Contains(out, "\r") {
			t.Error("the output has carriage returns, though it is not a terminal")
		}
		for _, c := range benchCases() {
			if !regexp.MustCompile(`(?m)^` + c.name + ` +` + regexp.QuoteMeta(url) + `: switchyard .* \| raw go channel `).MatchString(out) {
				t.Errorf("no progress line for %s", c.name)
			}
		}
	})
	t.Run("svg", func(t *testing.T) {
		data, err := os.ReadFile(svg)
		if err != nil {
			t.Fatal(err)
		}
		text := svgText(t, data)
		for _, c := range benchCases() {
			if !strings.Contains(text, c.name+": "+c.title) {
				t.Errorf("the chart lacks case %s", c.name)
			}
		}
		for _, want := range []string{url + " · switchyard", url + " · raw go channel"} {
			if n := strings.Count(text, want); n < len(benchCases()) {
				t.Errorf("the chart labels %d bars %q, want one per case", n, want)
			}
		}
		if !strings.Contains(out, "chart written to "+svg) {
			t.Error("bench did not say where the chart went")
		}
	})
}

// svgText parses an SVG document, failing t unless it is well-formed XML
// with an svg root, and returns its text.
func svgText(t *testing.T, data []byte) string {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(data))
	var text strings.Builder
	root := ""
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("the chart is not well-formed XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = tok.Name.Local
			}
		case xml.CharData:
			text.Write(tok)
			text.WriteByte('\n')
		}
	}
	if root != "svg" {
		t.Fatalf("the chart's root element is %q, want svg", root)
	}
	return text.String()
}

// TestBenchConfigFile: without -url, bench benchmarks the -config file's
// transport_url.
func TestBenchConfigFile(t *testing.T) {
	url := uniqueURL("bench-config")
	file := filepath.Join(t.TempDir(), "nova.conf")
	if err := os.WriteFile(file, []byte("[DEFAULT]\ntransport_url = "+url+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := runBenchTool(t, "-config", file, "-cases", "publish")
	if rows := parseBenchTable(t, out); len(rows) != 2 || rows[0].backend != url || rows[1].backend != url {
		t.Errorf("rows %+v, want publish on %s", rows, url)
	}
}

func TestBenchUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-duration", "0s"}, "-duration 0s is not positive"},
		{[]string{"-messages", "0"}, "-messages 0 is less than 1"},
		{[]string{"-size", "-1"}, "-size -1 is not from 0"},
		{[]string{"-inflight", "0"}, "-inflight 0 is less than 1"},
		{[]string{"-cases", "publish,nope"}, `unknown workload "nope"`},
		{[]string{"-cases", ""}, `unknown workload ""`},
		{[]string{"extra"}, `unexpected arguments ["extra"]`},
		{[]string{"-url", "rabbit:/h"}, "-url: "},
		{[]string{"-url", "nope://"}, `no driver for scheme "nope"`},
		{[]string{"-nope"}, "flag provided but not defined: -nope"},
		{[]string{"-messages", "many"}, `invalid value "many" for flag -messages`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, errOut := runTool(t.Context(), append([]string{"bench"}, tt.args...)...)
			if code != 2 || !strings.Contains(errOut, tt.want) {
				t.Errorf("bench %q: exit %d, stderr\n%s\nwant 2 and %q", tt.args, code, errOut, tt.want)
			}
		})
	}
}

func TestBenchRabbit(t *testing.T) {
	vh := brokertest.NewRabbitVHost(t)
	out := runBenchTool(t, "-url", vh.URL)
	t.Log("\n" + out)
	tc, err := transport.ParseURL(vh.URL)
	if err != nil {
		t.Fatal(err)
	}
	checkBenchRows(t, parseBenchTable(t, out), tc.String(), "raw amqp091-go")
	if !strings.Contains(out, "note: "+tc.String()+": every publish waits for the broker's confirm") {
		t.Errorf("no note on confirms in:\n%s", out)
	}
	if tc.HasPassword && strings.Contains(out, ":"+tc.Password+"@") {
		t.Errorf("the output shows the password:\n%s", out)
	}
	// Every queue and exchange of the runs is gone.
	for _, what := range []string{"list_queues", "list_exchanges"} {
		if left := brokertest.RabbitCtl(t, what, "-p", vh.Name, "name"); strings.Contains(left, "switchyard-bench") {
			t.Errorf("%s: bench left\n%s", what, left)
		}
	}
}

func TestBenchZMQ(t *testing.T) {
	url := "zmq://" + strings.TrimPrefix(uniqueURL("bench"), "memory://")
	out := runBenchTool(t, "-url", url)
	t.Log("\n" + out)
	checkBenchRows(t, parseBenchTable(t, out), url, "raw zmq4")
}

// TestRawAMQP1Baseline runs the go-amqp baseline, which bench uses only
// when an AMQP 1.0 driver is registered, on RabbitMQ's AMQP 1.0 plugin.
func TestRawAMQP1Baseline(t *testing.T) {
	vh := brokertest.NewRabbitVHost(t)
	tc, err := transport.ParseURL("amqp" + strings.TrimPrefix(vh.URL, "rabbit"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := newAMQP1Baseline(tc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	probe, err := raw.dial(ctx)
	if err != nil {
		msg := "RabbitMQ's AMQP 1.0 plugin does not answer (" + err.Error() + "); run .ci/run, or: rabbitmq-plugins enable rabbitmq_amqp1_0"
		if brokertest.Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if err := probe.close(); err != nil {
		t.Fatal(err)
	}
	lim := benchLimits{messages: 200, duration: 2 * time.Second, size: 100, inflight: 4}
	for _, c := range benchCases() {
		t.Run(c.name, func(t *testing.T) {
			var m meter
			var err error
			if c.rpc {
				callers := 1
				if c.concurrent {
					callers = lim.inflight
				}
				err = raw.rpc(ctx, lim, callers, &m)
			} else {
				err = raw.publish(ctx, lim, c.ack, &m)
			}
			if err != nil || m.ops.Load() == 0 {
				t.Fatalf("%d operations, error %v", m.ops.Load(), err)
			}
		})
	}
	if left := brokertest.RabbitCtl(t, "list_queues", "-p", vh.Name, "name"); strings.Contains(left, "switchyard-bench") {
		t.Errorf("the baseline left\n%s", left)
	}
}

// TestRabbitBaselineURL: the amqp091-go URL built from a rabbit:// URL
// reaches the same broker, credentials and virtual host.
func TestRabbitBaselineURL(t *testing.T) {
	tests := []struct {
		url                   string
		host                  string
		port                  int
		user, password, vhost string
		confirms              bool
	}{
		{"rabbit://guest:guest@127.0.0.1:5672/", "127.0.0.1", 5672, "guest", "guest", "/", true},
		{"rabbit://h1", "h1", 5672, "guest", "guest", "/", true},
		{"rabbit://nova:p%40ss%2Fw%3Ard%3F%23@h1:5673,h2:5674/nova?confirms=false", "h1", 5673, "nova", "p@ss/w:rd?#", "nova", false},
		{"rabbit://u:p@[::1]:5672/a%2Fb", "::1", 5672, "u", "p", "a/b", true},
		{"rabbit://u:@h//", "h", 5672, "u", "", "/", true},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			tc, err := transport.ParseURL(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			r, err := newRabbitBaseline(tc)
			if err != nil {
				t.Fatal(err)
			}
			u, err := amqp.ParseURI(r.amqpURL)
			if err != nil {
				t.Fatalf("amqp091-go cannot parse the URL: %v", err)
			}
			if u.Host != tt.host || u.Port != tt.port || u.Username != tt.user || u.Password != tt.password || u.Vhost != tt.vhost || r.confirms != tt.confirms {
				t.Errorf("host %q port %d user %q password %q vhost %q confirms %v; want %q %d %q %q %q %v",
					u.Host, u.Port, u.Username, u.Password, u.Vhost, r.confirms, tt.host, tt.port, tt.user, tt.password, tt.vhost, tt.confirms)
			}
			if tt.password != "" && strings.Contains(r.where, tt.password) {
				t.Errorf("the broker's description %q shows the password", r.where)
			}
		})
	}
	tc, err := transport.ParseURL("rabbit://h?confirms=maybe")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newRabbitBaseline(tc); err == nil {
		t.Error("confirms=maybe accepted")
	}
}

func TestLatencyQuantiles(t *testing.T) {
	tests := []struct {
		name     string
		samples  []time.Duration
		p50, p99 time.Duration
	}{
		{"one", []time.Duration{250 * time.Microsecond}, 250 * time.Microsecond, 250 * time.Microsecond},
		{"small exact", []time.Duration{3, 5, 7}, 5, 7},
		{"1 to 100 ms", func() []time.Duration {
			var s []time.Duration
			for i := 1; i <= 100; i++ {
				s = append(s, time.Duration(i)*time.Millisecond)
			}
			return s
		}(), 50 * time.Millisecond, 99 * time.Millisecond},
		{"an outlier", append(slices.Repeat([]time.Duration{time.Microsecond}, 99), time.Second), time.Microsecond, time.Microsecond},
		{"a minute", []time.Duration{time.Minute}, time.Minute, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l latencies
			for _, d := range tt.samples {
				l.record(d)
			}
			for _, q := range []struct {
				q    float64
				want time.Duration
			}{{0.5, tt.p50}, {0.99, tt.p99}} {
				got := l.quantile(q.q)
				if diff := math.Abs(float64(got-q.want)) / float64(q.want); diff > 1.0/latencySub {
					t.Errorf("quantile(%v) = %v, want %v within %.0f%%", q.q, got, q.want, 100.0/latencySub)
				}
			}
		})
	}
}

func TestFormatRate(t *testing.T) {
	for _, tt := range []struct {
		v    float64
		want string
	}{{0, "0"}, {999, "999"}, {1234, "1.23k"}, {45678, "45.7k"}, {2.5e6, "2.5M"}, {19.87e6, "19.9M"}} {
		if got := formatRate(tt.v); got != tt.want {
			t.Errorf("formatRate(%v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

// TestProgressOnTerminal: on a terminal, a case's line is rewritten in
// place and ended once.
func TestProgressOnTerminal(t *testing.T) {
	var buf bytes.Buffer
	p := &progress{w: &buf, live: true, width: 80}
	c := benchCases()[0]
	line := p.line(c, &benchBackend{label: "memory://x"})
	m := &meter{}
	m.started.Store(time.Now().UnixNano())
	stop := line.watch(switchyardName, c.unit, m)
	stop()
	line.result(benchResult{c: c, client: switchyardName, rate: 1500})
	line.result(benchResult{c: c, client: "raw go channel", rate: 3e6})
	line.finish()
	out := buf.String()
	if !strings.HasPrefix(out, "\r") || strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Errorf("output %q: want lines rewritten with \\r and one newline at the end", out)
	}
	last := out[strings.LastIndexByte(strings.TrimSuffix(out, "\n"), '\r')+1:]
	if want := "publish       memory://x: switchyard 1.5k msg/s | raw go channel 3M msg/s"; strings.TrimSpace(last) != want {
		t.Errorf("final line %q, want %q", last, want)
	}

	// A line wider than the terminal is cut while it is rewritten, and
	// written whole at the end.
	buf.Reset()
	p.width = 40
	line = p.line(c, &benchBackend{label: "rabbit://guest:xxxxx@127.0.0.1:5672/some-virtual-host"})
	line.result(benchResult{c: c, client: switchyardName, rate: 1500})
	line.finish()
	rewritten, final, _ := strings.Cut(strings.TrimPrefix(buf.String(), "\r"), "\r")
	if n := utf8.RuneCountInString(rewritten); n != 39 || !strings.HasSuffix(rewritten, "…") {
		t.Errorf("line rewritten as %q (%d runes), want it cut to 39", rewritten, n)
	}
	if !strings.Contains(final, "some-virtual-host: switchyard 1.5k msg/s") {
		t.Errorf("final line %q, want it whole", final)
	}
}
