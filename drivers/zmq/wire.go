package zmq

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/switchyard-mq/switchyard/transport/driver"
)

// The wire protocol. After the ZMTP 3.0 handshake (zmq4, NULL mechanism,
// DEALER dialing ROUTER), every Switchyard message is one ZMTP message
// whose first frame is a header: a protocol version byte, a type byte and
// the type's fields. Integers are unsigned varints (encoding/binary),
// strings and byte strings are a varint length then the bytes. Every
// decoder checks every length against what is left and rejects trailing
// bytes, so a malformed message is an error, never a panic or an
// over-allocation.
//
//	DELIVER  frame 0: version 1, 'D', consumer id, sequence, delivery count,
//	                  flags (bit 0 redelivered), remaining TTL in ns (0: none)
//	         frame 1: properties (exchange, routing key, content type,
//	                  content encoding, message id, correlation id, reply-to,
//	                  expiration ns, flags: bit 0 persistent, bit 1 timestamp,
//	                  timestamp unix ns (zigzag), header count, headers)
//	         frame 2: body
//	SETTLE   frame 0: version 1, 'S', count, then count × (sequence, op)
//	HANDOFF  frame 0: version 1, 'H', delivery count, flags (bit 0
//	                  redelivered), remaining TTL in ns, queue name
//	         frames 1 and 2: as DELIVER's
//
// A DELIVER goes from the node holding a message (its sender) to the node
// of the consumer chosen for it; a SETTLE goes back, carrying the
// consumer's acks, nacks and returns in batches. A HANDOFF passes a held
// message to another node, which holds it from then on (a closing node
// hands off what no consumer has).
const (
	protocolVersion byte = 1
	typeDeliver     byte = 'D'
	typeSettle      byte = 'S'
	typeHandoff     byte = 'H'
)

// ZMTP 3.0 frame flags (RFC 23).
const (
	zmtpMore    = 0x01
	zmtpLong    = 0x02
	zmtpCommand = 0x04
)

// Limits on what a peer may send. maxFrame bounds one frame (and so a
// message body); maxMessageFrames the frames of one message.
const (
	maxFrame         = 64 << 20
	maxMessageFrames = 3
	maxHeaderDepth   = 16
)

// settleOp is what a consumer did with a delivery.
type settleOp byte

const (
	// opAck: handled; the sender forgets the message.
	opAck settleOp = 1 + iota
	// opRequeue: nack with requeue; redeliver, counting a return.
	opRequeue
	// opReject: refused; dead-letter or drop.
	opReject
	// opExpired: its TTL ran out before it was handed out; dead-letter or drop.
	opExpired
	// opReturn: never handed out, the consumer is gone; redeliver, uncounted.
	opReturn
	// opRelease: handed out unsettled, the consumer is gone; redeliver, counted.
	opRelease
	opEnd
)

type settlement struct {
	seq uint64
	op  settleOp
}

// deliverHeader is frame 0 of a DELIVER.
type deliverHeader struct {
	consumer    uint64
	seq         uint64
	count       uint64
	redelivered bool
	ttl         time.Duration // remaining; 0: none
}

var errShortFrame = errors.New("truncated field")

// appendFrame appends one ZMTP frame holding data.
func appendFrame(buf []byte, more bool, data []byte) []byte {
	var flag byte
	if more {
		flag = zmtpMore
	}
	if len(data) > 255 {
		buf = append(buf, flag|zmtpLong)
		buf = binary.BigEndian.AppendUint64(buf, uint64(len(data)))
	} else {
		buf = append(buf, flag, byte(len(data)))
	}
	return append(buf, data...)
}

