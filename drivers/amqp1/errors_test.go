package amqp1_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-mq/switchyard/transport"
)

// promptly bounds every failing call below: a refusal must come back as an
// error, never as a hang.
const promptly = 10 * time.Second

// TestOpenErrors: bad URLs and refused connections fail Open with an error
// that names the cause, within the context's time.
func TestOpenErrors(t *testing.T) {
	checkLeaks(t)
	rabbit := func(t testing.TB) string { return rabbitURL(t) }
	tests := []struct {
		name    string
		url     func(t testing.TB) string
		want    error
		mention []string
	}{
		{"unknown option", func(testing.TB) string { return "amqp://127.0.0.1:1/?prefetch=5" }, transport.ErrInvalid, []string{"prefetch"}},
		{"bad flavour", func(testing.TB) string { return "amqp://127.0.0.1:1/?flavour=artemis" }, transport.ErrInvalid, []string{"flavour", "artemis"}},
		{"bad prefetch", func(testing.TB) string { return "amqp://127.0.0.1:1/?prefetch_size=0" }, transport.ErrInvalid, []string{"prefetch_size"}},
		{"TLS option without amqps", func(testing.TB) string { return "amqp://127.0.0.1:1/?ssl_ca_file=/x" }, transport.ErrInvalid, []string{"ssl_ca_file", "amqps"}},
		{"bad password", func(t testing.TB) string { return withUser(t, rabbit(t), "guest", "wrong") }, transport.ErrInvalid, []string{"credentials", "guest"}},
		{"missing virtual host", func(t testing.TB) string { return withVhost(t, rabbit(t), "no-such-vhost-"+randomHex(4)) }, transport.ErrNotFound, []string{"virtual host", "no-such-vhost-"}},
		{"login the broker does not take", func(t testing.TB) string { return withUser(t, protonURL(t), "guest", "guest") }, transport.ErrInvalid, []string{"anonymous"}},
		{"virtual host on the Proton broker", func(t testing.TB) string { return withVhost(t, protonURL(t), "x") }, transport.ErrNotFound, []string{"virtual host", "proton"}},
		{"nothing listens", func(t testing.TB) string { return "amqp://127.0.0.1:" + closedPort(t) }, nil, []string{"connect to 127.0.0.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), promptly)
			defer cancel()
			u := tt.url(t)
			tr, err := transport.Open(ctx, u)
			if err == nil {
				_ = tr.Close()
				t.Fatalf("open %s: no error", u)
			}
			if ctx.Err() != nil {
				t.Fatalf("open %s: took longer than %v: %v", u, promptly, err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("got %v, want an error wrapping %q", err, tt.want)
			}
			for _, m := range tt.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
			if strings.Contains(err.Error(), "wrong") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

// TestRefusedAttach: what RabbitMQ refuses (on an AMQP 1.0 link, or on
// the AMQP 0-9-1 side connection) is an error naming the entity, matching
// its sentinel with errors.Is and the client's own error with errors.As
// (go-amqp's *amqp.Error with its condition, amqp091-go's *amqp091.Error
// with its reply code), and the transport goes on working.
func TestRefusedAttach(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	tr := openT(t, ctx, rabbitURL(t))
	missing := "missing." + randomHex(4)
	queue, err := tr.DeclareQueue(ctx, transport.Queue{Name: "refusals." + randomHex(4)})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.DeleteQueue(context.Background(), queue)
	steps := []struct {
		name string
		call func() error
		want error
		cond amqp.ErrCond // the AMQP 1.0 condition, if AMQP 1.0 refused
		code int          // the AMQP 0-9-1 reply code, if the side connection refused
	}{
		{"consume a missing queue", func() error { _, err := tr.Consume(ctx, missing, transport.ConsumeOptions{}); return err },
			transport.ErrNotFound, amqp.ErrCondNotFound, 0},
		{"publish to a missing exchange", func() error { return tr.Publish(ctx, missing, "k", transport.Message{}) },
			transport.ErrNotFound, amqp.ErrCondNotFound, 0},
		{"purge a missing queue", func() error { _, err := tr.PurgeQueue(ctx, missing); return err },
			transport.ErrNotFound, "", amqp091.NotFound},
		{"bind to a missing exchange", func() error { return tr.Bind(ctx, transport.Binding{Exchange: missing, Queue: queue}) },
			transport.ErrNotFound, "", amqp091.NotFound},
		{"redeclare with other flags", func() error {
			_, err := tr.DeclareQueue(ctx, transport.Queue{Name: queue, Durable: true})
			return err
		}, transport.ErrPrecondition, "", amqp091.PreconditionFailed},
		{"nested header", func() error {
			return tr.Publish(ctx, "", missing, transport.Message{Headers: transport.Headers{"h": transport.Headers{"a": 1}}})
		}, transport.ErrInvalid, "", 0},
		{"exclusive consumer", func() error {
			_, err := tr.Consume(ctx, missing, transport.ConsumeOptions{Exclusive: true})
			return err
		}, transport.ErrUnsupported, "", 0},
		{"publish to an existing queue afterwards", func() error {
			q, err := tr.DeclareQueue(ctx, transport.Queue{})
			if err != nil {
				return err
			}
			defer tr.DeleteQueue(context.Background(), q)
			return tr.Publish(ctx, "", q, transport.Message{Body: []byte("fine")})
		}, nil, "", 0},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			err := s.call()
			if !errors.Is(err, s.want) || (s.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, s.want)
			}
			if err != nil && (s.want == transport.ErrNotFound) && !strings.Contains(err.Error(), missing) {
				t.Errorf("error %q does not name %q", err, missing)
			}
			var refusal *amqp.Error
			if got := errors.As(err, &refusal); got != (s.cond != "") || (got && refusal.Condition != s.cond) {
				t.Errorf("error %q: AMQP 1.0 error %v, want condition %q", err, refusal, s.cond)
			}
			var reply *amqp091.Error
			if got := errors.As(err, &reply); got != (s.code != 0) || (got && reply.Code != s.code) {
				t.Errorf("error %q: AMQP 0-9-1 reply %v, want code %d", err, reply, s.code)
			}
		})
	}
}

// TestTransportAs: on both flavours Transport.As reaches the go-amqp
// connection in use, which works as the client's own, and nothing else; a
// closed transport reaches nothing.
func TestTransportAs(t *testing.T) {
	eachFlavour(t, func(t *testing.T, url string) {
		ctx, cancel := context.WithTimeout(t.Context(), promptly)
		defer cancel()
		tr := openT(t, ctx, url)
		var conn *amqp.Conn
		if !tr.As(&conn) || conn == nil {
			t.Fatal("As(**amqp.Conn) = false or nil")
		}
		sess, err := conn.NewSession(ctx, nil)
		if err != nil {
			t.Fatalf("a session on the connection As gave: %v", err)
		}
		if err := sess.Close(ctx); err != nil {
			t.Fatalf("end the session: %v", err)
		}
		for _, target := range []any{nil, conn, new(*amqp.Session), new(*amqp091.Connection), new(string)} {
			if tr.As(target) {
				t.Errorf("As(%T) = true, want false", target)
			}
		}
		closed := openT(t, ctx, url)
		if err := closed.Close(); err != nil {
			t.Fatal(err)
		}
		if closed.As(&conn) {
			t.Error("As on a closed transport = true, want false")
		}
	})
}

func withUser(t testing.TB, raw, user, pass string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(user, pass)
	return u.String()
}

func withVhost(t testing.TB, raw, vhost string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + vhost
	return u.String()
}

// closedPort returns a loopback port that nothing listens on.
func closedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	_ = ln.Close()
	return port
}
