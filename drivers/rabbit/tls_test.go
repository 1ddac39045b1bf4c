package rabbit

import (
	"strings"
	"testing"

	"github.com/switchyard-mq/switchyard/internal/brokertest"
	"github.com/switchyard-mq/switchyard/transport"
)

// TestTLS: rabbits:// with ssl_ca_file, ssl_cert_file and ssl_key_file,
// through a TLS terminator in front of the broker that trusts only the
// test's CA and requires a client certificate signed by it.
func TestTLS(t *testing.T) {
	x := newTester(t)
	term := brokertest.NewTLSTerminator(t, "127.0.0.1:5672")
	addr, caFile := term.Addr, term.CAFile

	url := "rabbits://guest:guest@" + addr + "/" + x.vh.Name + "?" + term.Query()
	tr := x.openURL(url)
	q := x.queue(tr, transport.Queue{Name: uniq("tls")})
	x.publish(tr, "", q, transport.Message{Body: []byte("over TLS")})
	c := x.consume(tr, q, transport.ConsumeOptions{AutoAck: true})
	if d := x.receive(c); string(d.Body) != "over TLS" {
		t.Fatalf("got %q", d.Body)
	}

	// Without the client certificate the terminator refuses the handshake.
	_, err := transport.Open(x.ctx, "rabbit://guest:guest@"+addr+"/"+x.vh.Name+"?ssl=true&ssl_ca_file="+caFile)
	if err == nil {
		t.Fatal("TLS without the required client certificate succeeded")
	}
	// Without the CA the client refuses the server.
	_, err = transport.Open(x.ctx, "rabbits://guest:guest@"+addr+"/"+x.vh.Name)
	if err == nil {
		t.Fatal("TLS with an untrusted server certificate succeeded")
	}

	// By another name than the certificate's (127.0.0.1), the broker is
	// refused unless ssl_enforce_hostname_verification is false, which
	// still checks the certificate's chain.
	_, port, _ := strings.Cut(addr, ":")
	byName := "rabbits://guest:guest@localhost:" + port + "/" + x.vh.Name + "?" + term.Query()
	if _, err := transport.Open(x.ctx, byName); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("TLS to localhost with a certificate for 127.0.0.1: %v, want the certificate refused", err)
	}
	tr = x.openURL(byName + "&ssl_enforce_hostname_verification=false")
	x.publish(tr, "", q, transport.Message{Body: []byte("unchecked name")})
	if _, err := transport.Open(x.ctx, "rabbits://guest:guest@localhost:"+port+"/"+x.vh.Name+"?ssl_enforce_hostname_verification=false"); err == nil {
		t.Fatal("without hostname verification, an untrusted certificate chain was accepted")
	}
}
