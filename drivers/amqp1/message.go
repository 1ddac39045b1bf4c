package amqp1

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/switchyard-mq/switchyard/transport/driver"
)

// Message annotations the driver adds. The spec reserves the x-opt- prefix
// for annotations that a peer may ignore.
const (
	// annExchange carries the exchange a message was published to, so a
	// consumer's Delivery.Exchange can say (AMQP 1.0 has no such field).
	annExchange = "x-opt-switchyard-exchange"
	// annDeliveryCount counts the returns of a message requeued by the
	// driver itself (the Proton broker has no requeue of its own).
	annDeliveryCount = "x-opt-switchyard-delivery-count"
	// annMarker flags the driver's own queue markers (see purgeByMarker);
	// the driver's consumers drop them.
	annMarker = "x-opt-switchyard-marker"
)

// toAMQP builds the AMQP 1.0 message for msg, published to exchange with
// routing key subject. It never keeps a reference to msg.Body: the data
// section is a copy, so the caller may reuse its buffer.
func toAMQP(exchange, subject string, msg *driver.Message) (*amqp.Message, error) {
	m := &amqp.Message{
		Data:       [][]byte{append([]byte(nil), msg.Body...)},
		Properties: &amqp.MessageProperties{Subject: &subject},
	}
	if msg.Persistent || msg.Expiration > 0 {
		// Only when needed: a header costs the broker time on every message.
		// Priority 4 is the spec's default, which go-amqp leaves off the wire.
		m.Header = &amqp.MessageHeader{Durable: msg.Persistent, Priority: 4}
		if msg.Expiration > 0 {
			m.Header.TTL = max(msg.Expiration, time.Millisecond) // AMQP counts whole milliseconds
		}
	}
	p := m.Properties
	if msg.MessageID != "" {
		p.MessageID = msg.MessageID // a string: RabbitMQ 3.10 breaks on ulong ids
	}
	if msg.CorrelationID != "" {
		p.CorrelationID = msg.CorrelationID
	}
	if msg.ReplyTo != "" {
		p.ReplyTo = &msg.ReplyTo
	}
	if msg.ContentType != "" {
		p.ContentType = &msg.ContentType
	}
	if msg.ContentEncoding != "" {
		p.ContentEncoding = &msg.ContentEncoding
	}
	if !msg.Timestamp.IsZero() {
		ts := msg.Timestamp
		p.CreationTime = &ts
	}
	if exchange != "" {
		m.Annotations = amqp.Annotations{annExchange: exchange}
	}
	if len(msg.Headers) > 0 {
		props, err := applicationProperties(msg.Headers)
		if err != nil {
			return nil, err
		}
		m.ApplicationProperties = props
	}
	return m, nil
}

// applicationProperties converts headers to AMQP 1.0 application
// properties. The spec allows only simple values there (no maps or lists),
// and strict peers refuse others, so nested values are an error.
func applicationProperties(h driver.Headers) (map[string]any, error) {
	props := make(map[string]any, len(h))
	for k, v := range h {
		switch x := v.(type) {
		case nil, string, bool, []byte, float32, float64, time.Time,
			int8, int16, int32, int64, uint8, uint16, uint32, uint64:
			props[k] = x
		case int:
			props[k] = int64(x)
		case uint:
			props[k] = uint64(x)
		default:
			return nil, fmt.Errorf("%w: header %q holds a %T; AMQP 1.0 application properties hold only strings, numbers, booleans, bytes and times",
				driver.ErrInvalid, k, v)
		}
	}
	return props, nil
}

