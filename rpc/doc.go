// Package rpc is oslo.messaging's RPC for Go: a Client that casts (fire and
// forget) and calls (request and reply) methods on remote servers named by
// a transport.Target, and a Server that exposes Go methods as RPC
// endpoints.
//
// It is written once on the portable model of package transport, so it
// runs on every backend, and it carries oslo.messaging's message format
// (the 2.0 envelope, _msg_id/_reply_q correlation, _context_ keys,
// failures) and topology (the control exchange, topic, topic.server and
// topic_fanout queues, reply_ queues) on all of them: on RabbitMQ a Go
// client calls a Python oslo.messaging server and a Python client calls a
// Go server.
//
// A server:
//
//	type Compute struct{}
//
//	func (c *Compute) Echo(ctx context.Context, args struct{ X int `json:"x"` }) (int, error) {
//		return args.X, nil
//	}
//
//	srv, err := rpc.NewServer(tr, transport.Target{Topic: "compute", Server: "host1"},
//		[]rpc.Endpoint{{Receiver: &Compute{}}})
//	err = srv.Start(ctx)
//	defer srv.Stop(ctx)
//
// A client:
//
//	client, err := rpc.NewClient(tr, rpc.WithTimeout(10*time.Second))
//	defer client.Close()
//	var x int
//	err = client.Call(ctx, transport.Target{Topic: "compute"}, "echo", map[string]any{"x": 1}, &x)
//
// oslo.messaging's request context travels with every request: make a
// context with WithRequestContext and the calls and casts made with it
// send it; a handler finds its caller's with RequestContextFrom.
// Notifications (package notify) published with such a context carry it
// too, cut down to oslo's allow-list of keys.
//
// Delivery guarantees follow oslo.messaging: a server acknowledges a
// request when it takes it, before running it, so a request runs at most
// once; a cast is never answered; a call that gets no reply in time fails
// with transport.ErrTimeout and a late reply is dropped.
package rpc
