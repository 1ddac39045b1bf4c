package transport_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/transport"
	"github.com/switchyard-mq/switchyard/transport/driver"

	_ "github.com/switchyard-mq/switchyard/drivers/memory"
)

// limitedScheme is a driver that supports direct exchanges only. Its
// connection embeds a nil driver.Conn, so a call the transport should
// have refused panics instead of passing unnoticed.
const limitedScheme = "limited-test"

type limitedConn struct{ driver.Conn }

func (limitedConn) Capabilities() driver.Capabilities {
	return driver.NewCapabilities(driver.CapDirect)
}
func (limitedConn) Close() error { return nil }

// unreachableScheme's driver fails to open with an error of its own, no
// sentinel: a connection refused.
const unreachableScheme = "test-unreachable"

func init() {
	transport.Register(limitedScheme, driver.OpenerFunc(func(context.Context, *driver.URL) (driver.Conn, error) {
		return limitedConn{}, nil
	}))
	transport.Register(unreachableScheme, driver.OpenerFunc(func(context.Context, *driver.URL) (driver.Conn, error) {
		return nil, errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
	}))
}

// wantErr checks that err wraps target and names the bad part.
func wantErr(t *testing.T, what string, err, target error, wantText string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: %v, want an error wrapping %q", what, err, target)
	}
	if !strings.Contains(err.Error(), wantText) {
		t.Errorf("%s: %q does not name the bad part (%q)", what, err, wantText)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("%s: the error shows the password: %q", what, err)
	}
}

func TestOpenBad(t *testing.T) {
	tests := []struct {
		name     string
		url      string
		want     error
		wantText string
	}{
		{"unknown scheme lists the registered ones", "nosuch://h/", transport.ErrInvalid, `no driver for scheme "nosuch" (registered: ` + limitedScheme + ", memory"},
		{"malformed URL", "memory:/broker", transport.ErrInvalid, `missing "://"`},
		{"bad port, password hidden", "nosuch://u:" + secret + "@h:99999/", transport.ErrInvalid, `port "99999"`},
		{"driver refuses the URL, password hidden", "memory://u:" + secret + "@broker", transport.ErrInvalid, "memory://u:xxxxx@broker"},
		{"backend unreachable, whatever the driver said", unreachableScheme + "://127.0.0.1:1/", transport.ErrClosed, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := transport.Open(t.Context(), tt.url)
			if err == nil {
				_ = tr.Close()
			}
			wantErr(t, "Open("+testName(tt.url)+")", err, tt.want, tt.wantText)
		})
	}
}

