package amqp1_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/switchyard-mq/switchyard/conformance/bench"
	"github.com/switchyard-mq/switchyard/transport"
)

// The benchmarks run the driver beside raw go-amqp in the same run, on
// RabbitMQ, with 100-byte bodies:
//
//	go test -run='^$' -bench=. -benchmem -count=3 ./drivers/amqp1/
//
// "raw" is go-amqp as a careful user would call it: one session per link,
// the routing key as the subject of a /queue link (the driver's own
// mapping), and on receiving links manual credit topped up only once the
// last grant is used up: go-amqp's own credit management stalls on
// RabbitMQ 3.10 (see the package documentation), so raw cannot use it.

// BenchmarkBackend runs the benchmark harness's cases on amqp:// (RPC
// calls among them), each beside raw go-amqp doing the same: the cases
// every backend runs, under the same names.
//
//	SWITCHYARD_BROKERS=required go test -run='^$' -bench=Backend -benchmem ./drivers/amqp1/
func BenchmarkBackend(b *testing.B) { bench.RunBenchmarks(b, rabbitURL(b)) }

const (
	benchBody       = 100
	benchPublishers = 8   // concurrent unsettled sends, pipelining confirms
	benchCredit     = 100 // receiving links' credit (prefetch)
)

var body100 = make([]byte, benchBody)

// benchEnv is a queue in the run's virtual host, a driver transport and a
// raw go-amqp connection to it.
type benchEnv struct {
	url   string
	tr    *transport.Transport
	raw   *amqp.Conn
	queue string
}

func newBenchEnv(b *testing.B, query string) *benchEnv {
	b.Helper()
	ctx := context.Background()
	url := rabbitURL(b)
	e := &benchEnv{url: url}
	tr, err := transport.Open(ctx, url+query)
	if err != nil {
		b.Fatal(err)
	}
	e.tr = tr
	b.Cleanup(func() { _ = tr.Close() })
	cfg := tr.URL()
	e.raw, err = amqp.Dial(ctx, "amqp://"+cfg.Hosts[0].String(), &amqp.ConnOptions{
		HostName: "vhost:" + cfg.VirtualHost, SASLType: amqp.SASLTypePlain(cfg.User, cfg.Password),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = e.raw.Close() })
	e.queue, err = tr.DeclareQueue(ctx, transport.Queue{Name: "bench." + randomHex(4)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _, _ = tr.DeleteQueue(context.Background(), e.queue) })
	return e
}

// rawSender attaches a raw sending link to the default exchange.
func (e *benchEnv) rawSender(b *testing.B) *amqp.Sender {
	b.Helper()
	sess, err := e.raw.NewSession(context.Background(), nil)
	if err != nil {
		b.Fatal(err)
	}
	snd, err := sess.NewSender(context.Background(), "/queue", nil)
	if err != nil {
		b.Fatal(err)
	}
	return snd
}

func (e *benchEnv) rawMessage() *amqp.Message {
	subject := e.queue
	return &amqp.Message{Data: [][]byte{body100}, Properties: &amqp.MessageProperties{Subject: &subject}}
}

