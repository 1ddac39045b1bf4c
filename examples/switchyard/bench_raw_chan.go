package main

import (
	"context"
	"sync"
)

// chanBaseline is memory://'s raw baseline: Go channels between
// goroutines passing the same messages. Each message gets a body of its
// own, as the in-process broker copies each body it is given.
type chanBaseline struct{}

func (chanBaseline) name() string { return "raw go channel" }

// chanCheckEvery is how many messages a channel producer sends between
// looks at its context, which costs more than a channel send.
const chanCheckEvery = 256

func (chanBaseline) publish(ctx context.Context, lim benchLimits, _ bool, m *meter) error {
	template := benchBody(lim.size)
	// The channel's capacity is the window the other clients keep.
	ch := make(chan []byte, streamWindow)
	return m.measure(ctx, lim.duration, func(ctx context.Context) error {
		return runAll(ctx,
			func(ctx context.Context) error {
				defer close(ch)
				for i := range lim.messages {
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

func (chanBaseline) rpc(ctx context.Context, lim benchLimits, callers int, m *meter) error {
	template := benchBody(lim.size)
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
	call := func(_ context.Context, caller int) error {
		c := calls[caller]
		c.body = make([]byte, len(template))
		copy(c.body, template)
		requests <- c
		<-c.reply
		return nil
	}
	return m.measure(ctx, lim.duration, func(ctx context.Context) error {
		return callLoop(ctx, lim.messages, callers, m, call)
	})
}
