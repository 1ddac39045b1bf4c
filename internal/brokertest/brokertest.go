// Package brokertest finds the brokers that driver tests need. A test asks
// for a broker's URL; when the broker is not reachable the test is skipped
// with a message that says how to start it, or fails when the environment
// sets SWITCHYARD_BROKERS=required (as .ci/run does), so that CI never
// passes by skipping.
//
// Two RabbitMQ brokers run on a test machine: Debian 12's RabbitMQ 3.10, the
// system's (RabbitMQ), and RabbitMQ 4.3 from the Debian sid chroot that
// .ci/sid-stack builds and starts (RabbitMQ4). Each is one half of a Stack,
// a broker and the Python oslo.messaging that goes with it; Stacks lists
// them, so that a test runs one body against each.
//
// The RabbitMQ brokers are shared by the tests of every package, which
// `go test ./...` runs in parallel processes: no test stops, restarts or
// reconfigures them. Tests that kill or restart a broker start RabbitMQ
// nodes of their own (internal/rabbitnode). NewRabbitVHost gives a test a
// virtual host of its own, deleted when the test ends, so that its queues
// and connections (and rabbitmqctl close_all_connections) touch nothing
// else.
package brokertest

import (
	"net"
	"os"
	"path/filepath"
	"runtime"
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
	// For RabbitMQ brokers only:

	// ManagementPort is where the node's management API listens, on the
	// URL's first host; "" means RabbitMQ's default, 15672.
	ManagementPort string
	// Ctl is the command that runs rabbitmqctl for the node (its
	// arguments follow); nil means the system's rabbitmqctl.
	Ctl []string
	// NoManagement says the node has no management API (a node of
	// internal/rabbitnode): NewVHost uses Ctl, and what needs the API
	// skips the test (or fails it, for SetPolicy).
	NoManagement bool
	// Embedded says the broker is the switchyard broker, served by the
	// test's process (SwitchyardBroker) rather than found at a URL.
	Embedded bool
}

// The RabbitMQ 4.3 node of .ci/sid-stack (see .ci/sid-env).
const (
	rabbit4DefaultURL     = "rabbit://guest:guest@127.0.0.1:5682/"
	rabbit4ManagementPort = "15682"
)

// RabbitMQ is the AMQP 0-9-1 broker: the system's RabbitMQ (3.10 on Debian
// 12) unless SWITCHYARD_RABBIT_URL points elsewhere. When that URL names the
// address of RabbitMQ4's node, the broker is that node, with its management
// port and rabbitmqctl, so that the tests written for RabbitMQ run against
// RabbitMQ 4.3 with nothing else changed.
func RabbitMQ() Broker {
	b := Broker{
		Name: "RabbitMQ", EnvVar: "SWITCHYARD_RABBIT_URL",
		DefaultURL: "rabbit://guest:guest@127.0.0.1:5672/",
		HowToStart: "run .ci/run, or: apt-get install rabbitmq-server && rabbitmq-server -detached",
	}
	if r4 := RabbitMQ4(); sameAddress(b.rawURL(), r4.rawURL()) {
		b.Name = "RabbitMQ (the RabbitMQ 4.3 node, by " + b.EnvVar + ")"
		b.HowToStart, b.ManagementPort, b.Ctl = r4.HowToStart, r4.ManagementPort, r4.Ctl
	}
	return b
}

// RabbitMQ4 is the RabbitMQ 4.3 node that .ci/sid-stack runs from a Debian
// sid chroot beside the system's RabbitMQ: AMQP on 127.0.0.1:5682,
// management on 15682, rabbitmqctl by .ci/sid-rabbitmqctl. It denies
// transient_nonexcl_queues, as operators run RabbitMQ 4 now: a non-durable,
// non-exclusive queue is refused. SWITCHYARD_RABBIT4_URL points elsewhere.
func RabbitMQ4() Broker {
	return Broker{
		Name: "RabbitMQ 4.3", EnvVar: "SWITCHYARD_RABBIT4_URL",
		DefaultURL: rabbit4DefaultURL,
		HowToStart: "run .ci/sid-stack as root (it builds a Debian sid chroot once and starts RabbitMQ 4.3 there; .ci/run does too)",

		ManagementPort: rabbit4ManagementPort,
		Ctl:            []string{repoFile(".ci/sid-rabbitmqctl")},
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
// it does not, the test is skipped, or fails when Required.
func (b Broker) URL(t testing.TB) string {
	t.Helper()
	return b.reachable(t)
}

// reachable returns the broker's URL if its first host accepts TCP
// connections, and otherwise skips or fails t.
func (b Broker) reachable(t testing.TB) string {
	t.Helper()
	raw := b.rawURL()
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

// rawURL is the broker's URL, from its environment variable or the default.
func (b Broker) rawURL() string {
	if v := os.Getenv(b.EnvVar); v != "" {
		return v
	}
	return b.DefaultURL
}

// sameAddress reports whether two transport URLs' first hosts are the same
// host and port.
func sameAddress(a, b string) bool {
	ha, errA := firstHost(a)
	hb, errB := firstHost(b)
	return errA == nil && errB == nil && ha == hb
}

// repoFile is the absolute path of a file of this repository, found from
// this source file's: the tests run from a checkout.
func repoFile(rel string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", filepath.FromSlash(rel))
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
