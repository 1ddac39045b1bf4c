package conformance

import (
	"context"
	"errors"
	"maps"
	"slices"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-mq/switchyard/transport"
)

// telemetryCases hold the spans of publishing, receiving, processing and
// settling to OpenTelemetry's messaging conventions (see the README's
// Observability section).
func telemetryCases() []testCase {
	return []testCase{
		{"spans-and-settlement", spansAndSettlement},
	}
}

// spansAndSettlement: with tracing on, a message's publish, receive,
// process and settle spans are one chain of one trace, each with the
// conventions' attributes; the settle span names the outcome (ack, nack
// for a requeue, reject) and the message's ids, and a settlement that
// fails says why (error.type).
func spansAndSettlement(e *env) {
	tests := []struct {
		name    string
		process bool // settle within a process span
		settle  func(*transport.Delivery) error
		closed  bool // the consumer closes before the settlement
		op      string
		errType string
	}{
		{"ack", true, (*transport.Delivery).Ack, false, "ack", ""},
		{"nack-requeue", true, func(d *transport.Delivery) error { return d.Nack(true) }, false, "nack", ""},
		{"reject", true, (*transport.Delivery).Reject, false, "reject", ""},
		{"nack-without-requeue", false, func(d *transport.Delivery) error { return d.Nack(false) }, false, "reject", ""},
		{"ack-without-process", false, (*transport.Delivery).Ack, false, "ack", ""},
		{"ack-after-consumer-closed", false, (*transport.Delivery).Ack, true, "ack", "closed"},
	}
	for _, tt := range tests {
		e.run(tt.name, func(e *env) {
			exporter := tracetest.NewInMemoryExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
			defer func() { _ = tp.Shutdown(context.Background()) }()
			tr, err := transport.Open(e.ctx, e.url, transport.WithTracerProvider(tp))
			if err != nil {
				e.t.Fatalf("open %s traced: %v", e.url, err)
			}
			defer func() { _ = tr.Close() }()
			// Through a direct exchange where there are exchanges, else
			// the default one (to the queue its key names).
			q := e.simpleQueue(tr, "telemetry")
			exchange, key, publishName := "", q, "publish "+q
			if e.caps.Has(transport.CapDirect) && e.caps.Has(transport.CapQueueBinding) {
				exchange, key = e.declareExchange(tr, "telemetry", transport.Direct), "key."+tt.name
				e.bind(tr, exchange, q, key)
				publishName = "publish " + exchange
			}
			e.publish(tr, exchange, key, transport.Message{Body: []byte(tt.name), MessageID: "m-" + tt.name, CorrelationID: "c-" + tt.name})
			c := e.consume(tr, q, transport.ConsumeOptions{})
			d := e.receive(c)
			end := func(error) {}
			if tt.process {
				_, end = d.StartProcess(e.ctx)
			}
			if tt.closed {
				_ = c.Close()
			}
			err = tt.settle(d)
			end(err)
			if tt.closed && !errors.Is(err, transport.ErrClosed) {
				e.t.Fatalf("settling after the consumer closed: %v, want ErrClosed", err)
			}
			if !tt.closed && err != nil {
				e.t.Fatalf("%s: %v", tt.op, err)
			}

			spans := map[string]sdktrace.ReadOnlySpan{}
			for _, s := range exporter.GetSpans().Snapshots() {
				spans[s.Name()] = s
			}
			publish, receive := spans[publishName], spans["receive "+q]
			process, settle := spans["process "+q], spans[tt.op+" "+q]
			if publish == nil || receive == nil || settle == nil || (tt.process && process == nil) {
				e.t.Fatalf("spans %v: want %s, receive, process (%v) and %s %s", slices.Sorted(maps.Keys(spans)), publishName, tt.process, tt.op, q)
			}
			parentOfSettle := receive
			chain := []sdktrace.ReadOnlySpan{publish, receive}
			if tt.process {
				parentOfSettle = process
				chain = append(chain, process)
			}
			for i, s := range chain {
				if s.SpanContext().TraceID() != publish.SpanContext().TraceID() {
					e.t.Errorf("span %s is not in the publish's trace", s.Name())
				}
				if i > 0 && s.Parent().SpanID() != chain[i-1].SpanContext().SpanID() {
					e.t.Errorf("span %s's parent is not %s", s.Name(), chain[i-1].Name())
				}
			}
			if settle.Parent().SpanID() != parentOfSettle.SpanContext().SpanID() {
				e.t.Errorf("the settle span's parent is not %s", parentOfSettle.Name())
			}

			system := transport.MessagingSystem(tr.URL().Scheme)
			got := spanAttrs(publish)["messaging.system"]
			if got != system && !(system == "amqp1" && got == "rabbitmq") {
				e.t.Errorf("messaging.system %q, want %q", got, system)
			}
			common := map[string]string{
				"messaging.system": got, "messaging.destination.name": exchange,
				"messaging.rabbitmq.destination.routing_key": key,
				"messaging.message.id":                       "m-" + tt.name, "messaging.message.conversation_id": "c-" + tt.name,
			}
			if u := tr.URL(); len(u.Hosts) == 1 && u.Scheme != "memory" {
				common["server.address"] = u.Hosts[0].Name
			}
			consumer := map[string]string{"messaging.consumer.group.name": q}
			for _, row := range []struct {
				span       sdktrace.ReadOnlySpan
				kind       trace.SpanKind
				op, opType string
				extra      map[string]string
			}{
				{publish, trace.SpanKindProducer, "publish", "send", nil},
				{receive, trace.SpanKindConsumer, "receive", "receive", consumer},
				{process, trace.SpanKindConsumer, "process", "process", consumer},
				{settle, trace.SpanKindClient, tt.op, "settle", consumer},
			} {
				if row.span == nil {
					continue
				}
				if row.span.SpanKind() != row.kind {
					e.t.Errorf("span %s is of kind %s, want %s", row.span.Name(), row.span.SpanKind(), row.kind)
				}
				attrs := spanAttrs(row.span)
				want := map[string]string{"messaging.operation.name": row.op, "messaging.operation.type": row.opType}
				for _, m := range []map[string]string{common, row.extra} {
					for k, v := range m {
						want[k] = v
					}
				}
				for k, v := range want {
					if attrs[k] != v {
						e.t.Errorf("span %s: %s = %q, want %q", row.span.Name(), k, attrs[k], v)
					}
				}
			}
			if got := spanAttrs(settle)["error.type"]; got != tt.errType {
				e.t.Errorf("settle span's error.type %q, want %q", got, tt.errType)
			}
		})
	}
}

// spanAttrs returns a span's attributes as strings.
func spanAttrs(s sdktrace.ReadOnlySpan) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Attributes() {
		m[string(kv.Key)] = kv.Value.String()
	}
	return m
}
