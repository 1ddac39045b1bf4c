package amqp1_test

import (
	"testing"

	"github.com/switchyard-mq/switchyard/conformance"
	"github.com/switchyard-mq/switchyard/transport"
	"github.com/switchyard-mq/switchyard/transport/driver"

	_ "github.com/switchyard-mq/switchyard/drivers/amqp1"
)

// harness returns the conformance harness of one flavour.
func harness(url func(testing.TB) string) conformance.Harness {
	return conformance.Harness{URL: url}
}

func TestConformance(t *testing.T) {
	t.Run("rabbitmq", func(t *testing.T) { conformance.Run(t, harness(rabbitURL)) })
	// The RabbitMQ 4.3 node denies transient queues, which the driver
	// cannot know: the harness takes the capability away, so the suite
	// declares durable queues instead, and rpc and notify declare quorum
	// queues, as oslo.messaging's RabbitMQ guide recommends for RabbitMQ 4.
	t.Run("rabbitmq4", func(t *testing.T) {
		conformance.Run(t, conformance.Harness{
			URL:          func(t testing.TB) string { return rabbit4URL(t) + "?" + quorumQuery },
			Capabilities: rabbit4Capabilities.Without(driver.CapTransientQueue),
		})
	})
	t.Run("proton", func(t *testing.T) { conformance.Run(t, harness(protonURL)) })
}

// quorumQuery is the URL query with which rpc and notify declare quorum
// queues (durable) instead of transient ones.
const quorumQuery = "rabbit_quorum_queue=true&rabbit_transient_quorum_queue=true"

// rabbit4Capabilities is what the driver declares on RabbitMQ 4.
var rabbit4Capabilities = driver.NewCapabilities(
	driver.CapDirect, driver.CapFanout, driver.CapTopic, driver.CapQueueBinding,
	driver.CapServerNamedQueue, driver.CapExclusiveQueue, driver.CapAutoDelete, driver.CapMessageTTL,
	driver.CapQueueExpiry, driver.CapMaxLength, driver.CapPrefetch,
	driver.CapHeaders, driver.CapDurable, driver.CapCrossProcess, driver.CapDeliveryCount,
	driver.CapQueueExistence, driver.CapQuorumQueue, driver.CapTransientQueue)

// TestCapabilities pins what each flavour declares, so that a change shows
// up here and in the README's matrix together.
func TestCapabilities(t *testing.T) {
	tests := []struct {
		name string
		url  func(testing.TB) string
		want transport.Capabilities
	}{
		{"rabbitmq", rabbitURL, driver.NewCapabilities(
			driver.CapDirect, driver.CapFanout, driver.CapTopic, driver.CapQueueBinding,
			driver.CapServerNamedQueue, driver.CapAutoDelete, driver.CapMessageTTL,
			driver.CapQueueExpiry, driver.CapMaxLength, driver.CapPrefetch,
			driver.CapHeaders, driver.CapDurable, driver.CapCrossProcess, driver.CapQueueExistence, driver.CapTransientQueue)},
		{"rabbitmq4", rabbit4URL, rabbit4Capabilities},
		{"proton", protonURL, driver.NewCapabilities(
			driver.CapPrefetch, driver.CapHeaders, driver.CapServerNamedQueue, driver.CapCrossProcess,
			driver.CapDeliveryCount, driver.CapTransientQueue)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			tr, err := transport.Open(t.Context(), tt.url(t))
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			if got := tr.Capabilities(); got != tt.want {
				t.Errorf("capabilities: got %s, want %s", got, tt.want)
			}
		})
	}
}
