package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/conformance/bench"
	"github.com/switchyard-mq/switchyard/internal/brokertest"
	"github.com/switchyard-mq/switchyard/transport"
)

// benchTiny returns the bounds of the tests' runs: enough to see every
// case work, small enough to keep the tests quick.
func benchTiny() []string { return []string{"-messages", "200", "-duration", "2s", "-inflight", "4"} }

// benchRow is one row of bench's table; floor is "" when the table has
// no "vs floor" column.
type benchRow struct {
	cas, backend, client, rate, p50, p99, allocs, ratio, floor, ops string
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
	width := len(columns.Split(strings.TrimSpace(lines[start]), -1))
	if width != 9 && width != 10 {
		t.Fatalf("the table's header %q has %d columns, want 9, or 10 with vs floor", lines[start], width)
	}
	var rows []benchRow
	for _, line := range lines[start+1:] {
		if strings.TrimSpace(line) == "" {
			break
		}
		f := columns.Split(strings.TrimSpace(line), -1)
		if len(f) != width {
			t.Fatalf("table row %q has %d columns, want %d", line, len(f), width)
		}
		r := benchRow{cas: f[0], backend: f[1], client: f[2], rate: f[3], p50: f[4], p99: f[5], allocs: f[6], ratio: f[7], ops: f[width-1]}
		if width == 10 {
			r.floor = f[8]
		}
		rows = append(rows, r)
	}
	return rows
}

// checkFloorRows checks that the RPC cases, and only they, ran on backend
// through raw-oslo-client too, and that Switchyard's calls have a ratio
// to it.
func checkFloorRows(t *testing.T, rows []benchRow, backend string) {
	t.Helper()
	for _, c := range bench.Cases() {
		i := slices.IndexFunc(rows, func(r benchRow) bool { return r.cas == c.Name && r.backend == backend && r.client == "raw-oslo-client" })
		if (i >= 0) != c.RPC {
			t.Errorf("%s on %s through raw-oslo-client: ran %v, want %v (the RPC cases only)", c.Name, backend, i >= 0, c.RPC)
		}
		if i < 0 {
			continue
		}
		if r := rows[i]; r.floor != "(base)" || r.ratio != "-" || r.p50 == "-" {
			t.Errorf("%s on %s, raw-oslo-client: vs raw %q, vs floor %q, p50 %q; want -, (base) and a latency", c.Name, backend, r.ratio, r.floor, r.p50)
		}
		j := slices.IndexFunc(rows, func(r benchRow) bool { return r.cas == c.Name && r.backend == backend && r.client == "switchyard" })
		if j < 0 {
			continue // checkBenchRows reports it
		}
		if ratio, err := strconv.ParseFloat(rows[j].floor, 64); err != nil || ratio <= 0 {
			t.Errorf("%s on %s: Switchyard's ratio to raw-oslo-client %q, want a positive number", c.Name, backend, rows[j].floor)
		}
	}
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
// and through rawClient (the notify case only with rawNotify: only some
// raw clients publish notifications), each with a positive rate,
// Switchyard's with a ratio to the raw one, calls with latencies.
func checkBenchRows(t *testing.T, rows []benchRow, backend, rawClient string, rawNotify bool) {
	t.Helper()
	for _, c := range bench.Cases() {
		hasRaw := !c.Notify || rawNotify
		clients := []string{"switchyard", rawClient}
		if !hasRaw {
			clients = clients[:1]
			if slices.ContainsFunc(rows, func(r benchRow) bool { return r.cas == c.Name && r.client == rawClient }) {
				t.Errorf("%s on %s ran through %s, which has no such case", c.Name, backend, rawClient)
			}
		}
		for _, client := range clients {
			i := slices.IndexFunc(rows, func(r benchRow) bool { return r.cas == c.Name && r.backend == backend && r.client == client })
			if i < 0 {
				t.Errorf("no row for %s on %s through %s in %+v", c.Name, backend, client, rows)
				continue
			}
			r := rows[i]
			if rate, err := parseRate(r.rate); err != nil || rate <= 0 || !strings.HasSuffix(r.rate, c.Unit) {
				t.Errorf("%s on %s, %s: rate %q, want a positive number of %s", c.Name, backend, client, r.rate, c.Unit)
			}
			if ops, err := strconv.Atoi(r.ops); err != nil || ops <= 0 {
				t.Errorf("%s on %s, %s: %q operations", c.Name, backend, client, r.ops)
			}
			if allocs, err := strconv.ParseFloat(r.allocs, 64); err != nil || allocs < 0 {
				t.Errorf("%s on %s, %s: allocs/op %q", c.Name, backend, client, r.allocs)
			}
			if (r.p50 != "-") != c.RPC || (r.p99 != "-") != c.RPC {
				t.Errorf("%s on %s, %s: p50 %q, p99 %q; want latencies for calls only", c.Name, backend, client, r.p50, r.p99)
			}
			if client == rawClient {
				if r.ratio != "(base)" {
					t.Errorf("%s on %s, raw: ratio %q, want (base)", c.Name, backend, r.ratio)
				}
				continue
			}
			if !hasRaw {
				if r.ratio != "-" {
					t.Errorf("%s on %s: ratio %q without a raw run, want -", c.Name, backend, r.ratio)
				}
				continue
			}
			if ratio, err := strconv.ParseFloat(r.ratio, 64); err != nil || ratio <= 0 {
				t.Errorf("%s on %s: ratio %q, want a positive number", c.Name, backend, r.ratio)
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
		// No raw notifications on memory://.
		if want := 2*len(bench.Cases()) - 1; len(rows) != want {
			t.Errorf("%d rows, want %d", len(rows), want)
		}
		checkBenchRows(t, rows, url, "raw go channel", false)
	})
	t.Run("progress", func(t *testing.T) {
		// Not a terminal: a plain line per case, no carriage returns.
		if strings.Contains(out, "\r") {
			t.Error("the output has carriage returns, though it is not a terminal")
		}
		for _, c := range bench.Cases() {
			raw := ` \| raw go channel `
			if c.Notify {
				raw = ""
			}
			if !regexp.MustCompile(`(?m)^` + c.Name + ` +` + regexp.QuoteMeta(url) + `: switchyard .*` + raw).MatchString(out) {
				t.Errorf("no progress line for %s", c.Name)
			}
		}
	})
	t.Run("svg", func(t *testing.T) {
		data, err := os.ReadFile(svg)
		if err != nil {
			t.Fatal(err)
		}
		text := svgText(t, data)
		for _, c := range bench.Cases() {
			if !strings.Contains(text, c.Name+": "+c.Title) {
				t.Errorf("the chart lacks case %s", c.Name)
			}
		}
		// One bar per case and side: no raw notify case on memory://.
		for _, bar := range []struct {
			label string
			n     int
		}{{url + " · switchyard", len(bench.Cases())}, {url + " · raw go channel", len(bench.Cases()) - 1}} {
			if n := strings.Count(text, bar.label); n < bar.n {
				t.Errorf("the chart labels %d bars %q, want %d", n, bar.label, bar.n)
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
	rows := parseBenchTable(t, out)
	checkBenchRows(t, rows, tc.String(), "raw amqp091-go", true)
	checkFloorRows(t, rows, tc.String())
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
	checkBenchRows(t, parseBenchTable(t, out), url, "raw zmq4", false)
}
