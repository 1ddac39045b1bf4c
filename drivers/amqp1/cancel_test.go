package amqp1_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/transport"
)

// TestCancelledPublishesLeaveTheConnectionWhole: publishes whose context
// ends midway (go-amqp breaks its session when a send or attach is
// cancelled) return the context's error, and the next publish on the same
// transport goes through, on both brokers.
func TestCancelledPublishesLeaveTheConnectionWhole(t *testing.T) {
	eachFlavour(t, func(t *testing.T, url string) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		tr := openT(t, ctx, url)
		q, err := tr.DeclareQueue(ctx, orDurable(t, url, transport.Queue{Name: "cancelled." + randomHex(4)}))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _, _ = tr.DeleteQueue(context.Background(), q) }()
		big := make([]byte, 2<<20)
		for round := range 3 {
			var wg sync.WaitGroup
			for i := range 20 {
				wg.Go(func() {
					short, stop := context.WithTimeout(ctx, time.Duration(i%4)*time.Millisecond)
					defer stop()
					_ = tr.Publish(short, "", q, transport.Message{Body: big})
				})
			}
			wg.Wait()
			after, stop := context.WithTimeout(ctx, 10*time.Second)
			err := tr.Publish(after, "", q, transport.Message{Body: []byte("after")})
			stop()
			if err != nil {
				t.Fatalf("round %d: a publish after cancelled ones: %v", round, err)
			}
		}
	})
}
