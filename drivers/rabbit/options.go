package rabbit

import (
	"crypto/tls"
	"fmt"
	"time"

	"github.com/switchyard-mq/switchyard/internal/backoff"
	"github.com/switchyard-mq/switchyard/internal/rabbitmq"
	"github.com/switchyard-mq/switchyard/internal/tlsfiles"
	"github.com/switchyard-mq/switchyard/transport/driver"
	"github.com/switchyard-mq/switchyard/transport/driver/option"
)

// Defaults the options do not set.
const (
	defaultPort    = 5672
	defaultTLSPort = 5671
)

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
	// queues are the options that shape every queue declaration.
	queues rabbitmq.QueueOptions
	// ignored are the options given that have no effect here, each with
	// why, for a warning at open.
	ignored []string
	// reconnect is the wait between rounds of reconnection: it starts at
	// rabbit_retry_interval, doubles and grows by rabbit_retry_backoff
	// each round, stops growing at rabbit_interval_max, and is jittered
	// down by up to half so that clients cut off together do not return
	// together.
	reconnect backoff.Backoff
}

// parseSettings validates u. Its errors wrap driver.ErrInvalid, name the
// option at fault and never show the password.
func parseSettings(u *driver.URL) (settings, error) {
	v, err := rabbitmq.Options.Parse(u)
	if err != nil {
		return settings{}, err
	}
	s := settings{
		url:       u.String(),
		user:      u.User,
		password:  u.Password,
		vhost:     u.VirtualHost,
		heartbeat: rabbitmq.Heartbeat.Get(v).Truncate(time.Second),
		prefetch:  rabbitmq.Prefetch.Get(v),
		confirms:  rabbitmq.Confirms.Get(v),
		queues: rabbitmq.QueueOptions{
			Quorum:                rabbitmq.QuorumQueue.Get(v),
			QuorumDeliveryLimit:   rabbitmq.QuorumDeliveryLimit.Get(v),
			QuorumMaxMemoryLength: rabbitmq.QuorumMaxMemoryLength.Get(v),
			QuorumMaxMemoryBytes:  rabbitmq.QuorumMaxMemoryBytes.Get(v),
			HA:                    rabbitmq.HAQueues.Get(v),
		},
		reconnect: backoff.Backoff{
			Initial:    rabbitmq.RetryInterval.Get(v),
			Multiplier: 2,
			Step:       rabbitmq.RetryBackoff.Get(v),
			Max:        rabbitmq.IntervalMax.Get(v),
			Jitter:     0.5,
		},
	}
	for _, name := range v.Ignored() {
		o, _ := rabbitmq.Options.Lookup(name)
		s.ignored = append(s.ignored, name+": "+o.Spec().Why)
	}
	if s.user == "" && !u.HasPassword {
		s.user, s.password = "guest", "guest" // as kombu and amqp091-go default
	}
	if s.vhost == "" {
		s.vhost = "/"
	}
	bad := func(o option.Option, format string, args ...any) error {
		return fmt.Errorf("%w: option %s of %s: %s", driver.ErrInvalid, o.Spec().Name, u, fmt.Sprintf(format, args...))
	}
	useTLS := u.Scheme == SchemeTLS
	if v.IsSet(rabbitmq.SSL) {
		useTLS = rabbitmq.SSL.Get(v)
		if u.Scheme == SchemeTLS && !useTLS {
			return settings{}, bad(rabbitmq.SSL, "false contradicts the %s:// scheme", SchemeTLS)
		}
	}
	switch {
	case s.queues.Quorum && s.queues.HA:
		return settings{}, bad(rabbitmq.HAQueues, "cannot be combined with %s=true (quorum queues replicate themselves; oslo.messaging refuses this too)",
			rabbitmq.QuorumQueue.Spec().Name)
	case s.reconnect.Initial <= 0:
		return settings{}, bad(rabbitmq.RetryInterval, "must be more than 0")
	case s.reconnect.Max < s.reconnect.Initial:
		return settings{}, bad(rabbitmq.IntervalMax, "%v is less than %s %v", s.reconnect.Max, rabbitmq.RetryInterval.Spec().Name, s.reconnect.Initial)
	case useTLS:
		if s.tls, err = tlsfiles.Config(v, u); err != nil {
			return settings{}, err
		}
		if !rabbitmq.SSLEnforceHostnameVerification.Get(v) {
			s.tls = tlsfiles.WithoutHostnameCheck(s.tls)
		}
	case tlsfiles.Set(v):
		for _, o := range tlsfiles.Options() {
			if v.IsSet(o) {
				return settings{}, bad(o, "TLS is off (use %s:// or %s=true)", SchemeTLS, rabbitmq.SSL.Spec().Name)
			}
		}
	}

	port := defaultPort
	if useTLS {
		port = defaultTLSPort
	}
	s.hosts = append([]driver.Host(nil), u.Hosts...)
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
