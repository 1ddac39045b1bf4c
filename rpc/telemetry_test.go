package rpc_test

import (
	"context"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

// TestOneTraceAcrossACall: with tracing on, a call's client span, its
// request's publish and receipt, the server's handling and the reply's
// publish and receipt are one trace, each span the child of the one
// before; metrics count the messages and time the call.
func TestOneTraceAcrossACall(t *testing.T) {
	exporter := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	defer tp.Shutdown(context.Background())
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := transport.Open(ctx, "memory://"+t.Name(), transport.WithTracerProvider(tp), transport.WithMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	srv, err := rpc.NewServer(tr, transport.Target{Topic: "calc", Server: "s1"}, []rpc.Endpoint{{Receiver: calc{}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(ctx)
	client, err := rpc.NewClient(tr)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	var sum int
	if err := client.Call(ctx, transport.Target{Topic: "calc"}, "add", addArgs{1, 2}, &sum); err != nil || sum != 3 {
		t.Fatalf("call: %d, %v", sum, err)
	}
	spans := waitForSpans(t, exporter, "calc/add", trace.SpanKindServer)
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byName[s.Name()+"/"+s.SpanKind().String()] = s
	}
	chain := []string{"calc/add/client", "publish openstack/producer", "receive calc/consumer", "calc/add/server"}
	var parent trace.SpanContext
	for i, name := range chain {
		s, ok := byName[name]
		if !ok {
			t.Fatalf("no span %s among %v", name, names(spans))
		}
		if s.SpanContext().TraceID() != byName[chain[0]].SpanContext().TraceID() {
			t.Errorf("span %s is in another trace", name)
		}
		if i > 0 && s.Parent().SpanID() != parent.SpanID() {
			t.Errorf("span %s's parent is %s, want %s (%s)", name, s.Parent().SpanID(), parent.SpanID(), chain[i-1])
		}
		parent = s.SpanContext()
	}
	reply := waitForSpans(t, exporter, "receive reply_", trace.SpanKindConsumer)
	if len(reply) == 0 || reply[0].SpanContext().TraceID() != byName[chain[0]].SpanContext().TraceID() {
		t.Errorf("the reply's receipt is not in the call's trace: %v", names(spans))
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			got[m.Name] = true
		}
	}
	for _, want := range []string{"switchyard.messages.published", "switchyard.messages.delivered", "switchyard.messages.acked", "switchyard.rpc.client.duration", "switchyard.rpc.server.duration"} {
		if !got[want] {
			t.Errorf("metric %s not recorded; got %v", want, got)
		}
	}

}

// waitForSpans polls the exporter until a span whose name starts with
// prefix and of kind has ended, and returns every span so far.
func waitForSpans(t *testing.T, exp *tracetest.InMemoryExporter, prefix string, kind trace.SpanKind) []sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.After(5 * time.Second)
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for {
		stubs := exp.GetSpans()
		var spans []sdktrace.ReadOnlySpan
		found := false
		for _, s := range stubs.Snapshots() {
			spans = append(spans, s)
			if len(s.Name()) >= len(prefix) && s.Name()[:len(prefix)] == prefix && s.SpanKind() == kind {
				found = true
			}
		}
		if found {
			return spans
		}
		select {
		case <-deadline:
			t.Fatalf("no %s span named %s*: %v", kind, prefix, names(spans))
		case <-poll.C:
		}
	}
}

func names(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name()+"/"+s.SpanKind().String())
	}
	return out
}
