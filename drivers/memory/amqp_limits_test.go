package memory_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-mq/switchyard/drivers/memory"
	"github.com/switchyard-mq/switchyard/drivers/memory/internal/amqp091"
)

// TestAMQPHeartbeatTimeout: a client that negotiated heartbeats and then
// goes silent is closed after two intervals; the server's own heartbeats
// arrive meanwhile.
func TestAMQPHeartbeatTimeout(t *testing.T) {
	url := startServer(t, memory.ServerConfig{Heartbeat: time.Second})
	c := dialRaw(t, strings.TrimSuffix(strings.TrimPrefix(url, "amqp://guest:guest@"), "/"))
	c.open()
	start := time.Now()
	heartbeats := 0
	for {
		f, _, err := amqp091.ReadFrame(c.r, 0, nil)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("after %v: %v", time.Since(start), err)
		}
		if f.Type == amqp091.FrameHeartbeat {
			heartbeats++
		}
	}
	if elapsed := time.Since(start); elapsed < 1900*time.Millisecond {
		t.Fatalf("closed after %v, before two heartbeat intervals", elapsed)
	}
	if heartbeats == 0 {
		t.Fatal("the server sent no heartbeat")
	}
}

func TestAMQPLimits(t *testing.T) {
	url := startServer(t, memory.ServerConfig{MaxConnections: 1, ChannelMax: 2})
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := amqp.Dial(url); amqpCode(err) != 530 {
		t.Fatalf("a second connection: %v, want 530 NOT_ALLOWED", err)
	}
	for i := range 2 {
		if _, err := conn.Channel(); err != nil {
			t.Fatalf("channel %d: %v", i+1, err)
		}
	}
	if _, err := conn.Channel(); err == nil {
		t.Fatal("a third channel opened beyond channel_max 2")
	}
}

func TestAMQPOverTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	s, err := memory.NewServer(memory.ServerConfig{Broker: "tls", TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}})
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(t.Context(), l) }()
	t.Cleanup(func() { _ = s.Close() })
	conn, err := amqp.DialTLS("amqps://guest:guest@"+l.Addr().String()+"/", &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("over-tls", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
}

// selfSigned makes a certificate for 127.0.0.1 and a pool trusting it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "switchyard test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// TestAMQPFlowControl: past MaxQueuedBytes a publisher gets
// connection.blocked at its next publish, which waits; once a consumer
// drains the queue it gets connection.unblocked and the publish goes
// through.
func TestAMQPFlowControl(t *testing.T) {
	url := startServer(t, memory.ServerConfig{MaxQueuedBytes: 1000})
	pubConn, pub := dial(t, url)
	_, cons := dial(t, url)
	q := declareQueue(t, pub, "flow", nil)
	blockings := pubConn.NotifyBlocked(make(chan amqp.Blocking, 4))
	if err := pub.Confirm(false); err != nil {
		t.Fatal(err)
	}
	// Two publishes put the queue over the limit; the server notices
	// within flowInterval and blocks the publisher at its next publish:
	// publish one byte at a time until one is held.
	var held *amqp.DeferredConfirmation
	published := 0
	deadline := time.After(5 * time.Second)
	for held == nil {
		body := make([]byte, 1)
		if published < 2 {
			body = make([]byte, 600)
		}
		confirm, err := pub.PublishWithDeferredConfirmWithContext(t.Context(), "", q, false, false, amqp.Publishing{Body: body})
		if err != nil {
			t.Fatal(err)
		}
		published++
		select {
		case <-confirm.Done():
		case b := <-blockings:
			if !b.Active {
				t.Fatalf("first notice %+v, want blocked", b)
			}
			held = confirm
		case <-deadline:
			t.Fatalf("not blocked after %d publishes over 5 s", published)
		}
	}
	if published < 2 {
		t.Fatalf("blocked at publish %d, before the queue held more than 1000 bytes", published)
	}
	deliveries, err := cons.Consume(q, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range published {
		nextDelivery(t, deliveries)
	}
	select {
	case b := <-blockings:
		if b.Active {
			t.Fatalf("second notice %+v, want unblocked", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no connection.unblocked after the queue drained")
	}
	if ok, err := held.WaitContext(t.Context()); !ok || err != nil {
		t.Fatalf("the held publish: %v %v", ok, err)
	}
}

// TestAMQPCloseWithAClientThatDoesNotRead: Close ends even when a
// client's socket is full because it stopped reading its deliveries.
func TestAMQPCloseWithAClientThatDoesNotRead(t *testing.T) {
	s, err := memory.NewServer(memory.ServerConfig{Broker: uniqueBroker(t)})
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(t.Context(), l) }()
	_, ch := dial(t, "amqp://guest:guest@"+l.Addr().String()+"/")
	q := declareQueue(t, ch, "backlog", nil)
	body := make([]byte, 256<<10)
	for range 64 {
		if err := ch.PublishWithContext(t.Context(), "", q, false, false, amqp.Publishing{Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	c := dialRaw(t, l.Addr().String())
	c.open()
	c.send(1, &amqp091.BasicConsume{Queue: q, NoAck: true})
	c.expect(&amqp091.BasicConsumeOk{})
	// The raw client reads no more: 16 MiB of deliveries fill its socket.
	closed := make(chan struct{})
	go func() {
		_ = s.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return within 20 s")
	}
	if err := <-served; !errors.Is(err, memory.ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
}

// remoteListener makes its connections seem to come from addr, as a
// client on another machine would.
type remoteListener struct {
	net.Listener
	addr net.Addr
}

func (l remoteListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return remoteConn{c, l.addr}, nil
}

type remoteConn struct {
	net.Conn
	addr net.Addr
}

func (c remoteConn) RemoteAddr() net.Addr { return c.addr }

// TestAMQPGuestOnlyFromLoopback: guest is refused from another machine,
// as on RabbitMQ; a user not in LoopbackUsers is not.
func TestAMQPGuestOnlyFromLoopback(t *testing.T) {
	s, err := memory.NewServer(memory.ServerConfig{Broker: uniqueBroker(t), Users: map[string]string{"guest": "guest", "app": "pw"}})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = s.Serve(t.Context(), remoteListener{l, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 40000}})
	}()
	t.Cleanup(func() { _ = s.Close() })
	if _, err := amqp.Dial("amqp://guest:guest@" + l.Addr().String() + "/"); amqpCode(err) != 403 {
		t.Fatalf("guest from 192.0.2.1: %v, want 403 ACCESS_REFUSED", err)
	}
	conn, err := amqp.Dial("amqp://app:pw@" + l.Addr().String() + "/")
	if err != nil {
		t.Fatalf("app from 192.0.2.1: %v", err)
	}
	conn.Close()
}
