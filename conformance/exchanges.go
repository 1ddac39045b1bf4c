package conformance

import (
	"github.com/switchyard-mq/switchyard/transport"
)

// pubsubCases are tutorial 3: fanout exchanges, and what happens to a
// message that reaches no queue.
func pubsubCases() []testCase {
	return []testCase{
		{"fanout", fanout},
		{"mandatory-unroutable", mandatoryUnroutable},
		{"unroutable-dropped", unroutableDropped},
	}
}

// fanout: every bound queue gets every message exactly once (even a queue
// bound twice), an unbound queue gets none.
func fanout(e *env) {
	require(e.t, e.caps, transport.CapFanout, transport.CapQueueBinding)
	tr := e.open()
	x := e.declareExchange(tr, "logs", transport.Fanout)
	bound1, bound2, unbound := e.simpleQueue(tr, "bound"), e.simpleQueue(tr, "bound"), e.simpleQueue(tr, "unbound")
	e.bind(tr, x, bound1, "")
	e.bind(tr, x, bound2, "a", "b") // two bindings, still one copy
	sent := bodies("log", 10)
	e.publishBodies(tr, x, "any.key", sent...)
	for _, q := range []string{bound1, bound2} {
		c := e.consume(tr, q, transport.ConsumeOptions{})
		e.wantSameBodies("queue "+q, e.receiveUpTo(c, len(sent)), sent)
		e.expectNone(c)
	}
	e.expectNone(e.consume(tr, unbound, transport.ConsumeOptions{}))
}

// unroutableTargets are the ways a message reaches no queue: each row
// declares what it needs and returns the exchange and key to publish to.
func unroutableTargets() []struct {
	name  string
	needs []transport.Capability
	setup func(e *env, tr *transport.Transport) (exchange, key string)
} {
	return []struct {
		name  string
		needs []transport.Capability
		setup func(e *env, tr *transport.Transport) (exchange, key string)
	}{
		{"default exchange, no such queue", nil, func(e *env, tr *transport.Transport) (string, string) {
			return "", uniqueName("missing")
		}},
		{"fanout exchange without bindings", []transport.Capability{transport.CapFanout}, func(e *env, tr *transport.Transport) (string, string) {
			return e.declareExchange(tr, "empty", transport.Fanout), "key"
		}},
		{"direct exchange, no matching key", []transport.Capability{transport.CapDirect, transport.CapQueueBinding}, func(e *env, tr *transport.Transport) (string, string) {
			x := e.declareExchange(tr, "direct", transport.Direct)
			e.bind(tr, x, e.simpleQueue(tr, "other"), "other")
			return x, "key"
		}},
	}
}

// mandatoryUnroutable: a mandatory message that reaches no queue fails
// Publish with ErrUnroutable.
func mandatoryUnroutable(e *env) {
	require(e.t, e.caps, transport.CapMandatory)
	for _, row := range unroutableTargets() {
		e.run(row.name, func(e *env) {
			require(e.t, e.caps, row.needs...)
			tr := e.open()
			x, key := row.setup(e, tr)
			err := tr.Publish(e.ctx, x, key, transport.Message{Body: []byte("nobody listens"), Mandatory: true})
			e.wantErr("mandatory publish to "+row.name, err, transport.ErrUnroutable)
		})
	}
}

// unroutableDropped: without the mandatory flag, a message that reaches no
// queue is dropped silently: no error, and it is not kept for a queue bound
// later.
func unroutableDropped(e *env) {
	for _, row := range unroutableTargets() {
		e.run(row.name, func(e *env) {
			require(e.t, e.caps, row.needs...)
			tr := e.open()
			x, key := row.setup(e, tr)
			if err := tr.Publish(e.ctx, x, key, transport.Message{Body: []byte("nobody listens")}); err != nil {
				e.t.Fatalf("non-mandatory publish of an unroutable message: %v, want no error", err)
			}
			if x == "" {
				return // the default exchange has no bindings to add
			}
			if !e.caps.Has(transport.CapQueueBinding) {
				return
			}
			late := e.simpleQueue(tr, "late")
			e.bind(tr, x, late, key)
			e.expectNone(e.consume(tr, late, transport.ConsumeOptions{}))
		})
	}
}

