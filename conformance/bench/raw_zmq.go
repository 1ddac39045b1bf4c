package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-zeromq/zmq4"
)

// zmqClient is zmq://'s raw baseline: github.com/go-zeromq/zmq4 sockets
// over loopback TCP, PUSH to PULL for streams (which have no
// acknowledgement to make: both publish cases run the same stream) and
// DEALER to an echoing ROUTER for calls, one DEALER per caller.
type zmqClient struct{}

func (zmqClient) name() string { return "raw zmq4" }

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

func (zmqClient) publish(ctx context.Context, lim Limits, _ bool, m *meter) error {
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
	body := body(lim.Size)
	publish := func(context.Context) error { return push.Send(zmq4.NewMsg(body)) }
	receive := func(context.Context) error {
		_, err := pull.Recv()
		return err
	}
	if err := warmStream(ctx, publish, receive); err != nil {
		return err
	}
	return m.measure(ctx, lim.Duration, func(ctx context.Context) error {
		defer closeOnDone(ctx, pull)()
		return streamLoop(ctx, lim.Messages, m, publish, receive)
	})
}

func (zmqClient) rpc(ctx context.Context, lim Limits, callers int, m *meter) (err error) {
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
	body := body(lim.Size)
	call := func(_ context.Context, caller int) error {
		if err := dealers[caller].Send(zmq4.NewMsg(body)); err != nil {
			return err
		}
		_, err := dealers[caller].Recv()
		return err
	}
	if err := warmCalls(ctx, callers, call); err != nil {
		return err
	}
	return m.measure(ctx, lim.Duration, func(ctx context.Context) error {
		defer closeOnDone(ctx, dealers...)()
		return callLoop(ctx, lim.Messages, callers, m, call)
	})
}
