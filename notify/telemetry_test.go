package notify_test

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-mq/switchyard/notify"
	"github.com/switchyard-mq/switchyard/transport"
)

// TestNotificationProcessAndSettleSpans: a traced listener runs its
// handler in the delivery's process span, and acks in an "ack" span, its
// child, naming the notification's message_id.
func TestNotificationProcessAndSettleSpans(t *testing.T) {
	exporter := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := transport.Open(ctx, "memory://"+t.Name(), transport.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	type handling struct {
		span      trace.SpanContext
		messageID string
	}
	handled := make(chan handling, 1)
	l, err := notify.NewListener(tr, []transport.Target{{Topic: "notifications"}}, []notify.Endpoint{{
		Handle: func(ctx context.Context, n *notify.Notification) error {
			handled <- handling{trace.SpanContextFromContext(ctx), n.MessageID}
			return nil
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer l.Stop(ctx)
	n, err := notify.NewNotifier(tr, "compute.host1")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(ctx, notify.Info, "instance.create", map[string]int{"id": 1}); err != nil {
		t.Fatal(err)
	}
	var inHandler handling
	select {
	case inHandler = <-handled:
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}

	const queue = "notifications.info"
	var process, ack sdktrace.ReadOnlySpan
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for ack == nil {
		for _, s := range exporter.GetSpans().Snapshots() {
			switch s.Name() {
			case "process " + queue:
				process = s
			case "ack " + queue:
				ack = s
			}
		}
		select {
		case <-poll.C:
		case <-ctx.Done():
			t.Fatalf("no ack span: %v", ctx.Err())
		}
	}
	if process == nil || process.SpanContext().SpanID() != inHandler.span.SpanID() {
		t.Fatalf("the handler's context is not in the process span %v", process)
	}
	if ack.Parent().SpanID() != process.SpanContext().SpanID() {
		t.Errorf("the ack span's parent is not the process span")
	}
	attrs := map[string]string{}
	for _, kv := range ack.Attributes() {
		attrs[string(kv.Key)] = kv.Value.String()
	}
	if attrs["messaging.message.id"] != inHandler.messageID || inHandler.messageID == "" || attrs["messaging.operation.type"] != "settle" {
		t.Errorf("ack span attributes %v: want the notification's message_id %q and operation type settle", attrs, inHandler.messageID)
	}
}
