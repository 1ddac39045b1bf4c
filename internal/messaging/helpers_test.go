package messaging_test

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/transport"
)

// poolFixture declares queues q0..qn-1 on a memory broker of the test's
// own and consumes each.
func poolFixture(t *testing.T, n int) (*transport.Transport, []string, []*transport.Consumer) {
	t.Helper()
	tr := openMemory(t, "")
	ctx := testContext(t)
	var queues []string
	var consumers []*transport.Consumer
	for i := range n {
		q, err := tr.DeclareQueue(ctx, transport.Queue{Name: "q" + strconv.Itoa(i)})
		if err != nil {
			t.Fatal(err)
		}
		c, err := tr.Consume(ctx, q, transport.ConsumeOptions{Prefetch: 4})
		if err != nil {
			t.Fatal(err)
		}
		queues, consumers = append(queues, q), append(consumers, c)
	}
	return tr, queues, consumers
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func publish(t *testing.T, tr *transport.Transport, queue, body string) {
	t.Helper()
	if err := tr.Publish(testContext(t), "", queue, transport.Message{Body: []byte(body)}); err != nil {
		t.Fatal(err)
	}
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))
