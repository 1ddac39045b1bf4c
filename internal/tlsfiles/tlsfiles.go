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
)

// The option names, as oslo.messaging's.
const (
	CAFile   = "ssl_ca_file"
	CertFile = "ssl_cert_file"
	KeyFile  = "ssl_key_file"
)

// Options lists the option names, for a driver's known options.
func Options() []string { return []string{CAFile, CertFile, KeyFile} }

// Set reports whether cfg sets any of the options.
func Set(cfg *driver.Config) bool {
	return cfg.Option(CAFile, "") != "" || cfg.Option(CertFile, "") != "" || cfg.Option(KeyFile, "") != ""
}

// Config returns a TLS 1.2+ configuration trusting the CA file (else the
// system's roots) and presenting the certificate and key, when given. A
// missing or unreadable file, or a certificate without its key, is an
// error wrapping driver.ErrInvalid naming the option.
func Config(cfg *driver.Config) (*tls.Config, error) {
	bad := func(name, format string, args ...any) error {
		return fmt.Errorf("%w: option %s of %s: %s", driver.ErrInvalid, name, cfg, fmt.Sprintf(format, args...))
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca := cfg.Option(CAFile, ""); ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, bad(CAFile, "%v", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, bad(CAFile, "%s holds no PEM certificate", ca)
		}
	}
	certFile, keyFile := cfg.Option(CertFile, ""), cfg.Option(KeyFile, "")
	switch {
	case certFile != "" && keyFile != "":
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, bad(CertFile, "loading %s and %s: %v", certFile, keyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	case certFile != "":
		return nil, bad(KeyFile, "missing: %s needs it", CertFile)
	case keyFile != "":
		return nil, bad(CertFile, "missing: %s needs it", KeyFile)
	}
	return tc, nil
}
