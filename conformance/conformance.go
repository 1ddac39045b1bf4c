// Package conformance is the suite that holds every Switchyard driver to
// the portable messaging model. It is an ordinary package, not a _test
// one, so that each driver's tests can import it and run it against their
// backend:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, conformance.Harness{
//			// Every transport one case opens uses the URL returned for
//			// it, so they share one broker; a fresh broker per case
//			// (memory://NAME) or one shared broker both work, since
//			// cases use random-suffixed names.
//			URL: func(t testing.TB) string { return "rabbit://guest:guest@127.0.0.1:5672/" },
//			// Goroutines the driver keeps for the whole process.
//			IgnoreGoroutines: []string{"example.com/driver.(*pool).reaper"},
//		})
//	}
//
// Run runs one subtest per case, grouped by area: queue (tutorials 1 and
// 2), pubsub, routing, topic (tutorials 3 to 5), errors, features (queue
// properties), bodies, poison (dead-lettering), worker (the handler loop of
// package transport/worker and its middleware), cross-transport, rpc,
// notify and telemetry (spans by the messaging conventions); for
// example TestConformance/topic/tutorial. Each case opens its own
// transports with transport.Open, uses unique queue and exchange names and
// deletes what it declared, is bounded in time (it fails with a message
// rather than hang), and ends by checking that no goroutine started during
// the case is still running (goleak), after closing its transports. Cases must therefore not run in parallel
// with other tests of the same binary.
//
// A case needing a capability (transport.Capability) that the
// backend lacks is skipped with "not supported: ... lacks capability ...",
// so the test output lists every unsupported behaviour: a lacking
// capability is declared, never silently passed. The capabilities in force
// are the harness's, or else the transport's own Capabilities().
//
// Where a case asserts that a message does NOT arrive, it listens for a
// short, fixed time (a quarter of a second): absence has no signal to wait
// for. Everything else waits on a delivery or polls with a deadline.
package conformance

import (
	"context"
	"testing"

	"github.com/switchyard-mq/switchyard/transport"
)

// Harness tells Run how to reach the backend under test.
type Harness struct {
	// URL returns the transport URL for one test case; every transport the
	// case opens uses it, so they share one broker.
	URL func(t testing.TB) string
	// Capabilities limits the cases run; zero means the transport's own
	// Capabilities().
	Capabilities transport.Capabilities
	// IgnoreGoroutines names top functions of process-wide goroutines the
	// leak check ignores.
	IgnoreGoroutines []string
}

// area is a group of cases, run as one subtest.
type area struct {
	name  string
	cases []testCase
}

// testCase is one behaviour of the model. run gets a fresh env; it checks
// its capabilities first with require.
type testCase struct {
	name string
	run  func(e *env)
}

// areas lists the suite, in the order it runs.
func areas() []area {
	return []area{
		{"queue", queueCases()},
		{"pubsub", pubsubCases()},
		{"routing", routingCases()},
		{"topic", topicCases()},
		{"errors", errorCases()},
		{"features", featureCases()},
		{"bodies", bodyCases()},
		{"poison", poisonCases()},
		{"worker", workerCases()},
		{"cross-transport", crossTransportCases()},
		{"rpc", rpcCases()},
		{"notify", notifyCases()},
		{"telemetry", telemetryCases()},
	}
}

// Run runs the conformance suite against the backend h describes, as
// subtests of t.
func Run(t *testing.T, h Harness) {
	if h.URL == nil {
		t.Fatal("conformance: Harness.URL is nil")
	}
	caps := h.Capabilities
	if caps == 0 {
		caps = probeCapabilities(t, h)
	}
	t.Logf("capabilities in force: %s", caps)
	for _, a := range areas() {
		t.Run(a.name, func(t *testing.T) {
			for _, c := range a.cases {
				t.Run(c.name, func(t *testing.T) {
					c.run(newEnv(t, h, caps))
				})
			}
		})
	}
}

// probeCapabilities opens a transport only to read its capabilities.
func probeCapabilities(t *testing.T, h Harness) transport.Capabilities {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), caseTimeout)
	defer cancel()
	url := h.URL(t)
	tr, err := transport.Open(ctx, url)
	if err != nil {
		t.Fatalf("conformance: open %s to read its capabilities: %v", url, err)
	}
	defer func() { _ = tr.Close() }()
	return tr.Capabilities()
}