// parallel runs n calls of f over benchPublishers goroutines.
func parallel(b *testing.B, n int, f func(i int) error) {
	b.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, benchPublishers)
	for p := range benchPublishers {
		wg.Go(func() {
			for i := p; i < n; i += benchPublishers {
				if err := f(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

func reportRate(b *testing.B, n int, d time.Duration) {
	b.ReportMetric(float64(n)/d.Seconds(), "msgs/s")
}

// BenchmarkSend publishes b.N messages, pre-settled (fire and forget) or
// unsettled (each confirmed by the broker, benchPublishers at a time).
func BenchmarkSend(b *testing.B) {
	for _, settled := range []bool{true, false} {
		mode := "unsettled"
		if settled {
			mode = "settled"
		}
		b.Run("raw/"+mode, func(b *testing.B) {
			e := newBenchEnv(b, "")
			snd := e.rawSender(b)
			opts := &amqp.SendOptions{Settled: settled}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			parallel(b, b.N, func(int) error { return snd.Send(context.Background(), e.rawMessage(), opts) })
			reportRate(b, b.N, time.Since(start))
		})
		b.Run("driver/"+mode, func(b *testing.B) {
			e := newBenchEnv(b, "?presettled="+strconv.FormatBool(settled))
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			parallel(b, b.N, func(int) error {
				return e.tr.Publish(context.Background(), "", e.queue, transport.Message{Body: body100})
			})
			reportRate(b, b.N, time.Since(start))
		})
	}
}

// fill puts n messages in the queue (confirmed, before the timer runs).
func (e *benchEnv) fill(b *testing.B, n int) {
	b.Helper()
	parallel(b, n, func(int) error {
		return e.tr.Publish(context.Background(), "", e.queue, transport.Message{Body: body100})
	})
}

// rawReceiver consumes with credit benchCredit, accepting each message,
// and grants more credit only once the last grant is used up.
type rawReceiver struct {
	sess        *amqp.Session
	rcv         *amqp.Receiver
	issued, got int
}

func (e *benchEnv) rawReceiver(b *testing.B) *rawReceiver {
	b.Helper()
	ctx := context.Background()
	sess, err := e.raw.NewSession(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	rcv, err := sess.NewReceiver(ctx, "/amq/queue/"+e.queue, &amqp.ReceiverOptions{Credit: -1})
	if err != nil {
		b.Fatal(err)
	}
	r := &rawReceiver{sess: sess, rcv: rcv}
	b.Cleanup(func() {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_ = sess.Close(cctx)
		cancel()
	})
	return r
}

// take receives and accepts n messages.
func (r *rawReceiver) take(b *testing.B, n int) {
	b.Helper()
	ctx := context.Background()
	for range n {
		if r.got == r.issued {
			r.issued += benchCredit
			if err := r.rcv.IssueCredit(benchCredit); err != nil {
				b.Fatal(err)
			}
		}
		m, err := r.rcv.Receive(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		r.got++
		if err := r.rcv.AcceptMessage(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}

// driverReceiver consumes with prefetch benchCredit, acking each message.
type driverReceiver struct{ c *transport.Consumer }

func (e *benchEnv) driverReceiver(b *testing.B) *driverReceiver {
	b.Helper()
	c, err := e.tr.Consume(context.Background(), e.queue, transport.ConsumeOptions{Prefetch: benchCredit})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	return &driverReceiver{c}
}

func (r *driverReceiver) take(b *testing.B, n int) {
	b.Helper()
	ctx := context.Background()
	for range n {
		d, err := r.c.Receive(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Ack(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReceive consumes a backlog of b.N messages, accepting each.
func BenchmarkReceive(b *testing.B) {
	b.Run("raw", func(b *testing.B) {
		e := newBenchEnv(b, "")
		e.fill(b, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		e.rawReceiver(b).take(b, b.N)
		reportRate(b, b.N, time.Since(start))
	})
	b.Run("driver", func(b *testing.B) {
		e := newBenchEnv(b, "")
		e.fill(b, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		e.driverReceiver(b).take(b, b.N)
		reportRate(b, b.N, time.Since(start))
	})
}

// BenchmarkEndToEnd publishes b.N confirmed messages (benchPublishers at
// a time) while a consumer receives and accepts them, through raw go-amqp
// and through the driver. The two alternate in rounds of e2eRound messages
// within one benchmark, so that both see the same load on a shared
// machine; raw-msgs/s and driver-msgs/s are from the first send to the
// last acceptance of their rounds, and driver/raw is their ratio.
func BenchmarkEndToEnd(b *testing.B) {
	raw, drv := newBenchEnv(b, ""), newBenchEnv(b, "")
	rawSnd, rawRcv := raw.rawSender(b), raw.rawReceiver(b)
	drvRcv := drv.driverReceiver(b)
	rawRound := func(n int) {
		var wg sync.WaitGroup
		wg.Go(func() {
			parallel(b, n, func(int) error { return rawSnd.Send(context.Background(), raw.rawMessage(), nil) })
		})
		rawRcv.take(b, n)
		wg.Wait()
	}
	drvRound := func(n int) {
		var wg sync.WaitGroup
		wg.Go(func() { drv.fill(b, n) })
		drvRcv.take(b, n)
		wg.Wait()
	}
	b.ReportAllocs()
	b.ResetTimer()
	var rawTime, drvTime time.Duration
	for done := 0; done < b.N; {
		n := min(e2eRound, b.N-done)
		start := time.Now()
		rawRound(n)
		rawTime += time.Since(start)
		start = time.Now()
		drvRound(n)
		drvTime += time.Since(start)
		done += n
	}
	b.ReportMetric(float64(b.N)/rawTime.Seconds(), "raw-msgs/s")
	b.ReportMetric(float64(b.N)/drvTime.Seconds(), "driver-msgs/s")
	b.ReportMetric(rawTime.Seconds()/drvTime.Seconds(), "driver/raw")
}

// e2eRound is how many messages one side sends before the other's turn.
const e2eRound = 1000
