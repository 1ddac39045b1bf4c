package rpc

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-mq/switchyard/transport"
)

const instrumentationName = "github.com/switchyard-mq/switchyard/rpc"

// instruments trace and time RPCs with the transport's providers; the
// zero value does nothing.
type instruments struct {
	tracer   trace.Tracer
	duration metric.Float64Histogram
}

func newInstruments(tr *transport.Transport, histogram, description string) instruments {
	var in instruments
	if tp := tr.TracerProvider(); tp != nil {
		in.tracer = tp.Tracer(instrumentationName)
	}
	if mp := tr.MeterProvider(); mp != nil {
		// An error leaves a no-op histogram; metrics must not stop RPC.
		in.duration, _ = mp.Meter(instrumentationName).Float64Histogram(histogram,
			metric.WithDescription(description), metric.WithUnit("s"))
	}
	return in
}

// start begins an RPC span; end must be called with the outcome.
func (in instruments) start(ctx context.Context, kind trace.SpanKind, target transport.Target, method string) (context.Context, func(error)) {
	if in.tracer == nil && in.duration == nil {
		return ctx, func(error) {}
	}
	began := time.Now()
	attrs := []attribute.KeyValue{
		attribute.String("rpc.system", "oslo.messaging"),
		attribute.String("rpc.service", target.Topic),
		attribute.String("rpc.method", method),
	}
	var span trace.Span
	if in.tracer != nil {
		ctx, span = in.tracer.Start(ctx, target.Topic+"/"+method, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
	}
	return ctx, func(err error) {
		if span != nil {
			if err != nil {
				span.SetAttributes(attribute.String("error.type", spanErrorType(err)))
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
			}
			span.End()
		}
		if in.duration != nil {
			outcome := "ok"
			if err != nil {
				outcome = "error"
			}
			in.duration.Record(context.Background(), time.Since(began).Seconds(),
				metric.WithAttributes(append(attrs, attribute.String("outcome", outcome))...))
		}
	}
}

// annotate names a request's ids on the RPC span in ctx (a no-op without
// one), by the messaging conventions: messaging.message.id is oslo's
// _unique_id, messaging.message.conversation_id a call's _msg_id, the id
// a reply answers and a timeout names ("no reply to message ID ...").
func annotate(ctx context.Context, uniqueID, msgID string) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(attribute.String("messaging.message.id", uniqueID))
	if msgID != "" {
		span.SetAttributes(attribute.String("messaging.message.conversation_id", msgID))
	}
}

// spanErrorType is an RPC span's error.type: a remote failure's Python-style
// class (module.Class), else the transport's class of the error.
func spanErrorType(err error) string {
	var re *RemoteError
	if errors.As(err, &re) {
		if re.Module == "" {
			return re.Class
		}
		return re.Module + "." + re.Class
	}
	return transport.ErrorType(err)
}
