package memory_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/conformance/bench"
	"github.com/switchyard-mq/switchyard/transport"
)

// BenchmarkBackend runs the benchmark harness's cases on memory://, each
// beside a Go channel doing the same: the cases every backend runs, under
// the same names.
//
//	go test -run='^$' -bench=Backend -benchmem ./drivers/memory/
func BenchmarkBackend(b *testing.B) { bench.RunBenchmarks(b, brokerURL(b)) }

// bodySize is the body of every benchmark message, as in the harness's
// cases.
const bodySize = 100

// channelBuffer is the raw baseline's channel capacity.
const channelBuffer = 1024

// BenchmarkPublishConsume measures messages per second from publish to
// consume through the portable transport API on memory://, beside the raw
// baseline: a buffered Go channel passing the same messages between the
// same numbers of goroutines, with a new body per message since the broker
// copies each body. Producers of both stay at most channelBuffer messages
// ahead of the consumers (the channel by its capacity, the broker's by a
// window), so both measure a steady flow, not an ever-growing queue. One
// benchmark op is one message, so allocs/op is allocations per message.
//
//	go test -run='^$' -bench=. -benchmem -count=3 ./drivers/memory/
func BenchmarkPublishConsume(b *testing.B) {
	for _, n := range []int{1, 4} {
		b.Run(fmt.Sprintf("%dx%d", n, n), func(b *testing.B) {
			b.Run("auto-ack", func(b *testing.B) {
				benchTransport(b, n, transport.ConsumeOptions{AutoAck: true})
			})
			b.Run("manual-ack-prefetch-100", func(b *testing.B) {
				benchTransport(b, n, transport.ConsumeOptions{Prefetch: 100})
			})
			b.Run("raw-channel", func(b *testing.B) { benchChannel(b, n) })
		})
	}
}

// split returns how many of total messages worker i of n handles.
func split(total, n, i int) int {
	share := total / n
	if i < total%n {
		share++
	}
	return share
}

// reportRate reports msgs/s for b.N messages in elapsed.
func reportRate(b *testing.B, elapsed time.Duration) {
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}

func benchTransport(b *testing.B, n int, opts transport.ConsumeOptions) {
	ctx, cancel := context.WithTimeout(b.Context(), 5*time.Minute)
	defer cancel()
	tr, err := transport.Open(ctx, brokerURL(b))
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	q, err := tr.DeclareQueue(ctx, transport.Queue{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	consumers := make([]*transport.Consumer, n)
	for i := range consumers {
		if consumers[i], err = tr.Consume(ctx, q, opts); err != nil {
			b.Fatal(err)
		}
	}
	body := make([]byte, bodySize)

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	var published, received atomic.Int64
	w := newWindow(&published, &received)
	for i := range n {
		wg.Go(func() {
			for range split(b.N, n, i) {
				w.wait()
				if err := tr.Publish(ctx, "", q, transport.Message{Body: body}); err != nil {
					errs <- err
					return
				}
				published.Add(1)
			}
		})
	}
	// Consumers compete, so none knows its share: each stops when the
	// total is reached, signalled by cancelling their context.
	done, allReceived := context.WithCancel(ctx)
	defer allReceived()
	for _, c := range consumers {
		wg.Go(func() {
			for {
				d, err := c.Receive(done)
				if err != nil {
					if done.Err() == nil || ctx.Err() != nil {
						errs <- err
					}
					return
				}
				if !opts.AutoAck {
					if err := d.Ack(); err != nil {
						errs <- err
						return
					}
				}
				r := received.Add(1)
				if r == int64(b.N) {
					allReceived()
				}
				w.progress(r)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	reportRate(b, elapsed)
}

// window keeps producers at most channelBuffer messages ahead of the
// consumers, as the raw baseline's channel does, so that both measure a
// steady flow rather than a queue growing without bound.
type window struct {
	published, received *atomic.Int64
	mu                  sync.Mutex
	cond                *sync.Cond
}

func newWindow(published, received *atomic.Int64) *window {
	w := &window{published: published, received: received}
	w.cond = sync.NewCond(&w.mu)
	return w
}

func (w *window) full() bool { return w.published.Load()-w.received.Load() >= channelBuffer }

// wait blocks while the window is full. A full window means consumers
// have channelBuffer messages to take, so progress will broadcast.
func (w *window) wait() {
	if !w.full() {
		return
	}
	w.mu.Lock()
	for w.full() {
		w.cond.Wait()
	}
	w.mu.Unlock()
}

// progress wakes waiting producers every half window of receipts.
func (w *window) progress(received int64) {
	if received%(channelBuffer/2) == 0 {
		w.mu.Lock()
		w.cond.Broadcast()
		w.mu.Unlock()
	}
}

func benchChannel(b *testing.B, n int) {
	template := make([]byte, bodySize)
	ch := make(chan []byte, channelBuffer)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var producers, consumers sync.WaitGroup
	for i := range n {
		producers.Go(func() {
			for range split(b.N, n, i) {
				body := make([]byte, bodySize)
				copy(body, template)
				ch <- body
			}
		})
	}
	for range n {
		consumers.Go(func() {
			for body := range ch {
				_ = body
			}
		})
	}
	producers.Wait()
	close(ch)
	consumers.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	reportRate(b, elapsed)
}
