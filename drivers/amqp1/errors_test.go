package amqp1_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

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

// TestRefusedAttach: what the broker refuses on a link (a missing queue
// or exchange) is an error naming it, and the transport goes on working.
func TestRefusedAttach(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	tr := openT(t, ctx, rabbitURL(t))
	missing := "missing." + randomHex(4)
	steps := []struct {
		name string
		call func() error
		want error
	}{
		{"consume a missing queue", func() error { _, err := tr.Consume(ctx, missing, transport.ConsumeOptions{}); return err }, transport.ErrNotFound},
		{"publish to a missing exchange", func() error { return tr.Publish(ctx, missing, "k", transport.Message{}) }, transport.ErrNotFound},
		{"nested header", func() error {
			return tr.Publish(ctx, "", missing, transport.Message{Headers: transport.Headers{"h": transport.Headers{"a": 1}}})
		}, transport.ErrInvalid},
		{"exclusive consumer", func() error {
			_, err := tr.Consume(ctx, missing, transport.ConsumeOptions{Exclusive: true})
			return err
		}, transport.ErrUnsupported},
		{"publish to an existing queue afterwards", func() error {
			q, err := tr.DeclareQueue(ctx, transport.Queue{})
			if err != nil {
				return err
			}
			defer tr.DeleteQueue(context.Background(), q)
			return tr.Publish(ctx, "", q, transport.Message{Body: []byte("fine")})
		}, nil},
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
		})
	}
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