// TestTransportBadInput: each bad call fails with the right sentinel and a
// message naming what was wrong, on a fresh memory:// broker.
func TestTransportBadInput(t *testing.T) {
	tests := []struct {
		name     string
		call     func(ctx context.Context, tr *transport.Transport) error
		want     error
		wantText string
	}{
		{"consume with an empty queue name", func(ctx context.Context, tr *transport.Transport) error {
			_, err := tr.Consume(ctx, "", transport.ConsumeOptions{})
			return err
		}, transport.ErrInvalid, "queue name is empty"},
		{"purge with an empty queue name", func(ctx context.Context, tr *transport.Transport) error {
			_, err := tr.PurgeQueue(ctx, "")
			return err
		}, transport.ErrInvalid, "queue name is empty"},
		{"delete with an empty queue name", func(ctx context.Context, tr *transport.Transport) error {
			_, err := tr.DeleteQueue(ctx, "")
			return err
		}, transport.ErrInvalid, "queue name is empty"},
		{"bind with an empty queue name", func(ctx context.Context, tr *transport.Transport) error {
			return tr.Bind(ctx, transport.Binding{Exchange: "amq.direct", Key: "k"})
		}, transport.ErrInvalid, "binding queue is empty"},
		{"bind with an empty exchange name", func(ctx context.Context, tr *transport.Transport) error {
			return tr.Bind(ctx, transport.Binding{Queue: "q", Key: "k"})
		}, transport.ErrInvalid, "binding exchange is empty"},
		{"publish after Close", func(ctx context.Context, tr *transport.Transport) error {
			if err := tr.Close(); err != nil {
				return err
			}
			return tr.Publish(ctx, "", "q", transport.Message{Body: []byte("late")})
		}, transport.ErrClosed, `publish to exchange "" with key "q"`},
		{"bind to a missing exchange", func(ctx context.Context, tr *transport.Transport) error {
			if _, err := tr.DeclareQueue(ctx, transport.Queue{Name: "q"}); err != nil {
				return err
			}
			return tr.Bind(ctx, transport.Binding{Exchange: "no-such-exchange", Queue: "q", Key: "k"})
		}, transport.ErrNotFound, `exchange "no-such-exchange"`},
		{"consume a missing queue", func(ctx context.Context, tr *transport.Transport) error {
			_, err := tr.Consume(ctx, "no-such-queue", transport.ConsumeOptions{})
			return err
		}, transport.ErrNotFound, `"no-such-queue"`},
		{"publish to a missing exchange", func(ctx context.Context, tr *transport.Transport) error {
			return tr.Publish(ctx, "no-such-exchange", "k", transport.Message{})
		}, transport.ErrNotFound, `"no-such-exchange"`},
		{"declare a queue of an unknown type", func(ctx context.Context, tr *transport.Transport) error {
			_, err := tr.DeclareQueue(ctx, transport.Queue{Name: "q", Type: "lazy"})
			return err
		}, transport.ErrInvalid, `queue type "lazy"`},
		{"declare a non-durable quorum queue", func(ctx context.Context, tr *transport.Transport) error {
			_, err := tr.DeclareQueue(ctx, transport.Queue{Name: "q", Type: transport.QuorumQueue, Exclusive: true})
			return err
		}, transport.ErrInvalid, "a quorum queue cannot be non-durable, exclusive"},
		{"declare a stream queue with what a stream cannot hold", func(ctx context.Context, tr *transport.Transport) error {
			_, err := tr.DeclareQueue(ctx, transport.Queue{Name: "q", Durable: true, Type: transport.StreamQueue,
				Expires: time.Minute, MaxLength: 1, DeadLetterExchange: "dlx", DeliveryLimit: 1})
			return err
		}, transport.ErrInvalid, "a stream queue cannot be expiring, length-limited, dead-lettering, delivery-limited"},
		{"declare an exchange of an unknown kind", func(ctx context.Context, tr *transport.Transport) error {
			return tr.DeclareExchange(ctx, transport.Exchange{Name: "x", Kind: "headers"})
		}, transport.ErrInvalid, `exchange kind "headers"`},
		{"declare a queue with the amq. prefix", func(ctx context.Context, tr *transport.Transport) error {
			_, err := tr.DeclareQueue(ctx, transport.Queue{Name: "amq.mine"})
			return err
		}, transport.ErrInvalid, `"amq." is reserved`},
		{"declare a queue with a 300-byte name", func(ctx context.Context, tr *transport.Transport) error {
			_, err := tr.DeclareQueue(ctx, transport.Queue{Name: strings.Repeat("q", 300)})
			return err
		}, transport.ErrInvalid, "300 bytes long"},
		{"declare a queue with a negative TTL", func(ctx context.Context, tr *transport.Transport) error {
			_, err := tr.DeclareQueue(ctx, transport.Queue{Name: "q", MessageTTL: -time.Second})
			return err
		}, transport.ErrInvalid, "negative"},
		{"consume with a negative prefetch", func(ctx context.Context, tr *transport.Transport) error {
			_, err := tr.Consume(ctx, "q", transport.ConsumeOptions{Prefetch: -5})
			return err
		}, transport.ErrInvalid, "negative prefetch -5"},
		{"publish with a negative expiration", func(ctx context.Context, tr *transport.Transport) error {
			return tr.Publish(ctx, "", "q", transport.Message{Expiration: -time.Second})
		}, transport.ErrInvalid, "negative expiration"},
		{"publish with a 256-byte routing key", func(ctx context.Context, tr *transport.Transport) error {
			return tr.Publish(ctx, "", strings.Repeat("k", 256), transport.Message{})
		}, transport.ErrInvalid, "longer than 255 bytes"},
		{"redeclare a queue with other properties", func(ctx context.Context, tr *transport.Transport) error {
			if _, err := tr.DeclareQueue(ctx, transport.Queue{Name: "q"}); err != nil {
				return err
			}
			_, err := tr.DeclareQueue(ctx, transport.Queue{Name: "q", MaxLength: 1})
			return err
		}, transport.ErrPrecondition, `declare queue "q"`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := transport.Open(t.Context(), "memory://transport-bad-input-"+string(rune('a'+i)))
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			wantErr(t, tt.name, tt.call(t.Context(), tr), tt.want, tt.wantText)
		})
	}
}

