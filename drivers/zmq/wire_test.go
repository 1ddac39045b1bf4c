package zmq

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/transport/driver"
)

func TestPropsRoundTrip(t *testing.T) {
	sent := driver.Message{
		ContentType: "application/json", ContentEncoding: "utf-8", MessageID: "m-1", CorrelationID: "c-1",
		ReplyTo: "reply", Expiration: 1500 * time.Millisecond, Persistent: true,
		Timestamp: time.Date(2024, 5, 17, 10, 30, 0, 123, time.UTC),
		Headers: driver.Headers{
			"s": "v", "i": int64(-42), "small": 7, "t": true, "f": false, "d": 2.5, "b": []byte{0, 1, 255},
			"time": time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC), "nil": nil,
			"nested": driver.Headers{"deep": []any{"x", int64(1), driver.Headers{}}},
		},
	}
	props, err := encodeProps("ex", "a.b", &sent)
	if err != nil {
		t.Fatal(err)
	}
	var got driver.Message
	ex, key, err := decodeProps(props, &got)
	if err != nil {
		t.Fatal(err)
	}
	if ex != "ex" || key != "a.b" {
		t.Errorf("exchange, key = %q, %q", ex, key)
	}
	want := sent
	want.Headers = driver.Headers{}
	for k, v := range sent.Headers {
		want.Headers[k] = v
	}
	want.Headers["small"] = int64(7) // integers come back as int64
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %#v\nwant %#v", got, want)
	}
}

func TestEncodeRejectsUnportableHeaders(t *testing.T) {
	for _, v := range []any{struct{}{}, uint64(1), make(chan int), map[int]int{}} {
		if _, err := encodeProps("", "q", &driver.Message{Headers: driver.Headers{"k": v}}); !errors.Is(err, driver.ErrInvalid) {
			t.Errorf("header of type %T: %v, want ErrInvalid", v, err)
		}
	}
	deep := any("leaf")
	for range maxHeaderDepth + 1 {
		deep = []any{deep}
	}
	if _, err := encodeProps("", "q", &driver.Message{Headers: driver.Headers{"k": deep}}); !errors.Is(err, driver.ErrInvalid) {
		t.Errorf("headers nested too deep: %v, want ErrInvalid", err)
	}
}

func uv(v uint64) []byte { return binary.AppendUvarint(nil, v) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// TestDecodeBadFrames: every malformed frame is an error naming what is
// wrong, never a panic.
func TestDecodeBadFrames(t *testing.T) {
	validDeliver := cat(uv(1), uv(2), uv(0), []byte{0}, uv(0))
	validProps, _ := encodeProps("x", "k", &driver.Message{Headers: driver.Headers{"a": "b"}})
	rows := []struct {
		name   string
		decode func() error
		want   string
	}{
		{"empty header frame", func() error { _, _, err := checkHeader(nil); return err }, "at least 2"},
		{"other protocol version", func() error { _, _, err := checkHeader([]byte{9, 'D'}); return err }, "protocol version 9"},
		{"deliver: empty", func() error { _, err := decodeDeliverHeader(nil); return err }, "consumer"},
		{"deliver: truncated varint", func() error { _, err := decodeDeliverHeader([]byte{0x80}); return err }, "malformed varint"},
		{"deliver: missing flags", func() error { _, err := decodeDeliverHeader(cat(uv(1), uv(2), uv(0))); return err }, "flags"},
		{"deliver: unknown flag bits", func() error {
			_, err := decodeDeliverHeader(cat(uv(1), uv(2), uv(0), []byte{0x80}, uv(0)))
			return err
		}, "unknown bits"},
		{"deliver: trailing bytes", func() error { _, err := decodeDeliverHeader(append(validDeliver, 0)); return err }, "trailing"},
		{"deliver: huge count", func() error {
			_, err := decodeDeliverHeader(cat(uv(1), uv(2), uv(1<<40), []byte{0}, uv(0)))
			return err
		}, "delivery count"},
		{"deliver: ttl out of range", func() error {
			_, err := decodeDeliverHeader(cat(uv(1), uv(2), uv(0), []byte{0}, uv(1<<63+1)))
			return err
		}, "out of range"},
		{"settle: count beyond frame", func() error { _, err := decodeSettle(uv(1000), nil); return err }, "exceeds"},
		{"settle: unknown op", func() error { _, err := decodeSettle(cat(uv(1), uv(5), []byte{99}), nil); return err }, "unknown settlement op"},
		{"settle: op zero", func() error { _, err := decodeSettle(cat(uv(1), uv(5), []byte{0}), nil); return err }, "unknown settlement op"},
		{"settle: truncated", func() error { _, err := decodeSettle(cat(uv(2), uv(5), []byte{1}, uv(6)), nil); return err }, "op"},
		{"props: empty", func() error { _, _, err := decodeProps(nil, &driver.Message{}); return err }, "exchange"},
		{"props: string longer than frame", func() error { _, _, err := decodeProps(uv(1<<30), &driver.Message{}); return err }, "exceeds"},
		{"props: trailing", func() error { _, _, err := decodeProps(append(validProps, 1), &driver.Message{}); return err }, "trailing"},
		{"props: truncated", func() error { _, _, err := decodeProps(validProps[:len(validProps)-1], &driver.Message{}); return err }, ""},
		{"props: unknown header tag", func() error {
			p := cat(bytes.Repeat(uv(0), 8), []byte{0}, uv(1), uv(1), []byte("k"), []byte{'?'})
			_, _, err := decodeProps(p, &driver.Message{})
			return err
		}, "unknown tag"},
		{"props: header count beyond frame", func() error {
			p := cat(bytes.Repeat(uv(0), 8), []byte{0}, uv(1<<20))
			_, _, err := decodeProps(p, &driver.Message{})
			return err
		}, "exceeds"},
		{"props: short float", func() error {
			p := cat(bytes.Repeat(uv(0), 8), []byte{0}, uv(1), uv(1), []byte("k"), []byte{tagFloat, 1, 2})
			_, _, err := decodeProps(p, &driver.Message{})
			return err
		}, "header float"},
		{"props: nesting too deep", func() error {
			p := cat(bytes.Repeat(uv(0), 8), []byte{0}, uv(1), uv(1), []byte("k"))
			for range maxHeaderDepth + 2 {
				p = append(p, tagList, 1)
			}
			p = append(p, tagNil)
			_, _, err := decodeProps(p, &driver.Message{})
			return err
		}, "nested deeper"},
		{"props: unknown property flags", func() error {
			p := cat(bytes.Repeat(uv(0), 8), []byte{0x80}, uv(0))
			_, _, err := decodeProps(p, &driver.Message{})
			return err
		}, "unknown bits"},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			err := row.decode()
			if err == nil {
				t.Fatal("decoded without error")
			}
			if !strings.Contains(err.Error(), row.want) {
				t.Errorf("error %q does not mention %q", err, row.want)
			}
		})
	}
}

