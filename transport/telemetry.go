package transport

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// instrumentationName names Switchyard's tracers and meters.
const instrumentationName = "github.com/switchyard-mq/switchyard"

// WithTracerProvider traces publishing and consuming with tp, by
// OpenTelemetry's messaging conventions: a producer span per publish,
// whose context travels in the message's headers (W3C trace context
// unless WithPropagator says otherwise); a consumer span per delivery
// received, its child; a process span from Delivery.StartProcess; and a
// span per settlement (ack, nack, reject). Pass otel.GetTracerProvider()
// for the global one. Without it nothing is traced and no header is added.
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

// The spans and their attributes follow OpenTelemetry's semantic
// conventions for messaging, version 1.43.0 (the RabbitMQ page's
// messaging.rabbitmq.* names): see the README's Observability section.

// Operation names (messaging.operation.name) of the spans.
const (
	opPublish = "publish"
	opReceive = "receive"
	opProcess = "process"
	opAck     = "ack"
	opNack    = "nack"   // Nack(true): back to the queue
	opReject  = "reject" // Nack(false), Reject: dead-lettered or dropped
)

// MessagingSystem is the messaging.system value of a transport opened with
// scheme: "rabbitmq" for rabbit:// (as the conventions require), "zeromq"
// for zmq://, and for the systems the conventions do not list, a name of
// Switchyard's choosing: "switchyard.memory" for memory://'s in-process
// broker and "amqp1" for an AMQP 1.0 broker on amqp:// (unless its driver
// tells that the broker is RabbitMQ: then "rabbitmq"). Other schemes are
// their own names.
func MessagingSystem(scheme string) string {
	switch scheme {
	case "rabbit", "rabbits":
		return "rabbitmq"
	case "amqp", "amqps":
		return "amqp1"
	case "memory":
		return "switchyard.memory"
	case "zmq":
		return "zeromq"
	}
	return scheme
}

// ErrorType is the error.type value of err, a low-cardinality class: the
// name of the transport's sentinel it wraps ("timeout", "not_found"...),
// "context_canceled" or "context_deadline_exceeded", else its Go type.
func ErrorType(err error) string {
	for _, s := range []struct {
		err  error
		name string
	}{
		{ErrTimeout, "timeout"}, {ErrNotFound, "not_found"}, {ErrClosed, "closed"},
		{ErrUnroutable, "unroutable"}, {ErrUnsupported, "unsupported"}, {ErrInvalid, "invalid"},
		{ErrPrecondition, "precondition_failed"}, {ErrInUse, "in_use"}, {ErrSettled, "settled"},
		{context.DeadlineExceeded, "context_deadline_exceeded"}, {context.Canceled, "context_canceled"},
	} {
		if errors.Is(err, s.err) {
			return s.name
		}
	}
	return fmt.Sprintf("%T", err)
}

// endSpan ends span with err's error.type, status and event.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.SetAttributes(semconv.ErrorTypeKey.String(ErrorType(err)))
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// telemetry is a transport's tracing and metrics; nil parts are off, so
// the hot paths pay one nil check when telemetry is not configured.
type telemetry struct {
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	tracer         trace.Tracer
	propagator     propagation.TextMapPropagator
	system         attribute.KeyValue
	deliveryTags   bool                 // messaging.rabbitmq.message.delivery_tag applies
	server         []attribute.KeyValue // server.address and .port, when one host

	published, delivered, redelivered, acked, requeued, rejected metric.Int64Counter
	attrs                                                        sync.Map // name -> metric.MeasurementOption
}

func newTelemetry(o openOptions, u *URL) (*telemetry, error) {
	if o.tracerProvider == nil && o.meterProvider == nil {
		return nil, nil
	}
	t := &telemetry{tracerProvider: o.tracerProvider, meterProvider: o.meterProvider, propagator: o.propagator}
	t.setSystem(MessagingSystem(u.Scheme))
	// RabbitMQ's delivery tags are AMQP 0-9-1's: an AMQP 1.0 driver's
	// tags are its own, even on RabbitMQ.
	t.deliveryTags = u.Scheme == "rabbit" || u.Scheme == "rabbits"
	if len(u.Hosts) == 1 && u.Scheme != "memory" {
		// With several hosts the one connected to is the driver's secret.
		t.server = append(t.server, semconv.ServerAddress(u.Hosts[0].Name))
		if p := u.Hosts[0].Port; p != 0 {
			t.server = append(t.server, semconv.ServerPort(p))
		}
	}
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

// setSystem sets messaging.system; called before the transport is shared.
func (t *telemetry) setSystem(system string) {
	t.system = semconv.MessagingSystemKey.String(system)
}

// destination returns the measurement attributes of a queue or exchange,
// built once per name.
func (t *telemetry) destination(name string) metric.MeasurementOption {
	if opt, ok := t.attrs.Load(name); ok {
		return opt.(metric.MeasurementOption)
	}
	opt := metric.WithAttributeSet(attribute.NewSet(t.system, semconv.MessagingDestinationName(name)))
	t.attrs.Store(name, opt)
	return opt
}

// attributes are the attributes every span of an operation on a message
// carries: the system, the operation, where the message was published
// (RabbitMQ's destination is the exchange, "" for the default one, and
// the routing key), its ids, and the broker's address.
func (t *telemetry) attributes(op string, opType attribute.KeyValue, exchange, key string, msg *Message, extra ...attribute.KeyValue) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, 10+len(extra))
	attrs = append(attrs, t.system, semconv.MessagingOperationName(op), opType, semconv.MessagingDestinationName(exchange))
	if key != "" {
		attrs = append(attrs, semconv.MessagingRabbitMQDestinationRoutingKey(key))
	}
	if msg.MessageID != "" {
		attrs = append(attrs, semconv.MessagingMessageID(msg.MessageID))
	}
	if msg.CorrelationID != "" {
		attrs = append(attrs, semconv.MessagingMessageConversationID(msg.CorrelationID))
	}
	attrs = append(attrs, t.server...)
	return append(attrs, extra...)
}