// appendDeliver appends a DELIVER message: its three frames.
func appendDeliver(buf []byte, h deliverHeader, props, body []byte) []byte {
	// The header frame is short (at most 2+5*10+1 bytes): write it in place.
	start := len(buf)
	buf = append(buf, zmtpMore, 0, protocolVersion, typeDeliver)
	buf = binary.AppendUvarint(buf, h.consumer)
	buf = binary.AppendUvarint(buf, h.seq)
	buf = binary.AppendUvarint(buf, h.count)
	var flags byte
	if h.redelivered {
		flags = 1
	}
	buf = append(buf, flags)
	buf = binary.AppendUvarint(buf, uint64(max(h.ttl, 0)))
	buf[start+1] = byte(len(buf) - start - 2)
	buf = appendFrame(buf, true, props)
	return appendFrame(buf, false, body)
}

// handoffHeader is frame 0 of a HANDOFF.
type handoffHeader struct {
	queue       string
	count       uint64
	redelivered bool
	ttl         time.Duration
}

// appendHandoff appends a HANDOFF message: its three frames.
func appendHandoff(buf []byte, h handoffHeader, props, body []byte) []byte {
	hdr := []byte{protocolVersion, typeHandoff}
	hdr = binary.AppendUvarint(hdr, h.count)
	var flags byte
	if h.redelivered {
		flags = 1
	}
	hdr = append(hdr, flags)
	hdr = binary.AppendUvarint(hdr, uint64(max(h.ttl, 0)))
	hdr = appendString(hdr, h.queue)
	buf = appendFrame(buf, true, hdr)
	buf = appendFrame(buf, true, props)
	return appendFrame(buf, false, body)
}

func decodeHandoffHeader(fields []byte) (handoffHeader, error) {
	d := decoder{b: fields}
	h := handoffHeader{count: d.uvarint("delivery count")}
	flags := d.byte("flags")
	h.redelivered = flags&1 != 0
	if flags&^1 != 0 {
		d.fail("flags", fmt.Errorf("unknown bits %#x", flags))
	}
	h.ttl = d.duration("ttl")
	h.queue = d.string("queue")
	if h.count > math.MaxInt32 {
		d.fail("delivery count", errors.New("out of range"))
	}
	return h, d.finish("handoff header")
}

// appendSettle appends a SETTLE message for ss.
func appendSettle(buf []byte, ss []settlement) []byte {
	var hdr [binary.MaxVarintLen64 + 2]byte
	payload := append(hdr[:0], protocolVersion, typeSettle)
	payload = binary.AppendUvarint(payload, uint64(len(ss)))
	size := len(payload)
	for _, s := range ss {
		size += uvarintLen(s.seq) + 1
	}
	if size > 255 {
		buf = append(buf, zmtpLong)
		buf = binary.BigEndian.AppendUint64(buf, uint64(size))
	} else {
		buf = append(buf, 0, byte(size))
	}
	buf = append(buf, payload...)
	for _, s := range ss {
		buf = binary.AppendUvarint(buf, s.seq)
		buf = append(buf, byte(s.op))
	}
	return buf
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// decoder reads fields from one frame, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string, err error) {
	if d.err == nil {
		d.err = fmt.Errorf("%s: %w", what, err)
	}
}

func (d *decoder) byte(what string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail(what, errShortFrame)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what, errors.New("malformed varint"))
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(what, errors.New("malformed varint"))
		return 0
	}
	d.b = d.b[n:]
	return v
}

// length reads a count or length that must not exceed what is left, each
// counted item taking at least one byte.
func (d *decoder) length(what string) int {
	n := d.uvarint(what)
	if d.err == nil && n > uint64(len(d.b)) {
		d.fail(what, fmt.Errorf("length %d exceeds the %d bytes left", n, len(d.b)))
		return 0
	}
	return int(n)
}

