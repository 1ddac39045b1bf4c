package rabbit

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
	optHeartbeat      = "heartbeat_timeout_threshold"
	optPrefetch       = "rabbit_qos_prefetch_count"
	optConfirms       = "confirms"
	optSSL            = "ssl"
	optQuorum         = "rabbit_quorum_queue"
	optHA             = "rabbit_ha_queues"
	optQuorumLimit    = "rabbit_quorum_delivery_limit"
	optRetryInterval  = "rabbit_retry_interval"
	optRetryBackoff   = "rabbit_retry_backoff"
	optIntervalMax    = "rabbit_interval_max"
	defaultPort       = 5672
	defaultTLSPort    = 5671
	defaultHeartbeat  = 60 * time.Second
	defaultRetryStart = time.Second
	defaultRetryStep  = 2 * time.Second
	defaultRetryMax   = 30 * time.Second
)

var knownOptions = []string{
	optHeartbeat, optPrefetch, optConfirms, optSSL, tlsfiles.CAFile, tlsfiles.CertFile, tlsfiles.KeyFile,
	optQuorum, optHA, optQuorumLimit, optRetryInterval, optRetryBackoff, optIntervalMax,
}

// settings is a validated transport URL.
type settings struct {
	url       string // the URL with the password hidden, for logs and errors
	hosts     []driver.Host
	user      string
	password  string
	vhost     string
	tls       *tls.Config // nil: plain TCP
	heartbeat time.Duration
	prefetch  int
	confirms  bool
	quorum    bool
	ha        bool
	// quorumDeliveryLimit is x-delivery-limit for quorum queues whose
	// Queue.DeliveryLimit is zero.
	quorumDeliveryLimit int
	retryInterval       time.Duration
	retryBackoff        time.Duration
	intervalMax         time.Duration
}

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
		vhost:    cfg.VirtualHost,
	}
	if s.user == "" && !cfg.HasPassword {
		s.user, s.password = "guest", "guest" // as kombu and amqp091-go default
	}
	if s.vhost == "" {
		s.vhost = "/"
	}
	p := optionParser{cfg: cfg}
	useTLS := p.bool(optSSL, cfg.Scheme == SchemeTLS)
	if cfg.Scheme == SchemeTLS && !useTLS {
		p.fail(optSSL, "false contradicts the %s:// scheme", SchemeTLS)
	}
	s.heartbeat = time.Duration(p.int(optHeartbeat, int(defaultHeartbeat/time.Second), math.MaxUint16)) * time.Second
	s.prefetch = p.int(optPrefetch, 0, math.MaxUint16)
	s.confirms = p.bool(optConfirms, true)
	s.quorum = p.bool(optQuorum, false)
	s.ha = p.bool(optHA, false)
	s.quorumDeliveryLimit = p.int(optQuorumLimit, 0, math.MaxInt32)
	s.retryInterval = p.seconds(optRetryInterval, defaultRetryStart)
	s.retryBackoff = p.seconds(optRetryBackoff, defaultRetryStep)
	s.intervalMax = p.seconds(optIntervalMax, defaultRetryMax)
	if s.quorum && s.ha {
		p.fail(optHA, "cannot be combined with %s=true (quorum queues replicate themselves; oslo.messaging refuses this too)", optQuorum)
	}
	if s.retryInterval <= 0 && p.err == nil {
		p.fail(optRetryInterval, "must be more than 0")
	}
	if s.intervalMax < s.retryInterval && p.err == nil {
		p.fail(optIntervalMax, "%v is less than %s %v", s.intervalMax, optRetryInterval, s.retryInterval)
	}
	if p.err != nil {
		return settings{}, p.err
	}
	if useTLS {
		var err error
		if s.tls, err = tlsfiles.Config(cfg); err != nil {
			return settings{}, err
		}
	} else {
		for _, name := range tlsfiles.Options() {
			if cfg.Option(name, "") != "" {
				return settings{}, fmt.Errorf("%w: option %s of %s: TLS is off (use %s:// or %s=true)",
					driver.ErrInvalid, name, cfg, SchemeTLS, optSSL)
			}
		}
	}

	port := defaultPort
	if useTLS {
		port = defaultTLSPort
	}
	s.hosts = append([]driver.Host(nil), cfg.Hosts...)
	if len(s.hosts) == 0 {
		s.hosts = []driver.Host{{Name: "localhost"}}
	}
	for i := range s.hosts {
		if s.hosts[i].Port == 0 {
			s.hosts[i].Port = port
		}
	}
	return s, nil
}

// optionParser reads options, keeping the first error.
type optionParser struct {
	cfg *driver.Config
	err error
}

func (p *optionParser) fail(name, format string, args ...any) {
	if p.err == nil {
		p.err = fmt.Errorf("%w: option %s of %s: %s", driver.ErrInvalid, name, p.cfg, fmt.Sprintf(format, args...))
	}
}

func (p *optionParser) bool(name string, def bool) bool {
	v := p.cfg.Option(name, "")
	switch strings.ToLower(v) {
	case "":
		return def
	case "true", "1", "yes", "on":
		return true
	case "false", "0", "no", "off":
		return false
	}
	p.fail(name, "%q is not a boolean (true or false)", v)
	return def
}

func (p *optionParser) int(name string, def, max int) int {
	v := p.cfg.Option(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > max {
		p.fail(name, "%q is not a whole number from 0 to %d", v, max)
		return def
	}
	return n
}

// seconds reads a duration given in seconds, as oslo.messaging does;
// fractions are allowed.
func (p *optionParser) seconds(name string, def time.Duration) time.Duration {
	v := p.cfg.Option(name, "")
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || math.IsNaN(f) || f > 24*3600 {
		p.fail(name, "%q is not a number of seconds from 0 to 86400", v)
		return def
	}
	return time.Duration(f * float64(time.Second))
}

// backoff is the wait before reconnection round n (0-based): it starts at
// rabbit_retry_interval, doubles and grows by rabbit_retry_backoff each
// round, stops growing at rabbit_interval_max, and is jittered down by up
// to half so that clients cut off together do not return together.
func (s *settings) backoff(n int, jitter func(int64) int64) time.Duration {
	d := s.retryInterval
	for i := 0; i < n && d < s.intervalMax; i++ {
		d = 2*d + s.retryBackoff
	}
	d = min(d, s.intervalMax)
	if half := int64(d / 2); half > 0 {
		d -= time.Duration(jitter(half + 1))
	}
	return d
}
