package brokertest

import (
	"strings"
	"testing"
)

// Stack is one pairing of a RabbitMQ broker and the Python oslo.messaging
// that services run beside it, as a deployment has them: a test written
// once runs against each (ForEachStack), with the stack's broker for the
// Go side and its Python for the oslo.messaging peers.
type Stack struct {
	// Name names the stack in test names and messages:
	// "rabbitmq-3.10+oslo-14".
	Name string
	// Broker finds the stack's RabbitMQ: NewVHost gives a test a virtual
	// host of its own on it.
	Broker Broker
	// Python is the command that runs the python3 that has the stack's
	// oslo.messaging: a script and its arguments follow. It runs as a
	// plain child process (stdin, stdout, environment and pid are the
	// caller's to use).
	Python []string
	// HowToGetPython says how to install that Python, for the message of
	// a test skipped (or failed) without it.
	HowToGetPython string
	// Query is the transport URL query, [oslo_messaging_rabbit] options,
	// with which services run on this stack; both oslo.messaging and
	// Switchyard read them from the URL. Empty means oslo's defaults.
	// oslo.messaging's use_queue_manager needs [oslo_concurrency]
	// lock_path too, which is not a rabbit option: set
	// OS_OSLO_CONCURRENCY__LOCK_PATH in Python's environment (the interop
	// peer does).
	Query string
	// DeniesTransientQueues says the broker refuses queues neither durable
	// nor exclusive (RabbitMQ 4's deprecated feature
	// transient_nonexcl_queues, denied as operators deny it ahead of its
	// removal): tests declare such queues durable there.
	DeniesTransientQueues bool
}

// DebianStack is Debian 12's stack: the system's RabbitMQ 3.10 and
// python3-oslo.messaging 14.0.3 (kombu 5.2.4) in /usr/bin/python3, with
// oslo's default options.
func DebianStack() Stack {
	return Stack{
		Name:           "rabbitmq-3.10+oslo-14",
		Broker:         RabbitMQ(),
		Python:         []string{"/usr/bin/python3"},
		HowToGetPython: "apt-get install python3-oslo.messaging (as .ci/run does)",
	}
}

// SidStack is today's stack, from Debian sid (.ci/sid-stack): RabbitMQ 4.3
// (RabbitMQ4, denying non-durable non-exclusive queues) and
// python3-oslo.messaging 18.3 (kombu 5.6.2) in the chroot's python3, run by
// .ci/sid-python3, with the options oslo.messaging's RabbitMQ guide
// recommends: quorum queues for every queue, a stream for fanout, the
// queue manager's names for reply queues, and a prefetch (which a stream
// consumer needs).
func SidStack() Stack {
	return Stack{
		Name:           "rabbitmq-4.3+oslo-18",
		Broker:         RabbitMQ4(),
		Python:         []string{repoFile(".ci/sid-python3")},
		HowToGetPython: "run .ci/sid-stack as root (it builds the Debian sid chroot that has python3-oslo.messaging 18; .ci/run does too)",
		Query: "rabbit_quorum_queue=true&rabbit_transient_quorum_queue=true&rabbit_stream_fanout=true" +
			"&use_queue_manager=true&rabbit_qos_prefetch_count=10",
		DeniesTransientQueues: true,
	}
}

// Stacks lists the stacks that tests run against, oldest first.
func Stacks() []Stack { return []Stack{DebianStack(), SidStack()} }

// ForEachStack runs body as a subtest of t for each stack, named after it.
func ForEachStack(t *testing.T, body func(t *testing.T, s Stack)) {
	t.Helper()
	for _, s := range Stacks() {
		t.Run(s.Name, func(t *testing.T) { body(t, s) })
	}
}

// NewVHost gives t a virtual host of its own on the stack's broker
// (Broker.NewVHost).
func (s Stack) NewVHost(t testing.TB) *RabbitVHost {
	t.Helper()
	return s.Broker.NewVHost(t)
}

// URL is a virtual host's URL with the stack's Query added: what both sides
// of a test on this stack open.
func (s Stack) URL(v *RabbitVHost) string {
	if s.Query == "" {
		return v.URL
	}
	sep := "?"
	if strings.Contains(v.URL, "?") {
		sep = "&"
	}
	return v.URL + sep + s.Query
}
