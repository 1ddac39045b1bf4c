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

	"github.com/switchyard-mq/switchyard/drivers/amqp1"
	"github.com/switchyard-mq/switchyard/transport"
)

// promptly bounds every failing call below: a refusal must come back as an
// error, never as a hang.
const promptly = 10 * time.Second

// TestOpenErrors: bad URLs and refused connections fail Open with an error
// that names the cause, within the context's time. What RabbitMQ refuses
// is tried on each RabbitMQ flavour.
func TestOpenErrors(t *testing.T) {
	checkLeaks(t)
	tests := []struct {
		name string
		// url is the URL to open; rabbit is a RabbitMQ flavour's URL for
		// the rows onRabbit, run once per flavour, and "" for the others.
		url      func(t testing.TB, rabbit string) string
		onRabbit bool
		want     error
		mention  []string
	}{
		{"unknown option", func(testing.TB, string) string { return "amqp://127.0.0.1:1/?prefetch=5" }, false, transport.ErrInvalid, []string{"prefetch"}},
		{"bad flavour", func(testing.TB, string) string { return "amqp://127.0.0.1:1/?flavour=artemis" }, false, transport.ErrInvalid, []string{"flavour", "artemis"}},
		{"bad prefetch", func(testing.TB, string) string { return "amqp://127.0.0.1:1/?prefetch_size=0" }, false, transport.ErrInvalid, []string{"prefetch_size"}},
		{"TLS option without amqps", func(testing.TB, string) string { return "amqp://127.0.0.1:1/?ssl_ca_file=/x" }, false, transport.ErrInvalid, []string{"ssl_ca_file", "amqps"}},
		{"bad password", func(t testing.TB, rabbit string) string { return withUser(t, rabbit, "guest", "wrong") }, true, transport.ErrInvalid, []string{"credentials", "guest"}},
		// RabbitMQ 3.10 refuses the first session with a reason; RabbitMQ
		// 4 drops the connection during the handshake, 3 s later, with
		// none, which the driver reads as the same ErrNotFound.
		{"missing virtual host", func(t testing.TB, rabbit string) string { return withVhost(t, rabbit, "no-such-vhost-"+randomHex(4)) }, true, transport.ErrNotFound, []string{"virtual host", "no-such-vhost-"}},
		{"login the broker does not take", func(t testing.TB, _ string) string { return withUser(t, protonURL(t), "guest", "guest") }, false, transport.ErrInvalid, []string{"anonymous"}},
		{"virtual host on the Proton broker", func(t testing.TB, _ string) string { return withVhost(t, protonURL(t), "x") }, false, transport.ErrNotFound, []string{"virtual host", "proton"}},
		// What RabbitMQ 4 does to a missing virtual host, by a peer that
		// takes the connection and drops it unanswered.
		{"dropped mid-handshake", func(t testing.TB, _ string) string { return "amqp://" + droppingPeer(t) + "/some-vhost" },
			false, transport.ErrNotFound, []string{"virtual host", "some-vhost", "handshake"}},
		// amqp:// is AMQP 1.0 here; amqp091-go users write it for
		// RabbitMQ's AMQP 0-9-1, whose brokers answer so.
		{"AMQP 0-9-1 broker", func(t testing.TB, _ string) string { return "amqp://" + answeringPeer(t, amqp091Header) + "/vh" },
			false, transport.ErrUnsupported, []string{"speaks AMQP 0-9-1", "did you mean rabbit://127.0.0.1:", "/vh?"}},
		{"nothing listens", func(t testing.TB, _ string) string { return "amqp://127.0.0.1:" + closedPort(t) }, false, nil, []string{"connect to 127.0.0.1"}},
	}
	for _, tt := range tests {
		check := func(t *testing.T, rabbit string) {
			ctx, cancel := context.WithTimeout(t.Context(), promptly)
			defer cancel()
			u := tt.url(t, rabbit)
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
		}
		t.Run(tt.name, func(t *testing.T) {
			if tt.onRabbit {
				eachRabbit(t, check)
			} else {
				check(t, "")
			}
		})
	}
}

