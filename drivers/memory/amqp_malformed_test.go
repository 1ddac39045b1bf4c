package memory_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-mq/switchyard/drivers/memory"
	"github.com/switchyard-mq/switchyard/drivers/memory/internal/amqp091"
)

// rawClient speaks AMQP over a bare TCP connection, to send what no
// client library would.
type rawClient struct {
	t  testing.TB
	nc net.Conn
	r  *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawClient{t: t, nc: nc, r: bufio.NewReader(nc)}
}

func (c *rawClient) write(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawClient) send(channel uint16, m amqp091.Method) {
	c.t.Helper()
	b, err := amqp091.AppendMethodFrame(nil, channel, m)
	if err != nil {
		c.t.Fatal(err)
	}
	c.write(b)
}

// next reads the next method, skipping heartbeats and content.
func (c *rawClient) next() (uint16, amqp091.Method, error) {
	for {
		f, _, err := amqp091.ReadFrame(c.r, 0, nil)
		if err != nil {
			return 0, nil, err
		}
		if f.Type != amqp091.FrameMethod {
			continue
		}
		m, err := amqp091.DecodeMethod(f.Payload)
		return f.Channel, m, err
	}
}

func (c *rawClient) expect(want amqp091.Method) amqp091.Method {
	c.t.Helper()
	_, m, err := c.next()
	if err != nil {
		c.t.Fatalf("waiting for %s: %v", want.Name(), err)
	}
	if m.Name() != want.Name() {
		c.t.Fatalf("got %s (%+v), want %s", m.Name(), m, want.Name())
	}
	return m
}

// open does the handshake and opens channel 1.
func (c *rawClient) open() {
	c.t.Helper()
	c.write([]byte(amqp091.ProtocolHeader))
	c.expect(&amqp091.ConnectionStart{})
	c.send(0, &amqp091.ConnectionStartOk{
		ClientProperties: amqp091.Table{"capabilities": amqp091.Table{"authentication_failure_close": true}},
		Mechanism:        "PLAIN", Response: "\x00guest\x00guest", Locale: "en_US",
	})
	tune := c.expect(&amqp091.ConnectionTune{}).(*amqp091.ConnectionTune)
	c.send(0, &amqp091.ConnectionTuneOk{ChannelMax: 16, FrameMax: amqp091.FrameMinSize, Heartbeat: tune.Heartbeat})
	c.send(0, &amqp091.ConnectionOpen{VirtualHost: "/"})
	c.expect(&amqp091.ConnectionOpenOk{})
	c.send(1, &amqp091.ChannelOpen{})
	c.expect(&amqp091.ChannelOpenOk{})
}

// closed waits for the server's connection.close or channel.close and
// returns its code and text, and whether it closed the connection.
func (c *rawClient) closed() (code uint16, text string, connection bool) {
	c.t.Helper()
	for {
		_, m, err := c.next()
		if err != nil {
			c.t.Fatalf("waiting for a close: %v", err)
		}
		switch m := m.(type) {
		case *amqp091.ConnectionClose:
			c.send(0, &amqp091.ConnectionCloseOk{})
			return m.ReplyCode, m.ReplyText, true
		case *amqp091.ChannelClose:
			return m.ReplyCode, m.ReplyText, false
		}
	}
}

func methodFrame(channel uint16, m amqp091.Method) []byte {
	b, err := amqp091.AppendMethodFrame(nil, channel, m)
	if err != nil {
		panic(err)
	}
	return b
}

func contentHeader(channel uint16, class uint16, size uint64) []byte {
	payload := binary.BigEndian.AppendUint16(nil, class)
	payload = binary.BigEndian.AppendUint16(payload, 0)
	payload = binary.BigEndian.AppendUint64(payload, size)
	payload = binary.BigEndian.AppendUint16(payload, 0)
	return amqp091.AppendFrame(nil, amqp091.FrameHeader, channel, payload)
}

