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
// # Failures
//
// A method that returns an error fails the call, and the caller gets the
// failure oslo.messaging would send for a Python exception: a class, a
// module, a message, a traceback, args and kwargs. A Go caller gets it as a
// *RemoteError; a Python caller re-raises it (see RemoteError for when it
// rebuilds the class and when it raises oslo_messaging.RemoteError).
//
// A *RemoteError in the returned error's chain is sent as it is: return
// one to raise a class a Python caller knows, with its args and kwargs,
//
//	return nil, &rpc.RemoteError{Module: "nova.exception", Class: "InstanceNotFound",
//		Message: "Instance i-1 could not be found.", Args: []any{},
//		Kwargs: map[string]any{"instance_id": "i-1"}}
//
// which a Python caller listing "nova.exception" in allowed_remote_exmods
// rebuilds as InstanceNotFound(instance_id="i-1"). Any other error is
// named by the first type in its chain that is not the errors or fmt
// package's (class QuotaError, module the Go package path), or class
// "Error" of module "go"; its message is the error's.
//
// A traceback has the shape of the one a Python server sends
// (traceback.format_exception's lines), so that Python's tools and people
// read it alike: "Traceback (most recent call last):", one frame, and the
// exception's line "<module>.<class>: <message>" last. Go errors carry no
// stack, so the frame is the endpoint method's (its file, the line where
// its code begins, its function name), and each error the returned one
// wraps (errors.Unwrap) comes first as a cause, innermost first, each on
// its line "<package path>.<type>: <message>", joined by Python's "The above
// exception was the direct cause of the following exception:". A method
// that panics fails as class "Panic" of module "go", its traceback the
// goroutine's frames down to the function that panicked. A *RemoteError
// with a Traceback of its own sends that one.
//
// A result that is null (a Python method's None, a Go method's nil, or a
// method returning only an error) decodes as encoding/json decodes null:
// it sets an interface, map, slice or pointer result to nil and leaves
// other types as they are.
//
// Delivery guarantees follow oslo.messaging: a server acknowledges a
// request when it takes it, before running it, so a request runs at most
// once; a cast is never answered; a call that gets no reply in time fails
// with transport.ErrTimeout and a late reply is dropped.
package rpc
