package rabbit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/conformance/bench"
	"github.com/switchyard-mq/switchyard/internal/brokertest"
	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

// BenchmarkRPCScale measures what RPC servers cost as they grow in one
// process (issue 16): 1, 100 and 1 000 rpc.Servers, each on a topic of its
// own (Target{Topic: "scale_<i>", Server: "host"}), all on ONE rabbit://
// transport, with one rpc.Client on the same transport and a Prepare'd
// client per topic sharing its reply queue (oslo's prepare(): what a
// service that talks to many topics does). Every server answers a call
// before anything is measured. Then, with all of them up:
//
//   - connections and channels: what RabbitMQ's management API shows for
//     the benchmark's own virtual host, that is for this process;
//
//   - goroutines/server and heap-B/server: runtime.NumGoroutine and the
//     heap in use after a GC, above what the transport and the client
//     cost before any server started, divided by the servers;
//
//   - calls/s, p50-µs and p99-µs: b.N sequential calls to the first server.
//
//     SWITCHYARD_BROKERS=required go test -run='^$' -bench=RPCScale -benchtime=2000x ./drivers/rabbit/
func BenchmarkRPCScale(b *testing.B) {
	for _, servers := range []int{1, 100, 1000} {
		s := &scaleSetup{servers: servers, vh: brokertest.NewRabbitVHost(b)}
		b.Run(fmt.Sprintf("servers=%d", servers), s.measure)
		s.close(b)
	}
}

// scaleStartParallel bounds the servers starting at once.
const scaleStartParallel = 16

// scaleSetup is the servers and client of one size, started by the first
// of the runs testing.B makes of it (and only if the size is selected).
type scaleSetup struct {
	servers int
	ctx     context.Context
	cancel  context.CancelFunc
	vh      *brokertest.RabbitVHost
	tr      *transport.Transport
	client  *rpc.Client
	srvs    []*rpc.Server
	topics  []string

	connections, channels int
	goroutines, heap      float64 // per server
}

// start opens the transport, starts the servers and calls each once.
func (s *scaleSetup) start(b *testing.B) {
	b.Helper()
	servers := s.servers
	s.ctx, s.cancel = context.WithTimeout(context.Background(), 5*time.Minute)
	quiet := transport.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	var err error
	if s.tr, err = transport.Open(s.ctx, s.vh.URL, quiet); err != nil {
		b.Fatal(err)
	}
	if s.client, err = rpc.NewClient(s.tr, rpc.WithTimeout(30*time.Second)); err != nil {
		b.Fatal(err)
	}
	// The client's reply queue, consumed at its first call, counts with
	// the servers: a few goroutines for all of them.
	goroutines0, heap0 := runtime.NumGoroutine(), heapInUse()

	s.srvs = make([]*rpc.Server, servers)
	s.topics = make([]string, servers)
	for i := range servers {
		s.topics[i] = fmt.Sprintf("scale_%d", i)
		srv, err := rpc.NewServer(s.tr, transport.Target{Topic: s.topics[i], Server: "host"}, []rpc.Endpoint{{Receiver: benchEcho{}}})
		if err != nil {
			b.Fatal(err)
		}
		s.srvs[i] = srv
	}
	start := time.Now()
	if err := inParallel(servers, func(i int) error { return s.srvs[i].Start(s.ctx) }); err != nil {
		b.Fatalf("starting %d servers: %v", servers, err)
	}
	started := time.Since(start)
	// Every server answers, each through a client of its own topic.
	err = inParallel(servers, func(i int) error {
		var got benchArgs
		target := transport.Target{Topic: s.topics[i]}
		if err := s.client.Prepare().Call(s.ctx, target, "echo", benchArgs{N: i, Pad: rpcBenchPad}, &got); err != nil {
			return fmt.Errorf("topic %s: %w", target.Topic, err)
		}
		if got.N != i {
			return fmt.Errorf("topic %s: reply %+v", target.Topic, got)
		}
		return nil
	})
	if err != nil {
		b.Fatalf("calling each of %d servers: %v", servers, err)
	}
	s.goroutines = float64(runtime.NumGoroutine()-goroutines0) / float64(servers)
	s.heap = float64(heapInUse()-heap0) / float64(servers)
	s.connections, s.channels = s.brokerCounts(b)
	b.Logf("%d servers: started in %v; %d connections, %d channels; %.1f goroutines and %.0f heap bytes per server",
		servers, started.Round(time.Millisecond), s.connections, s.channels, s.goroutines, s.heap)
}

// brokerCounts polls the management API, which learns of channels only at
// their first statistics (every 5 s by default), until its counts have not
// changed for scaleSettle.
func (s *scaleSetup) brokerCounts(b *testing.B) (connections, channels int) {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	var since time.Time
	for {
		conns, chans := len(s.vh.Connections(b)), len(s.vh.Channels(b))
		if conns != connections || chans != channels || conns == 0 {
			connections, channels, since = conns, chans, time.Now()
		} else if time.Since(since) >= scaleSettle {
			return connections, channels
		}
		if time.Now().After(deadline) {
			b.Fatalf("the management API's counts did not settle: %d connections, %d channels", connections, channels)
		}
		select {
		case <-time.After(time.Second):
		case <-s.ctx.Done():
			b.Fatal(s.ctx.Err())
		}
	}
}

// scaleSettle is how long the management API's counts must stay the same
// to be taken: longer than its statistics interval.
const scaleSettle = 7 * time.Second

// measure calls the first server b.N times and reports the setup's counts.
func (s *scaleSetup) measure(b *testing.B) {
	if s.tr == nil {
		s.start(b)
	}
	target := transport.Target{Topic: s.topics[0]}
	bench.Calls{Latencies: true}.Run(b, func(i int) error {
		var got benchArgs
		if err := s.client.Call(s.ctx, target, "echo", benchArgs{N: i, Pad: rpcBenchPad}, &got); err != nil {
			return err
		}
		if got.N != i {
			return fmt.Errorf("call %d: reply for %d", i, got.N)
		}
		return nil
	})
	b.ReportMetric(float64(s.connections), "connections")
	b.ReportMetric(float64(s.channels), "channels")
	b.ReportMetric(s.goroutines, "goroutines/server")
	b.ReportMetric(s.heap, "heap-B/server")
}

// close stops the servers and deletes their topic queues, which outlive
// servers as oslo's do, and closes the client and the transport.
func (s *scaleSetup) close(b *testing.B) {
	b.Helper()
	if s.tr == nil {
		return // not selected
	}
	defer s.cancel()
	stop := func(i int) error {
		if s.srvs[i] == nil {
			return nil
		}
		return s.srvs[i].Stop(s.ctx)
	}
	if err := inParallel(len(s.srvs), stop); err != nil {
		b.Errorf("stopping the servers: %v", err)
	}
	if s.client != nil {
		_ = s.client.Close()
	}
	if err := s.tr.Close(); err != nil {
		b.Errorf("closing the transport: %v", err)
	}
}

// inParallel runs f(0) to f(n-1), scaleStartParallel at a time, and
// returns their errors joined.
func inParallel(n int, f func(i int) error) error {
	sem := make(chan struct{}, scaleStartParallel)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = f(i)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// heapInUse is the heap's live bytes after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
