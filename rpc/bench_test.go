package rpc_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/conformance/bench"
	"github.com/switchyard-mq/switchyard/internal/messaging"
	"github.com/switchyard-mq/switchyard/internal/oslo"
	"github.com/switchyard-mq/switchyard/notify"
	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

// The benchmarks run on memory:// and measure what RPC and notifications
// cost on top of the portable model: each RPC figure has beside it the
// same exchange done raw (publish a request, consume it, publish a reply,
// consume it) in the same run.
//
//	go test -run=^$ -bench=. -benchmem -count=3 ./rpc/
//
//   - switchyard: rpc.Client.Call against an rpc.Server.
//   - raw: the request/reply loop with nothing on top: a 30-byte body,
//     correlated by the correlation id property.
//   - raw-oslo-envelope: the raw loop carrying oslo's envelope, as every
//     Switchyard call must: the request and the reply encoded and decoded
//     with package oslo's codec, fresh _msg_id and _unique_ids, replies
//     correlated by the _msg_id in their body; no arguments decoded, no
//     method dispatched. It is the most of raw that a client speaking
//     oslo's wire with this codec can keep; the gap from it to switchyard
//     is what dispatch, arguments, contexts and reply matching cost.
//   - raw-oslo-client: raw-oslo-envelope keeping the promises a
//     Switchyard call keeps on memory://, and nothing else: the request
//     sent through a topic exchange, as oslo's, and mandatory, as the
//     reply (a missing queue fails at once); a timeout per call, the
//     caller waiting on its reply or its timer; up to 64 handlers at
//     once, so that a slow one holds only its own request
//     (DefaultMaxConcurrency goroutines receiving, none handing a request
//     to another); each request acked as its handling begins and dropped
//     if its _unique_id came within the last DuplicateWindow. It is the
//     floor for Switchyard: a hand-written client with its promises.

type echoService struct{}

type echoArgs struct {
	N int `json:"n"`
}

func (echoService) Echo(ctx context.Context, args echoArgs) (int, error) { return args.N, nil }

func (echoService) Record(ctx context.Context, args echoArgs) error { return nil }

func benchTransport(b *testing.B) *transport.Transport {
	b.Helper()
	name := strings.NewReplacer("/", "-", "=", "-").Replace(b.Name())
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	tr, err := transport.Open(context.Background(), "memory://bench-"+name, transport.WithLogger(quiet))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tr.Close() })
	return tr
}

// rpcFixture starts a server and returns a client and the target.
func rpcFixture(b *testing.B, tr *transport.Transport) (*rpc.Client, transport.Target) {
	b.Helper()
	ctx := context.Background()
	target := transport.Target{Topic: "bench", Server: "s1"}
	srv, err := rpc.NewServer(tr, target, []rpc.Endpoint{{Receiver: echoService{}}})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Stop(ctx) })
	client, err := rpc.NewClient(tr, rpc.WithTimeout(10*time.Second))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { client.Close() })
	return client, transport.Target{Topic: "bench"}
}

// BenchmarkCall: sequential calls, one at a time.
func BenchmarkCall(b *testing.B) { benchCalls(b, bench.Calls{Latencies: true}) }

// BenchmarkCall64: 64 calls in flight.
func BenchmarkCall64(b *testing.B) { benchCalls(b, bench.Calls{Callers: 64}) }

// benchCalls measures calls through Switchyard and the raw loops. The
// calls' context is one that never ends, as a service's would be, so that
// none of them registers with a parent to be cancelled.
func benchCalls(b *testing.B, calls bench.Calls) {
	ctx := context.Background()
	b.Run("switchyard", func(b *testing.B) {
		client, target := rpcFixture(b, benchTransport(b))
		calls.Run(b, func(i int) error { return echo(ctx, client, target, i) })
	})
	for _, raw := range []struct {
		name string
		kind rawKind
	}{{"raw", rawPlain}, {"raw-oslo-envelope", rawEnvelope}, {"raw-oslo-client", rawPromises}} {
		b.Run(raw.name, func(b *testing.B) {
			loop := newRawRPC(b, benchTransport(b), raw.kind)
			calls.Run(b, func(int) error { return loop.call(ctx) })
		})
	}
}

