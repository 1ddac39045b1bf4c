package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"text/tabwriter"
	"time"
)

// Result is one run's outcome: one case on one backend through one
// client.
type Result struct {
	Case    Case
	Backend string // the URL, without its password
	Client  string // "switchyard", or the raw client's name
	Raw     bool   // a raw client's run
	// Floor marks the run of a raw client with Switchyard's promises
	// (raw-oslo-client), beside the plain raw client.
	Floor   bool
	Ops     int64 // messages received, or calls answered
	Elapsed time.Duration
	Rate    float64 // Ops per second
	// P50 and P99 are call latencies; zero for streams.
	P50, P99    time.Duration
	AllocsPerOp float64 // heap allocations of the whole process per op
	// Ratio is Switchyard's rate over the raw client's, same case and
	// backend; 0 for a raw run or without one.
	Ratio float64
	// FloorRatio is Switchyard's rate over the raw client's with its
	// promises (Floor), same case and backend; 0 for a raw run or
	// without one.
	FloorRatio float64
	Err        error // why the run failed; nil if it did not

	scheme string // picks the chart's colour
}

// newResult is the result of a run of c through cl, measured by m.
func newResult(c Case, cl client, m *meter, err error) Result {
	_, floor := cl.(rpcOnly)
	r := Result{Case: c, Client: cl.name(), Raw: cl.name() != switchyardName, Floor: floor, Err: err}
	m.mu.Lock()
	defer m.mu.Unlock()
	r.Ops, r.Elapsed = m.ops.Load(), m.elapsed
	if r.Elapsed > 0 {
		r.Rate = float64(r.Ops) / r.Elapsed.Seconds()
	}
	if r.Ops > 0 {
		r.AllocsPerOp = float64(m.mallocs) / float64(r.Ops)
	}
	if m.lat != nil {
		r.P50, r.P99 = m.lat.quantile(0.50), m.lat.quantile(0.99)
	}
	return r
}

// setRatios sets each Switchyard result's ratios to the raw results of
// the same case and backend: Ratio to the plain raw client's, FloorRatio
// to the one with its promises.
func setRatios(results []Result) {
	for i := range results {
		r := &results[i]
		if r.Raw || r.Err != nil || r.Rate == 0 {
			continue
		}
		for _, raw := range results {
			if !raw.Raw || raw.Err != nil || raw.Case.Name != r.Case.Name || raw.Backend != r.Backend || raw.Rate == 0 {
				continue
			}
			if raw.Floor {
				r.FloorRatio = r.Rate / raw.Rate
			} else {
				r.Ratio = r.Rate / raw.Rate
			}
		}
	}
}

// WriteTable prints the results, one row per run, and what the columns
// and cases mean. A "vs floor" column follows "vs raw" when a floor ran.
func WriteTable(w io.Writer, cases []Case, results []Result) {
	floors := slices.ContainsFunc(results, func(r Result) bool { return r.Floor })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	header := "case\tbackend\tclient\trate\tp50\tp99\tallocs/op\tvs raw\t"
	if floors {
		header += "vs floor\t"
	}
	fmt.Fprintln(tw, header+"ops")
	for _, r := range results {
		rate, p50, p99, allocs, ratio, floor := "failed", "-", "-", "-", "-", "-"
		if r.Err == nil {
			rate = formatRate(r.Rate) + " " + r.Case.Unit
			allocs = fmt.Sprintf("%.1f", r.AllocsPerOp)
		}
		if r.Err == nil && r.P50 > 0 {
			p50, p99 = formatLatency(r.P50), formatLatency(r.P99)
		}
		switch {
		case r.Floor:
			floor = "(base)"
		case r.Raw:
			ratio = "(base)"
		default:
			if r.Ratio > 0 {
				ratio = formatRatio(r.Ratio)
			}
			if r.FloorRatio > 0 {
				floor = formatRatio(r.FloorRatio)
			}
		}
		row := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t", r.Case.Name, r.Backend, r.Client, rate, p50, p99, allocs, ratio)
		if floors {
			row += floor + "\t"
		}
		fmt.Fprintf(tw, "%s%d\n", row, r.Ops)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	for _, c := range cases {
		fmt.Fprintf(w, "  %-13s %s\n", c.Name, c.Title)
	}
	fmt.Fprintln(w, "  vs raw: Switchyard's rate over the raw client's, same case, same backend, same run.")
	if floors {
		fmt.Fprintln(w, "  vs floor: Switchyard's rate over "+rawOsloName+"'s: a raw client that oslo.messaging's peers could talk to,")
		fmt.Fprintln(w, "    keeping Switchyard's promises (oslo's envelope, fresh ids, mandatory confirmed publishes, duplicates dropped).")
	}
	fmt.Fprintln(w, "  allocs/op: heap allocations of the whole process (both ends, and an in-process broker or peer) per message or call.")
}

// formatRate shows a rate with three significant digits: 1.23M, 45.6k, 789.
func formatRate(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "?"
	case v >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.3gk", v/1e3)
	}
	return fmt.Sprintf("%.3g", v)
}

// formatRatio shows a ratio with up to three significant digits, small
// ones included: 1.64, 0.25, 0.00254.
func formatRatio(v float64) string { return fmt.Sprintf("%.3g", v) }

// formatLatency shows a latency with three significant digits.
func formatLatency(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.3gs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.3gms", float64(d)/float64(time.Millisecond))
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	}
	return fmt.Sprintf("%.3gµs", float64(d)/float64(time.Microsecond))
}
