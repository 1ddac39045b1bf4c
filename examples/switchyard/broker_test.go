package main

import (
	"context"
	"regexp"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

var brokerAddr = regexp.MustCompile(`amqp://(127\.0\.0\.1:\d+)/`)

// startBroker runs switchyard broker on a free loopback port and returns
// its address.
func startBroker(t *testing.T, args ...string) (string, *background) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	b := start(t, append([]string{"broker", "-listen", "127.0.0.1:0"}, args...)...)
	b.stdout.waitFor(ctx, t, "serving AMQP 0-9-1")
	m := brokerAddr.FindStringSubmatch(b.stdout.String())
	if m == nil {
		t.Fatalf("no address in %q", b.stdout)
	}
	return m[1], b
}

// switchyardBrokerURL is the rabbit:// URL of a switchyard broker that
// runs until t ends.
func switchyardBrokerURL(t *testing.T) string {
	addr, _ := startBroker(t)
	return "rabbit://guest:guest@" + addr + "/"
}

// TestBrokerCommand: switchyard broker serves amqp091-go with the
// configured users, and stops when interrupted, closing its clients
// with 320 CONNECTION_FORCED.
func TestBrokerCommand(t *testing.T) {
	addr, b := startBroker(t, "-users", "app:s3cret,ops:pw", "-heartbeat", "0")
	if _, err := amqp.Dial("amqp://guest:guest@" + addr + "/"); err == nil {
		t.Fatal("guest logged in though -users left it out")
	}
	conn, err := amqp.Dial("amqp://app:s3cret@" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.PublishWithContext(context.Background(), "", q.Name, false, false, amqp.Publishing{Body: []byte("hi")}); err != nil {
		t.Fatal(err)
	}
	if d, ok, err := ch.Get(q.Name, true); err != nil || !ok || string(d.Body) != "hi" {
		t.Fatalf("get: %q %v %v", d.Body, ok, err)
	}
	b.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	if code := b.wait(ctx, t); code != 0 {
		t.Fatalf("exit status %d; stdout:\n%s\nstderr:\n%s", code, b.stdout, b.stderr)
	}
	select {
	case e := <-closed:
		if e == nil || e.Code != 320 {
			t.Fatalf("closed with %v, want 320 CONNECTION_FORCED", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client was not closed")
	}
}

func TestBrokerUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-users", "nopassword"},
		{"-frame-max", "100"},
		{"-heartbeat", "1500ms"},
		{"-tls-cert", "cert.pem"},
		{"extra"},
	} {
		code, _, stderr := runTool(context.Background(), append([]string{"broker"}, args...)...)
		if code != 2 {
			t.Errorf("broker %q: exit status %d, want 2; stderr:\n%s", args, code, stderr)
		}
	}
}