// routeCase is a routing table test: queues (by label) bound with keys,
// messages published with keys (the body is the key), and which keys each
// queue must receive (each exactly once) and no others.
type routeCase struct {
	name     string
	bindings map[string][]string
	publish  []string
	want     map[string][]string
}

// runRouteCase declares an exchange of kind and the queues of rc, publishes
// and checks what each queue got.
func runRouteCase(e *env, kind transport.ExchangeKind, rc routeCase) {
	tr := e.open()
	x := e.declareExchange(tr, string(kind), kind)
	queues := map[string]string{}
	for label, keys := range rc.bindings {
		queues[label] = e.simpleQueue(tr, label)
		e.bind(tr, x, queues[label], keys...)
	}
	for _, key := range rc.publish {
		e.publish(tr, x, key, transport.Message{Body: []byte(key)})
	}
	for label, q := range queues {
		c := e.consume(tr, q, transport.ConsumeOptions{})
		want := rc.want[label]
		got := e.receiveUpTo(c, len(want))
		e.wantSameBodies("queue "+label+" bound with "+quoteAll(rc.bindings[label]), got, want)
		e.expectNone(c)
	}
}

// routingCases are tutorial 4: direct exchanges.
func routingCases() []testCase {
	rows := []routeCase{
		{
			name:     "one-queue-several-keys",
			bindings: map[string][]string{"errors-and-warnings": {"error", "warning"}},
			publish:  []string{"error", "warning", "info"},
			want:     map[string][]string{"errors-and-warnings": {"error", "warning"}},
		},
		{
			name:     "one-key-several-queues",
			bindings: map[string][]string{"disk": {"error"}, "console": {"error", "info"}},
			publish:  []string{"error", "info"},
			want:     map[string][]string{"disk": {"error"}, "console": {"error", "info"}},
		},
		{
			name:     "no-match-goes-nowhere",
			bindings: map[string][]string{"q": {"orange"}},
			publish:  []string{"black", "orang", "orange.x", "Orange", ""},
			want:     map[string][]string{},
		},
	}
	return append(routeCases(transport.CapDirect, transport.Direct, rows),
		testCase{"unbind-stops-routing", unbindStopsRouting},
		testCase{"deleted-exchange-loses-bindings", deletedExchangeLosesBindings},
		testCase{"deleted-queue-loses-bindings", deletedQueueLosesBindings},
	)
}

// unbindStopsRouting: after Unbind, the key no longer reaches the queue;
// the queue's other bindings still do.
func unbindStopsRouting(e *env) {
	require(e.t, e.caps, transport.CapDirect, transport.CapQueueBinding)
	tr := e.open()
	x := e.declareExchange(tr, "direct", transport.Direct)
	q := e.simpleQueue(tr, "q")
	e.bind(tr, x, q, "a", "b")
	if err := tr.Unbind(e.ctx, transport.Binding{Exchange: x, Queue: q, Key: "a"}); err != nil {
		e.t.Fatal(err)
	}
	e.publishBodies(tr, x, "a", "a")
	e.publishBodies(tr, x, "b", "b")
	c := e.consume(tr, q, transport.ConsumeOptions{})
	e.wantSameBodies("queue bound with b, unbound from a", e.receiveUpTo(c, 1), []string{"b"})
	e.expectNone(c)
}

