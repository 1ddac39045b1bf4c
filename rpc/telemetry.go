package rpc

import (
	"context"
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
