package memory_test

import (
	"strings"
	"testing"

	"github.com/switchyard-mq/switchyard/conformance"
	"github.com/switchyard-mq/switchyard/drivers/memory"
	_ "github.com/switchyard-mq/switchyard/drivers/rabbit"
	"github.com/switchyard-mq/switchyard/transport/driver"
)

// serverCapabilities is what the rabbit driver gets from RabbitMQ less
// what the in-process broker behind the AMQP server lacks: nothing
// survives the process, and it has classic queues only.
var serverCapabilities = driver.NewCapabilities(driver.AllCapabilities()...).Without(driver.CapDurable, driver.CapQuorumQueue, driver.CapStreamQueue)

// TestConformanceOverAMQP runs the rabbit driver's conformance suite
// against the AMQP server: each case on a broker and server of its own.
func TestConformanceOverAMQP(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		URL: func(t testing.TB) string {
			return strings.Replace(startServer(t, memory.ServerConfig{}), "amqp://", "rabbit://", 1)
		},
		Capabilities: serverCapabilities,
	})
}
