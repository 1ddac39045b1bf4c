package zmq_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"

	"github.com/switchyard-mq/switchyard/conformance/bench"
	"github.com/switchyard-mq/switchyard/transport"
)

// BenchmarkBackend runs the benchmark harness's cases on zmq://, each
// beside raw zmq4 sockets doing the same: the cases every backend runs,
// under the same names.
//
//	go test -run='^$' -bench=Backend -benchmem ./drivers/zmq/
func BenchmarkBackend(b *testing.B) { bench.RunBenchmarks(b, "zmq://"+registryName(b)) }

// Benchmarks of the driver beside raw zmq4 in the same run, 100-byte
// messages over loopback TCP:
//
//	go test -run='^$' -bench=. -benchmem -count=3 ./drivers/zmq/...
//
// Stream: one-way throughput (msg/s). RoundTrip: sequential request and
// reply (rt/s, with p50 and p99 latency), the path an RPC Call takes.

var payload = bytes.Repeat([]byte("x"), 100)

func benchCtx(b *testing.B) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	b.Cleanup(cancel)
	return ctx
}

func BenchmarkStream(b *testing.B) {
	b.Run("raw-zmq4-push-pull", benchRawPushPull)
	b.Run("switchyard-auto-ack", func(b *testing.B) { benchStream(b, true) })
	b.Run("switchyard-manual-ack", func(b *testing.B) { benchStream(b, false) })
}

func benchRawPushPull(b *testing.B) {
	ctx := benchCtx(b)
	push := zmq4.NewPush(ctx, zmq4.WithTimeout(10*time.Second))
	defer push.Close()
	if err := push.Listen("tcp://127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	pull := zmq4.NewPull(ctx, zmq4.WithTimeout(10*time.Second))
	defer pull.Close()
	if err := pull.Dial("tcp://" + push.Addr().String()); err != nil {
		b.Fatal(err)
	}
	// Warm up: the first message proves the connection is up.
	if err := push.Send(zmq4.NewMsg(payload)); err != nil {
		b.Fatal(err)
	}
	if _, err := pull.Recv(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	done := make(chan error, 1)
	b.ResetTimer()
	go func() {
		for range b.N {
			if _, err := pull.Recv(); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range b.N {
		if err := push.Send(zmq4.NewMsg(payload)); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
}

// benchTransports opens a publisher and a consumer transport on one fresh
// in-process registry: two nodes, so messages cross loopback TCP.
func benchTransports(b *testing.B) (*transport.Transport, *transport.Transport) {
	ctx := benchCtx(b)
	url := "zmq://" + registryName(b) + "?buffer_size=100000"
	open := func() *transport.Transport {
		tr, err := transport.Open(ctx, url)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = tr.Close() })
		return tr
	}
	return open(), open()
}

func benchStream(b *testing.B, autoAck bool) {
	ctx := benchCtx(b)
	pub, sub := benchTransports(b)
	q, err := sub.DeclareQueue(ctx, transport.Queue{Name: "stream"})
	if err != nil {
		b.Fatal(err)
	}
	cons, err := sub.Consume(ctx, q, transport.ConsumeOptions{AutoAck: autoAck})
	if err != nil {
		b.Fatal(err)
	}
	receive := func(n int) error {
		for range n {
			d, err := cons.Receive(ctx)
			if err != nil {
				return err
			}
			if !autoAck {
				if err := d.Ack(); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := pub.Publish(ctx, "", q, transport.Message{Body: payload}); err != nil { // warm up
		b.Fatal(err)
	}
	if err := receive(1); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	done := make(chan error, 1)
	b.ResetTimer()
	go func() { done <- receive(b.N) }()
	for range b.N {
		if err := pub.Publish(ctx, "", q, transport.Message{Body: payload}); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
}

func BenchmarkRoundTrip(b *testing.B) {
	b.Run("raw-zmq4-dealer-router", benchRawDealerRouter)
	b.Run("switchyard-request-reply", benchRequestReply)
}

func benchRawDealerRouter(b *testing.B) {
	ctx := benchCtx(b)
	router := zmq4.NewRouter(ctx, zmq4.WithID(zmq4.SocketIdentity("server")), zmq4.WithTimeout(10*time.Second))
	defer router.Close()
	if err := router.Listen("tcp://127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	dealer := zmq4.NewDealer(ctx, zmq4.WithID(zmq4.SocketIdentity("client")), zmq4.WithTimeout(10*time.Second))
	defer dealer.Close()
	if err := dealer.Dial("tcp://" + router.Addr().String()); err != nil {
		b.Fatal(err)
	}
	serverDone := make(chan error, 1)
	go func() { // echo every request to its sender, by identity
		for {
			msg, err := router.Recv()
			if err != nil {
				serverDone <- err
				return
			}
			if err := router.Send(msg); err != nil {
				serverDone <- err
				return
			}
		}
	}()
	roundTrip := func() error {
		if err := dealer.Send(zmq4.NewMsg(payload)); err != nil {
			return err
		}
		_, err := dealer.Recv()
		return err
	}
	if err := roundTrip(); err != nil { // warm up
		b.Fatal(err)
	}
	bench.Calls{Unit: "rt/s", Latencies: true}.Run(b, func(int) error { return roundTrip() })
	_ = router.Close()
	<-serverDone
}

// benchRequestReply is the model-level round trip an RPC Call makes: the
// caller publishes to the server's queue with its reply queue in ReplyTo;
// the server publishes the reply to the default exchange with that name
// as key, then acks; the caller receives it (auto-ack).
func benchRequestReply(b *testing.B) {
	ctx := benchCtx(b)
	client, server := benchTransports(b)
	requests, err := server.DeclareQueue(ctx, transport.Queue{Name: "requests"})
	if err != nil {
		b.Fatal(err)
	}
	reqs, err := server.Consume(ctx, requests, transport.ConsumeOptions{Prefetch: 16})
	if err != nil {
		b.Fatal(err)
	}
	replyQueue, err := client.DeclareQueue(ctx, transport.Queue{Exclusive: true})
	if err != nil {
		b.Fatal(err)
	}
	replies, err := client.Consume(ctx, replyQueue, transport.ConsumeOptions{AutoAck: true})
	if err != nil {
		b.Fatal(err)
	}
	serveCtx, stop := context.WithCancel(ctx)
	serverDone := make(chan error, 1)
	go func() {
		for {
			d, err := reqs.Receive(serveCtx)
			if err != nil {
				serverDone <- err
				return
			}
			reply := transport.Message{Body: d.Body, CorrelationID: d.CorrelationID}
			if err := server.Publish(serveCtx, "", d.ReplyTo, reply); err != nil {
				serverDone <- err
				return
			}
			if err := d.Ack(); err != nil {
				serverDone <- err
				return
			}
		}
	}()
	request := transport.Message{Body: payload, ReplyTo: replyQueue, CorrelationID: "call"}
	roundTrip := func() error {
		if err := client.Publish(ctx, "", requests, request); err != nil {
			return err
		}
		_, err := replies.Receive(ctx)
		return err
	}
	if err := roundTrip(); err != nil { // warm up: connections made both ways
		b.Fatal(err)
	}
	bench.Calls{Unit: "rt/s", Latencies: true}.Run(b, func(int) error { return roundTrip() })
	stop()
	<-serverDone
}