// fromAMQP fills d from a received message. With rabbit set (RabbitMQ's
// plugin) the header's first-acquirer says whether the message was
// delivered before, and the "/queue/" that the plugin puts before the
// reply-to of messages published over AMQP 0-9-1 is removed; elsewhere the
// header comes from the sender as it was, so only a delivery count marks a
// redelivery. With v2 set (RabbitMQ 4) the reply-to of such messages is
// a v2 address, /queues/ and the percent-encoded name, which is decoded,
// and the broker's x-exchange and x-routing-key annotations say where the
// message was published, whoever published it.
func fromAMQP(m *amqp.Message, rabbit, v2 bool) driver.Delivery {
	var d driver.Delivery
	switch len(m.Data) {
	case 0:
	case 1:
		d.Body = m.Data[0]
	default:
		for _, part := range m.Data {
			d.Body = append(d.Body, part...)
		}
	}
	if d.Body == nil {
		switch v := m.Value.(type) { // a peer that sent an amqp-value body
		case []byte:
			d.Body = v
		case string:
			d.Body = []byte(v)
		}
	}
	if h := m.Header; h != nil {
		d.Persistent = h.Durable
		d.Expiration = h.TTL
		d.Redelivered = (rabbit && !h.FirstAcquirer) || h.DeliveryCount > 0
		d.DeliveryCount = int(h.DeliveryCount)
	}
	if p := m.Properties; p != nil {
		d.MessageID = idString(p.MessageID)
		d.CorrelationID = idString(p.CorrelationID)
		if p.ReplyTo != nil {
			d.ReplyTo = *p.ReplyTo
			switch {
			case v2 && strings.HasPrefix(d.ReplyTo, "/queues/"):
				if name, err := url.PathUnescape(strings.TrimPrefix(d.ReplyTo, "/queues/")); err == nil {
					d.ReplyTo = name
				}
			case rabbit && !v2:
				d.ReplyTo = strings.TrimPrefix(d.ReplyTo, "/queue/")
			}
		}
		if p.Subject != nil {
			d.RoutingKey = *p.Subject
		}
		if p.ContentType != nil {
			d.ContentType = *p.ContentType
		}
		if p.ContentEncoding != nil {
			d.ContentEncoding = *p.ContentEncoding
		}
		if p.CreationTime != nil && !p.CreationTime.IsZero() {
			d.Timestamp = p.CreationTime.UTC()
		}
	}
	if v2 {
		if k, ok := m.Annotations["x-routing-key"].(string); ok {
			d.RoutingKey = k
		}
		if x, ok := m.Annotations["x-exchange"].(string); ok {
			d.Exchange = x
		}
	}
	if x, ok := m.Annotations[annExchange].(string); ok {
		d.Exchange = x
	}
	if n, ok := annotationCount(m.Annotations[annDeliveryCount]); ok && n > d.DeliveryCount {
		d.DeliveryCount = n
		d.Redelivered = true
	}
	if len(m.ApplicationProperties) > 0 {
		d.Headers = make(driver.Headers, len(m.ApplicationProperties))
		for k, v := range m.ApplicationProperties {
			d.Headers[k] = v
		}
	}
	return d
}

// idString renders a message or correlation id. The driver sends strings;
// other peers may send ulong, uuid or binary ids.
func idString(id any) string {
	switch v := id.(type) {
	case nil:
		return ""
	case string:
		return v
	case []byte:
		return string(v)
	case amqp.UUID:
		return v.String()
	}
	return fmt.Sprint(id)
}

func annotationCount(v any) (int, bool) {
	switch n := v.(type) {
	case int64:
		return int(n), true
	case uint32:
		return int(n), true
	case int32:
		return int(n), true
	case uint64:
		return int(n), true
	}
	return 0, false
}

// isMarker reports whether m is one of the driver's queue markers.
func isMarker(m *amqp.Message) bool {
	_, ok := m.Annotations[annMarker]
	return ok
}

// requeueCopy is the message a driver-side requeue publishes: the same
// sections, marked as delivered before and counted.
func requeueCopy(m *amqp.Message, count int) *amqp.Message {
	cp := &amqp.Message{
		Header:                m.Header,
		Properties:            m.Properties,
		ApplicationProperties: m.ApplicationProperties,
		Data:                  m.Data,
		Value:                 m.Value,
		Sequence:              m.Sequence,
		Annotations:           amqp.Annotations{},
	}
	for k, v := range m.Annotations {
		cp.Annotations[k] = v
	}
	h := amqp.MessageHeader{Priority: 4}
	if m.Header != nil {
		h = *m.Header
	}
	h.FirstAcquirer = false
	h.DeliveryCount = uint32(count)
	cp.Header = &h
	cp.Annotations[annDeliveryCount] = int64(count)
	return cp
}
