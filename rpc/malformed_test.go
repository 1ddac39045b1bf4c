package rpc_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/internal/oslo"
	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

// logBuffer is a concurrency-safe slog destination for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func openLogged(t *testing.T, level slog.Level) (*transport.Transport, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	tr, err := transport.Open(context.Background(), "memory://"+t.Name(),
		transport.WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: level}))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr, logs
}

// TestMalformedRequestsRejected: what cannot be decoded is rejected (once,
// not requeued), logged and counted, and the server keeps serving.
func TestMalformedRequestsRejected(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, logs := openLogged(t, slog.LevelInfo)
	srv := startCalc(t, tr)

	bad := []struct {
		name, contentType, body string
		headers                 transport.Headers
	}{
		{"not JSON", "application/json", "this is not json", nil},
		{"not an object", "application/json", `["method", "add"]`, nil},
		{"unknown envelope version", "application/json", `{"oslo.version": "2.1", "oslo.message": "{\"method\": \"add\", \"args\": {}}"}`, nil},
		{"oslo.message an object", "application/json", `{"oslo.version": "2.0", "oslo.message": {"method": "add"}}`, nil},
		{"no oslo.message, no method", "application/json", `{"oslo.version": "2.0"}`, nil},
		{"wrong content type", "text/plain", `{"method": "add", "args": {}}`, nil},
		{"compressed with a codec Switchyard lacks", "application/json", "\xfd7zXZ\x00",
			transport.Headers{"compression": "application/x-lzma"}},
	}
	for _, b := range bad {
		msg := transport.Message{Body: []byte(b.body), ContentType: b.contentType, Headers: b.headers}
		if err := tr.Publish(ctx, "openstack", "calc", msg); err != nil {
			t.Fatalf("%s: %v", b.name, err)
		}
	}
	// The server takes requests in order from its topic queue, so by the
	// time this call is answered it has seen every bad one.
	wantServing(ctx, t, newClient(t, tr, rpc.WithTimeout(5*time.Second)), "after malformed requests")
	stats := srv.Stats()
	if stats.Rejected != uint64(len(bad)) || stats.Received != uint64(len(bad))+1 {
		t.Errorf("stats %+v: want %d rejected, each received once", stats, len(bad))
	}
	if n := strings.Count(logs.String(), "malformed request rejected"); n != len(bad) {
		t.Errorf("logged %d rejections, want %d:\n%s", n, len(bad), logs)
	}
	if !strings.Contains(logs.String(), "compressed with application/x-lzma") {
		t.Errorf("the compressed request's rejection does not say why:\n%s", logs)
	}
}

// TestReplyForUnknownCallDropped: a reply nobody waits for is dropped with
// a debug log, and the call it does not belong to still gets its own.
func TestReplyForUnknownCallDropped(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, logs := openLogged(t, slog.LevelDebug)
	// The test plays the server, to send a stray reply first.
	if err := tr.DeclareExchange(ctx, transport.Exchange{Name: "openstack", Kind: transport.Topic}); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.DeclareQueue(ctx, transport.Queue{Name: "raw"}); err != nil {
		t.Fatal(err)
	}
	if err := tr.Bind(ctx, transport.Binding{Exchange: "openstack", Queue: "raw", Key: "raw"}); err != nil {
		t.Fatal(err)
	}
	requests, err := tr.Consume(ctx, "raw", transport.ConsumeOptions{AutoAck: true})
	if err != nil {
		t.Fatal(err)
	}
	client, err := rpc.NewClient(tr, rpc.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	result := make(chan error, 1)
	go func() {
		var got string
		err := client.Call(ctx, transport.Target{Topic: "raw"}, "echo", nil, &got)
		if err == nil && got != "mine" {
			err = &rpc.RemoteError{Message: "wrong result " + got}
		}
		result <- err
	}()
	d, err := requests.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req, err := oslo.UnwrapRequest(d.Body)
	if err != nil {
		t.Fatal(err)
	}
	reply := func(msgID, result string) {
		body, err := oslo.WrapReply(&oslo.Reply{Result: []byte(`"` + result + `"`), Ending: true, MsgID: msgID, UniqueID: oslo.NewID()})
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Publish(ctx, "", req.ReplyQ, transport.Message{Body: body, ContentType: "application/json"}); err != nil {
			t.Fatal(err)
		}
	}
	stray := oslo.NewID()
	reply(stray, "not mine")
	reply(req.MsgID, "mine")
	if err := <-result; err != nil {
		t.Fatalf("call: %v", err)
	}
	if !strings.Contains(logs.String(), "reply for no waiting call dropped") || !strings.Contains(logs.String(), stray) {
		t.Errorf("no debug log of the dropped reply %s:\n%s", stray, logs)
	}
}

// TestPeerVersionsAnswered: a version a peer may send that is not
// "major.minor[.revision]" (or names a major version no endpoint has) gets
// oslo's UnsupportedVersion, and the server keeps serving; one with parts
// after the third is read as oslo reads it, from the first three.
func TestPeerVersionsAnswered(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr := open(t)
	startCalc(t, tr)
	replyQ, err := tr.DeclareQueue(ctx, transport.Queue{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	replies, err := tr.Consume(ctx, replyQ, transport.ConsumeOptions{AutoAck: true})
	if err != nil {
		t.Fatal(err)
	}
	defer replies.Close()
	tests := []struct {
		version string
		failure string // the failure's class, or "" for the result 3
	}{
		{"1.", "UnsupportedVersion"},
		{"x.y", "UnsupportedVersion"},
		{"99999999999.0", "UnsupportedVersion"},
		{"2.0.0.0", "UnsupportedVersion"},
		{"1.0.0.4", ""}, // read as 1.0.0
	}
	for _, tt := range tests {
		publishRequest(ctx, t, tr, &oslo.Request{Method: "add", Args: []byte(`{"a": 1, "b": 2}`), Version: tt.version,
			MsgID: oslo.NewID(), ReplyQ: replyQ, UniqueID: oslo.NewID()})
		d, err := replies.Receive(ctx)
		if err != nil {
			t.Fatalf("version %q: no reply: %v", tt.version, err)
		}
		reply, err := oslo.UnwrapReply(d.Body)
		switch {
		case err != nil:
			t.Errorf("version %q: %v", tt.version, err)
		case tt.failure == "" && (reply.Failure != nil || string(reply.Result) != "3"):
			t.Errorf("version %q: reply %+v; want the result 3", tt.version, reply)
		case tt.failure != "" && (reply.Failure == nil || reply.Failure.Class != tt.failure):
			t.Errorf("version %q: reply %+v, want a %s failure", tt.version, reply, tt.failure)
		}
	}
	wantServing(ctx, t, newClient(t, tr, rpc.WithTimeout(5*time.Second)), "after odd versions")
}

// publishRequest sends req, as a peer would, to the calc server's topic.
func publishRequest(ctx context.Context, t *testing.T, tr *transport.Transport, req *oslo.Request) {
	t.Helper()
	body, err := oslo.WrapRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Publish(ctx, "openstack", "calc", transport.Message{Body: body, ContentType: "application/json"}); err != nil {
		t.Fatal(err)
	}
}
