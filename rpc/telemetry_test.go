package rpc_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
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
	// The request is acked before its server span starts: once that span
	// has ended, every span of the request has.
	waitForSpans(t, exporter, "ack calc", trace.SpanKindClient)
	spans := waitForSpans(t, exporter, "calc/add", trace.SpanKindServer)
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byName[s.Name()+"/"+s.SpanKind().String()] = s
	}
	chain := []string{"calc/add/client", "publish openstack/producer", "receive calc/consumer", "process calc/consumer", "calc/add/server"}
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
	// The request was acked as its handling began, before it was
	// processed: its settle span is the child of its receipt.
	ack := byName["ack calc/client"]
	if ack == nil || ack.Parent().SpanID() != byName["receive calc/consumer"].SpanContext().SpanID() {
		t.Errorf("no settle span \"ack calc\", child of the request's receipt, among %v", names(spans))
	}

	// The ids: the client's span names the call's _msg_id (the
	// conversation) and the request's _unique_id (the message); the
	// server's spans and the settlement name the same.
	clientSpan := attrs(byName["calc/add/client"])
	msgID, uniqueID := clientSpan["messaging.message.conversation_id"], clientSpan["messaging.message.id"]
	if len(msgID) != 32 || len(uniqueID) != 32 || msgID == uniqueID {
		t.Fatalf("client span's ids: conversation %q, message %q; want two oslo ids", msgID, uniqueID)
	}
	for _, tt := range []struct {
		span string
		want map[string]string
	}{
		{"calc/add/server", map[string]string{"messaging.message.conversation_id": msgID, "messaging.message.id": uniqueID,
			"rpc.method": "add", "rpc.service": "calc"}},
		{"publish openstack/producer", map[string]string{"messaging.system": "switchyard.memory", "messaging.operation.name": "publish",
			"messaging.operation.type": "send", "messaging.destination.name": "openstack", "messaging.rabbitmq.destination.routing_key": "calc"}},
		{"receive calc/consumer", map[string]string{"messaging.system": "switchyard.memory", "messaging.operation.name": "receive",
			"messaging.operation.type": "receive", "messaging.destination.name": "openstack",
			"messaging.rabbitmq.destination.routing_key": "calc", "messaging.consumer.group.name": "calc"}},
		{"process calc/consumer", map[string]string{"messaging.operation.name": "process", "messaging.operation.type": "process",
			"messaging.message.id": uniqueID, "messaging.message.conversation_id": msgID, "messaging.consumer.group.name": "calc"}},
		{"ack calc/client", map[string]string{"messaging.operation.name": "ack", "messaging.operation.type": "settle",
			"messaging.message.id": uniqueID, "messaging.message.conversation_id": msgID, "messaging.destination.name": "openstack"}},
	} {
		got := attrs(byName[tt.span])
		for k, v := range tt.want {
			if got[k] != v {
				t.Errorf("span %s: %s = %q, want %q", tt.span, k, got[k], v)
			}
		}
	}
	reply := waitForSpans(t, exporter, "receive reply_", trace.SpanKindConsumer)
	found := false
	for _, s := range reply {
		if strings.HasPrefix(s.Name(), "receive reply_") && s.SpanKind() == trace.SpanKindConsumer {
			found = true
			if s.SpanContext().TraceID() != byName[chain[0]].SpanContext().TraceID() {
				t.Errorf("the reply's receipt is not in the call's trace: %v", names(spans))
			}
		}
	}
	if !found {
		t.Errorf("no receipt of the reply among %v", names(reply))
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

// attrs returns a span's attributes as strings (empty for a nil span).
func attrs(s sdktrace.ReadOnlySpan) map[string]string {
	m := map[string]string{}
	if s == nil {
		return m
	}
	for _, kv := range s.Attributes() {
		m[string(kv.Key)] = kv.Value.String()
	}
	return m
}

// tracedPair opens a traced memory:// transport logging to logger and
// starts a calc server and a client on it.
func tracedPair(t *testing.T, ctx context.Context, exporter *tracetest.InMemoryExporter, logger *slog.Logger) *rpc.Client {
	t.Helper()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tr, err := transport.Open(ctx, "memory://"+t.Name(), transport.WithTracerProvider(tp), transport.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	srv, err := rpc.NewServer(tr, transport.Target{Topic: "calc", Server: "s1"}, []rpc.Endpoint{{Receiver: calc{}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	client, err := rpc.NewClient(tr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

// TestUnansweredCallIsFoundByItsMessageID: the message ID a timed-out
// call's error names is its client span's conversation id, and its
// error.type is timeout.
func TestUnansweredCallIsFoundByItsMessageID(t *testing.T) {
	exporter := tracetest.NewInMemoryExporter()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := tracedPair(t, ctx, exporter, slog.New(slog.DiscardHandler))
	err := client.Prepare(rpc.WithTimeout(200*time.Millisecond)).Call(ctx, transport.Target{Topic: "calc"}, "sleep", map[string]int{"ms": 5000}, nil)
	if !errors.Is(err, transport.ErrTimeout) {
		t.Fatalf("call outliving its timeout: %v, want a timeout", err)
	}
	_, id, ok := strings.Cut(err.Error(), "no reply to message ID ")
	if !ok {
		t.Fatalf("the timeout names no message ID: %v", err)
	}
	id, _, _ = strings.Cut(id, " ")
	spans := waitForSpans(t, exporter, "calc/sleep", trace.SpanKindClient)
	for _, s := range spans {
		if s.Name() == "calc/sleep" && s.SpanKind() == trace.SpanKindClient {
			got := attrs(s)
			if got["messaging.message.conversation_id"] != id {
				t.Errorf("client span's conversation id %q, the error's message ID %q", got["messaging.message.conversation_id"], id)
			}
			if got["error.type"] != "timeout" {
				t.Errorf("client span's error.type %q, want timeout", got["error.type"])
			}
		}
	}
}

// traceRecorder is a slog.Handler that keeps each record with the trace
// and span ids its context carries, as a trace-aware handler reads them.
type traceRecorder struct {
	mu      sync.Mutex
	records []tracedRecord
}

type tracedRecord struct {
	level   slog.Level
	msg     string
	attrs   map[string]string
	traceID trace.TraceID
	spanID  trace.SpanID
}

func (h *traceRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *traceRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *traceRecorder) WithGroup(string) slog.Handler            { return h }
func (h *traceRecorder) Handle(ctx context.Context, r slog.Record) error {
	sc := trace.SpanContextFromContext(ctx)
	rec := tracedRecord{level: r.Level, msg: r.Message, attrs: map[string]string{}, traceID: sc.TraceID(), spanID: sc.SpanID()}
	r.Attrs(func(a slog.Attr) bool { rec.attrs[a.Key] = a.Value.String(); return true })
	h.mu.Lock()
	h.records = append(h.records, rec)
	h.mu.Unlock()
	return nil
}

// find returns the first record with msg and method.
func (h *traceRecorder) find(msg, method string) (tracedRecord, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.records {
		if r.msg == msg && r.attrs["method"] == method {
			return r, true
		}
	}
	return tracedRecord{}, false
}

// TestServerLogsCarryTheTrace: the server logs each request at debug
// level and a failed call at error level, with the request's ids, and a
// trace-aware handler finds the trace and the server span in each
// record's context.
func TestServerLogsCarryTheTrace(t *testing.T) {
	exporter := tracetest.NewInMemoryExporter()
	recorder := &traceRecorder{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := tracedPair(t, ctx, exporter, slog.New(recorder))
	target := transport.Target{Topic: "calc"}
	if err := client.Call(ctx, target, "add", addArgs{1, 2}, nil); err != nil {
		t.Fatal(err)
	}
	var remote *rpc.RemoteError
	if err := client.Call(ctx, target, "fail", struct{}{}, nil); !errors.As(err, &remote) {
		t.Fatalf("fail: %v, want a remote error", err)
	}
	spans := waitForSpans(t, exporter, "calc/fail", trace.SpanKindServer)
	server := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		if s.SpanKind() == trace.SpanKindServer {
			server[attrs(s)["rpc.method"]] = s
		}
	}
	tests := []struct {
		msg, method string
		level       slog.Level
		want        map[string]string
	}{
		{"request", "add", slog.LevelDebug, map[string]string{"kind": "call", "reply_queue": "reply_"}},
		{"request", "fail", slog.LevelDebug, map[string]string{"kind": "call"}},
		{"call failed", "fail", slog.LevelError, map[string]string{"class": "ValueError", "module": "builtins", "err": "bad"}},
	}
	for _, tt := range tests {
		t.Run(tt.msg+" "+tt.method, func(t *testing.T) {
			rec, ok := recorder.find(tt.msg, tt.method)
			if !ok {
				t.Fatalf("no %q record for %s", tt.msg, tt.method)
			}
			if rec.level != tt.level {
				t.Errorf("level %v, want %v", rec.level, tt.level)
			}
			span := server[tt.method]
			if span == nil {
				t.Fatalf("no server span for %s among %v", tt.method, names(spans))
			}
			if rec.traceID != span.SpanContext().TraceID() || rec.spanID != span.SpanContext().SpanID() {
				t.Errorf("record's trace %s span %s, want the server span's %s %s",
					rec.traceID, rec.spanID, span.SpanContext().TraceID(), span.SpanContext().SpanID())
			}
			ids := attrs(span)
			if rec.attrs["msg_id"] != ids["messaging.message.conversation_id"] || rec.attrs["unique_id"] != ids["messaging.message.id"] {
				t.Errorf("record's ids msg_id=%q unique_id=%q, the span's %q %q", rec.attrs["msg_id"], rec.attrs["unique_id"],
					ids["messaging.message.conversation_id"], ids["messaging.message.id"])
			}
			for k, v := range tt.want {
				if !strings.HasPrefix(rec.attrs[k], v) {
					t.Errorf("%s = %q, want %q", k, rec.attrs[k], v)
				}
			}
		})
	}
}
