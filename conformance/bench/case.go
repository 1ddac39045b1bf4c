package bench

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Case is one workload, run on every backend through Switchyard and
// through the backend's raw client.
type Case struct {
	// Name is the case's name on the command line (-cases) and in
	// sub-benchmark names.
	Name string
	// Title says what it measures, for the table's notes and the chart.
	Title string
	// Unit is the unit of its rate: msg/s or call/s.
	Unit string
	// RPC marks an RPC case (calls, each timed); otherwise the case is
	// publish→consume.
	RPC bool
	// Ack, for publish→consume, acknowledges each delivery by hand with
	// prefetch AckPrefetch; otherwise deliveries are auto-acknowledged.
	Ack bool
	// Notify marks the notifications case: notifiers → a listener with
	// a pool (see notify.go), Limits.Inflight notifiers at once.
	Notify bool
	// Concurrent, for calls, has Limits.Inflight callers calling at once;
	// otherwise one caller makes one call at a time. The notify case
	// sets it: its notifiers are Limits.Inflight.
	Concurrent bool
}

// AckPrefetch is the prefetch of the manual-ack publish→consume case.
const AckPrefetch = 100

// Cases returns the workloads, in the order they run.
func Cases() []Case {
	return []Case{
		{Name: "publish", Title: "publish→consume, auto-ack", Unit: "msg/s"},
		{Name: "publish-ack", Title: fmt.Sprintf("publish→consume, manual ack, prefetch %d", AckPrefetch), Unit: "msg/s", Ack: true},
		{Name: "rpc", Title: "RPC, sequential calls", Unit: "call/s", RPC: true},
		{Name: "rpc-inflight", Title: "RPC, concurrent callers (-inflight)", Unit: "call/s", RPC: true, Concurrent: true},
		{Name: "notify", Title: fmt.Sprintf("notifications: -inflight notifiers, confirmed → a listener with a pool, ack each, prefetch %d", notifyPrefetch),
			Unit: "msg/s", Notify: true, Concurrent: true},
	}
}

// CaseNames returns the names of the cases, in order.
func CaseNames() []string {
	var names []string
	for _, c := range Cases() {
		names = append(names, c.Name)
	}
	return names
}

// SelectCases returns the cases that list names, comma-separated, in the
// order given, each once.
func SelectCases(list string) ([]Case, error) {
	all := Cases()
	var cases []Case
	for name := range strings.SplitSeq(list, ",") {
		name = strings.TrimSpace(name)
		i := slices.IndexFunc(all, func(c Case) bool { return c.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("unknown workload %q (want some of %s)", name, strings.Join(CaseNames(), ", "))
		}
		if !slices.ContainsFunc(cases, func(c Case) bool { return c.Name == name }) {
			cases = append(cases, all[i])
		}
	}
	return cases, nil
}

// Limits bound every run of every case; a run ends at whichever bound it
// reaches first.
type Limits struct {
	// Messages is the number of messages or calls of a run.
	Messages int
	// Duration is the measured time of a run.
	Duration time.Duration
	// Size is the bytes of a message body (for calls, of the echoed
	// string).
	Size int
	// Inflight is the number of callers of a Concurrent case.
	Inflight int
}

// callers is how many callers run c.
func (l Limits) callers(c Case) int {
	if c.Concurrent {
		return l.Inflight
	}
	return 1
}
