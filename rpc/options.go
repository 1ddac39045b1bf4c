package rpc

import (
	"math"
	"time"

	"github.com/switchyard-mq/switchyard/transport"
)

// DefaultTimeout is how long a Call waits for its reply when neither the
// client nor the context says otherwise: oslo.messaging's
// rpc_response_timeout.
const DefaultTimeout = 60 * time.Second

// Option configures a Client, at NewClient or per call with Prepare.
type Option func(*callSettings)

// callSettings are a client's defaults and overrides.
type callSettings struct {
	timeout            time.Duration
	callMonitorTimeout time.Duration
	retry              int // -1: until the context ends
	exchange           *string
	server             *string
	namespace          *string
	version            *string
	fanout             *bool
	errors             *ErrorRegistry
}

// WithTimeout bounds how long Call waits for a reply (default
// DefaultTimeout). A context deadline that comes sooner wins. The timeout
// also travels as the request's expiration, so a request nobody takes in
// time is dropped by the broker rather than run late.
func WithTimeout(d time.Duration) Option { return func(s *callSettings) { s.timeout = d } }

// WithCallMonitorTimeout makes Call fail fast when the server stops
// sending heartbeats, as oslo.messaging's call_monitor_timeout: d goes to
// the server rounded up to whole seconds (the wire carries seconds), the
// server sends a heartbeat every half of that while it works, and the
// call fails when none comes for that long. With it a long timeout is
// safe: a live server is waited for, a dead one is noticed within d
// rounded up. Under 2 s servers send no heartbeats (oslo's rule: none
// more often than every second), so a call running longer than d fails.
func WithCallMonitorTimeout(d time.Duration) Option {
	return func(s *callSettings) {
		s.callMonitorTimeout = 0
		if d > 0 {
			s.callMonitorTimeout = time.Duration(math.Ceil(d.Seconds())) * time.Second
		}
	}
}

// WithRetry bounds how many times a failed publish is retried (0: never;
// -1, the default: until the context or timeout ends). Errors that cannot
// heal, such as ErrInvalid or ErrNotFound, are never retried.
func WithRetry(n int) Option { return func(s *callSettings) { s.retry = n } }

// WithExchange overrides the target's exchange.
func WithExchange(name string) Option { return func(s *callSettings) { s.exchange = &name } }

// WithServer sends to one server of the topic instead of any.
func WithServer(name string) Option { return func(s *callSettings) { s.server = &name } }

// WithNamespace overrides the target's endpoint namespace.
func WithNamespace(ns string) Option { return func(s *callSettings) { s.namespace = &ns } }

// WithVersion overrides the target's API version ("major.minor").
func WithVersion(v string) Option { return func(s *callSettings) { s.version = &v } }

// WithFanout makes a Cast reach every server on the topic (Call refuses
// fanout).
func WithFanout(fanout bool) Option { return func(s *callSettings) { s.fanout = &fanout } }

// WithErrors makes Call return the Go errors registered in reg (see
// ErrorRegistry) for failures of their module and class: errors.Is and
// errors.As find them through the *RemoteError, which stays in the chain.
// Each client has its own registry, or none (the default: every failure
// is a plain *RemoteError), as oslo.messaging's allowed_remote_exmods is
// its transport's. The server side is WithServerErrors.
func WithErrors(reg *ErrorRegistry) Option { return func(s *callSettings) { s.errors = reg } }

// apply returns the target with the overrides applied.
func (s *callSettings) apply(t transport.Target) transport.Target {
	if s.exchange != nil {
		t.Exchange = *s.exchange
	}
	if s.server != nil {
		t.Server = *s.server
	}
	if s.namespace != nil {
		t.Namespace = *s.namespace
	}
	if s.version != nil {
		t.Version = *s.version
	}
	if s.fanout != nil {
		t.Fanout = *s.fanout
	}
	return t
}