// TestRefusedAttach: what RabbitMQ refuses (on an AMQP 1.0 link; on
// RabbitMQ 3.10, on the AMQP 0-9-1 side connection; on RabbitMQ 4, through
// its AMQP 1.0 management node) is an error naming the entity, matching
// its sentinel with errors.Is and the client's own error with errors.As
// (go-amqp's *amqp.Error with its condition, amqp091-go's *amqp091.Error
// with its reply code, the driver's *amqp1.ManagementError with the
// management status), and the transport goes on working.
// TestRabbitMQ4Refusals tries what only RabbitMQ 4 refuses.
func TestRefusedAttach(t *testing.T) {
	eachRabbit(t, func(t *testing.T, url string) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		tr := openT(t, ctx, url)
		rabbit4 := isRabbit4(t, url)
		missing := "missing." + randomHex(4)
		queue, err := tr.DeclareQueue(ctx, orDurable(t, url, transport.Queue{Name: "refusals." + randomHex(4)}))
		if err != nil {
			t.Fatal(err)
		}
		defer tr.DeleteQueue(context.Background(), queue)
		steps := []struct {
			name string
			call func() error
			want error
			cond amqp.ErrCond // the AMQP 1.0 condition, if an AMQP 1.0 link refused
			// code is the AMQP 0-9-1 reply code, if RabbitMQ 3.10's side
			// connection refused, and status the management status that
			// RabbitMQ 4 answers instead. RabbitMQ 4 refuses a binding to
			// a missing exchange as a bad request, 400, not 404.
			code, status int
		}{
			{"consume a missing queue", func() error { _, err := tr.Consume(ctx, missing, transport.ConsumeOptions{}); return err },
				transport.ErrNotFound, amqp.ErrCondNotFound, 0, 0},
			{"publish to a missing exchange", func() error { return tr.Publish(ctx, missing, "k", transport.Message{}) },
				transport.ErrNotFound, amqp.ErrCondNotFound, 0, 0},
			{"purge a missing queue", func() error { _, err := tr.PurgeQueue(ctx, missing); return err },
				transport.ErrNotFound, "", amqp091.NotFound, 404},
			{"bind to a missing exchange", func() error { return tr.Bind(ctx, transport.Binding{Exchange: missing, Queue: queue}) },
				transport.ErrNotFound, "", amqp091.NotFound, 400},
			{"redeclare with other arguments", func() error {
				_, err := tr.DeclareQueue(ctx, orDurable(t, url, transport.Queue{Name: queue, MaxLength: 3}))
				return err
			}, transport.ErrPrecondition, "", amqp091.PreconditionFailed, 409},
			{"nested header", func() error {
				return tr.Publish(ctx, "", missing, transport.Message{Headers: transport.Headers{"h": transport.Headers{"a": 1}}})
			}, transport.ErrInvalid, "", 0, 0},
			{"exclusive consumer", func() error {
				_, err := tr.Consume(ctx, missing, transport.ConsumeOptions{Exclusive: true})
				return err
			}, transport.ErrUnsupported, "", 0, 0},
			{"publish to an existing queue afterwards", func() error {
				q, err := tr.DeclareQueue(ctx, orDurable(t, url, transport.Queue{}))
				if err != nil {
					return err
				}
				defer tr.DeleteQueue(context.Background(), q)
				return tr.Publish(ctx, "", q, transport.Message{Body: []byte("fine")})
			}, nil, "", 0, 0},
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
				code, status := s.code, 0
				if rabbit4 {
					code, status = 0, s.status
				}
				var reply *amqp091.Error
				if got := errors.As(err, &reply); got != (code != 0) || (got && reply.Code != code) {
					t.Errorf("error %q: AMQP 0-9-1 reply %v, want code %d", err, reply, code)
				}
				var mgmt *amqp1.ManagementError
				if got := errors.As(err, &mgmt); got != (status != 0) || (got && mgmt.Status != status) {
					t.Errorf("error %q: management error %v, want status %d", err, mgmt, status)
				}
			})
		}
	})
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

// amqp091Header is what an AMQP 0-9-1 broker (RabbitMQ without its AMQP
// 1.0 plugin) answers to a protocol header it does not speak, before it
// closes the connection.
const amqp091Header = "AMQP\x00\x00\x09\x01"

// droppingPeer returns the address of a peer that accepts connections,
// reads the client's first bytes and closes them unanswered, until t ends.
func droppingPeer(t testing.TB) string { return answeringPeer(t, "") }

// answeringPeer returns the address of a peer that accepts connections,
// reads the client's protocol header, writes answer and closes them, until
// t ends.
func answeringPeer(t testing.TB, answer string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_ = conn.SetDeadline(time.Now().Add(promptly))
			_, _ = conn.Read(make([]byte, 8)) // the protocol header
			_, _ = conn.Write([]byte(answer))
			_ = conn.Close()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
	})
	return ln.Addr().String()
}

// TestMissingCapabilityAdvisesRabbit: on RabbitMQ, a capability amqp://
// lacks (a mandatory publish, dead-lettering) is rabbit://'s, and the
// ErrUnsupported says "did you mean rabbit://"; on another broker it does
// not.
func TestMissingCapabilityAdvisesRabbit(t *testing.T) {
	checkLeaks(t)
	forFlavours(t, []flavour{flavourRabbitMQ, flavourRabbitMQ4, flavourProton}, func(t *testing.T, u string) {
		ctx, cancel := context.WithTimeout(t.Context(), promptly)
		defer cancel()
		tr, err := transport.Open(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		wantAdvice := !strings.HasSuffix(t.Name(), "/proton") // RabbitMQ 3 and 4
		_, declareErr := tr.DeclareQueue(ctx, transport.Queue{Name: "advice-" + randomHex(4), Durable: true, DeadLetterExchange: "dlx"})
		for what, err := range map[string]error{
			"a mandatory publish":    tr.Publish(ctx, "", "advice", transport.Message{Mandatory: true}),
			"a dead-letter exchange": declareErr,
		} {
			if !errors.Is(err, transport.ErrUnsupported) {
				t.Fatalf("%s: %v, want ErrUnsupported", what, err)
			}
			if got := strings.Contains(err.Error(), "did you mean rabbit://"); got != wantAdvice {
				t.Errorf("%s: %q: advises rabbit:// %v, want %v", what, err, got, wantAdvice)
			}
		}
	})
}
