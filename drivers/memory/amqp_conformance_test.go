package memory_test

import (
	"strings"
	"testing"

	"github.com/switchyard-mq/switchyard/conformance"
	"github.com/switchyard-mq/switchyard/drivers/memory"
	_ "github.com/switchyard-mq/switchyard/drivers/rabbit"
	"github.com/switchyard-mq/switchyard/transport"
	"github.com/switchyard-mq/switchyard/transport/driver"
)

// TestConformanceOverAMQP runs the rabbit driver's conformance suite
// against the AMQP server, each case on a broker and server of its own,
// with the capabilities the driver reports there (it reads the server's
// product).
func TestConformanceOverAMQP(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		URL: func(t testing.TB) string {
			return strings.Replace(startServer(t, memory.ServerConfig{}), "amqp://", "rabbit://", 1)
		},
	})
}

// TestRabbitDriverKnowsTheServer: on this broker the rabbit driver
// reports what it provides, which is what memory:// provides across
// processes (durable as memory:// means it: kept while the broker runs),
// and quorum queues; only streams are missing.
func TestRabbitDriverKnowsTheServer(t *testing.T) {
	url := strings.Replace(startServer(t, memory.ServerConfig{}), "amqp://", "rabbit://", 1)
	tr, err := transport.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	want := driver.NewCapabilities(driver.AllCapabilities()...).Without(driver.CapStreamQueue)
	if got := tr.Capabilities(); got != want {
		t.Fatalf("rabbit:// on the AMQP server reports %s, want %s", got, want)
	}
}
