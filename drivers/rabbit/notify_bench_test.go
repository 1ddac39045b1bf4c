package rabbit

import (
	"testing"

	"github.com/switchyard-mq/switchyard/conformance/bench"
	"github.com/switchyard-mq/switchyard/internal/brokertest"
)

// BenchmarkNotifyInterleaved runs the benchmark harness's notify case
// (notify.Notifier → notify.Listener with a pool, beside amqp091-go
// making the same confirmed persistent publishes and acks; see
// BenchmarkBackend/notify) with the two sides taking turns of 500
// notifications in one run, and reports their ratio:
//
//	SWITCHYARD_BROKERS=required go test -run '^$' -bench NotifyInterleaved -benchtime 10000x ./drivers/rabbit/
func BenchmarkNotifyInterleaved(b *testing.B) {
	bench.RunNotifyInterleaved(b, brokertest.NewRabbitVHost(b).URL, 500)
}
