package memory

import (
	"strconv"
	"time"

	"github.com/switchyard-mq/switchyard/drivers/memory/internal/amqp091"
	"github.com/switchyard-mq/switchyard/transport/driver"
)

// amqpProperties are the AMQP properties of a message published over
// AMQP that the portable model has no field for; consumers over AMQP get
// them back unchanged.
type amqpProperties struct {
	flags        uint16 // which of these were present
	deliveryMode uint8
	priority     uint8
	expiration   string // as sent, while the message keeps its expiration
	typ          string
	userID       string
	appID        string
	clusterID    string
}

// extraFlags are the properties amqpProperties carries.
const extraFlags = amqp091.FlagDeliveryMode | amqp091.FlagPriority | amqp091.FlagType | amqp091.FlagUserID | amqp091.FlagAppID | amqp091.FlagClusterID

// messageFromAMQP builds the broker's message from a publish. Body is
// the caller's to give away.
func messageFromAMQP(exchange, key string, p *amqp091.Properties, body []byte, expiration time.Duration) *message {
	msg := driver.Message{
		Body:            body,
		ContentType:     p.ContentType,
		ContentEncoding: p.ContentEncoding,
		MessageID:       p.MessageID,
		CorrelationID:   p.CorrelationID,
		ReplyTo:         p.ReplyTo,
		Expiration:      expiration,
		Persistent:      p.Flags&amqp091.FlagDeliveryMode != 0 && p.DeliveryMode == 2,
	}
	if p.Flags&amqp091.FlagHeaders != 0 {
		msg.Headers = tableToHeaders(p.Headers)
	}
	if p.Flags&amqp091.FlagTimestamp != 0 {
		msg.Timestamp = p.Timestamp
	}
	m := &message{msg: msg, exchange: exchange, key: key}
	if p.Flags&(extraFlags|amqp091.FlagExpiration) != 0 {
		m.amqp = &amqpProperties{
			flags: p.Flags & extraFlags, deliveryMode: p.DeliveryMode, priority: p.Priority, expiration: p.Expiration,
			typ: p.Type, userID: p.UserID, appID: p.AppID, clusterID: p.ClusterID,
		}
	}
	return m
}

// amqpPropertiesOf gives a message's AMQP properties, from the model's
// fields and what AMQP publishers sent beyond them.
func amqpPropertiesOf(m *message) amqp091.Properties {
	msg := &m.msg
	var p amqp091.Properties
	set := func(flag uint16, dst *string, v string) {
		if v != "" {
			p.Flags |= flag
			*dst = v
		}
	}
	set(amqp091.FlagContentType, &p.ContentType, msg.ContentType)
	set(amqp091.FlagContentEncoding, &p.ContentEncoding, msg.ContentEncoding)
	set(amqp091.FlagCorrelationID, &p.CorrelationID, msg.CorrelationID)
	set(amqp091.FlagReplyTo, &p.ReplyTo, msg.ReplyTo)
	set(amqp091.FlagMessageID, &p.MessageID, msg.MessageID)
	if msg.Headers != nil {
		p.Flags |= amqp091.FlagHeaders
		p.Headers = headersToTable(msg.Headers)
	}
	if !msg.Timestamp.IsZero() {
		p.Flags |= amqp091.FlagTimestamp
		p.Timestamp = msg.Timestamp
	}
	if msg.Expiration > 0 {
		p.Flags |= amqp091.FlagExpiration
		p.Expiration = strconv.FormatInt(msg.Expiration.Milliseconds(), 10)
		if m.amqp != nil && m.amqp.expiration != "" {
			p.Expiration = m.amqp.expiration
		}
	}
	if x := m.amqp; x != nil {
		p.Flags |= x.flags
		p.DeliveryMode, p.Priority, p.Type, p.UserID, p.AppID, p.ClusterID = x.deliveryMode, x.priority, x.typ, x.userID, x.appID, x.clusterID
	} else if msg.Persistent {
		p.Flags |= amqp091.FlagDeliveryMode
		p.DeliveryMode = 2
	}
	return p
}

// tableToHeaders converts a field table to the model's headers, nested
// tables included, so that the broker's dead-lettering reads x-death.
func tableToHeaders(t amqp091.Table) driver.Headers {
	if t == nil {
		return driver.Headers{}
	}
	h := make(driver.Headers, len(t))
	for k, v := range t {
		h[k] = fromField(v)
	}
	return h
}

func fromField(v any) any {
	switch x := v.(type) {
	case amqp091.Table:
		return tableToHeaders(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = fromField(e)
		}
		return out
	}
	return v
}

// headersToTable converts the model's headers to a field table.
func headersToTable(h map[string]any) amqp091.Table {
	t := make(amqp091.Table, len(h))
	for k, v := range h {
		t[k] = toField(v)
	}
	return t
}

func toField(v any) any {
	switch x := v.(type) {
	case driver.Headers:
		return headersToTable(x)
	case map[string]any:
		return headersToTable(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = toField(e)
		}
		return out
	}
	return v
}
