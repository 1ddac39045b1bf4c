package rabbit_test

import (
	"testing"

	"github.com/switchyard-mq/switchyard/conformance"
	_ "github.com/switchyard-mq/switchyard/drivers/rabbit"
	"github.com/switchyard-mq/switchyard/internal/brokertest"
	"github.com/switchyard-mq/switchyard/transport/driver"
)

// TestConformance holds the driver to the portable model, each case in a
// virtual host of its own on the shared broker.
func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		URL: func(t testing.TB) string { return brokertest.NewRabbitVHost(t).URL },
	})
}

// TestConformanceModern runs the suite on today's stack: RabbitMQ 4.3,
// which denies queues neither durable nor exclusive, with the options
// oslo.messaging's RabbitMQ guide recommends (quorum queues everywhere, a
// stream for fanout, the queue manager's names), as brokertest.SidStack
// gives them. The broker's denial is a capability the harness declares
// lacking: cases that need transient queues are reported as not
// supported; the others declare durable ones.
func TestConformanceModern(t *testing.T) {
	stack := brokertest.SidStack()
	conformance.Run(t, conformance.Harness{
		URL:          func(t testing.TB) string { return stack.URL(stack.NewVHost(t)) },
		Capabilities: driver.NewCapabilities(driver.AllCapabilities()...).Without(driver.CapTransientQueue),
	})
}
