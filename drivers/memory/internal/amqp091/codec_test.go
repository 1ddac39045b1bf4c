package amqp091

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
	"time"
)

func TestTableRoundTrip(t *testing.T) {
	ts := time.Unix(1700000000, 0).UTC()
	in := Table{
		"bool": true, "int8": int8(-3), "uint8": uint8(200), "int16": int16(-300), "uint16": uint16(60000),
		"int32": int32(-70000), "uint32": uint32(4000000000), "int64": int64(-1 << 40), "float32": float32(1.5),
		"float64": 2.25, "decimal": Decimal{Scale: 2, Value: 12345}, "string": "héllo", "bytes": []byte{0, 1, 2},
		"time": ts, "nil": nil, "nested": Table{"a": []any{"x", int64(1), Table{"deep": false}}},
	}
	var w Encoder
	w.Table(in)
	if w.Err() != nil {
		t.Fatal(w.Err())
	}
	r := NewDecoder(w.Bytes())
	out := r.Table()
	if r.Err() != nil || r.Len() != 0 {
		t.Fatalf("decode: %v, %d bytes left", r.Err(), r.Len())
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip:\n in %#v\nout %#v", in, out)
	}
}

func TestEncodeRefusesWhatIsNoFieldValue(t *testing.T) {
	tests := []struct {
		name string
		v    any
	}{
		{"struct", struct{}{}},
		{"channel", make(chan int)},
		{"long short string key", map[string]any{string(make([]byte, 300)): 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w Encoder
			w.Table(Table{"k": tt.v})
			if w.Err() == nil {
				t.Fatalf("encoding %T: no error", tt.v)
			}
		})
	}
}

func TestMethodRoundTrip(t *testing.T) {
	methods := []Method{
		&ConnectionStart{VersionMajor: 0, VersionMinor: 9, ServerProperties: Table{"product": "x"}, Mechanisms: "PLAIN AMQPLAIN", Locales: "en_US"},
		&QueueDeclare{Queue: "q", Passive: false, Durable: true, Exclusive: false, AutoDelete: true, Nowait: true, Arguments: Table{"x-message-ttl": int32(5)}},
		&BasicPublish{Exchange: "ex", RoutingKey: "rk", Mandatory: true, Immediate: false},
		&BasicNack{DeliveryTag: 1 << 40, Multiple: true, Requeue: false},
		&ChannelCloseOk{},
	}
	for _, m := range methods {
		t.Run(m.Name(), func(t *testing.T) {
			frame, err := AppendMethodFrame(nil, 7, m)
			if err != nil {
				t.Fatal(err)
			}
			f, _, err := ReadFrame(bufio.NewReader(bytes.NewReader(frame)), 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			if f.Type != FrameMethod || f.Channel != 7 {
				t.Fatalf("frame type %d channel %d", f.Type, f.Channel)
			}
			got, err := DecodeMethod(f.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, m) {
				t.Fatalf("got %#v, want %#v", got, m)
			}
		})
	}
}

func TestContentRoundTrip(t *testing.T) {
	p := Properties{
		Flags:       FlagContentType | FlagHeaders | FlagDeliveryMode | FlagPriority | FlagExpiration | FlagTimestamp | FlagAppID,
		ContentType: "text/plain", Headers: Table{"h": "v"}, DeliveryMode: 2, Priority: 9, Expiration: "60000",
		Timestamp: time.Unix(42, 0).UTC(), AppID: "app",
	}
	body := bytes.Repeat([]byte("0123456789"), 1000)
	out, err := AppendContent(nil, 3, FrameMinSize, ClassBasic, &p, body)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(bytes.NewReader(out))
	f, _, err := ReadFrame(br, FrameMinSize, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := DecodeContentHeader(f.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if h.Class != ClassBasic || h.BodySize != uint64(len(body)) || !reflect.DeepEqual(h.Properties, p) {
		t.Fatalf("header %#v", h)
	}
	var got []byte
	for frames := 0; ; frames++ {
		f, _, err := ReadFrame(br, FrameMinSize, nil)
		if errors.Is(err, io.EOF) {
			if frames != 3 {
				t.Fatalf("%d body frames, want 3 of at most %d bytes", frames, FrameMinSize)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, f.Payload...)
	}
	if !bytes.Equal(got, body) {
		t.Fatal("body differs")
	}
}

func TestReadFrameErrors(t *testing.T) {
	ok := AppendFrame(nil, FrameBody, 1, []byte("abc"))
	badEnd := bytes.Clone(ok)
	badEnd[len(badEnd)-1] = 0
	tests := []struct {
		name     string
		in       []byte
		frameMax uint32
		want     error
	}{
		{"clean end", nil, 0, io.EOF},
		{"inside header", ok[:3], 0, io.ErrUnexpectedEOF},
		{"inside payload", ok[:9], 0, io.ErrUnexpectedEOF},
		{"no end octet", ok[:len(ok)-1], 0, io.ErrUnexpectedEOF},
		{"wrong end octet", badEnd, 0, ErrFrameEnd},
		{"over frame_max", AppendFrame(nil, FrameBody, 1, make([]byte, FrameMinSize)), FrameMinSize, ErrFrameTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ReadFrame(bufio.NewReader(bytes.NewReader(tt.in)), tt.frameMax, nil)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
		})
	}
}

func TestDecodeMethodErrors(t *testing.T) {
	publish, _ := AppendMethodFrame(nil, 1, &BasicPublish{Exchange: "e", RoutingKey: "k"})
	payload := publish[7 : len(publish)-1]
	tests := []struct {
		name    string
		payload []byte
		unknown bool
	}{
		{"empty", nil, false},
		{"unknown class", []byte{0, 99, 0, 10}, true},
		{"unknown method", []byte{0, 60, 0, 99}, true},
		{"truncated", payload[:len(payload)-2], false},
		{"trailing bytes", append(bytes.Clone(payload), 0), false},
		{"short string past end", []byte{0, 40, 0, 10, 0, 0, 200, 'x'}, false},
		{"table with unknown type", []byte{0, 10, 0, 11, 0, 0, 0, 3, 1, 'k', 'Z'}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeMethod(tt.payload)
			var unknown *UnknownMethodError
			switch {
			case tt.unknown && !errors.As(err, &unknown):
				t.Fatalf("err %v, want an UnknownMethodError", err)
			case !tt.unknown && !errors.Is(err, ErrSyntax):
				t.Fatalf("err %v, want ErrSyntax", err)
			}
		})
	}
}

func TestDeepNestingIsRefused(t *testing.T) {
	// 100 nested arrays: each 'A' then a length.
	var b []byte
	for i := 0; i < 100; i++ {
		b = append([]byte{'A', 0, 0, 0, byte(len(b))}, b...)
		if len(b) > 250 {
			break
		}
	}
	r := NewDecoder(append([]byte{0, 0, 0, byte(len(b) + 2), 1, 'k'}, b...))
	r.Table()
	if !errors.Is(r.Err(), ErrSyntax) {
		t.Fatalf("err %v, want ErrSyntax", r.Err())
	}
}
