package amqp1

import (
	"crypto/tls"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-mq/switchyard/internal/tlsfiles"
	"github.com/switchyard-mq/switchyard/transport/driver"
)

// The URL options this driver reads; see the package documentation.
const (
	optFlavour       = "flavour"
	optPrefetch      = "prefetch_size"
	optPresettled    = "presettled"
	optContainer     = "container_name"
	optIdleTimeout   = "idle_timeout"
	optRetryInterval = "connection_retry_interval"
	optRetryBackoff  = "connection_retry_backoff"
	optRetryMax      = "connection_retry_interval_max"
)

var knownOptions = []string{
	optFlavour, optPrefetch, optPresettled, optContainer, optIdleTimeout,
	optRetryInterval, optRetryBackoff, optRetryMax, tlsfiles.CAFile, tlsfiles.CertFile, tlsfiles.KeyFile,
}

// Defaults of the options, and limits the driver keeps.
const (
	defaultPort    = 5672
	defaultTLSPort = 5671
	// defaultPrefetch is oslo.messaging's amqp1 driver's prefetch_size,
	// used on RabbitMQ, which deals messages round-robin among consumers.
	defaultPrefetch = 200
	// defaultProtonPrefetch is smaller: the Proton broker gives each
	// message to the first consumer with credit, so a large window lets
	// one consumer take everything while the others idle.
	defaultProtonPrefetch = 10
	maxPrefetch           = 65535
	defaultIdleTimeout    = 60 * time.Second
	defaultRetryInterval  = time.Second
	defaultRetryBackoff   = 2 * time.Second
	defaultRetryMax       = 30 * time.Second
)

// flavourName names a broker profile: how model operations map to addresses
// and which capabilities hold.
type flavourName string

const (
	flavourAuto     flavourName = "auto"
	flavourRabbitMQ flavourName = "rabbitmq"
	flavourProton   flavourName = "proton"
)

// settings is a validated transport URL.
type settings struct {
	url         string // the URL with the password hidden, for logs and errors
	hosts       []driver.Host
	user        string
	password    string
	hasUser     bool
	vhost       string
	tls         *tls.Config // nil: plain TCP
	flavour     flavourName
	prefetch    int // 0: the flavour's default
	presettled  bool
	containerID string
	idleTimeout time.Duration
	retry       backoff
}

// backoff is the reconnection schedule: interval, growing by step, capped
// at max.
type backoff struct {
	interval, step, max time.Duration
}

// next returns the delay after d.
func (b backoff) next(d time.Duration) time.Duration { return min(d+b.step, b.max) }

// parseSettings validates cfg. Its errors wrap driver.ErrInvalid, name the
// option at fault and never show the password.
func parseSettings(cfg *driver.Config) (settings, error) {
	if err := cfg.UnknownOptions(knownOptions...); err != nil {
		return settings{}, err
	}
	s := settings{
		url:      cfg.String(),
		user:     cfg.User,
		password: cfg.Password,
		hasUser:  cfg.User != "" || cfg.HasPassword,
		vhost:    cfg.VirtualHost,
		hosts:    append([]driver.Host(nil), cfg.Hosts...),
	}
	bad := func(name, value, want string) error {
		return fmt.Errorf("%w: option %s=%q: %s", driver.ErrInvalid, name, value, want)
	}
	port := defaultPort
	if cfg.Scheme == "amqps" {
		port = defaultTLSPort
	}
	if len(s.hosts) == 0 {
		s.hosts = []driver.Host{{Name: "localhost"}}
	}
	for i := range s.hosts {
		if s.hosts[i].Port == 0 {
			s.hosts[i].Port = port
		}
	}

	switch f := flavourName(strings.ToLower(cfg.Option(optFlavour, string(flavourAuto)))); f {
	case flavourAuto, flavourRabbitMQ, flavourProton:
		s.flavour = f
	default:
		return s, bad(optFlavour, string(f), "want auto, rabbitmq or proton")
	}

	var err error
	if v := cfg.Option(optPrefetch, ""); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPrefetch {
			return s, bad(optPrefetch, v, fmt.Sprintf("want a whole number from 1 to %d", maxPrefetch))
		}
		s.prefetch = n
	}

	v := cfg.Option(optPresettled, "false")
	if s.presettled, err = strconv.ParseBool(v); err != nil {
		return s, bad(optPresettled, v, "want true or false")
	}

	s.containerID = cfg.Option(optContainer, "")

	durations := []struct {
		name string
		def  time.Duration
		dst  *time.Duration
	}{
		{optIdleTimeout, defaultIdleTimeout, &s.idleTimeout},
		{optRetryInterval, defaultRetryInterval, &s.retry.interval},
		{optRetryBackoff, defaultRetryBackoff, &s.retry.step},
		{optRetryMax, defaultRetryMax, &s.retry.max},
	}
	for _, d := range durations {
		v := cfg.Option(d.name, "")
		if v == "" {
			*d.dst = d.def
			continue
		}
		secs, err := strconv.ParseFloat(v, 64)
		if err != nil || secs < 0 || math.IsInf(secs, 0) || math.IsNaN(secs) || secs > 24*3600 {
			return s, bad(d.name, v, "want a number of seconds from 0 to 86400")
		}
		*d.dst = time.Duration(secs * float64(time.Second))
	}
	if s.retry.interval <= 0 {
		return s, bad(optRetryInterval, cfg.Option(optRetryInterval, ""), "want more than 0 seconds")
	}
	s.retry.max = max(s.retry.max, s.retry.interval)

	if s.tls, err = tlsConfig(cfg); err != nil {
		return s, err
	}
	return s, nil
}

// tlsConfig builds the TLS settings of an amqps:// URL, and refuses TLS
// options on a plain amqp:// one (they would silently do nothing).
func tlsConfig(cfg *driver.Config) (*tls.Config, error) {
	if cfg.Scheme != "amqps" {
		if tlsfiles.Set(cfg) {
			return nil, fmt.Errorf("%w: options %s, %s and %s need the amqps:// scheme", driver.ErrInvalid,
				tlsfiles.CAFile, tlsfiles.CertFile, tlsfiles.KeyFile)
		}
		return nil, nil
	}
	return tlsfiles.Config(cfg)
}