// deletedExchangeLosesBindings: an exchange deleted and declared again
// starts without bindings.
func deletedExchangeLosesBindings(e *env) {
	require(e.t, e.caps, transport.CapDirect, transport.CapQueueBinding)
	tr := e.open()
	x := e.declareExchange(tr, "direct", transport.Direct)
	q := e.simpleQueue(tr, "q")
	e.bind(tr, x, q, "key")
	if err := tr.DeleteExchange(e.ctx, x); err != nil {
		e.t.Fatal(err)
	}
	err := tr.Publish(e.ctx, x, "key", transport.Message{Body: []byte("to a deleted exchange")})
	e.wantErr("publish to a deleted exchange", err, transport.ErrNotFound)
	if err := tr.DeclareExchange(e.ctx, transport.Exchange{Name: x, Kind: transport.Direct}); err != nil {
		e.t.Fatal(err)
	}
	e.publishBodies(tr, x, "key", "after redeclare")
	e.expectNone(e.consume(tr, q, transport.ConsumeOptions{}))
}

// deletedQueueLosesBindings: a queue deleted and declared again starts
// without bindings.
func deletedQueueLosesBindings(e *env) {
	require(e.t, e.caps, transport.CapDirect, transport.CapQueueBinding)
	tr := e.open()
	x := e.declareExchange(tr, "direct", transport.Direct)
	q := e.simpleQueue(tr, "q")
	e.bind(tr, x, q, "key")
	if _, err := tr.DeleteQueue(e.ctx, q); err != nil {
		e.t.Fatal(err)
	}
	e.declareQueue(tr, transport.Queue{Name: q})
	e.publishBodies(tr, x, "key", "after redeclare")
	e.expectNone(e.consume(tr, q, transport.ConsumeOptions{}))
}

// topicCases are tutorial 5: topic exchanges, '*' one word, '#' any.
func topicCases() []testCase {
	rows := []routeCase{
		{
			name: "tutorial",
			bindings: map[string][]string{
				"all": {"#"}, "kern": {"kern.*"}, "critical": {"*.critical"}, "kern-or-critical": {"kern.*", "*.critical"},
			},
			publish: []string{"kern.critical", "kern.info", "cron.critical", "kern.critical.test", "cron.info"},
			want: map[string][]string{
				"all":              {"kern.critical", "kern.info", "cron.critical", "kern.critical.test", "cron.info"},
				"kern":             {"kern.critical", "kern.info"},
				"critical":         {"kern.critical", "cron.critical"},
				"kern-or-critical": {"kern.critical", "kern.info", "cron.critical"},
			},
		},
		{
			name:     "hash-matches-empty-key",
			bindings: map[string][]string{"hash": {"#"}, "star": {"*"}},
			publish:  []string{"", "a"},
			want:     map[string][]string{"hash": {"", "a"}, "star": {"a"}},
		},
		{
			name:     "hash-in-the-middle",
			bindings: map[string][]string{"a-hash-b": {"a.#.b"}},
			publish:  []string{"a.b", "a.x.b", "a.x.y.b", "a.b.c", "a", "b", "x.a.b"},
			want:     map[string][]string{"a-hash-b": {"a.b", "a.x.b", "a.x.y.b"}},
		},
		{
			name:     "hash-hash",
			bindings: map[string][]string{"hash-hash": {"#.#"}},
			publish:  []string{"", "a", "a.b.c"},
			want:     map[string][]string{"hash-hash": {"", "a", "a.b.c"}},
		},
		{
			name:     "star-is-one-word",
			bindings: map[string][]string{"star-star": {"*.*"}, "literal": {"a.b"}},
			publish:  []string{"a", "a.b", "a.b.c", "ab"},
			want:     map[string][]string{"star-star": {"a.b"}, "literal": {"a.b"}},
		},
	}
	return routeCases(transport.CapTopic, transport.Topic, rows)
}

func routeCases(kindCap transport.Capability, kind transport.ExchangeKind, rows []routeCase) []testCase {
	cases := make([]testCase, 0, len(rows))
	for _, rc := range rows {
		cases = append(cases, testCase{rc.name, func(e *env) {
			require(e.t, e.caps, kindCap, transport.CapQueueBinding)
			runRouteCase(e, kind, rc)
		}})
	}
	return cases
}
