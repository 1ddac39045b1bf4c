package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-zeromq/zmq4"
)

// zmqBaseline is zmq://'s raw baseline: github.com/go-zeromq/zmq4 sockets
// over loopback TCP, PUSH to PULL for streams (which have no
// acknowledgement to make: both publish cases run the same stream) and
// DEALER to an echoing ROUTER for calls, one DEALER per caller.
type zmqBaseline struct{}

func (zmqBaseline) name() string { return "raw zmq4" }

// zmqTimeout bounds a zmq4 dial, handshake and send.
const zmqTimeout = 10 * time.Second

// closeOnDone closes sockets when ctx ends: zmq4's Recv takes no context,
// and returns when its socket closes. The returned stop undoes it.
func closeOnDone(ctx context.Context, sockets ...zmq4.Socket) (stop func() bool) {
	return context.AfterFunc(ctx, func() {
		for _, s := range sockets {
			_ = s.Close()
		}
	})
}

func (zmqBaseline) publish(ctx context.Context, lim benchLimits, _ bool, m *meter) error {
	push := zmq4.NewPush(ctx, zmq4.WithTimeout(zmqTimeout))
	defer push.Close()
	if err := push.Listen("tcp://127.0.0.1:0"); err != nil {
		return fmt.Errorf("raw zmq4: %w", err)
	}
	pull := zmq4.NewPull(ctx, zmq4.WithTimeout(zmqTimeout))
	defer pull.Close()
	if err := pull.Dial("tcp://" + push.Addr().String()); err != nil {
		return fmt.Errorf("raw zmq4: %w", err)
	}
	body := benchBody(lim.size)
	publish := func(context.Context) error { return push.Send(zmq4.NewMsg(body)) }
	receive := func(context.Context) error {
		_, err := pull.Recv()
		return err
	}
	if err := publish(ctx); err != nil {
		return fmt.Errorf("warm-up send: %w", err)
	}
	if err := receive(ctx); err != nil {
		return fmt.Errorf("warm-up receive: %w", err)
	}
	return m.measure(ctx, lim.duration, func(ctx context.Context) error {
		defer closeOnDone(ctx, pull)()
		return streamLoop(ctx, lim.messages, m, publish, receive)
	})
}

func (zmqBaseline) rpc(ctx context.Context, lim benchLimits, callers int, m *meter) (err error) {
	router := zmq4.NewRouter(ctx, zmq4.WithID(zmq4.SocketIdentity("server")), zmq4.WithTimeout(zmqTimeout))
	defer router.Close()
	if err := router.Listen("tcp://127.0.0.1:0"); err != nil {
		return fmt.Errorf("raw zmq4: %w", err)
	}
	dealers := make([]zmq4.Socket, callers)
	for i := range dealers {
		dealers[i] = zmq4.NewDealer(ctx, zmq4.WithID(zmq4.SocketIdentity(fmt.Sprintf("caller-%d", i))), zmq4.WithTimeout(zmqTimeout))
		defer dealers[i].Close()
		if err := dealers[i].Dial("tcp://" + router.Addr().String()); err != nil {
			return fmt.Errorf("raw zmq4: %w", err)
		}
	}
	// The server echoes each request to its sender (the identity frame
	// ROUTER put first) until its socket closes.
	var server sync.WaitGroup
	var serverErr error
	server.Go(func() {
		for {
			msg, err := router.Recv()
			if err == nil {
				err = router.Send(msg)
			}
			if err != nil {
				serverErr = err
				return
			}
		}
	})
	defer func() {
		_ = router.Close()
		server.Wait()
		if err != nil && serverErr != nil {
			err = fmt.Errorf("%w (server: %w)", err, serverErr)
		}
	}()
	body := benchBody(lim.size)
	call := func(_ context.Context, caller int) error {
		if err := dealers[caller].Send(zmq4.NewMsg(body)); err != nil {
			return err
		}
		_, err := dealers[caller].Recv()
		return err
	}
	// Warm up every caller: its first message makes its connection.
	for i := range dealers {
		if err := call(ctx, i); err != nil {
			return fmt.Errorf("warm-up call: %w", err)
		}
	}
	return m.measure(ctx, lim.duration, func(ctx context.Context) error {
		defer closeOnDone(ctx, dealers...)()
		return callLoop(ctx, lim.messages, callers, m, call)
	})
}
