package brokertest

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
)

// TLSTerminator accepts TLS on a loopback port and forwards the plain bytes
// to a broker, so that rabbits:// and amqps:// are tested against a broker
// with no TLS listener of its own. It trusts only a CA of its own, which
// signed its certificate (for 127.0.0.1) and the client certificate it
// requires.
type TLSTerminator struct {
	Addr     string // host:port to dial instead of the broker's
	CAFile   string // PEM: the CA, for ssl_ca_file
	CertFile string // PEM: a client certificate the terminator accepts, for ssl_cert_file
	KeyFile  string // PEM: its key, for ssl_key_file
}

// NewTLSTerminator starts a terminator in front of target (host:port) until
// the test ends.
func NewTLSTerminator(t testing.TB, target string) *TLSTerminator {
	t.Helper()
	dir := t.TempDir()
	ca, caKey := newCert(t, nil, nil, "test CA", true)
	serverCert, serverKey := newCert(t, ca, caKey, "127.0.0.1", false)
	clientCert, clientKey := newCert(t, ca, caKey, "switchyard client", false)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	term := &TLSTerminator{
		CAFile:   writePEM(t, dir, "ca.pem", "CERTIFICATE", ca.Raw),
		CertFile: writePEM(t, dir, "client.pem", "CERTIFICATE", clientCert.Raw),
		KeyFile:  writePEM(t, dir, "client.key", "PRIVATE KEY", marshalKey(t, clientKey)),
	}
	term.Addr = forwardTLS(t, &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{serverCert.Raw}, PrivateKey: serverKey}},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}, target)
	return term
}

// Query is the URL query naming the terminator's files.
func (term *TLSTerminator) Query() string {
	return "ssl_ca_file=" + term.CAFile + "&ssl_cert_file=" + term.CertFile + "&ssl_key_file=" + term.KeyFile
}

// newCert makes a certificate for name (an IP address gets an IP SAN),
// signed by parent, or self-signed when parent is nil.
func newCert(t testing.TB, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, name string, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey) {
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

func marshalKey(t testing.TB, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func writePEM(t testing.TB, dir, name, kind string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// forwardTLS accepts TLS on a loopback port and forwards the plain bytes
// to target, until the test ends.
func forwardTLS(t testing.TB, cfg *tls.Config, target string) string {
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