// TestTransportRefusesUnsupported: the transport refuses what the driver
// lacks with ErrUnsupported naming the capability, without calling it.
func TestTransportRefusesUnsupported(t *testing.T) {
	tr, err := transport.Open(t.Context(), limitedScheme+"://user:"+secret+"@h/")
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if s := tr.String(); strings.Contains(s, secret) || !strings.Contains(s, "user:xxxxx@h") {
		t.Errorf("Transport.String() = %q, want the password hidden", s)
	}
	ctx := t.Context()
	tests := []struct {
		name string
		call func() error
		cap  transport.Capability
	}{
		{"fanout exchange", func() error { return tr.DeclareExchange(ctx, transport.Exchange{Name: "x", Kind: transport.Fanout}) }, transport.CapFanout},
		{"topic exchange", func() error { return tr.DeclareExchange(ctx, transport.Exchange{Name: "x", Kind: transport.Topic}) }, transport.CapTopic},
		{"auto-delete exchange", func() error {
			return tr.DeclareExchange(ctx, transport.Exchange{Name: "x", Kind: transport.Direct, AutoDelete: true})
		}, transport.CapAutoDelete},
		{"server-named queue", func() error { _, err := tr.DeclareQueue(ctx, transport.Queue{}); return err }, transport.CapServerNamedQueue},
		{"exclusive queue", func() error { _, err := tr.DeclareQueue(ctx, transport.Queue{Name: "q", Exclusive: true}); return err }, transport.CapExclusiveQueue},
		{"message TTL", func() error {
			_, err := tr.DeclareQueue(ctx, transport.Queue{Name: "q", MessageTTL: time.Second})
			return err
		}, transport.CapMessageTTL},
		{"queue expiry", func() error {
			_, err := tr.DeclareQueue(ctx, transport.Queue{Name: "q", Expires: time.Second})
			return err
		}, transport.CapQueueExpiry},
		{"max length", func() error { _, err := tr.DeclareQueue(ctx, transport.Queue{Name: "q", MaxLength: 1}); return err }, transport.CapMaxLength},
		{"dead-letter exchange", func() error {
			_, err := tr.DeclareQueue(ctx, transport.Queue{Name: "q", DeadLetterExchange: "dlx"})
			return err
		}, transport.CapDeadLetter},
		{"delivery limit", func() error { _, err := tr.DeclareQueue(ctx, transport.Queue{Name: "q", DeliveryLimit: 3}); return err }, transport.CapDeliveryLimit},
		{"quorum queue", func() error {
			_, err := tr.DeclareQueue(ctx, transport.Queue{Name: "q", Durable: true, Type: transport.QuorumQueue})
			return err
		}, transport.CapQuorumQueue},
		{"stream queue", func() error {
			_, err := tr.DeclareQueue(ctx, transport.Queue{Name: "q", Durable: true, Type: transport.StreamQueue})
			return err
		}, transport.CapStreamQueue},
		{"bind", func() error { return tr.Bind(ctx, transport.Binding{Exchange: "x", Queue: "q"}) }, transport.CapQueueBinding},
		{"prefetch", func() error { _, err := tr.Consume(ctx, "q", transport.ConsumeOptions{Prefetch: 1}); return err }, transport.CapPrefetch},
		{"mandatory publish", func() error { return tr.Publish(ctx, "", "q", transport.Message{Mandatory: true}) }, transport.CapMandatory},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, tt.name, tt.call(), transport.ErrUnsupported, `"`+tt.cap.String()+`" capability`)
		})
	}
}
