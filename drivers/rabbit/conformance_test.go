package rabbit_test

import (
	"testing"

	"github.com/switchyard-mq/switchyard/conformance"
	_ "github.com/switchyard-mq/switchyard/drivers/rabbit"
	"github.com/switchyard-mq/switchyard/internal/brokertest"
)

// TestConformance holds the driver to the portable model, each case in a
// virtual host of its own on the shared broker.
func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		URL: func(t testing.TB) string { return brokertest.NewRabbitVHost(t).URL },
	})
}
