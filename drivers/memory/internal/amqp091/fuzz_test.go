package amqp091

import (
	"bufio"
	"bytes"
	"testing"
)

// FuzzDecodeFrame feeds arbitrary bytes to the frame reader and then to
// the method and content-header decoders: any input must give a frame and
// a value or an error, never a panic, and what decodes must encode again.
func FuzzDecodeFrame(f *testing.F) {
	for _, m := range []Method{
		&ConnectionStartOk{ClientProperties: Table{"capabilities": Table{"basic.nack": true}}, Mechanism: "PLAIN", Response: "\x00guest\x00guest", Locale: "en_US"},
		&QueueDeclare{Queue: "q", Durable: true, Arguments: Table{"x-message-ttl": int32(5), "a": []any{int64(1), "s"}}},
		&BasicPublish{Exchange: "ex", RoutingKey: "rk", Mandatory: true},
		&BasicAck{DeliveryTag: 5, Multiple: true},
	} {
		b, err := AppendMethodFrame(nil, 1, m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	content, err := AppendContent(nil, 1, FrameMinSize, ClassBasic, &Properties{Flags: FlagHeaders | FlagTimestamp, Headers: Table{"d": Decimal{1, 2}}}, []byte("body"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(content)
	f.Add([]byte{FrameHeartbeat, 0, 0, 0, 0, 0, 0, FrameEnd})
	f.Add([]byte{FrameMethod, 0, 1, 0, 0, 0, 4, 0, 60, 0, 99, FrameEnd})
	f.Add([]byte{FrameMethod, 0, 1, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		var buf []byte
		for {
			var fr Frame
			var err error
			fr, buf, err = ReadFrame(r, 1<<16, buf)
			if err != nil {
				return
			}
			switch fr.Type {
			case FrameMethod:
				m, err := DecodeMethod(fr.Payload)
				if err != nil {
					continue
				}
				if _, err := AppendMethodFrame(nil, fr.Channel, m); err != nil {
					t.Fatalf("%s decoded but does not encode: %v", m.Name(), err)
				}
			case FrameHeader:
				h, err := DecodeContentHeader(fr.Payload)
				if err != nil {
					continue
				}
				if _, err := AppendContent(nil, fr.Channel, 0, h.Class, &h.Properties, nil); err != nil {
					t.Fatalf("content header decoded but does not encode: %v", err)
				}
			}
		}
	})
}
