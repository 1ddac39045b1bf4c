package rabbit

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-mq/switchyard/conformance/bench"
	"github.com/switchyard-mq/switchyard/internal/brokertest"
	"github.com/switchyard-mq/switchyard/transport"
)

// BenchmarkBackend runs the benchmark harness's cases on rabbit://, each
// beside raw amqp091-go doing the same with the driver's default
// confirms: the cases every backend runs, under the same names.
//
//	SWITCHYARD_BROKERS=required go test -run='^$' -bench=Backend -benchmem ./drivers/rabbit/
func BenchmarkBackend(b *testing.B) { bench.RunBenchmarks(b, brokertest.NewRabbitVHost(b).URL) }

// Benchmarks of publish→consume throughput, each case run on raw
// amqp091-go and on the driver (through the transport API) in the same
// run, with the same loop, 100-byte bodies and one connection each:
//
//	go test -run='^$' -bench=. -benchmem -count=3 ./drivers/rabbit/
//
// Cases: auto-ack consumer; manual ack of each delivery with prefetch 100;
// persistent messages to a durable queue, each publish waiting for its
// confirm, confirmWindow publishes in flight (auto-ack consumer). The
// first two publish without confirms (confirms=false), as the raw loop.
// Each reports msgs/s; every run is bounded by benchTimeout.

const (
	benchBodySize = 100
	confirmWindow = 256
	benchTimeout  = 2 * time.Minute
)

type benchCase struct {
	name     string
	ack      bool // manual ack of each delivery
	prefetch int
	confirms bool // persistent, durable queue, publish waits for its confirm
}

var benchCases = []benchCase{
	{name: "autoack"},
	{name: "ack-prefetch100", ack: true, prefetch: 100},
	{name: "confirms-persistent", confirms: true},
}

func BenchmarkPublishConsume(b *testing.B) {
	vh := brokertest.NewRabbitVHost(b)
	for _, bc := range benchCases {
		b.Run(bc.name+"/raw", func(b *testing.B) { benchRaw(b, vh, bc) })
		b.Run(bc.name+"/switchyard", func(b *testing.B) { benchDriver(b, vh, bc) })
	}
}

// report sets the msgs/s metric.
func report(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// share splits n publishes among workers.
func share(n, workers, i int) int {
	return n/workers + btoi(i < n%workers)
}

func btoi(v bool) int {
	if v {
		return 1
	}
	return 0
}

func benchRaw(b *testing.B, vh *brokertest.RabbitVHost, bc benchCase) {
	b.ReportAllocs()
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()
	cfg, err := transport.ParseURL(vh.URL)
	if err != nil {
		b.Fatal(err)
	}
	conn, err := amqp.Dial(fmt.Sprintf("amqp://%s:%s@%s/%s", cfg.User, cfg.Password, cfg.Hosts[0], vh.Name))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	setup, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	q := uniq("bench-raw")
	if _, err := setup.QueueDeclare(q, bc.confirms, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
	defer func() { _, _ = setup.QueueDelete(q, false, false, false) }()
	cch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	if bc.prefetch > 0 {
		if err := cch.Qos(bc.prefetch, 0, false); err != nil {
			b.Fatal(err)
		}
	}
	deliveries, err := cch.Consume(q, "", !bc.ack, false, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	pch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	pub := amqp.Publishing{Body: make([]byte, benchBodySize)}
	workers := 1
	if bc.confirms {
		if err := pch.Confirm(false); err != nil {
			b.Fatal(err)
		}
		pub.DeliveryMode = amqp.Persistent
		workers = confirmWindow
	}

	b.ResetTimer()
	var failed atomic.Value
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range share(b.N, workers, w) {
				dc, err := pch.PublishWithDeferredConfirmWithContext(ctx, "", q, false, false, pub)
				if err == nil && dc != nil {
					var ok bool
					if ok, err = dc.WaitContext(ctx); err == nil && !ok {
						err = fmt.Errorf("nack")
					}
				}
				if err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	for i := 0; i < b.N; i++ {
		select {
		case d := <-deliveries:
			if bc.ack {
				if err := d.Ack(false); err != nil {
					b.Fatal(err)
				}
			}
		case <-ctx.Done():
			b.Fatalf("received %d of %d: %v (publish error: %v)", i, b.N, ctx.Err(), failed.Load())
		}
	}
	b.StopTimer()
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(err)
	}
	report(b)
}

func benchDriver(b *testing.B, vh *brokertest.RabbitVHost, bc benchCase) {
	b.ReportAllocs()
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()
	url := vh.URL
	if !bc.confirms {
		url = withQuery(url, "confirms=false")
	}
	tr, err := transport.Open(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	q, err := tr.DeclareQueue(ctx, transport.Queue{Name: uniq("bench-sy"), Durable: bc.confirms})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _, _ = tr.DeleteQueue(context.Background(), q) }()
	c, err := tr.Consume(ctx, q, transport.ConsumeOptions{AutoAck: !bc.ack, Prefetch: bc.prefetch})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	msg := transport.Message{Body: make([]byte, benchBodySize), Persistent: bc.confirms}
	workers := 1
	if bc.confirms {
		workers = confirmWindow
	}

	b.ResetTimer()
	var failed atomic.Value
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range share(b.N, workers, w) {
				if err := tr.Publish(ctx, "", q, msg); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	for i := 0; i < b.N; i++ {
		d, err := c.Receive(ctx)
		if err != nil {
			b.Fatalf("received %d of %d: %v (publish error: %v)", i, b.N, err, failed.Load())
		}
		if bc.ack {
			if err := d.Ack(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(err)
	}
	report(b)
}
