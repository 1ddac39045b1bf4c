package amqp091

import (
	"fmt"
	"time"
)

// Property flags of the basic class's content header: a flag set means
// the property is present.
const (
	FlagContentType     uint16 = 1 << 15
	FlagContentEncoding uint16 = 1 << 14
	FlagHeaders         uint16 = 1 << 13
	FlagDeliveryMode    uint16 = 1 << 12
	FlagPriority        uint16 = 1 << 11
	FlagCorrelationID   uint16 = 1 << 10
	FlagReplyTo         uint16 = 1 << 9
	FlagExpiration      uint16 = 1 << 8
	FlagMessageID       uint16 = 1 << 7
	FlagTimestamp       uint16 = 1 << 6
	FlagType            uint16 = 1 << 5
	FlagUserID          uint16 = 1 << 4
	FlagAppID           uint16 = 1 << 3
	FlagClusterID       uint16 = 1 << 2
)

// Properties are the basic class's message properties; Flags says which
// are present.
type Properties struct {
	Flags           uint16
	ContentType     string
	ContentEncoding string
	Headers         Table
	DeliveryMode    uint8
	Priority        uint8
	CorrelationID   string
	ReplyTo         string
	Expiration      string
	MessageID       string
	Timestamp       time.Time
	Type            string
	UserID          string
	AppID           string
	ClusterID       string
}

// ContentHeader is a content header frame's payload.
type ContentHeader struct {
	Class      uint16
	BodySize   uint64
	Properties Properties
}

// DecodeContentHeader decodes a content header frame's payload.
func DecodeContentHeader(payload []byte) (ContentHeader, error) {
	r := NewDecoder(payload)
	var h ContentHeader
	h.Class = r.Short()
	r.Short() // weight, unused
	h.BodySize = r.LongLong()
	h.Properties.decode(r)
	if r.err == nil && len(r.buf) > 0 {
		r.fail("%d bytes after the properties", len(r.buf))
	}
	if r.err != nil {
		return ContentHeader{}, fmt.Errorf("content header: %w", r.err)
	}
	return h, nil
}

func (p *Properties) decode(r *Decoder) {
	p.Flags = r.Short()
	// A set lowest bit continues the flags in another word; the basic
	// class has no properties there.
	for f := p.Flags; f&1 != 0 && r.err == nil; {
		f = r.Short()
	}
	f := p.Flags
	if f&FlagContentType != 0 {
		p.ContentType = r.ShortStr()
	}
	if f&FlagContentEncoding != 0 {
		p.ContentEncoding = r.ShortStr()
	}
	if f&FlagHeaders != 0 {
		p.Headers = r.Table()
	}
	if f&FlagDeliveryMode != 0 {
		p.DeliveryMode = r.Octet()
	}
	if f&FlagPriority != 0 {
		p.Priority = r.Octet()
	}
	if f&FlagCorrelationID != 0 {
		p.CorrelationID = r.ShortStr()
	}
	if f&FlagReplyTo != 0 {
		p.ReplyTo = r.ShortStr()
	}
	if f&FlagExpiration != 0 {
		p.Expiration = r.ShortStr()
	}
	if f&FlagMessageID != 0 {
		p.MessageID = r.ShortStr()
	}
	if f&FlagTimestamp != 0 {
		p.Timestamp = r.Timestamp()
	}
	if f&FlagType != 0 {
		p.Type = r.ShortStr()
	}
	if f&FlagUserID != 0 {
		p.UserID = r.ShortStr()
	}
	if f&FlagAppID != 0 {
		p.AppID = r.ShortStr()
	}
	if f&FlagClusterID != 0 {
		p.ClusterID = r.ShortStr()
	}
	p.Flags &^= 1
}

func (p *Properties) encode(w *Encoder) {
	f := p.Flags &^ 3
	w.Short(f)
	if f&FlagContentType != 0 {
		w.ShortStr(p.ContentType)
	}
	if f&FlagContentEncoding != 0 {
		w.ShortStr(p.ContentEncoding)
	}
	if f&FlagHeaders != 0 {
		w.Table(p.Headers)
	}
	if f&FlagDeliveryMode != 0 {
		w.Octet(p.DeliveryMode)
	}
	if f&FlagPriority != 0 {
		w.Octet(p.Priority)
	}
	if f&FlagCorrelationID != 0 {
		w.ShortStr(p.CorrelationID)
	}
	if f&FlagReplyTo != 0 {
		w.ShortStr(p.ReplyTo)
	}
	if f&FlagExpiration != 0 {
		w.ShortStr(p.Expiration)
	}
	if f&FlagMessageID != 0 {
		w.ShortStr(p.MessageID)
	}
	if f&FlagTimestamp != 0 {
		w.Timestamp(p.Timestamp)
	}
	if f&FlagType != 0 {
		w.ShortStr(p.Type)
	}
	if f&FlagUserID != 0 {
		w.ShortStr(p.UserID)
	}
	if f&FlagAppID != 0 {
		w.ShortStr(p.AppID)
	}
	if f&FlagClusterID != 0 {
		w.ShortStr(p.ClusterID)
	}
}
