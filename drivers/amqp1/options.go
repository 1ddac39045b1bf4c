package amqp1

import (
	"crypto/tls"
	"fmt"
	"strings"
	"time"

	"github.com/switchyard-mq/switchyard/internal/backoff"
	"github.com/switchyard-mq/switchyard/internal/rabbitmq"
	"github.com/switchyard-mq/switchyard/internal/tlsfiles"
	"github.com/switchyard-mq/switchyard/transport/driver"
	"github.com/switchyard-mq/switchyard/transport/driver/option"
)

// The URL options this driver reads, besides the portable ones and the
// TLS files; see the package documentation. The three that shape how
// messages flow are exported, so that a tool reading an amqp:// URL
// (the benchmark's raw client) reads them as the driver does.
var (
	// FlavourOption is flavour: the broker's profile.
	FlavourOption = option.String(option.Spec{Name: "flavour", Default: string(flavourAuto), Check: checkFlavour,
		Doc: "the broker: auto (detected), rabbitmq or proton"})
	// PrefetchOption is prefetch_size: the credit of consumers that set
	// no prefetch.
	PrefetchOption = option.Int(option.Spec{Name: "prefetch_size", Min: 1, Max: maxPrefetch,
		Doc: "link credit of consumers that set no prefetch (default: the flavour's)"})
	// PresettledOption is presettled: messages sent without a confirm.
	PresettledOption = option.Bool(option.Spec{Name: "presettled", Default: "false",
		Doc: "send messages presettled: faster, but a publish is not confirmed"})
	optContainer = option.String(option.Spec{Name: "container_name",
		Doc: "the AMQP container id (default: a random one)"})
	optIdleTimeout = option.Duration(option.Spec{Name: "idle_timeout", Default: "60", Max: 86400,
		Doc: "idle timeout in `seconds` (default 60)"})
	optRetryInterval = option.Duration(option.Spec{Name: "connection_retry_interval", Default: "1", Max: 86400,
		Doc: "first reconnection backoff in `seconds` (default 1)"})
	optRetryBackoff = option.Duration(option.Spec{Name: "connection_retry_backoff", Default: "2", Max: 86400,
		Doc: "growth of the reconnection backoff per round in `seconds` (default 2)"})
	optRetryMax = option.Duration(option.Spec{Name: "connection_retry_interval_max", Default: "30", Max: 86400,
		Doc: "longest reconnection backoff in `seconds` (default 30)"})

	// rabbit_quorum_queue and rabbit_transient_quorum_queue are oslo's
	// topology options, which rpc and notify read (internal/messaging):
	// quorum queues, which RabbitMQ 4 declares over AMQP 1.0, are how they
	// run where a broker denies transient queues.
	urlOptions = option.NewSet(append(append(option.Portable(), FlavourOption, PrefetchOption, PresettledOption, optContainer,
		optIdleTimeout, optRetryInterval, optRetryBackoff, optRetryMax, rabbitmq.QuorumQueue, rabbitmq.TransientQuorumQueue),
		tlsfiles.Options()...)...)
)

func checkFlavour(v string) error {
	switch flavourName(strings.ToLower(v)) {
	case flavourAuto, flavourRabbitMQ, flavourProton:
		return nil
	}
	return fmt.Errorf("%q: want auto, rabbitmq or proton", v)
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
	// retry is the reconnection schedule: connection_retry_interval,
	// growing by connection_retry_backoff, capped at
	// connection_retry_interval_max.
	retry backoff.Backoff
}

// parseSettings validates u. Its errors wrap driver.ErrInvalid, name the
// option at fault and never show the password.
func parseSettings(u *driver.URL) (settings, error) {
	v, err := urlOptions.Parse(u)
	if err != nil {
		return settings{}, err
	}
	s := settings{
		url:         u.String(),
		user:        u.User,
		password:    u.Password,
		hasUser:     u.User != "" || u.HasPassword,
		vhost:       u.VirtualHost,
		hosts:       append([]driver.Host(nil), u.Hosts...),
		flavour:     flavourName(strings.ToLower(FlavourOption.Get(v))),
		prefetch:    PrefetchOption.Get(v),
		presettled:  PresettledOption.Get(v),
		containerID: optContainer.Get(v),
		idleTimeout: optIdleTimeout.Get(v),
		retry: backoff.Backoff{
			Initial: optRetryInterval.Get(v),
			Step:    optRetryBackoff.Get(v),
			Max:     optRetryMax.Get(v),
		},
	}
	port := defaultPort
	if u.Scheme == "amqps" {
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
	if s.retry.Initial <= 0 {
		return s, fmt.Errorf("%w: option %s of %s: want more than 0 seconds", driver.ErrInvalid, optRetryInterval.Spec().Name, u)
	}
	s.retry.Max = max(s.retry.Max, s.retry.Initial)
	switch {
	case u.Scheme == "amqps":
		s.tls, err = tlsfiles.Config(v, u)
	case tlsfiles.Set(v):
		err = fmt.Errorf("%w: options %s, %s and %s need the amqps:// scheme", driver.ErrInvalid,
			tlsfiles.CAFile.Spec().Name, tlsfiles.CertFile.Spec().Name, tlsfiles.KeyFile.Spec().Name)
	}
	return s, err
}
