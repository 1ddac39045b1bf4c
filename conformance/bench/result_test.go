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
// case and backend, and only a working one; its floor ratio to the floor's.
func TestSetRatios(t *testing.T) {
	publish, rpc := Cases()[0], Cases()[2]
	results := []Result{
		{Case: publish, Backend: "memory://a", Client: switchyardName, Rate: 50},
		{Case: publish, Backend: "memory://a", Client: "raw go channel", Raw: true, Rate: 200},
		{Case: publish, Backend: "memory://b", Client: switchyardName, Rate: 50},
		{Case: publish, Backend: "memory://b", Client: "raw go channel", Raw: true, Err: errors.New("failed")},
		{Case: rpc, Backend: "memory://a", Client: switchyardName, Rate: 30},
		{Case: rpc, Backend: "memory://a", Client: "raw go channel", Raw: true, Rate: 10},
		{Case: rpc, Backend: "rabbit://a", Client: switchyardName, Rate: 60},
		{Case: rpc, Backend: "rabbit://a", Client: "raw amqp091-go", Raw: true, Rate: 100},
		{Case: rpc, Backend: "rabbit://a", Client: rawOsloName, Raw: true, Floor: true, Rate: 75},
	}
	setRatios(results)
	for i, want := range []struct{ ratio, floor float64 }{{0.25, 0}, {0, 0}, {0, 0}, {0, 0}, {3, 0}, {0, 0}, {0.6, 0.8}, {0, 0}, {0, 0}} {
		if got := results[i]; got.Ratio != want.ratio || got.FloorRatio != want.floor {
			t.Errorf("result %d (%s on %s, %s): ratio %v and %v to the floor, want %v and %v",
				i, got.Case.Name, got.Backend, got.Client, got.Ratio, got.FloorRatio, want.ratio, want.floor)
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
	requireLines(t, out.String(),
		"case     backend    client          rate          p50    p99     allocs/op  vs raw  ops\n",
		"publish  memory://  switchyard      2.75M msg/s   -      -       2.0        0.244   10\n",
		"rpc      memory://  raw go channel  1.91M call/s  332ns  1.74µs  2.0        (base)  20\n",
		"rpc      memory://  switchyard      failed        -      -       -          -       0\n",

		"  publish       publish→consume, auto-ack\n",
		"  rpc           RPC, sequential calls\n",
	)
}

// requireLines fails t for each of wants that table does not contain.
func requireLines(t *testing.T, table string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(table, want) {
			t.Errorf("the table lacks %q:\n%s", want, table)
		}
	}
}

// TestWriteTableFloor: with a floor among the results, the table has a
// "vs floor" column: Switchyard's ratio to the floor, "(base)" on the
// floor's row; the legend explains it. Without one, neither.
func TestWriteTableFloor(t *testing.T) {
	rpc := Cases()[2]
	var out bytes.Buffer
	WriteTable(&out, []Case{rpc}, []Result{
		{Case: rpc, Backend: "rabbit://", Client: switchyardName, Rate: 1500, AllocsPerOp: 30, Ratio: 0.6, FloorRatio: 0.994, Ops: 30},
		{Case: rpc, Backend: "rabbit://", Client: "raw amqp091-go", Raw: true, Rate: 2500, AllocsPerOp: 20, Ops: 30},
		{Case: rpc, Backend: "rabbit://", Client: rawOsloName, Raw: true, Floor: true, Rate: 1509, AllocsPerOp: 40, Ops: 30},
	})
	requireLines(t, out.String(),
		"case  backend    client           rate          p50  p99  allocs/op  vs raw  vs floor  ops\n",
		"rpc   rabbit://  switchyard       1.5k call/s   -    -    30.0       0.6     0.994     30\n",
		"rpc   rabbit://  raw amqp091-go   2.5k call/s   -    -    20.0       (base)  -         30\n",
		"rpc   rabbit://  raw-oslo-client  1.51k call/s  -    -    40.0       -       (base)    30\n",
		"  vs floor: Switchyard's rate over raw-oslo-client's",
	)
	out.Reset()
	WriteTable(&out, []Case{rpc}, []Result{{Case: rpc, Backend: "memory://", Client: switchyardName, Rate: 1500, Ratio: 0.6, Ops: 30}})
	if strings.Contains(out.String(), "floor") {
		t.Errorf("the table shows a floor that did not run:\n%s", out.String())
	}
}
