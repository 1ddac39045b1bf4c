package messaging

import (
	"os"
	"strings"
	"testing"

	"github.com/switchyard-mq/switchyard/internal/oslo"
)

// TestQueueManager: names count from 1 in a run of the service, go on
// counting across queue managers of the run (another client or server of
// the same process, or of its process group), and start again at 1 in a
// new run, as oslo's QManager counts them.
func TestQueueManager(t *testing.T) {
	host := "qm-test-" + oslo.NewID()[:12]
	m, err := newQueueManager(host, "svc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(m.file) })
	for _, want := range []string{host + ":svc:1", host + ":svc:2"} {
		if got, err := m.next(); err != nil || got != want {
			t.Fatalf("next() = %q, %v; want %q", got, err, want)
		}
	}
	again, err := newQueueManager(host, "svc")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := again.next(); got != host+":svc:3" {
		t.Errorf("a second manager of the same run: %q, want %s:svc:3", got, host)
	}
	content, err := os.ReadFile(m.file)
	if err != nil || strings.Count(string(content), ":") != 2 {
		t.Fatalf("the counter file holds %q, %v: want oslo's pg:counter:start", content, err)
	}
	// Another run (another process group or start time) starts again.
	again.run = "1:1"
	if got, _ := again.next(); got != host+":svc:1" {
		t.Errorf("a new run: %q, want %s:svc:1", got, host)
	}
}

// TestQueueManagerDefaults: the host and process names default to the
// machine's and the program's.
func TestQueueManagerDefaults(t *testing.T) {
	m, err := newQueueManager("", "")
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if m.hostname != host || m.processname == "" {
		t.Errorf("defaults: host %q (want %q), process %q", m.hostname, host, m.processname)
	}
}
