package interop

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-mq/switchyard/internal/brokertest"
	"github.com/switchyard-mq/switchyard/internal/rawoslo"
	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

// benchMaxSeconds bounds the calls of one Python measurement.
const benchMaxSeconds = 60

// interleaveChunk is how many calls each pairing makes in turn in the
// Interleaved measurement.
const interleaveChunk = 100

// interleaveWarmUp is how many untimed calls each pairing makes before
// each of its timed turns. Taking over from another pairing, a pairing's
// first calls are up to twice as slow as its tenth, whoever its client
// and server are (their connections, queues and goroutines have gone
// cold). Measured, that cost of a turn would weigh most on the pairings
// with the shortest calls, and its noise would widen every ratio's spread.
const interleaveWarmUp = 10

// controlExchange is the exchange oslo's RPC targets are on by default,
// the Go server's.
const controlExchange = "openstack"

// pairing is one client and server combination, measured over n
// sequential calls; it returns each call's latency.
type pairing struct {
	name  string
	calls func(b *testing.B, n int) []time.Duration
}

// BenchmarkInterop measures sequential RPC calls (echo of a short string)
// on one RabbitMQ, in one run, for every pairing of a Python
// (oslo.messaging 14) and a Go (Switchyard) client and server: calls per
// second and latency (p50, p99). Python clients time their calls
// themselves, so the pipe to the test is not counted. Every client and
// server has connections of its own; Python clients and servers are
// separate processes. RawAMQP is the floor: the same request and reply
// with publisher confirms, written directly on amqp091-go, the same bytes
// every time and the reply matched by correlation id. RawOsloClient is the
// floor with Switchyard's promises: a client and server that oslo peers
// could talk to, hand-written on amqp091-go (package rawoslo).
// RawClientToGo (that client calling the Go server) and GoToRawServer (the
// Go client calling that server) cross the halves, to tell which of
// Switchyard's the calls wait on.
//
// Interleaved runs the four pairings, the floors and the crossed halves
// in turns of 100 calls, each after 10 untimed ones, so that load from
// elsewhere on the machine weighs on each alike, and reports each one's
// rate, the ratio of Go→Go to Python→Python, the floors' ratios to
// Python→Python (the most that ratio could be), and Go→Go's and the
// crossed halves' ratios to RawOsloClient.
//
//	SWITCHYARD_BROKERS=required go test -run '^$' -bench BenchmarkInterop -benchtime 2000x ./internal/interop/
func BenchmarkInterop(b *testing.B) {
	RequirePython(b)
	vhost := brokertest.NewRabbitVHost(b)
	open := func() *transport.Transport {
		ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
		defer cancel()
		tr, err := transport.Open(ctx, vhost.URL, transport.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = tr.Close() })
		return tr
	}
	serverTr, clientTr := open(), open()
	const goTopic, pyTopic = "bench_go", "bench_py"
	startGoServer(b, serverTr, goTopic, "go1", newEventLog())
	pyServer := StartPeer(b, vhost.URL)
	if err := pyServer.Do(testContext(b), "rpc_server", map[string]any{"name": "bench", "topic": pyTopic, "server": "py1"}, nil); err != nil {
		b.Fatal(err)
	}
	pyClient := StartPeer(b, vhost.URL)
	goClient, err := rpc.NewClient(clientTr, rpc.WithTimeout(10*time.Second))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = goClient.Close() })
	// Python's peers pass a dict; the Go client passes the struct a Go
	// program would, as the hand-written client does.
	args := echoArgs{Value: "ping"}
	pyArgs := map[string]any{"value": args.Value}

	pythonCalls := func(topic string) func(b *testing.B, n int) []time.Duration {
		return func(b *testing.B, n int) []time.Duration {
			ctx, cancel := context.WithTimeout(context.Background(), (benchMaxSeconds+30)*time.Second)
			defer cancel()
			var out struct {
				Latencies []float64 `json:"latencies"`
			}
			if err := pyClient.Do(ctx, "bench", map[string]any{
				"topic": topic, "method": "echo", "args": pyArgs, "n": n, "max_seconds": benchMaxSeconds,
				"latencies": true, "warm_up": false,
			}, &out); err != nil {
				b.Fatal(err)
			}
			ds := make([]time.Duration, len(out.Latencies))
			for i, s := range out.Latencies {
				ds[i] = time.Duration(s * float64(time.Second))
			}
			return ds
		}
	}
	// The raw floor's server, and one on the Go client's exchange for the
	// Go client to call.
	const rawExchange, rawTopic, rawTopicForGo = "raw_openstack", "raw_oslo_rpc", "raw_oslo_rpc_for_go"
	rawOsloServer(b, vhost.URL, rawExchange, rawTopic)
	rawOsloServer(b, vhost.URL, controlExchange, rawTopicForGo)
	pairings := []pairing{
		{"PythonToPython", pythonCalls(pyTopic)},
		{"PythonToGo", pythonCalls(goTopic)},
		{"GoToPython", goEchoCalls(goClient, pyTopic, args, pyEcho{Value: args.Value, Type: "str"})},
		{"GoToGo", goEchoCalls(goClient, goTopic, args, args.Value)},
		{"RawAMQP", rawAMQPCalls(b, vhost.URL)},
		{"RawOsloClient", rawOsloClient(b, vhost.URL, rawExchange, rawTopic, args)},
		{"RawClientToGo", rawOsloClient(b, vhost.URL, controlExchange, goTopic, args)},
		{"GoToRawServer", goEchoCalls(goClient, rawTopicForGo, args, args.Value)},
	}
	for _, p := range pairings {
		p.calls(b, 1) // declares the reply queues and warms the servers
	}
	for _, p := range pairings {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			b.ResetTimer()
			ds := p.calls(b, b.N)
			b.StopTimer()
			reportLatencies(b, "", ds)
			// Python's clock for Python clients: ns/op is per call, not
			// per benchmark iteration of this process.
			b.ReportMetric(float64(sum(ds).Nanoseconds())/float64(len(ds)), "ns/op")
		})
	}
	b.Run("Interleaved", func(b *testing.B) {
		b.ReportAllocs()
		all := make([][]time.Duration, len(pairings))
		b.ResetTimer()
		for done := 0; done < b.N; done += interleaveChunk {
			n := min(interleaveChunk, b.N-done)
			for i, p := range pairings {
				p.calls(b, interleaveWarmUp)
				all[i] = append(all[i], p.calls(b, n)...)
			}
		}
		b.StopTimer()
		rates := map[string]float64{}
		for i, p := range pairings {
			rates[p.name] = reportLatencies(b, strings.ToLower(p.name)+"-", all[i])
		}
		b.ReportMetric(rates["GoToGo"]/rates["PythonToPython"], "go-go/py-py")
		// The most any client on this broker could reach: the raw floor's
		// rate over Python's.
		b.ReportMetric(rates["RawAMQP"]/rates["PythonToPython"], "raw/py-py")
		// The most a client that oslo peers can serve, with Switchyard's
		// promises, reaches: a hand-written one.
		b.ReportMetric(rates["RawOsloClient"]/rates["PythonToPython"], "rawoslo/py-py")
		b.ReportMetric(rates["GoToGo"]/rates["RawOsloClient"], "go-go/rawoslo")
		// Each half of Switchyard against the floor's: which one the
		// calls wait on.
		b.ReportMetric(rates["RawClientToGo"]/rates["RawOsloClient"], "rawclient-go/rawoslo")
		b.ReportMetric(rates["GoToRawServer"]/rates["RawOsloClient"], "go-rawserver/rawoslo")
	})
}

