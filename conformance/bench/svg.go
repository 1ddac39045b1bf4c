package bench

import (
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
)

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

// schemeColor is a backend's colour, by its URL scheme; raw bars are
// paler.
func schemeColor(scheme string) string {
	switch scheme {
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

// WriteSVG draws the results as an SVG chart: one group of horizontal
// bars per case, one bar per backend and client, on a logarithmic axis
// shared by all groups (rates span several orders of magnitude), each bar
// labelled with its rate.
func WriteSVG(w io.Writer, cases []Case, results []Result) {
	lo, hi := math.Inf(1), 0.0
	for _, r := range results {
		if r.Err == nil && r.Rate > 0 {
			lo, hi = math.Min(lo, r.Rate), math.Max(hi, r.Rate)
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
`, y+16, esc(c.Name+": "+c.Title), esc(c.Unit))
		y += svgGroupHead
		for _, r := range results {
			if r.Case.Name != c.Name {
				continue
			}
			color := schemeColor(r.scheme)
			opacity := "1"
			if r.Raw {
				opacity = "0.45"
			}
			label := r.Backend + " · " + r.Client
			value := "failed"
			if r.Err == nil {
				value = formatRate(r.Rate) + " " + c.Unit
				switch {
				case r.Ratio > 0 && r.FloorRatio > 0:
					value += " (" + formatRatio(r.Ratio) + " of raw, " + formatRatio(r.FloorRatio) + " of " + rawOsloName + ")"
				case r.Ratio > 0:
					value += " (" + formatRatio(r.Ratio) + " of raw)"
				}
			}
			bw := 0.0
			if r.Err == nil {
				bw = x(r.Rate)
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

func countResults(results []Result, c Case) int {
	n := 0
	for _, r := range results {
		if r.Case.Name == c.Name {
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