// echo calls echo with i, checking that i comes back.
func echo(ctx context.Context, client *rpc.Client, target transport.Target, i int) error {
	var n int
	if err := client.Call(ctx, target, "echo", echoArgs{N: i}, &n); err != nil {
		return err
	}
	if n != i {
		return fmt.Errorf("call %d: reply for %d", i, n)
	}
	return nil
}

// rawKind is what a rawRPC carries and keeps.
type rawKind int

const (
	rawPlain    rawKind = iota // a 30-byte body, correlated by correlation id
	rawEnvelope                // oslo's envelope, correlated by its _msg_id
	rawPromises                // oslo's envelope and Switchyard's promises
)

// rawRPC is request/reply on the portable model with nothing on top: one
// request queue served by one consumer, one reply queue whose consumer
// hands replies to callers by correlation id, or, with oslo's envelope,
// by its _msg_id. With rawPromises, the consumer is served by
// DefaultMaxConcurrency goroutines, each dropping repeated _unique_ids,
// and publishes are mandatory.
type rawRPC struct {
	tr      *transport.Transport
	kind    rawKind
	replyQ  string
	mu      sync.Mutex
	waiting map[string]chan struct{}
	seq     atomic.Uint64

	recentMu      sync.Mutex
	recent, older map[string]struct{} // _unique_ids, in two generations
	timers        sync.Pool           // of *time.Timer, stopped
}

func newRawRPC(b *testing.B, tr *transport.Transport, kind rawKind) *rawRPC {
	ctx := context.Background()
	envelope, promises := kind != rawPlain, kind == rawPromises
	r := &rawRPC{tr: tr, kind: kind, waiting: map[string]chan struct{}{}}
	if _, err := tr.DeclareQueue(ctx, transport.Queue{Name: "raw-requests"}); err != nil {
		b.Fatal(err)
	}
	if promises {
		// Requests go through a topic exchange, as oslo's do, to be
		// served by oslo's servers.
		if err := tr.DeclareExchange(ctx, transport.Exchange{Name: rawExchange, Kind: transport.Topic}); err != nil {
			b.Fatal(err)
		}
		if err := tr.Bind(ctx, transport.Binding{Queue: "raw-requests", Exchange: rawExchange, Key: "raw-requests"}); err != nil {
			b.Fatal(err)
		}
	}
	var err error
	if r.replyQ, err = tr.DeclareQueue(ctx, transport.Queue{Exclusive: true}); err != nil {
		b.Fatal(err)
	}
	server, err := tr.Consume(ctx, "raw-requests", transport.ConsumeOptions{Prefetch: 64})
	if err != nil {
		b.Fatal(err)
	}
	replies, err := tr.Consume(ctx, r.replyQ, transport.ConsumeOptions{AutoAck: true})
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	serve := func() {
		for {
			d, err := server.Receive(ctx)
			if err != nil {
				return
			}
			_ = d.Ack()
			reply := transport.Message{Body: d.Body, CorrelationID: d.CorrelationID, Mandatory: promises}
			replyTo := d.ReplyTo
			if envelope {
				req, err := oslo.UnwrapRequest(d.Body)
				if err != nil {
					b.Error(err)
					return
				}
				if promises && !r.admit(req.UniqueID) {
					continue
				}
				replyTo = req.ReplyQ
				reply.Body, err = oslo.WrapReply(&oslo.Reply{Result: json.RawMessage("1"), Ending: true, MsgID: req.MsgID, UniqueID: oslo.NewID()})
				if err != nil {
					b.Error(err)
					return
				}
			}
			// A reply that fails ends its call at its timeout (promises),
			// or never (the other kinds): the benchmark fails or stalls.
			_ = tr.Publish(ctx, "", replyTo, reply)
		}
	}
	servers := 1
	if promises {
		servers = rpc.DefaultMaxConcurrency
	}
	for range servers {
		wg.Go(serve)
	}
	wg.Go(func() {
		for {
			d, err := replies.Receive(ctx)
			if err != nil {
				return
			}
			id := d.CorrelationID
			if envelope {
				reply, err := oslo.UnwrapReply(d.Body)
				if err != nil {
					b.Error(err)
					return
				}
				id = reply.MsgID
			}
			r.mu.Lock()
			ch := r.waiting[id]
			delete(r.waiting, id)
			r.mu.Unlock()
			if ch != nil {
				close(ch)
			}
		}
	})
	b.Cleanup(func() { server.Close(); replies.Close(); wg.Wait() })
	return r
}

