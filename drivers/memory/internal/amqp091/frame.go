package amqp091

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frame types.
const (
	FrameMethod    uint8 = 1
	FrameHeader    uint8 = 2
	FrameBody      uint8 = 3
	FrameHeartbeat uint8 = 8
)

// FrameEnd ends every frame.
const FrameEnd = 0xCE

// FrameMinSize is the smallest frame_max a peer may negotiate.
const FrameMinSize = 4096

// FrameOverhead is a frame's bytes beyond its payload: type, channel,
// size and the end octet. frame_max counts them.
const FrameOverhead = 8

// ProtocolHeader opens an AMQP 0-9-1 connection; a server answers any
// other opening with it before closing.
const ProtocolHeader = "AMQP\x00\x00\x09\x01"

// Errors reading a frame.
var (
	// ErrFrameTooLarge: the frame's size exceeds the negotiated frame_max.
	ErrFrameTooLarge = errors.New("amqp091: frame exceeds frame_max")
	// ErrFrameEnd: the octet after the payload is not FrameEnd.
	ErrFrameEnd = errors.New("amqp091: frame does not end with 0xCE")
)

// Frame is one frame. Its Payload is valid until the next ReadFrame with
// the same buffer.
type Frame struct {
	Type    uint8
	Channel uint16
	Payload []byte
}

// ReadFrame reads one frame of at most frameMax bytes (0: no limit beyond
// the 32-bit size), reusing buf for its payload. A stream that ends inside
// a frame is io.ErrUnexpectedEOF; one that ends between frames is io.EOF.
func ReadFrame(r *bufio.Reader, frameMax uint32, buf []byte) (Frame, []byte, error) {
	var h [7]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return Frame{}, buf, err
	}
	f := Frame{Type: h[0], Channel: binary.BigEndian.Uint16(h[1:3])}
	size := binary.BigEndian.Uint32(h[3:7])
	if frameMax != 0 && uint64(size)+FrameOverhead > uint64(frameMax) {
		return f, buf, fmt.Errorf("%w: a frame of %d bytes, frame_max is %d", ErrFrameTooLarge, uint64(size)+FrameOverhead, frameMax)
	}
	if cap(buf) < int(size)+1 {
		buf = make([]byte, int(size)+1)
	}
	buf = buf[:int(size)+1]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return f, buf, err
	}
	if buf[size] != FrameEnd {
		return f, buf, fmt.Errorf("%w: got %#x", ErrFrameEnd, buf[size])
	}
	f.Payload = buf[:size]
	return f, buf, nil
}

// AppendFrame appends a frame around payload to dst.
func AppendFrame(dst []byte, typ uint8, channel uint16, payload []byte) []byte {
	dst = append(dst, typ)
	dst = binary.BigEndian.AppendUint16(dst, channel)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	dst = append(dst, payload...)
	return append(dst, FrameEnd)
}

// AppendMethodFrame appends a method frame to dst, encoding m in place.
func AppendMethodFrame(dst []byte, channel uint16, m Method) ([]byte, error) {
	at := len(dst)
	dst = append(dst, FrameMethod, 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint16(dst[at+1:], channel)
	w := Encoder{buf: dst}
	w.Short(m.ClassID())
	w.Short(m.MethodID())
	m.encode(&w)
	if w.err != nil {
		return dst[:at], fmt.Errorf("encoding %s: %w", m.Name(), w.err)
	}
	dst = w.buf
	binary.BigEndian.PutUint32(dst[at+3:], uint32(len(dst)-at-7))
	return append(dst, FrameEnd), nil
}

// AppendContent appends the content header frame and the body frames of
// a message to dst, each body frame at most frameMax bytes in all.
func AppendContent(dst []byte, channel uint16, frameMax uint32, class uint16, p *Properties, body []byte) ([]byte, error) {
	at := len(dst)
	dst = append(dst, FrameHeader, 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint16(dst[at+1:], channel)
	w := Encoder{buf: dst}
	w.Short(class)
	w.Short(0)
	w.LongLong(uint64(len(body)))
	p.encode(&w)
	if w.err != nil {
		return dst[:at], fmt.Errorf("encoding content header: %w", w.err)
	}
	dst = w.buf
	binary.BigEndian.PutUint32(dst[at+3:], uint32(len(dst)-at-7))
	dst = append(dst, FrameEnd)
	chunk := len(body)
	if frameMax != 0 {
		chunk = int(frameMax) - FrameOverhead
	}
	for len(body) > 0 {
		n := min(chunk, len(body))
		dst = AppendFrame(dst, FrameBody, channel, body[:n])
		body = body[n:]
	}
	return dst, nil
}
