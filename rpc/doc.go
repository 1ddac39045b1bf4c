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
// # Endpoints
//
// A server exposes every exported method of an Endpoint's Receiver that
// has one of these shapes (Args: a struct, a map or json.RawMessage the
// request's keyword arguments decode into; Result: anything JSON encodes):
//
//	func (c *Compute) Start(ctx context.Context, args StartArgs) (Result, error)
//	func (c *Compute) Stop(ctx context.Context, args StopArgs) error
//	func (c *Compute) Ping(ctx context.Context) (Result, error)
//	func (c *Compute) Reset(ctx context.Context) error
//
// NewServer logs a warning for each other exported method, saying why it
// is not exposed (such as "register a pointer" for a pointer-receiver
// method of a Receiver given as a value), and fails if an endpoint exposes
// none: see Endpoint.
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
// named by its server's ErrorRegistry (see below) if it is registered
// there, else by the first type in its chain that is not the errors or fmt
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
// its line "<package path>.<type>: <message>" (or its registered
// "<module>.<class>: <message>"), joined by Python's "The above
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
//
// # Typed errors between Go peers
//
// A Go caller matches a Go endpoint's errors with errors.Is and errors.As
// when both sides register them in an ErrorRegistry: the server with
// WithServerErrors, the client with WithErrors (each client chooses, as
// oslo.messaging's allowed_remote_exmods is per transport):
//
//	var ErrNotFound = errors.New("order not found")
//
//	type ShippedError struct {
//		Order   string `json:"order"`
//		Carrier string `json:"carrier"`
//	}
//
//	func (e *ShippedError) Error() string { return "order " + e.Order + " has shipped" }
//
//	reg, err := rpc.NewErrorRegistry(
//		rpc.ErrorValue("orders", "NotFound", ErrNotFound),
//		rpc.ErrorType[*ShippedError]("orders", "Shipped"),
//	)
//	srv, err := rpc.NewServer(tr, target, endpoints, rpc.WithServerErrors(reg))
//	client, err := rpc.NewClient(tr, rpc.WithErrors(reg))
//
//	err = client.Call(ctx, target, "cancel", args, nil)
//	var shipped *ShippedError
//	switch {
//	case errors.Is(err, ErrNotFound): // the endpoint returned fmt.Errorf("...: %w", ErrNotFound)
//	case errors.As(err, &shipped): // shipped.Carrier is the endpoint's
//	}
//
// The registered module and class are what a Python peer sees: the error
// travels as a Python exception orders.NotFound with args [message], a
// type's JSON fields as its kwargs (orders.Shipped(order=..., carrier=...)),
// and a Python exception of a registered module and class reaches a Go
// client as the registered error (see ErrorRegistry). The *RemoteError
// stays in the chain, with the remote traceback. Errors not registered,
// and everything a client without a registry gets, are a plain
// *RemoteError. The registry is a value built once and passed to each
// side, rather than names registered globally: the package keeps no
// mutable state, and the errors a caller rebuilds are its own choice. It
// is complete when NewErrorRegistry returns it, so that a mistake in it is
// an error there rather than a surprise at the first failure, and it needs
// no lock. The two options are two because a client's (Option, which
// Prepare takes too) and a server's (ServerOption) are different types.
package rpc
