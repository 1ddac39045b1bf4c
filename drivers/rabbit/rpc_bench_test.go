package rabbit

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-mq/switchyard/conformance/bench"
	"github.com/switchyard-mq/switchyard/internal/brokertest"
	"github.com/switchyard-mq/switchyard/internal/oslo"
	"github.com/switchyard-mq/switchyard/internal/rawoslo"
	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

// RPC benchmarks: Switchyard's rpc Client and Server on this driver and,
// in the same run, raw amqp091-go request/reply loops, with about 100
// bytes of payload:
//
//	go test -run='^$' -bench=RPC -benchmem -count=3 ./drivers/rabbit/
//
// sequential: one caller, one call at a time. inflight16: 16 goroutines
// calling at once, replies matched by correlation id on one reply queue.
// Each reports calls/s and p50/p99 latency. Every case has two
// connections, the server's and the client's, and its server acks each
// request before answering it.
//
//   - raw: RabbitMQ tutorial 6 on amqp091-go: the default exchange, an
//     exclusive reply queue, reply_to and correlation_id, 100-byte bodies,
//     nothing else.
//   - raw-oslo-wire: amqp091-go putting on the wire what Switchyard (and
//     oslo.messaging) puts there: requests to a topic exchange, in
//     envelope-sized bodies, persistent, with content type, encoding and
//     the call timeout as expiration, each waiting for its confirm;
//     replies mandatory, persistent and confirmed; a reply queue with
//     x-expires. The gap from raw is the cost of oslo's wire.
//   - raw-oslo-wire-unconfirmed: the same without publisher confirms,
//     which peers never see, and without learning whether a request was
//     routed: the most any client could keep of oslo's wire.
//   - raw-oslo-wire-mandatory: raw-oslo-wire with its requests mandatory,
//     an unroutable one failing its call once returned: the delivery
//     promises Switchyard's RPC keeps, though no oslo peer could talk
//     with it (see raw-oslo-client).
//   - raw-oslo-client: raw-oslo-wire-mandatory doing what any program
//     that talks with oslo.messaging peers must do, written lean with
//     encoding/json: each request's envelope built with a fresh _msg_id
//     and _unique_id, the server reading it, dropping a repeated
//     _unique_id and replying to its _reply_q, and each reply matched by
//     the _msg_id in its body (oslo's servers set no correlation id).
//     raw-oslo-wire-mandatory sends the same bytes every time and matches
//     replies by correlation id, which no oslo peer would answer.
//   - transport-oslo-wire: that loop on the transport API over this
//     driver, without package rpc, requests mandatory as Switchyard's
//     are (a call nobody serves fails at once). The gap from
//     raw-oslo-wire-mandatory is the driver's cost.
//   - switchyard: rpc.Client.Call against an rpc.Server. The gap from
//     transport-oslo-wire is the rpc layer's (envelope codec, dispatch,
//     reply matching).

const (
	rpcBenchInFlight = 16
	rpcBenchTimeout  = 2 * time.Minute
)

// rpcBenchPad makes the arguments (or the raw body) about 100 bytes.
var rpcBenchPad = strings.Repeat("x", 80)

// BenchmarkRPC runs the cases above, sequential then with 16 calls in flight.
func BenchmarkRPC(b *testing.B) {
	vh := brokertest.NewRabbitVHost(b)
	for _, mode := range []struct {
		name     string
		inFlight int
	}{{"sequential", 1}, {"inflight16", rpcBenchInFlight}} {
		b.Run(mode.name+"/raw", func(b *testing.B) { benchRawRPC(b, vh, mode.inFlight, rawWire{}) })
		b.Run(mode.name+"/raw-oslo-wire", func(b *testing.B) { benchRawRPC(b, vh, mode.inFlight, rawWire{oslo: true}) })
		b.Run(mode.name+"/raw-oslo-wire-unconfirmed", func(b *testing.B) {
			benchRawRPC(b, vh, mode.inFlight, rawWire{oslo: true, unconfirmed: true})
		})
		b.Run(mode.name+"/raw-oslo-wire-mandatory", func(b *testing.B) {
			benchRawRPC(b, vh, mode.inFlight, rawWire{oslo: true, mandatory: true})
		})
		b.Run(mode.name+"/raw-oslo-client", func(b *testing.B) {
			benchRawRPC(b, vh, mode.inFlight, rawWire{oslo: true, mandatory: true, envelopes: true})
		})
		b.Run(mode.name+"/transport-oslo-wire", func(b *testing.B) { benchTransportRPC(b, vh, mode.inFlight) })
		b.Run(mode.name+"/switchyard", func(b *testing.B) { benchSwitchyardRPC(b, vh, mode.inFlight, "") })
	}
}

