package bench

import (
	"context"
	"sync"
)

// chanClient is memory://'s raw baseline: Go channels between goroutines
// passing the same messages. Each message gets a body of its own, as the
// in-process broker copies each body it is given.
type chanClient struct{}

func (chanClient) name() string { return "raw go channel" }

// chanCheckEvery is how many messages a channel producer sends between
// looks at its context, which costs more than a channel send.
const chanCheckEvery = 256

func (chanClient) publish(ctx context.Context, lim Limits, _ bool, m *meter) error {
	template := body(lim.Size)
	// The channel's capacity is the window the other clients keep.
	ch := make(chan []byte, streamWindow)
	return m.measure(ctx, lim.Duration, func(ctx context.Context) error {
		return runAll(ctx,
			func(ctx context.Context) error {
				defer close(ch)
				for i := range lim.Messages {
					if i%chanCheckEvery == 0 && ctx.Err() != nil {
						return nil
					}
					body := make([]byte, len(template))
					copy(body, template)
					ch <- body
				}
				return nil
			},
			func(context.Context) error {
				// Drains what the producer sent before it stopped.
				for range ch {
					m.done(1)
				}
				return nil
			})
	})
}

// chanCall is one call of the channel RPC: the request's body and where
// its reply goes.
type chanCall struct {
	body  []byte
	reply chan []byte
}

func (chanClient) rpc(ctx context.Context, lim Limits, callers int, m *meter) error {
	template := body(lim.Size)
	requests := make(chan *chanCall, streamWindow)
	var server sync.WaitGroup
	server.Go(func() {
		for c := range requests {
			reply := make([]byte, len(c.body))
			copy(reply, c.body)
			c.reply <- reply
		}
	})
	defer func() { close(requests); server.Wait() }()
	calls := make([]*chanCall, callers)
	for i := range calls {
		calls[i] = &chanCall{reply: make(chan []byte, 1)}
	}
	return measureCalls(ctx, lim, callers, m, func(_ context.Context, caller int) error {
		c := calls[caller]
		c.body = make([]byte, len(template))
		copy(c.body, template)
		requests <- c
		<-c.reply
		return nil
	})
}