// admit reports whether a request's _unique_id is new, remembering it.
func (r *rawRPC) admit(id string) bool {
	r.recentMu.Lock()
	defer r.recentMu.Unlock()
	if _, ok := r.recent[id]; ok {
		return false
	}
	if _, ok := r.older[id]; ok {
		return false
	}
	if r.recent == nil || len(r.recent) == messaging.DuplicateWindow {
		r.recent, r.older = make(map[string]struct{}, messaging.DuplicateWindow), r.recent
	}
	r.recent[id] = struct{}{}
	return true
}

// rawExchange is the topic exchange a rawPromises client sends through.
const rawExchange = "raw_openstack"

// rawCallTimeout is a rawPromises call's timeout, as the rpc fixture's.
const rawCallTimeout = 10 * time.Second

// call makes one call and waits for its reply (with rawPromises, until
// its timeout).
func (r *rawRPC) call(ctx context.Context) error {
	seq := strconv.FormatUint(r.seq.Add(1), 10)
	id := seq
	envelope := r.kind != rawPlain
	if envelope {
		id = oslo.NewID()
	}
	done := make(chan struct{})
	r.mu.Lock()
	r.waiting[id] = done
	r.mu.Unlock()
	msg := transport.Message{Body: []byte(`{"method":"echo","args":{"n":` + seq + `}}`), ReplyTo: r.replyQ, CorrelationID: id}
	if envelope {
		var err error
		msg = transport.Message{Mandatory: r.kind == rawPromises}
		msg.Body, err = oslo.WrapRequest(&oslo.Request{Method: "echo", Args: json.RawMessage(`{"n":` + seq + `}`),
			MsgID: id, ReplyQ: r.replyQ, UniqueID: oslo.NewID()})
		if err != nil {
			return err
		}
	}
	exchange := ""
	if r.kind == rawPromises {
		exchange = rawExchange
	}
	if err := r.tr.Publish(ctx, exchange, "raw-requests", msg); err != nil {
		return err
	}
	if r.kind != rawPromises {
		<-done
		return nil
	}
	timeout, _ := r.timers.Get().(*time.Timer)
	if timeout == nil {
		timeout = time.NewTimer(rawCallTimeout)
	} else {
		timeout.Reset(rawCallTimeout)
	}
	defer func() {
		timeout.Stop()
		r.timers.Put(timeout)
	}()
	select {
	case <-done:
		return nil
	case <-timeout.C:
		r.mu.Lock()
		delete(r.waiting, id)
		r.mu.Unlock()
		return fmt.Errorf("no reply to %s within %v", id, rawCallTimeout)
	}
}

// BenchmarkCast: casts until the server has run them all.
func BenchmarkCast(b *testing.B) {
	tr := benchTransport(b)
	client, target := rpcFixture(b, tr)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if err := client.Cast(ctx, target, "record", echoArgs{N: i}); err != nil {
			b.Fatal(err)
		}
	}
	// A call after the casts returns once the server has taken them all.
	if err := client.Call(ctx, target, "echo", echoArgs{}, nil); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkNotify: notifications published and handled by a listener.
func BenchmarkNotify(b *testing.B) {
	tr := benchTransport(b)
	ctx := context.Background()
	var handled atomic.Int64
	done := make(chan struct{})
	listener, err := notify.NewListener(tr, []transport.Target{{Topic: "bench"}}, []notify.Endpoint{{
		Handle: func(context.Context, *notify.Notification) error {
			if handled.Add(1) == int64(b.N) {
				close(done)
			}
			return nil
		},
	}})
	if err != nil {
		b.Fatal(err)
	}
	if err := listener.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer listener.Stop(ctx)
	notifier, err := notify.NewNotifier(tr, "bench.host", notify.WithTopics("bench"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if err := notifier.Info(ctx, "bench.event", echoArgs{N: i}); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		b.Fatalf("handled %d of %d", handled.Load(), b.N)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