// benchArgs are the arguments of a Switchyard call: about 100 bytes.
type benchArgs struct {
	N   int    `json:"n"`
	Pad string `json:"pad"`
}

type benchEcho struct{}

func (benchEcho) Echo(_ context.Context, args benchArgs) (benchArgs, error) { return args, nil }

func benchSwitchyardRPC(b *testing.B, vh *brokertest.RabbitVHost, inFlight int, query string) {
	ctx, cancel := context.WithTimeout(context.Background(), rpcBenchTimeout)
	defer cancel()
	quiet := transport.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	open := func() *transport.Transport {
		tr, err := transport.Open(ctx, vh.URL+query, quiet)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = tr.Close() })
		return tr
	}
	srvTr, clientTr := open(), open()
	topic := "bench_" + oslo.NewID()[:8]
	srv, err := rpc.NewServer(srvTr, transport.Target{Topic: topic, Server: "s1"}, []rpc.Endpoint{{Receiver: benchEcho{}}})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = srv.Stop(context.Background())
		// Topic queues outlive their servers, as oslo's do.
		for _, q := range []string{topic, topic + ".s1"} {
			_, _ = srvTr.DeleteQueue(context.Background(), q)
		}
	})
	client, err := rpc.NewClient(clientTr, rpc.WithTimeout(10*time.Second))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = client.Close() })
	target := transport.Target{Topic: topic}
	if err := client.Call(ctx, target, "echo", benchArgs{Pad: rpcBenchPad}, nil); err != nil {
		b.Fatal(err) // warm: the reply queue and the exchange are declared
	}
	bench.Calls{Callers: inFlight, Latencies: true}.Run(b, func(i int) error {
		var got benchArgs
		if err := client.Call(ctx, target, "echo", benchArgs{N: i, Pad: rpcBenchPad}, &got); err != nil {
			return err
		}
		if got.N != i {
			return fmt.Errorf("call %d: reply for %d", i, got.N)
		}
		return nil
	})
}

// rawWire is what the raw loop puts on the wire.
type rawWire struct {
	// oslo makes the raw loop send what Switchyard sends: requests to a
	// topic exchange, persistent, with content type and encoding, the call
	// timeout as expiration and bodies of the oslo envelope's size, each
	// waiting for its confirm; replies mandatory, persistent and
	// confirmed; the reply queue non-exclusive with x-expires. Without it,
	// tutorial 6: the default exchange, 100-byte bodies, nothing else.
	oslo bool
	// unconfirmed drops publisher confirms from the oslo wire, on
	// requests and replies: what nothing else can take off the broker's
	// work while the frames stay oslo's.
	unconfirmed bool
	// mandatory makes the oslo wire's requests mandatory too, a return
	// failing its call at once: exactly the promises Switchyard's RPC
	// keeps.
	mandatory bool
	// envelopes makes the mandatory oslo wire a client and server of
	// oslo's protocol (package rawoslo): envelopes built and read per
	// message with encoding/json, replies matched by their body's _msg_id,
	// repeated requests dropped by _unique_id.
	envelopes bool
}

// rawRPC is the client side of the raw amqp091-go request/reply loop.
type rawRPC struct {
	pub       *amqp.Channel
	mandatory bool
	exchange  string
	key       string
	replyQ    string
	request   amqp.Publishing
	envelopes bool

	mu      sync.Mutex
	waiting map[string]chan rawAnswer
}

// rawAnswer is what a raw call waits for: its reply's body, the reply
// read from its envelope (raw-oslo-client), or the return of its request.
type rawAnswer struct {
	body     []byte
	reply    *rawoslo.Reply[benchArgs]
	returned bool
}

