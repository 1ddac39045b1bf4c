package zmq_test

import (
	"testing"

	"github.com/switchyard-mq/switchyard/conformance"
	_ "github.com/switchyard-mq/switchyard/drivers/zmq"
)

// TestConformance runs the model's suite on the in-process matchmaker, a
// fresh registry per case.
func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		URL: func(t testing.TB) string { return "zmq://" + registryName(t) },
	})
}

// TestConformanceRedis runs the suite with the Redis matchmaker, a
// registry (key prefix) of its own per case, deleted afterwards.
func TestConformanceRedis(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		URL: func(t testing.TB) string { return redisRegistry(t) },
	})
}
