package transport

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// instrumentationName names Switchyard's tracers and meters.
const instrumentationName = "github.com/switchyard-mq/switchyard"

// WithTracerProvider traces publishing and consuming with tp: a producer
// span per publish, whose context travels in the message's headers (W3C
// trace context unless WithPropagator says otherwise), and a consumer span
// per delivery, its child. Pass otel.GetTracerProvider() for the global
// one. Without it nothing is traced and no header is added.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *openOptions) { o.tracerProvider = tp }
}

// WithMeterProvider counts messages with mp: published, delivered,
// redelivered, acked, requeued and rejected, by backend and queue or
// exchange. Pass otel.GetMeterProvider() for the global one.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(o *openOptions) { o.meterProvider = mp }
}

// WithPropagator sets how trace context is written into and read from
// message headers (default: W3C trace context and baggage).
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(o *openOptions) { o.propagator = p }
}

// telemetry is a transport's tracing and metrics; nil parts are off, so
// the hot paths pay one nil check when telemetry is not configured.
type telemetry struct {
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	tracer         trace.Tracer
	propagator     propagation.TextMapPropagator
	system         attribute.KeyValue

	published, delivered, redelivered, acked, requeued, rejected metric.Int64Counter
	attrs                                                        sync.Map // name -> metric.MeasurementOption
}

func newTelemetry(o openOptions, scheme string) (*telemetry, error) {
	if o.tracerProvider == nil && o.meterProvider == nil {
		return nil, nil
	}
	t := &telemetry{tracerProvider: o.tracerProvider, meterProvider: o.meterProvider, propagator: o.propagator,
		system: attribute.String("messaging.system", scheme)}
	if t.propagator == nil {
		t.propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	if o.tracerProvider != nil {
		t.tracer = o.tracerProvider.Tracer(instrumentationName)
	}
	if o.meterProvider != nil {
		meter := o.meterProvider.Meter(instrumentationName)
		for _, c := range []struct {
			dst        *metric.Int64Counter
			name, desc string
		}{
			{&t.published, "switchyard.messages.published", "Messages the backend took from Publish."},
			{&t.delivered, "switchyard.messages.delivered", "Deliveries handed to consumers."},
			{&t.redelivered, "switchyard.messages.redelivered", "Deliveries marked redelivered."},
			{&t.acked, "switchyard.messages.acked", "Deliveries acknowledged."},
			{&t.requeued, "switchyard.messages.requeued", "Deliveries returned to their queue by Nack(true)."},
			{&t.rejected, "switchyard.messages.rejected", "Deliveries rejected (dead-lettered or dropped)."},
		} {
			var err error
			if *c.dst, err = meter.Int64Counter(c.name, metric.WithDescription(c.desc), metric.WithUnit("{message}")); err != nil {
				return nil, err
			}
		}
	}
	return t, nil
}

// destination returns the measurement attributes of a queue or exchange,
// built once per name.
func (t *telemetry) destination(name string) metric.MeasurementOption {
	if opt, ok := t.attrs.Load(name); ok {
		return opt.(metric.MeasurementOption)
	}
	opt := metric.WithAttributeSet(attribute.NewSet(t.system, attribute.String("messaging.destination.name", name)))
	t.attrs.Store(name, opt)
	return opt
}

// startPublish starts the producer span of a publish and writes its
// context into the message's headers (a copy: the caller's map is left
// alone).
func (t *telemetry) startPublish(ctx context.Context, exchange, key string, msg *Message) (context.Context, trace.Span) {
	if t.tracer == nil {
		return ctx, nil
	}
	name := "publish " + exchange
	if exchange == "" {
		name = "publish " + key
	}
	ctx, span := t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(
		t.system, attribute.String("messaging.destination.name", exchange), attribute.String("messaging.rabbitmq.destination.routing_key", key)))
	headers := make(Headers, len(msg.Headers)+2)
	for k, v := range msg.Headers {
		headers[k] = v
	}
	t.propagator.Inject(ctx, headerCarrier(headers))
	msg.Headers = headers
	return ctx, span
}

func (t *telemetry) endPublish(span trace.Span, exchange string, err error) {
	if span != nil {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(2, err.Error()) // codes.Error
		}
		span.End()
	}
	if err == nil && t.published != nil {
		t.published.Add(context.Background(), 1, t.destination(exchange))
	}
}

// received records a delivery: its counters, and a consumer span whose
// parent is the context its headers carry; the returned context holds the
// span, for the handler's own spans.
func (t *telemetry) received(queue string, d *Delivery) context.Context {
	if t.delivered != nil {
		opt := t.destination(queue)
		t.delivered.Add(context.Background(), 1, opt)
		if d.Redelivered {
			t.redelivered.Add(context.Background(), 1, opt)
		}
	}
	ctx := context.Background()
	if t.tracer == nil {
		return ctx
	}
	ctx = t.propagator.Extract(ctx, headerCarrier(d.Headers))
	ctx, span := t.tracer.Start(ctx, "receive "+queue, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
		t.system, attribute.String("messaging.destination.name", queue), attribute.Bool("messaging.rabbitmq.redelivered", d.Redelivered)))
	span.End()
	return ctx
}

func (t *telemetry) settled(queue string, counter metric.Int64Counter) {
	if counter != nil {
		counter.Add(context.Background(), 1, t.destination(queue))
	}
}

// headerCarrier reads and writes string headers for a propagator.
type headerCarrier Headers

func (c headerCarrier) Get(key string) string {
	v, _ := c[key].(string)
	return v
}

func (c headerCarrier) Set(key, value string) { c[key] = value }

func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// TracerProvider is the tracer provider the transport was opened with, or
// nil; the rpc and notify packages trace with it too.
func (t *Transport) TracerProvider() trace.TracerProvider {
	if t.tel == nil {
		return nil
	}
	return t.tel.tracerProvider
}

// MeterProvider is the meter provider the transport was opened with, or
// nil; the rpc package records call latency with it.
func (t *Transport) MeterProvider() metric.MeterProvider {
	if t.tel == nil {
		return nil
	}
	return t.tel.meterProvider
}

// TraceContext returns ctx carrying the delivery's trace context (the
// consumer span of its receipt), so that a handler's spans join the
// sender's trace. Without tracing it returns ctx unchanged.
func (d *Delivery) TraceContext(ctx context.Context) context.Context {
	if d.traceCtx == nil {
		return ctx
	}
	return trace.ContextWithSpanContext(ctx, trace.SpanContextFromContext(d.traceCtx))
}