// startPublish starts the producer span of a publish, "publish
// <exchange>" ("publish <routing key>" on the default exchange, where the
// key names the queue), and writes its context into the message's
// headers (a copy: the caller's map is left alone).
func (t *telemetry) startPublish(ctx context.Context, exchange, key string, msg *Message) (context.Context, trace.Span) {
	if t.tracer == nil {
		return ctx, nil
	}
	name := opPublish + " " + exchange
	if exchange == "" {
		name = opPublish + " " + key
	}
	ctx, span := t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(t.attributes(opPublish, semconv.MessagingOperationTypeSend, exchange, key, msg)...))
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
		endSpan(span, err)
	}
	if err == nil && t.published != nil {
		t.published.Add(context.Background(), 1, t.destination(exchange))
	}
}

// consumerAttributes are a delivery's span attributes: the queue it was
// consumed from is messaging.consumer.group.name (the consumers of a
// queue share its messages, as a group does), and RabbitMQ's delivery tag.
func (t *telemetry) consumerAttributes(op string, opType attribute.KeyValue, d *Delivery, extra ...attribute.KeyValue) []attribute.KeyValue {
	extra = append(extra, semconv.MessagingConsumerGroupName(d.queue))
	if t.deliveryTags {
		extra = append(extra, semconv.MessagingRabbitMQMessageDeliveryTag(int(d.tag)))
	}
	return t.attributes(op, opType, d.Exchange, d.RoutingKey, &d.Message, extra...)
}

// received records a delivery: its counters, and the consumer span
// "receive <queue>", ended at once, whose parent is the context its
// headers carry; the returned context holds the span, the parent of the
// delivery's process and settle spans.
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
	ctx, span := t.tracer.Start(ctx, opReceive+" "+queue, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(t.consumerAttributes(opReceive, semconv.MessagingOperationTypeReceive, d,
			attribute.Bool("switchyard.redelivered", d.Redelivered))...))
	span.End()
	return ctx
}

// startSettle starts the span of a delivery's settlement, "<ack|nack|
// reject> <queue>", the child of its process span if one was started,
// else of its receive span.
func (t *telemetry) startSettle(d *Delivery, op string) trace.Span {
	if t.tracer == nil || d.traceCtx == nil {
		return nil
	}
	ctx := d.traceCtx
	if p := d.processSpan.Load(); p != nil {
		ctx = trace.ContextWithSpanContext(ctx, *p)
	}
	_, span := t.tracer.Start(ctx, op+" "+d.queue, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(t.consumerAttributes(op, semconv.MessagingOperationTypeSettle, d)...))
	return span
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
// span of its receipt, or of its processing once StartProcess began it),
// so that a handler's spans join the sender's trace. Without tracing it
// returns ctx unchanged.
func (d *Delivery) TraceContext(ctx context.Context) context.Context {
	if d.traceCtx == nil {
		return ctx
	}
	if p := d.processSpan.Load(); p != nil {
		return trace.ContextWithSpanContext(ctx, *p)
	}
	return trace.ContextWithSpanContext(ctx, trace.SpanContextFromContext(d.traceCtx))
}

// StartProcess begins the delivery's processing: with tracing, a consumer
// span "process <queue>", the child of its receipt, which ctx then
// carries and which end ends with the handler's error (its error.type).
// A settlement after StartProcess is the child of this span. Without
// tracing it returns ctx and a no-op end.
func (d *Delivery) StartProcess(ctx context.Context) (context.Context, func(error)) {
	if d.tel == nil || d.tel.tracer == nil || d.traceCtx == nil {
		return ctx, func(error) {}
	}
	ctx = trace.ContextWithSpanContext(ctx, trace.SpanContextFromContext(d.traceCtx))
	ctx, span := d.tel.tracer.Start(ctx, opProcess+" "+d.queue, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(d.tel.consumerAttributes(opProcess, semconv.MessagingOperationTypeProcess, d)...))
	sc := span.SpanContext()
	d.processSpan.Store(&sc)
	return ctx, func(err error) { endSpan(span, err) }
}
