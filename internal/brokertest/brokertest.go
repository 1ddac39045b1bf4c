// Package brokertest finds the brokers that driver tests need. A test asks
// for a broker's URL; when the broker is not reachable the test is skipped
// with a message that says how to start it, or fails when the environment
// sets SWITCHYARD_BROKERS=required (as .ci/run does), so that CI never
// passes by skipping.
//
// The RabbitMQ broker is shared by the tests of every package, which
// `go test ./...` runs in parallel processes. Its URL takes a lock file in
// shared mode for the rest of the test; a test that stops or restarts the
// broker takes it exclusively (ExclusiveURL, LockExclusive), so that it
// never overlaps another. NewRabbitVHost gives a test a virtual host of its
// own, deleted when the test ends, so that its queues and connections (and
// rabbitmqctl close_all_connections) touch nothing else.
package brokertest

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// Required reports whether missing brokers must fail tests instead of
// skipping them.
func Required() bool { return os.Getenv("SWITCHYARD_BROKERS") == "required" }

// Broker describes how to find one kind of broker.
type Broker struct {
	Name       string // for messages, e.g. "RabbitMQ"
	EnvVar     string // overrides DefaultURL
	DefaultURL string
	HowToStart string // shown when it is not reachable
	// LockFile, when set, names the file under os.TempDir() whose lock
	// keeps tests that stop the broker apart from tests that use it, across
	// test processes (see LockShared and LockExclusive).
	LockFile string
}

// RabbitMQ is the AMQP 0-9-1 broker.
func RabbitMQ() Broker {
	return Broker{
		Name: "RabbitMQ", EnvVar: "SWITCHYARD_RABBIT_URL",
		DefaultURL: "rabbit://guest:guest@127.0.0.1:5672/",
		HowToStart: "run .ci/run, or: apt-get install rabbitmq-server && rabbitmq-server -detached",
		LockFile:   "switchyard-rabbitmq.lock",
	}
}

// Redis is the ZeroMQ driver's cross-process matchmaker.
func Redis() Broker {
	return Broker{
		Name: "Redis", EnvVar: "SWITCHYARD_REDIS_URL",
		DefaultURL: "redis://127.0.0.1:6379/0",
		HowToStart: "run .ci/run, or: apt-get install redis-server && redis-server --daemonize yes --bind 127.0.0.1 --save ''",
	}
}

// URL returns the broker's URL, from its environment variable or the
// default, after checking that its first host accepts TCP connections. If
// it does not, the test is skipped, or fails when Required. For a broker
// with a LockFile it also takes the shared lock for the rest of the test,
// so that no test stops the broker meanwhile.
func (b Broker) URL(t testing.TB) string {
	t.Helper()
	b.LockShared(t) // first: the broker may be restarting until then
	return b.reachable(t)
}

// ExclusiveURL is URL for a test that stops or restarts the broker: it
// takes the exclusive lock instead of the shared one, waiting until no
// other test, in any process, uses the broker.
func (b Broker) ExclusiveURL(t testing.TB) string {
	t.Helper()
	b.LockExclusive(t)
	return b.reachable(t)
}

// reachable returns the broker's URL if its first host accepts TCP
// connections, and otherwise skips or fails t.
func (b Broker) reachable(t testing.TB) string {
	t.Helper()
	raw := b.DefaultURL
	if v := os.Getenv(b.EnvVar); v != "" {
		raw = v
	}
	addr, err := firstHost(raw)
	if err == nil {
		var conn net.Conn
		if conn, err = net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
			_ = conn.Close()
			return raw
		}
	}
	msg := b.Name + " is not reachable at " + addr + " (" + err.Error() + "); " + b.HowToStart +
		", or point " + b.EnvVar + " at one"
	if Required() {
		t.Fatal(msg + " [SWITCHYARD_BROKERS=required]")
	}
	t.Skip(msg)
	return ""
}

// firstHost extracts host:port of the first host of a transport URL.
func firstHost(raw string) (string, error) {
	_, rest, _ := strings.Cut(raw, "://")
	authority, _, _ := strings.Cut(rest, "/")
	host := strings.Split(authority, ",")[0]
	if at := strings.LastIndexByte(host, '@'); at >= 0 {
		host = host[at+1:]
	}
	if _, _, err := net.SplitHostPort(host); err != nil {
		return host, err
	}
	return host, nil
}