// TestAMQPMalformedFrames writes what a broken or hostile client might
// and checks the close code each gets, as RabbitMQ would send it; a
// well-behaved client on the same server carries on throughout.
func TestAMQPMalformedFrames(t *testing.T) {
	url := startServer(t, memory.ServerConfig{MaxMessageSize: 1 << 16})
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "amqp://guest:guest@"), "/")
	_, bystander := dial(t, url)
	q := declareQueue(t, bystander, "bystander", nil)

	publish := methodFrame(1, &amqp091.BasicPublish{RoutingKey: q})
	badEnd := methodFrame(1, &amqp091.ChannelFlow{Active: true})
	badEnd[len(badEnd)-1] = 0
	truncated := methodFrame(1, &amqp091.QueueDeclare{Queue: "abc"})
	truncated = amqp091.AppendFrame(nil, amqp091.FrameMethod, 1, truncated[7:len(truncated)-4])
	tests := []struct {
		name       string
		bytes      []byte
		code       uint16
		connection bool
	}{
		{"frame end octet wrong", badEnd, 501, true},
		{"frame over frame_max", amqp091.AppendFrame(nil, amqp091.FrameBody, 1, make([]byte, amqp091.FrameMinSize)), 501, true},
		{"unknown frame type", amqp091.AppendFrame(nil, 7, 1, nil), 501, true},
		{"unknown class", amqp091.AppendFrame(nil, amqp091.FrameMethod, 1, []byte{0, 99, 0, 10}), 540, true},
		{"unknown method", amqp091.AppendFrame(nil, amqp091.FrameMethod, 1, []byte{0, 60, 0, 99}), 540, true},
		{"truncated arguments", truncated, 501, true},
		{"method payload too short for ids", amqp091.AppendFrame(nil, amqp091.FrameMethod, 1, []byte{0}), 501, true},
		{"content header without publish", contentHeader(1, amqp091.ClassBasic, 1), 505, true},
		{"body without header", amqp091.AppendFrame(nil, amqp091.FrameBody, 1, []byte("x")), 505, true},
		{"method instead of content header", append(bytes.Clone(publish), methodFrame(1, &amqp091.BasicQos{})...), 505, true},
		{"header of another class", append(bytes.Clone(publish), contentHeader(1, amqp091.ClassQueue, 1)...), 505, true},
		{"body beyond its declared size", append(append(bytes.Clone(publish), contentHeader(1, amqp091.ClassBasic, 1)...), amqp091.AppendFrame(nil, amqp091.FrameBody, 1, []byte("xy"))...), 501, true},
		{"message over the maximum size", append(bytes.Clone(publish), contentHeader(1, amqp091.ClassBasic, 1<<20)...), 406, false},
		{"method on a channel not open", methodFrame(2, &amqp091.BasicQos{}), 504, true},
		{"channel opened twice", methodFrame(1, &amqp091.ChannelOpen{}), 504, true},
		{"channel beyond channel_max", methodFrame(17, &amqp091.ChannelOpen{}), 504, true},
		{"heartbeat on a channel", amqp091.AppendFrame(nil, amqp091.FrameHeartbeat, 1, nil), 501, true},
		{"connection method on a channel", methodFrame(1, &amqp091.ConnectionOpen{VirtualHost: "/"}), 503, true},
		{"channel method on channel 0", methodFrame(0, &amqp091.ChannelFlow{Active: true}), 503, true},
		{"content on channel 0", amqp091.AppendFrame(nil, amqp091.FrameBody, 0, []byte("x")), 505, true},
		{"server method from a client", methodFrame(1, &amqp091.BasicDeliver{}), 503, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			c.open()
			c.write(tt.bytes)
			code, text, connection := c.closed()
			if code != tt.code || connection != tt.connection {
				t.Fatalf("closed with %d %q (connection: %v), want %d (connection: %v)", code, text, connection, tt.code, tt.connection)
			}
			if _, err := bystander.QueueDeclarePassive(q, false, false, false, false, nil); err != nil {
				t.Fatalf("the other client suffered: %v", err)
			}
		})
	}
}

func TestAMQPWrongProtocolHeader(t *testing.T) {
	url := startServer(t, memory.ServerConfig{})
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "amqp://guest:guest@"), "/")
	for _, header := range []string{"AMQP\x00\x00\x09\x00", "AMQP\x01\x01\x00\x0a", "GET / HTTP/1.1\r\n\r\n"} {
		t.Run(header, func(t *testing.T) {
			c := dialRaw(t, addr)
			c.write([]byte(header))
			got, err := io.ReadAll(c.r)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != amqp091.ProtocolHeader {
				t.Fatalf("answered %q, want %q and the end of the connection", got, amqp091.ProtocolHeader)
			}
		})
	}
}

// TestAMQPClientVanishesMidFrame: a publisher that dies inside a frame
// loses only that message; what was confirmed stays queued.
func TestAMQPClientVanishesMidFrame(t *testing.T) {
	url := startServer(t, memory.ServerConfig{})
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "amqp://guest:guest@"), "/")
	_, ch := dial(t, url)
	q := declareQueue(t, ch, "kept", nil)
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), "", q, false, false, amqp.Publishing{Body: []byte("confirmed")})
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := dc.WaitContext(context.Background()); !ok || err != nil {
			t.Fatalf("confirm: %v %v", ok, err)
		}
	}
	cuts := map[string][]byte{
		"inside a method frame":   methodFrame(1, &amqp091.BasicPublish{RoutingKey: q})[:9],
		"between header and body": append(methodFrame(1, &amqp091.BasicPublish{RoutingKey: q}), contentHeader(1, amqp091.ClassBasic, 10)...),
		"inside a body frame": append(append(methodFrame(1, &amqp091.BasicPublish{RoutingKey: q}), contentHeader(1, amqp091.ClassBasic, 10)...),
			amqp091.AppendFrame(nil, amqp091.FrameBody, 1, []byte("0123456789"))[:12]...),
	}
	for name, b := range cuts {
		t.Run(name, func(t *testing.T) {
			c := dialRaw(t, addr)
			c.open()
			c.write(b)
			c.nc.Close()
			got, err := ch.QueueDeclarePassive(q, false, false, false, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got.Messages != 3 {
				t.Fatalf("%d messages queued, want the 3 confirmed", got.Messages)
			}
		})
	}
}