// TestReadMessageBadFrames: the ZMTP framing is checked before anything is
// allocated for it.
func TestReadMessageBadFrames(t *testing.T) {
	long := func(size uint64) []byte { return binary.BigEndian.AppendUint64([]byte{zmtpLong}, size) }
	rows := []struct {
		name  string
		input []byte
		want  string
	}{
		{"reserved flag bits", []byte{0x80, 0}, "reserved bits"},
		{"frame longer than the limit", long(1 << 62), "exceeds the limit"},
		{"length above int64", long(1<<64 - 1), "exceeds the limit"},
		{"vanished in the length", []byte{zmtpLong, 0, 0}, io.ErrUnexpectedEOF.Error()},
		{"vanished in the body", []byte{0, 10, 1, 2}, io.ErrUnexpectedEOF.Error()},
		{"vanished between frames", []byte{zmtpMore, 1, 'a'}, io.ErrUnexpectedEOF.Error()},
		{"too many frames", bytes.Repeat([]byte{zmtpMore, 0}, maxMessageFrames+1), "more than"},
		{"multi-frame command", []byte{zmtpCommand | zmtpMore, 0}, "command inside"},
		{"command after a frame", []byte{zmtpMore, 0, zmtpCommand, 0}, "command inside"},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			_, _, _, err := readMessage(bufio.NewReader(bytes.NewReader(row.input)), nil, nil)
			if err == nil || !strings.Contains(err.Error(), row.want) {
				t.Errorf("error %v, want one mentioning %q", err, row.want)
			}
		})
	}
}

func TestFramingRoundTrip(t *testing.T) {
	var buf []byte
	body := bytes.Repeat([]byte("b"), 300) // a long frame
	buf = appendDeliver(buf, deliverHeader{consumer: 3, seq: 1 << 40, count: 2, redelivered: true, ttl: time.Second}, []byte("props"), body)
	ss := make([]settlement, 200)
	for i := range ss {
		ss[i] = settlement{seq: uint64(i) << 20, op: settleOp(1 + i%int(opEnd-1))}
	}
	buf = appendSettle(buf, ss)
	r := bufio.NewReader(bytes.NewReader(buf))

	frames, cmd, _, err := readMessage(r, nil, nil)
	if err != nil || cmd || len(frames) != 3 {
		t.Fatalf("deliver: %d frames, command %v, %v", len(frames), cmd, err)
	}
	typ, fields, err := checkHeader(frames[0])
	if err != nil || typ != typeDeliver {
		t.Fatalf("deliver header: type %q, %v", typ, err)
	}
	h, err := decodeDeliverHeader(fields)
	if want := (deliverHeader{consumer: 3, seq: 1 << 40, count: 2, redelivered: true, ttl: time.Second}); err != nil || h != want {
		t.Errorf("deliver header %+v, %v; want %+v", h, err, want)
	}
	if string(frames[1]) != "props" || !bytes.Equal(frames[2], body) {
		t.Errorf("props %q, body of %d bytes", frames[1], len(frames[2]))
	}

	frames, _, _, err = readMessage(r, frames, nil)
	if err != nil || len(frames) != 1 {
		t.Fatalf("settle: %d frames, %v", len(frames), err)
	}
	typ, fields, _ = checkHeader(frames[0])
	got, err := decodeSettle(fields, nil)
	if typ != typeSettle || err != nil || !reflect.DeepEqual(got, ss) {
		t.Errorf("settle: type %q, %v, %d settlements", typ, err, len(got))
	}
	if _, _, _, err := readMessage(r, nil, nil); !errors.Is(err, io.EOF) {
		t.Errorf("after the last message: %v, want EOF", err)
	}
}

// FuzzDecode: no input makes a decoder panic.
func FuzzDecode(f *testing.F) {
	props, _ := encodeProps("x", "k", &driver.Message{Headers: driver.Headers{"a": []any{int64(1), "b"}}, Timestamp: time.Unix(1, 0)})
	f.Add(props)
	f.Add(appendSettle(nil, []settlement{{1, opAck}, {2, opRequeue}}))
	f.Add(appendDeliver(nil, deliverHeader{consumer: 1, seq: 2}, props, []byte("body")))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = decodeProps(b, &driver.Message{})
		_, _ = decodeDeliverHeader(b)
		_, _ = decodeSettle(b, nil)
		_, _, _ = checkHeader(b)
		_, _, _, _ = readMessage(bufio.NewReader(bytes.NewReader(b)), nil, nil)
	})
}