// osloBodies returns a request and a reply as Switchyard encodes them, for
// the raw loop to send as they are.
func osloBodies(b *testing.B, replyQ string) (request, reply []byte) {
	args, _ := json.Marshal(benchArgs{N: 12345, Pad: rpcBenchPad})
	request, err := oslo.WrapRequest(&oslo.Request{Method: "echo", Args: args, MsgID: oslo.NewID(), ReplyQ: replyQ, UniqueID: oslo.NewID()})
	if err != nil {
		b.Fatal(err)
	}
	reply, err = oslo.WrapReply(&oslo.Reply{Result: args, Ending: true, MsgID: oslo.NewID(), UniqueID: oslo.NewID()})
	if err != nil {
		b.Fatal(err)
	}
	return request, reply
}

func benchRawRPC(b *testing.B, vh *brokertest.RabbitVHost, inFlight int, wire rawWire) {
	ctx, cancel := context.WithTimeout(context.Background(), rpcBenchTimeout)
	defer cancel()
	cfg, err := transport.ParseURL(vh.URL)
	if err != nil {
		b.Fatal(err)
	}
	dial := func() *amqp.Connection {
		conn, err := amqp.Dial(fmt.Sprintf("amqp://%s:%s@%s/%s", cfg.User, cfg.Password, cfg.Hosts[0], vh.Name))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = conn.Close() })
		return conn
	}
	channel := func(conn *amqp.Connection, confirm bool) *amqp.Channel {
		ch, err := conn.Channel()
		if err != nil {
			b.Fatal(err)
		}
		if confirm {
			if err := ch.Confirm(false); err != nil {
				b.Fatal(err)
			}
		}
		return ch
	}

	// The client's reply queue comes first: the oslo bodies name it.
	clientConn := dial()
	replyArgs, exclusive := amqp.Table(nil), true
	if wire.oslo {
		replyArgs, exclusive = amqp.Table{"x-expires": int64(1800000)}, false
	}
	replyQ, err := channel(clientConn, false).QueueDeclare(uniq("reply-raw"), false, false, exclusive, false, replyArgs)
	if err != nil {
		b.Fatal(err)
	}
	requestBody := []byte(`{"n":12345,"pad":"` + rpcBenchPad + `"}`)
	replyBody := requestBody
	if wire.oslo {
		requestBody, replyBody = osloBodies(b, replyQ.Name)
	}

	// The server: consume requests with manual ack; ack each, then reply.
	srvConn := dial()
	srvCh := channel(srvConn, false)
	requestQ := uniq("rpc-raw")
	if _, err := srvCh.QueueDeclare(requestQ, false, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _, _ = srvCh.QueueDelete(requestQ, false, false, false) })
	exchange := ""
	if wire.oslo {
		exchange = uniq("openstack-raw")
		if err := srvCh.ExchangeDeclare(exchange, amqp.ExchangeTopic, false, false, false, false, nil); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = srvCh.ExchangeDelete(exchange, false, false) })
		if err := srvCh.QueueBind(requestQ, requestQ, exchange, false, nil); err != nil {
			b.Fatal(err)
		}
	}
	if err := srvCh.Qos(64, 0, false); err != nil {
		b.Fatal(err)
	}
	requests, err := srvCh.Consume(requestQ, "", false, false, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	confirm := wire.oslo && !wire.unconfirmed
	replyCh := channel(srvConn, confirm)
	serverDone := make(chan struct{})
	go func() {
		defer close(serverDone)
		var confirms sync.WaitGroup
		defer confirms.Wait()
		server := rawoslo.Server[benchArgs, benchArgs]{Method: "echo", Handle: func(a benchArgs) benchArgs { return a }}
		for d := range requests {
			if err := d.Ack(false); err != nil {
				return
			}
			reply := amqp.Publishing{CorrelationId: d.CorrelationId, Body: replyBody}
			if wire.oslo {
				reply.ContentType, reply.ContentEncoding, reply.DeliveryMode = "application/json", "utf-8", amqp.Persistent
			}
			replyTo := d.ReplyTo
			if wire.envelopes {
				var ok bool
				if reply.Body, replyTo, ok = server.Answer(d.Body); !ok {
					continue
				}
			}
			dc, err := replyCh.PublishWithDeferredConfirm("", replyTo, wire.oslo, false, reply)
			if err != nil {
				return
			}
			if dc != nil { // wait for the confirm without holding up the next request
				confirms.Add(1)
				go func() {
					defer confirms.Done()
					_, _ = dc.WaitContext(ctx)
				}()
			}
		}
	}()
	b.Cleanup(func() {
		_ = srvCh.Close()
		<-serverDone
	})

	// The client: consume replies with auto-ack, matched by correlation id.
	consumeCh := channel(clientConn, false)
	replies, err := consumeCh.Consume(replyQ.Name, "", true, exclusive, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	r := &rawRPC{
		pub: channel(clientConn, confirm), exchange: exchange, key: requestQ, replyQ: replyQ.Name,
		request: amqp.Publishing{ReplyTo: replyQ.Name, Body: requestBody},
		waiting: map[string]chan rawAnswer{}, envelopes: wire.envelopes,
	}
	if wire.oslo {
		r.request.ContentType, r.request.ContentEncoding, r.request.DeliveryMode = "application/json", "utf-8", amqp.Persistent
		r.request.Expiration = "10000"
	}
	if wire.mandatory {
		// RabbitMQ returns an unroutable request before confirming it:
		// the call fails once the return comes.
		r.mandatory = true
		returns := r.pub.NotifyReturn(make(chan amqp.Return, inFlight))
		go func() {
			for ret := range returns {
				r.answer(r.returnedID(ret), rawAnswer{returned: true})
			}
		}()
	}
	dispatchDone := make(chan struct{})
	go func() {
		defer close(dispatchDone)
		for d := range replies {
			if !r.envelopes {
				r.answer(d.CorrelationId, rawAnswer{body: d.Body})
				continue
			}
			// The call is named inside the envelope: read it here, once.
			var reply rawoslo.Reply[benchArgs]
			if err := rawoslo.Unwrap(d.Body, &reply); err == nil {
				r.answer(reply.MsgID, rawAnswer{reply: &reply})
			}
		}
	}()
	b.Cleanup(func() {
		_ = consumeCh.Close()
		<-dispatchDone
	})
	if !exclusive {
		b.Cleanup(func() { _, _ = srvCh.QueueDelete(replyQ.Name, false, false, false) })
	}

	bench.Calls{Callers: inFlight, Latencies: true}.Run(b, func(i int) error { return r.call(ctx, i, len(replyBody)) })
}

// answer hands a to the call waiting under id, if any.
func (r *rawRPC) answer(id string, a rawAnswer) {
	r.mu.Lock()
	w := r.waiting[id]
	delete(r.waiting, id)
	r.mu.Unlock()
	if w != nil {
		w <- a
	}
}

// returnedID is the call whose request the broker returned: its
// correlation id, or with envelopes the _msg_id in its body.
func (r *rawRPC) returnedID(ret amqp.Return) string {
	if !r.envelopes {
		return ret.CorrelationId
	}
	var req rawoslo.Request[benchArgs]
	if rawoslo.Unwrap(ret.Body, &req) != nil {
		return ""
	}
	return req.MsgID
}

// call sends request i and waits for its reply.
func (r *rawRPC) call(ctx context.Context, i, replySize int) error {
	id := strconv.Itoa(i)
	request := r.request
	if r.envelopes {
		id = rawoslo.NewID()
		var err error
		if request.Body, err = rawoslo.Wrap(rawoslo.Request[benchArgs]{
			Method: "echo", Args: benchArgs{N: i, Pad: rpcBenchPad}, MsgID: id, ReplyQ: r.replyQ, UniqueID: rawoslo.NewID(),
		}); err != nil {
			return err
		}
	} else {
		request.CorrelationId = id
	}
	w := make(chan rawAnswer, 1)
	r.mu.Lock()
	r.waiting[id] = w
	r.mu.Unlock()
	dc, err := r.pub.PublishWithDeferredConfirm(r.exchange, r.key, r.mandatory, false, request)
	if err != nil {
		return err
	}
	if dc != nil {
		if ok, err := dc.WaitContext(ctx); err != nil || !ok {
			return fmt.Errorf("request %d not confirmed: %v", i, err)
		}
	}
	select {
	case a := <-w:
		switch {
		case a.returned:
			return fmt.Errorf("call %d: request returned: no queue takes it", i)
		case a.reply != nil:
			if got := a.reply; got.Failure != nil || got.Result == nil || got.Result.N != i || !got.Ending {
				return fmt.Errorf("call %d: reply %+v", i, *got)
			}
		case len(a.body) != replySize:
			return fmt.Errorf("call %d: reply of %d bytes", i, len(a.body))
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("call %d: no reply: %w", i, ctx.Err())
	}
}

// benchTransportRPC is raw-oslo-wire's loop written on the transport API
// over this driver, without package rpc: it tells the driver's cost from
// the rpc layer's (codec, dispatch, reply matching).
func benchTransportRPC(b *testing.B, vh *brokertest.RabbitVHost, inFlight int) {
	ctx, cancel := context.WithTimeout(context.Background(), rpcBenchTimeout)
	defer cancel()
	quiet := transport.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	open := func() *transport.Transport {
		tr, err := transport.Open(ctx, vh.URL, quiet)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = tr.Close() })
		return tr
	}
	srvTr, clientTr := open(), open()
	exchange, requestQ := uniq("openstack-tr"), uniq("rpc-tr")
	if err := srvTr.DeclareExchange(ctx, transport.Exchange{Name: exchange, Kind: transport.Topic}); err != nil {
		b.Fatal(err)
	}
	if _, err := srvTr.DeclareQueue(ctx, transport.Queue{Name: requestQ}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_, _ = srvTr.DeleteQueue(context.Background(), requestQ)
		_ = srvTr.DeleteExchange(context.Background(), exchange)
	})
	if err := srvTr.Bind(ctx, transport.Binding{Exchange: exchange, Queue: requestQ, Key: requestQ}); err != nil {
		b.Fatal(err)
	}
	replyQ, err := clientTr.DeclareQueue(ctx, transport.Queue{Name: uniq("reply-tr"), Expires: 30 * time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _, _ = srvTr.DeleteQueue(context.Background(), replyQ) })
	requestBody, replyBody := osloBodies(b, replyQ)

	// The server: ack each request, then reply from a goroutine, since a
	// mandatory publish waits for its confirm (rpc's server has workers).
	requests, err := srvTr.Consume(ctx, requestQ, transport.ConsumeOptions{Prefetch: 64})
	if err != nil {
		b.Fatal(err)
	}
	serverDone := make(chan struct{})
	go func() {
		defer close(serverDone)
		var replies sync.WaitGroup
		defer replies.Wait()
		for {
			d, err := requests.Receive(ctx)
			if err != nil {
				return
			}
			if err := d.Ack(); err != nil {
				return
			}
			replies.Add(1)
			go func() {
				defer replies.Done()
				_ = srvTr.Publish(ctx, "", d.ReplyTo, transport.Message{
					Body: replyBody, CorrelationID: d.CorrelationID, ContentType: oslo.ContentType,
					ContentEncoding: oslo.ContentEncoding, Persistent: true, Mandatory: true,
				})
			}()
		}
	}()
	b.Cleanup(func() {
		_ = requests.Close()
		<-serverDone
	})

	// The client: replies auto-acked, matched by correlation id.
	replies, err := clientTr.Consume(ctx, replyQ, transport.ConsumeOptions{AutoAck: true})
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	waiting := map[string]chan *transport.Delivery{}
	dispatchDone := make(chan struct{})
	go func() {
		defer close(dispatchDone)
		for {
			d, err := replies.Receive(ctx)
			if err != nil {
				return
			}
			mu.Lock()
			w := waiting[d.CorrelationID]
			delete(waiting, d.CorrelationID)
			mu.Unlock()
			if w != nil {
				w <- d
			}
		}
	}()
	b.Cleanup(func() {
		_ = replies.Close()
		<-dispatchDone
	})

	bench.Calls{Callers: inFlight, Latencies: true}.Run(b, func(i int) error {
		id := strconv.Itoa(i)
		w := make(chan *transport.Delivery, 1)
		mu.Lock()
		waiting[id] = w
		mu.Unlock()
		err := clientTr.Publish(ctx, exchange, requestQ, transport.Message{
			Body: requestBody, CorrelationID: id, ReplyTo: replyQ, ContentType: oslo.ContentType,
			ContentEncoding: oslo.ContentEncoding, Persistent: true, Expiration: 10 * time.Second,
			Mandatory: true,
		})
		if err != nil {
			return err
		}
		select {
		case d := <-w:
			if len(d.Body) != len(replyBody) {
				return fmt.Errorf("call %d: reply of %d bytes", i, len(d.Body))
			}
			return nil
		case <-ctx.Done():
			return fmt.Errorf("call %d: no reply: %w", i, ctx.Err())
		}
	})
}
