// Package tlsfiles builds the TLS configuration of a broker connection
// from the URL options oslo.messaging names ssl_ca_file, ssl_cert_file and
// ssl_key_file, for every driver that speaks TLS.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/switchyard-mq/switchyard/transport/driver"
	"github.com/switchyard-mq/switchyard/transport/driver/option"
)

// The options, as oslo.messaging's rabbit driver names them.
var (
	// CAFile is the PEM file of the CAs to trust.
	CAFile = option.String(option.Spec{Name: "ssl_ca_file", Group: option.GroupRabbit,
		Aliases: []option.Alias{{Group: option.GroupRabbit, Name: "kombu_ssl_ca_certs"}},
		Doc:     "PEM `file` of the CAs to trust (default: the system's)"})
	// CertFile is the PEM file of the client certificate.
	CertFile = option.String(option.Spec{Name: "ssl_cert_file", Group: option.GroupRabbit,
		Aliases: []option.Alias{{Group: option.GroupRabbit, Name: "kombu_ssl_certfile"}},
		Doc:     "PEM `file` of the client certificate"})
	// KeyFile is the PEM file of the client certificate's key.
	KeyFile = option.String(option.Spec{Name: "ssl_key_file", Group: option.GroupRabbit,
		Aliases: []option.Alias{{Group: option.GroupRabbit, Name: "kombu_ssl_keyfile"}},
		Doc:     "PEM `file` of the client certificate's key"})
)

// Options lists the options, for a driver's option set.
func Options() []option.Option { return []option.Option{CAFile, CertFile, KeyFile} }

// Set reports whether v sets any of the options.
func Set(v option.Values) bool {
	return CAFile.Get(v) != "" || CertFile.Get(v) != "" || KeyFile.Get(v) != ""
}

// Config returns a TLS 1.2+ configuration trusting the CA file (else the
// system's roots) and presenting the certificate and key, when given. A
// missing or unreadable file, or a certificate without its key, is an
// error wrapping driver.ErrInvalid naming the option and where (the URL,
// its password hidden).
func Config(v option.Values, where fmt.Stringer) (*tls.Config, error) {
	bad := func(o option.Option, format string, args ...any) error {
		return fmt.Errorf("%w: option %s of %s: %s", driver.ErrInvalid, o.Spec().Name, where, fmt.Sprintf(format, args...))
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca := CAFile.Get(v); ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, bad(CAFile, "%v", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, bad(CAFile, "%s holds no PEM certificate", ca)
		}
	}
	certFile, keyFile := CertFile.Get(v), KeyFile.Get(v)
	switch {
	case certFile != "" && keyFile != "":
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, bad(CertFile, "loading %s and %s: %v", certFile, keyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	case certFile != "":
		return nil, bad(KeyFile, "missing: %s needs it", CertFile.Spec().Name)
	case keyFile != "":
		return nil, bad(CertFile, "missing: %s needs it", KeyFile.Spec().Name)
	}
	return tc, nil
}

// WithoutHostnameCheck returns a copy of tc that checks the broker's
// certificate chain against tc's roots (the system's when it has none) but
// not the broker's host name against the certificate, as oslo.messaging's
// ssl_enforce_hostname_verification = false does.
func WithoutHostnameCheck(tc *tls.Config) *tls.Config {
	out := tc.Clone()
	roots := tc.RootCAs
	// Go checks the host name with the chain; skipping both, the chain is
	// checked here instead.
	out.InsecureSkipVerify = true
	out.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return fmt.Errorf("tls: the broker sent no certificate")
		}
		opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
		for _, c := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(c)
		}
		_, err := cs.PeerCertificates[0].Verify(opts)
		return err
	}
	return out
}
