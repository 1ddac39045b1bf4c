package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// writeTable prints the results, one row per run, and what the columns
// mean.
func writeTable(w io.Writer, cases []benchCase, results []benchResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "case\tbackend\tclient\trate\tp50\tp99\tallocs/op\tvs raw\tops")
	for _, r := range results {
		rate, p50, p99, allocs, ratio := "failed", "-", "-", "-", "-"
		if r.err == nil {
			rate = formatRate(r.rate) + " " + r.c.unit
			allocs = fmt.Sprintf("%.1f", r.allocsPerOp)
		}
		if r.err == nil && r.p50 > 0 {
			p50, p99 = formatLatency(r.p50), formatLatency(r.p99)
		}
		switch {
		case r.raw:
			ratio = "(base)"
		case r.ratio > 0:
			ratio = formatRatio(r.ratio)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", r.c.name, r.backend, r.client, rate, p50, p99, allocs, ratio, r.ops)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	for _, c := range cases {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, c.title)
	}
	fmt.Fprintln(w, "  vs raw: Switchyard's rate over the raw client's, same case, same backend, same run.")
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

// writeSVGFile writes the chart of the results to path.
func writeSVGFile(path string, cases []benchCase, results []benchResult) error {
	var b bytes.Buffer
	writeSVG(&b, cases, results)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write the chart: %w", err)
	}
	return nil
}

// Chart geometry, in pixels.
const (
	svgWidth     = 960
	svgLabelW    = 330 // bar labels, right-aligned before the bars
	svgBarsW     = 440
	svgBarH      = 16
	svgBarGap    = 4
	svgGroupHead = 24 // a case's title above its bars
	svgGroupGap  = 14
	svgTop       = 56 // the title and the axis labels
	svgBottom    = 40 // the legend
)

// familyColor is a backend family's colour; raw bars are paler.
func familyColor(family string) string {
	switch family {
	case "memory":
		return "#4e79a7"
	case "rabbit":
		return "#f28e2b"
	case "zmq":
		return "#59a14f"
	case "amqp":
		return "#e15759"
	}
	return "#76b7b2"
}

// writeSVG draws one group of horizontal bars per case, one bar per
// backend and client, on a logarithmic axis shared by all groups (rates
// span several orders of magnitude), each bar labelled with its rate.
func writeSVG(w io.Writer, cases []benchCase, results []benchResult) {
	lo, hi := math.Inf(1), 0.0
	for _, r := range results {
		if r.err == nil && r.rate > 0 {
			lo, hi = math.Min(lo, r.rate), math.Max(hi, r.rate)
		}
	}
	if hi == 0 {
		lo, hi = 1, 10
	}
	// The axis starts a decade below the smallest rate when that rate is
	// near its decade, so that its bar stays visible.
	decLo, decHi := math.Floor(math.Log10(lo/3)), math.Ceil(math.Log10(hi))
	if decHi <= decLo {
		decHi = decLo + 1
	}
	x := func(v float64) float64 {
		if v <= 0 {
			return 0
		}
		return math.Max(1, (math.Log10(v)-decLo)/(decHi-decLo)*svgBarsW)
	}

	height := svgTop + svgBottom
	for _, c := range cases {
		height += svgGroupHead + svgGroupGap + countResults(results, c)*(svgBarH+svgBarGap)
	}
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">
<rect width="100%%" height="100%%" fill="white"/>
<text x="%d" y="20" font-size="15" font-weight="bold">switchyard bench: operations per second, logarithmic scale</text>
`, svgWidth, height, svgWidth, height, 10)

	// Decade grid lines and their labels, across every group.
	for dec := decLo; dec <= decHi; dec++ {
		gx := float64(svgLabelW) + x(math.Pow(10, dec))
		if dec == decLo {
			gx = svgLabelW
		}
		fmt.Fprintf(w, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>
<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%s</text>
`, gx, svgTop-8, gx, height-svgBottom, gx, svgTop-14, formatRate(math.Pow(10, dec)))
	}

	y := svgTop
	for _, c := range cases {
		fmt.Fprintf(w, `<g><text x="10" y="%d" font-weight="bold">%s (%s)</text>
`, y+16, esc(c.name+": "+c.title), esc(c.unit))
		y += svgGroupHead
		for _, r := range results {
			if r.c.name != c.name {
				continue
			}
			color := familyColor(r.family)
			opacity := "1"
			if r.raw {
				opacity = "0.45"
			}
			label := r.backend + " · " + r.client
			value := "failed"
			if r.err == nil {
				value = formatRate(r.rate) + " " + c.unit
				if r.ratio > 0 {
					value += " (" + formatRatio(r.ratio) + " of raw)"
				}
			}
			bw := 0.0
			if r.err == nil {
				bw = x(r.rate)
			}
			fmt.Fprintf(w, `<text x="%d" y="%d" text-anchor="end">%s</text>
<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s" fill-opacity="%s"><title>%s: %s</title></rect>
<text x="%.1f" y="%d">%s</text>
`, svgLabelW-6, y+svgBarH-4, esc(label),
				svgLabelW, y, bw, svgBarH, color, opacity, esc(label), esc(value),
				float64(svgLabelW)+bw+4, y+svgBarH-4, esc(value))
			y += svgBarH + svgBarGap
		}
		fmt.Fprintln(w, "</g>")
		y += svgGroupGap
	}
	fmt.Fprintf(w, `<text x="10" y="%d" fill="#555">Solid bars: Switchyard; pale bars: the backend's raw client, measured in the same run.</text>
</svg>
`, height-14)
}

func countResults(results []benchResult, c benchCase) int {
	n := 0
	for _, r := range results {
		if r.c.name == c.name {
			n++
		}
	}
	return n
}

// esc escapes text for XML.
func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
