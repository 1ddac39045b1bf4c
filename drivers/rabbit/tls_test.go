package rabbit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/transport"
)

// TestTLS: rabbits:// with ssl_ca_file, ssl_cert_file and ssl_key_file,
// through a TLS terminator in front of the broker that trusts only the
// test's CA and requires a client certificate signed by it.
func TestTLS(t *testing.T) {
	x := newTester(t)
	dir := t.TempDir()
	ca, caKey := newCert(t, nil, nil, "test CA", true)
	serverCert, serverKey := newCert(t, ca, caKey, "127.0.0.1", false)
	clientCert, clientKey := newCert(t, ca, caKey, "switchyard client", false)
	caFile := writePEM(t, dir, "ca.pem", "CERTIFICATE", ca.Raw)
	certFile := writePEM(t, dir, "client.pem", "CERTIFICATE", clientCert.Raw)
	keyFile := writePEM(t, dir, "client.key", "PRIVATE KEY", marshalKey(t, clientKey))

	pool := x509.NewCertPool()
	pool.AddCert(ca)
	addr := tlsTerminator(t, &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{serverCert.Raw}, PrivateKey: serverKey}},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}, "127.0.0.1:5672")

	url := "rabbits://guest:guest@" + addr + "/" + x.vh.Name + "?ssl_ca_file=" + caFile + "&ssl_cert_file=" + certFile + "&ssl_key_file=" + keyFile
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
}

// newCert makes a certificate for name (an IP address gets an IP SAN),
// signed by parent, or self-signed when parent is nil.
func newCert(t *testing.T, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, name string, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  isCA,
	}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func marshalKey(t *testing.T, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func writePEM(t *testing.T, dir, name, kind string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// tlsTerminator accepts TLS on a loopback port and forwards the plain
// bytes to target, until the test ends.
func tlsTerminator(t *testing.T, cfg *tls.Config, target string) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	track := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				_ = client.Close()
				continue
			}
			track(client)
			track(server)
			for _, pair := range [][2]net.Conn{{client, server}, {server, client}} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, _ = io.Copy(pair[1], pair[0])
					_ = pair[0].Close()
					_ = pair[1].Close()
				}()
			}
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}