// reportLatencies reports calls/s, p50 and p99 of sequential calls, with
// prefix on each unit, and returns the rate.
func reportLatencies(b *testing.B, prefix string, ds []time.Duration) float64 {
	total := sum(ds)
	ds = slices.Clone(ds)
	slices.Sort(ds)
	pct := func(p float64) time.Duration { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
	rate := float64(len(ds)) / total.Seconds()
	b.ReportMetric(rate, prefix+"calls/s")
	b.ReportMetric(float64(pct(0.50).Microseconds()), prefix+"p50-µs")
	b.ReportMetric(float64(pct(0.99).Microseconds()), prefix+"p99-µs")
	return rate
}

func sum(ds []time.Duration) time.Duration {
	var total time.Duration
	for _, d := range ds {
		total += d
	}
	return total
}

// confirmedChannel dials the broker of the rabbit:// url on a connection
// of its own, closed when b ends, and opens a channel in confirm mode.
func confirmedChannel(b *testing.B, url string) *amqp.Channel {
	conn, err := amqp.Dial("amqp://" + strings.TrimPrefix(url, "rabbit://"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		b.Fatal(err)
	}
	return ch
}

// publishRequest publishes a raw floor's request as oslo's are (JSON,
// persistent, the call timeout as expiration) on ch, in confirm mode, and
// waits for its confirm, failing b if it is not confirmed.
func publishRequest(b *testing.B, ch *amqp.Channel, exchange, key string, mandatory bool, p amqp.Publishing) {
	p.ContentType, p.ContentEncoding, p.DeliveryMode, p.Expiration = "application/json", "utf-8", amqp.Persistent, "10000"
	dc, err := ch.PublishWithDeferredConfirm(exchange, key, mandatory, false, p)
	if err != nil {
		b.Fatal(err)
	}
	if !dc.Wait() {
		b.Fatal("request nacked")
	}
}

// rawAMQPCalls returns calls written directly on amqp091-go, as the rpc
// package and oslo make them: the request published with a confirm, the
// server acking it and publishing the reply (mandatory, confirmed) to the
// caller's queue through the default exchange, on connections of their
// own.
func rawAMQPCalls(b *testing.B, url string) func(b *testing.B, n int) []time.Duration {
	srvCh, cliCh := confirmedChannel(b, url), confirmedChannel(b, url)
	q, err := srvCh.QueueDeclare("raw_rpc", false, false, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	requests, err := srvCh.Consume(q.Name, "", false, false, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	go func() { // ends when the server's connection closes at cleanup
		for d := range requests {
			_ = d.Ack(false)
			dc, err := srvCh.PublishWithDeferredConfirm("", d.ReplyTo, true, false, amqp.Publishing{
				ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: amqp.Persistent,
				CorrelationId: d.CorrelationId, Body: d.Body,
			})
			if err == nil {
				dc.Wait()
			}
		}
	}()
	rq, err := cliCh.QueueDeclare("", false, false, true, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	replies, err := cliCh.Consume(rq.Name, "", true, true, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"oslo.version": "2.0", "oslo.message": "{\"method\": \"echo\", \"args\": {\"value\": \"ping\"}, ` +
		`\"_msg_id\": \"00000000000000000000000000000000\", \"_reply_q\": \"reply_00000000000000000000000000000000\", ` +
		`\"_timeout\": null, \"_unique_id\": \"00000000000000000000000000000000\"}"}`)
	var seq int
	return func(b *testing.B, n int) []time.Duration {
		ds := make([]time.Duration, 0, n)
		for range n {
			t0 := time.Now()
			seq++
			id := fmt.Sprint(seq)
			publishRequest(b, cliCh, "", q.Name, false, amqp.Publishing{CorrelationId: id, ReplyTo: rq.Name, Body: body})
			select {
			case r := <-replies:
				if r.CorrelationId != id {
					b.Fatalf("reply %s to request %s", r.CorrelationId, id)
				}
			case <-time.After(10 * time.Second):
				b.Fatal("no reply within 10s")
			}
			ds = append(ds, time.Since(t0))
		}
		return ds
	}
}

// pyEcho is the result of the Python peers' echo.
type pyEcho struct {
	Value string `json:"value"`
	Type  string `json:"type"`
}

// goEchoCalls returns sequential calls of echo by client to topic, each
// wanting the result want.
func goEchoCalls[R comparable](client *rpc.Client, topic string, args echoArgs, want R) func(b *testing.B, n int) []time.Duration {
	return func(b *testing.B, n int) []time.Duration {
		ctx := testContext(b)
		target := transport.Target{Topic: topic}
		ds := make([]time.Duration, 0, n)
		for range n {
			t0 := time.Now()
			var result R
			if err := client.Call(ctx, target, "echo", args, &result); err != nil {
				b.Fatal(err)
			}
			if result != want {
				b.Fatalf("echo returned %+v, want %+v", result, want)
			}
			ds = append(ds, time.Since(t0))
		}
		return ds
	}
}

// echoArgs are the echo's arguments as a Go client passes them.
type echoArgs struct {
	Value string `json:"value"`
}

// rawOsloServer serves echo on amqp091-go with Switchyard's promises and
// oslo's protocol (package rawoslo), on a connection of its own: it
// consumes the queue topic, bound to exchange (a topic exchange, declared
// if missing), acks each request, drops a repeated _unique_id and
// publishes the reply (mandatory, confirmed) to the request's _reply_q.
func rawOsloServer(b *testing.B, url, exchange, topic string) {
	ch := confirmedChannel(b, url)
	if err := ch.ExchangeDeclare(exchange, amqp.ExchangeTopic, false, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
	if _, err := ch.QueueDeclare(topic, false, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
	if err := ch.QueueBind(topic, topic, exchange, false, nil); err != nil {
		b.Fatal(err)
	}
	requests, err := ch.Consume(topic, "", false, false, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	go func() { // ends when the server's connection closes at cleanup
		server := rawoslo.Server[echoArgs, string]{Method: "echo", Handle: func(a echoArgs) string { return a.Value }}
		for d := range requests {
			_ = d.Ack(false)
			reply, replyQ, ok := server.Answer(d.Body)
			if !ok {
				continue
			}
			dc, err := ch.PublishWithDeferredConfirm("", replyQ, true, false, amqp.Publishing{
				ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: amqp.Persistent, Body: reply,
			})
			if err == nil {
				dc.Wait()
			}
		}
	}()
}

// rawOsloClient returns sequential calls of echo(args) made on amqp091-go
// with Switchyard's promises and oslo's protocol, to the servers of topic
// on exchange, on a connection of its own: the request, built with fresh
// ids per call (package rawoslo), published mandatory and confirmed,
// failing if returned; the reply read from the client's queue by the
// caller itself and matched by the _msg_id in its body, as replies from
// oslo's servers carry no correlation id.
func rawOsloClient(b *testing.B, url, exchange, topic string, args echoArgs) func(b *testing.B, n int) []time.Duration {
	ch := confirmedChannel(b, url)
	replyQ := "reply_" + rawoslo.NewID()
	if _, err := ch.QueueDeclare(replyQ, false, false, false, false, amqp.Table{"x-expires": int64(1800000)}); err != nil {
		b.Fatal(err)
	}
	replies, err := ch.Consume(replyQ, "", true, false, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	returns := ch.NotifyReturn(make(chan amqp.Return, 1))
	return func(b *testing.B, n int) []time.Duration {
		ds := make([]time.Duration, 0, n)
		timeout := time.NewTimer(time.Hour)
		defer timeout.Stop()
		for range n {
			t0 := time.Now()
			msgID := rawoslo.NewID()
			body, err := rawoslo.Wrap(rawoslo.Request[echoArgs]{
				Method: "echo", Args: args, MsgID: msgID, ReplyQ: replyQ, UniqueID: rawoslo.NewID(),
			})
			if err != nil {
				b.Fatal(err)
			}
			publishRequest(b, ch, exchange, topic, true, amqp.Publishing{Body: body})
			// RabbitMQ returns an unroutable request before confirming it.
			select {
			case r := <-returns:
				b.Fatalf("request returned: %s", r.ReplyText)
			default:
			}
			timeout.Reset(10 * time.Second)
			for answered := false; !answered; {
				select {
				case d := <-replies:
					var reply rawoslo.Reply[string]
					if err := rawoslo.Unwrap(d.Body, &reply); err != nil {
						b.Fatalf("malformed reply: %v", err)
					}
					if reply.MsgID != msgID {
						continue // a late reply to an earlier call
					}
					if reply.Failure != nil || reply.Result == nil || *reply.Result != args.Value {
						b.Fatalf("reply %+v", reply)
					}
					answered = true
				case <-timeout.C:
					b.Fatal("no reply within 10s")
				}
			}
			ds = append(ds, time.Since(t0))
		}
		return ds
	}
}