func (d *decoder) bytes(what string) []byte {
	n := d.length(what)
	if d.err != nil {
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string(what string) string {
	b := d.bytes(what)
	if len(b) == 0 {
		return ""
	}
	return string(b)
}

func (d *decoder) duration(what string) time.Duration {
	v := d.uvarint(what)
	if v > math.MaxInt64 {
		d.fail(what, errors.New("duration out of range"))
		return 0
	}
	return time.Duration(v)
}

// finish reports the first error, or trailing bytes.
func (d *decoder) finish(what string) error {
	if d.err == nil && len(d.b) > 0 {
		d.err = fmt.Errorf("%s: %d trailing bytes", what, len(d.b))
	}
	return d.err
}

// checkHeader checks frame 0's version and returns its type and fields.
func checkHeader(frame []byte) (byte, []byte, error) {
	if len(frame) < 2 {
		return 0, nil, fmt.Errorf("header frame of %d bytes, want at least 2", len(frame))
	}
	if frame[0] != protocolVersion {
		return 0, nil, fmt.Errorf("protocol version %d, this node speaks %d", frame[0], protocolVersion)
	}
	return frame[1], frame[2:], nil
}

func decodeDeliverHeader(fields []byte) (deliverHeader, error) {
	d := decoder{b: fields}
	h := deliverHeader{
		consumer: d.uvarint("consumer"),
		seq:      d.uvarint("sequence"),
		count:    d.uvarint("delivery count"),
	}
	flags := d.byte("flags")
	h.redelivered = flags&1 != 0
	if flags&^1 != 0 {
		d.fail("flags", fmt.Errorf("unknown bits %#x", flags))
	}
	h.ttl = d.duration("ttl")
	if h.count > math.MaxInt32 {
		d.fail("delivery count", errors.New("out of range"))
	}
	return h, d.finish("deliver header")
}

func decodeSettle(fields []byte, dst []settlement) ([]settlement, error) {
	d := decoder{b: fields}
	n := d.length("settlement count")
	for range n {
		s := settlement{seq: d.uvarint("sequence"), op: settleOp(d.byte("op"))}
		if d.err == nil && (s.op < opAck || s.op >= opEnd) {
			d.fail("op", fmt.Errorf("unknown settlement op %d", s.op))
		}
		if d.err != nil {
			break
		}
		dst = append(dst, s)
	}
	return dst, d.finish("settle")
}

// Properties.

const (
	propPersistent = 1 << iota
	propTimestamp
)

// encodeProps encodes frame 1 of a DELIVER: everything of msg but its body.
func encodeProps(exchange, key string, msg *driver.Message) ([]byte, error) {
	size := 16 + len(exchange) + len(key) + len(msg.ContentType) + len(msg.ContentEncoding) +
		len(msg.MessageID) + len(msg.CorrelationID) + len(msg.ReplyTo) + 10 + 10
	buf := make([]byte, 0, size+32*len(msg.Headers))
	for _, s := range [...]string{exchange, key, msg.ContentType, msg.ContentEncoding, msg.MessageID, msg.CorrelationID, msg.ReplyTo} {
		buf = appendString(buf, s)
	}
	buf = binary.AppendUvarint(buf, uint64(max(msg.Expiration, 0)))
	var flags byte
	if msg.Persistent {
		flags |= propPersistent
	}
	if !msg.Timestamp.IsZero() {
		flags |= propTimestamp
	}
	buf = append(buf, flags)
	if !msg.Timestamp.IsZero() {
		buf = binary.AppendVarint(buf, msg.Timestamp.UnixNano())
	}
	var err error
	buf, err = appendHeaders(buf, msg.Headers, 0)
	return buf, err
}

func appendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

// decodeProps decodes frame 1 of a DELIVER into msg (all but the body).
func decodeProps(frame []byte, msg *driver.Message) (exchange, key string, err error) {
	d := decoder{b: frame}
	exchange = d.string("exchange")
	key = d.string("routing key")
	msg.ContentType = d.string("content type")
	msg.ContentEncoding = d.string("content encoding")
	msg.MessageID = d.string("message id")
	msg.CorrelationID = d.string("correlation id")
	msg.ReplyTo = d.string("reply-to")
	msg.Expiration = d.duration("expiration")
	flags := d.byte("property flags")
	if flags&^(propPersistent|propTimestamp) != 0 {
		d.fail("property flags", fmt.Errorf("unknown bits %#x", flags))
	}
	msg.Persistent = flags&propPersistent != 0
	if flags&propTimestamp != 0 {
		msg.Timestamp = time.Unix(0, d.varint("timestamp")).UTC()
	}
	msg.Headers = decodeHeaders(&d, 0)
	return exchange, key, d.finish("properties")
}

// Header values are tagged: the model's portable types.
const (
	tagString  = 's'
	tagTrue    = 't'
	tagFalse   = 'f'
	tagInt     = 'i'
	tagFloat   = 'd'
	tagBytes   = 'x'
	tagTime    = 'T'
	tagHeaders = 'H'
	tagList    = 'A'
	tagNil     = 'n'
)

func appendHeaders(buf []byte, h map[string]any, depth int) ([]byte, error) {
	buf = binary.AppendUvarint(buf, uint64(len(h)))
	for k, v := range h {
		buf = appendString(buf, k)
		var err error
		if buf, err = appendValue(buf, v, depth); err != nil {
			return nil, fmt.Errorf("header %q: %w", k, err)
		}
	}
	return buf, nil
}

func appendValue(buf []byte, v any, depth int) ([]byte, error) {
	if depth >= maxHeaderDepth {
		return nil, fmt.Errorf("%w: headers nested deeper than %d", driver.ErrInvalid, maxHeaderDepth)
	}
	switch v := v.(type) {
	case nil:
		return append(buf, tagNil), nil
	case string:
		return appendString(append(buf, tagString), v), nil
	case bool:
		if v {
			return append(buf, tagTrue), nil
		}
		return append(buf, tagFalse), nil
	case int:
		return binary.AppendVarint(append(buf, tagInt), int64(v)), nil
	case int8:
		return binary.AppendVarint(append(buf, tagInt), int64(v)), nil
	case int16:
		return binary.AppendVarint(append(buf, tagInt), int64(v)), nil
	case int32:
		return binary.AppendVarint(append(buf, tagInt), int64(v)), nil
	case int64:
		return binary.AppendVarint(append(buf, tagInt), v), nil
	case uint8:
		return binary.AppendVarint(append(buf, tagInt), int64(v)), nil
	case uint16:
		return binary.AppendVarint(append(buf, tagInt), int64(v)), nil
	case uint32:
		return binary.AppendVarint(append(buf, tagInt), int64(v)), nil
	case float32:
		return binary.BigEndian.AppendUint64(append(buf, tagFloat), math.Float64bits(float64(v))), nil
	case float64:
		return binary.BigEndian.AppendUint64(append(buf, tagFloat), math.Float64bits(v)), nil
	case []byte:
		buf = binary.AppendUvarint(append(buf, tagBytes), uint64(len(v)))
		return append(buf, v...), nil
	case time.Time:
		return binary.AppendVarint(append(buf, tagTime), v.UnixNano()), nil
	case driver.Headers:
		return appendHeaders(append(buf, tagHeaders), v, depth+1)
	case map[string]any:
		return appendHeaders(append(buf, tagHeaders), v, depth+1)
	case []any:
		buf = binary.AppendUvarint(append(buf, tagList), uint64(len(v)))
		for i, e := range v {
			var err error
			if buf, err = appendValue(buf, e, depth+1); err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
		}
		return buf, nil
	}
	return nil, fmt.Errorf("%w: header value of type %T (want string, bool, integer, float, []byte, time.Time, Headers or []any)", driver.ErrInvalid, v)
}

func decodeHeaders(d *decoder, depth int) driver.Headers {
	n := d.length("header count")
	if d.err != nil || n == 0 {
		return nil
	}
	h := make(driver.Headers, min(n, 64))
	for range n {
		k := d.string("header name")
		v := decodeValue(d, depth)
		if d.err != nil {
			return nil
		}
		h[k] = v
	}
	return h
}

func decodeValue(d *decoder, depth int) any {
	if depth >= maxHeaderDepth {
		d.fail("header value", fmt.Errorf("nested deeper than %d", maxHeaderDepth))
		return nil
	}
	switch tag := d.byte("header tag"); tag {
	case tagNil:
		return nil
	case tagString:
		return d.string("header string")
	case tagTrue:
		return true
	case tagFalse:
		return false
	case tagInt:
		return d.varint("header integer")
	case tagFloat:
		if d.err == nil && len(d.b) < 8 {
			d.fail("header float", errShortFrame)
		}
		if d.err != nil {
			return nil
		}
		v := math.Float64frombits(binary.BigEndian.Uint64(d.b))
		d.b = d.b[8:]
		return v
	case tagBytes:
		return append([]byte{}, d.bytes("header bytes")...)
	case tagTime:
		return time.Unix(0, d.varint("header time")).UTC()
	case tagHeaders:
		h := decodeHeaders(d, depth+1)
		if h == nil && d.err == nil {
			h = driver.Headers{}
		}
		return h
	case tagList:
		n := d.length("list length")
		list := make([]any, 0, min(n, 64))
		for range n {
			v := decodeValue(d, depth+1)
			if d.err != nil {
				return nil
			}
			list = append(list, v)
		}
		return list
	default:
		if d.err == nil {
			d.fail("header value", fmt.Errorf("unknown tag %#x", tag))
		}
		return nil
	}
}

// readMessage reads one ZMTP message from r. Frames before the last are
// read into scratch (reused by the caller: they are decoded at once); the
// last, a DELIVER's body, gets its own allocation. It returns the frames,
// whether the message is a ZMTP command, and the scratch to reuse.
func readMessage(r *bufio.Reader, frames [][]byte, scratch []byte) ([][]byte, bool, []byte, error) {
	frames = frames[:0]
	scratch = scratch[:0]
	for {
		flag, err := r.ReadByte()
		if err != nil {
			if len(frames) > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF // the peer vanished mid-message
			}
			return frames, false, scratch, err
		}
		if flag&^(zmtpMore|zmtpLong|zmtpCommand) != 0 {
			return frames, false, scratch, fmt.Errorf("ZMTP frame flags %#x have reserved bits set", flag)
		}
		var size uint64
		if flag&zmtpLong != 0 {
			var b [8]byte
			if _, err := io.ReadFull(r, b[:]); err != nil {
				return frames, false, scratch, unexpected(err)
			}
			size = binary.BigEndian.Uint64(b[:])
		} else {
			b, err := r.ReadByte()
			if err != nil {
				return frames, false, scratch, unexpected(err)
			}
			size = uint64(b)
		}
		if size > maxFrame {
			return frames, false, scratch, fmt.Errorf("ZMTP frame of %d bytes exceeds the limit of %d", size, maxFrame)
		}
		command := flag&zmtpCommand != 0
		if command && (len(frames) > 0 || flag&zmtpMore != 0) {
			return frames, false, scratch, errors.New("ZMTP command inside a multi-frame message")
		}
		var frame []byte
		if flag&zmtpMore == 0 {
			frame = make([]byte, size)
		} else {
			start := len(scratch)
			scratch = append(scratch, make([]byte, size)...)
			frame = scratch[start:len(scratch):len(scratch)]
		}
		if _, err := io.ReadFull(r, frame); err != nil {
			return frames, false, scratch, unexpected(err)
		}
		frames = append(frames, frame)
		if flag&zmtpMore == 0 {
			return frames, command, scratch, nil
		}
		if len(frames) >= maxMessageFrames {
			return frames, false, scratch, fmt.Errorf("message of more than %d frames", maxMessageFrames)
		}
	}
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
