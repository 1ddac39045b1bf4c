package bench

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

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

func TestFormatLatency(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{{332, "332ns"}, {12900 * time.Nanosecond, "12.9µs"}, {1790 * time.Microsecond, "1.79ms"}, {2500 * time.Millisecond, "2.5s"}} {
		if got := formatLatency(tt.d); got != tt.want {
			t.Errorf("formatLatency(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

// TestSetRatios: a Switchyard result's ratio is to the raw result of its
// case and backend, and only a working one.
func TestSetRatios(t *testing.T) {
	publish, rpc := Cases()[0], Cases()[2]
	results := []Result{
		{Case: publish, Backend: "memory://a", Client: switchyardName, Rate: 50},
		{Case: publish, Backend: "memory://a", Client: "raw go channel", Raw: true, Rate: 200},
		{Case: publish, Backend: "memory://b", Client: switchyardName, Rate: 50},
		{Case: publish, Backend: "memory://b", Client: "raw go channel", Raw: true, Err: errors.New("failed")},
		{Case: rpc, Backend: "memory://a", Client: switchyardName, Rate: 30},
		{Case: rpc, Backend: "memory://a", Client: "raw go channel", Raw: true, Rate: 10},
	}
	setRatios(results)
	for i, want := range []float64{0.25, 0, 0, 0, 3, 0} {
		if got := results[i].Ratio; got != want {
			t.Errorf("result %d (%s on %s, %s): ratio %v, want %v", i, results[i].Case.Name, results[i].Backend, results[i].Client, got, want)
		}
	}
}

func TestWriteTable(t *testing.T) {
	publish, rpc := Cases()[0], Cases()[2]
	var out bytes.Buffer
	WriteTable(&out, []Case{publish, rpc}, []Result{
		{Case: publish, Backend: "memory://", Client: switchyardName, Rate: 2.75e6, AllocsPerOp: 2, Ratio: 0.244, Ops: 10},
		{Case: rpc, Backend: "memory://", Client: "raw go channel", Raw: true, Rate: 1.91e6, P50: 332, P99: 1740, AllocsPerOp: 2, Ops: 20},
		{Case: rpc, Backend: "memory://", Client: switchyardName, Err: errors.New("broken"), Ops: 0},
	})
	for _, want := range []string{
		"case     backend    client          rate          p50    p99     allocs/op  vs raw  ops\n",
		"publish  memory://  switchyard      2.75M msg/s   -      -       2.0        0.244   10\n",
		"rpc      memory://  raw go channel  1.91M call/s  332ns  1.74µs  2.0        (base)  20\n",
		"rpc      memory://  switchyard      failed        -      -       -          -       0\n",
		"  publish       publish→consume, auto-ack\n",
		"  rpc           RPC, sequential calls\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, out.String())
		}
	}
}
