package conformance

import (
	"github.com/switchyard-mq/switchyard/transport"
)

// crossTransportCases check that transports opened from the same URL talk
// to the same broker: what one declares and publishes, another sees.
func crossTransportCases() []testCase {
	return []testCase{
		{"same-url-same-queues", sameURLSameQueues},
		{"same-url-same-exchanges", sameURLSameExchanges},
	}
}

// sameURLSameQueues: a queue declared and published to on one transport
// is consumed on another.
func sameURLSameQueues(e *env) {
	one, other := e.open(), e.open()
	q := e.simpleQueue(one, "shared")
	sent := bodies("m", 10)
	e.publishBodies(one, "", q, sent...)
	c := e.consume(other, q, transport.ConsumeOptions{})
	e.wantSameBodies("queue "+q+" read on the other transport", e.receiveUpTo(c, len(sent)), sent)
	e.expectNone(c)
}

// sameURLSameExchanges: an exchange declared and bound on one transport
// routes what another publishes.
func sameURLSameExchanges(e *env) {
	require(e.t, e.caps, transport.CapDirect, transport.CapQueueBinding)
	one, other := e.open(), e.open()
	x := e.declareExchange(one, "shared", transport.Direct)
	q := e.simpleQueue(one, "shared")
	e.bind(one, x, q, "key")
	e.publishBodies(other, x, "key", "routed")
	c := e.consume(one, q, transport.ConsumeOptions{})
	if got := e.receiveBodies(c, 1, false); got[0] != "routed" {
		e.t.Errorf("got %q, want %q", got[0], "routed")
	}
}
