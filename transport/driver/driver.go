// Package driver is the contract between Switchyard's portable transport and
// the backends that implement it. Users never call it: they hold a
// *transport.Transport, which validates every call, enforces the closed
// state, settles each delivery at most once, wraps errors with what failed
// and where, and then delegates here. Keeping that work in one place lets
// each driver stay small.
//
// A driver registers a URL scheme from its package's init function with
// transport.Register, as database/sql drivers do; a blank import selects it.
// It reads its URL options with package option, declaring them once.
//
// The data types here (Exchange, Queue, Binding, Message, ...) mirror the
// portable model's in package transport field for field, which converts
// between the two without copying; their documentation is there.
package driver

import "context"

// Conn is an open connection to a backend. Its methods are called only
// with validated arguments and never after Close.
type Conn interface {
	// Capabilities reports what this connection's backend supports. It
	// must not change over the connection's life.
	Capabilities() Capabilities
	DeclareExchange(ctx context.Context, ex Exchange) error
	// DeleteExchange deletes an exchange and its bindings. A missing
	// exchange is not an error.
	DeleteExchange(ctx context.Context, name string) error
	// DeclareQueue declares q and returns its name (chosen by the backend
	// when q.Name is empty).
	DeclareQueue(ctx context.Context, q Queue) (string, error)
	// DeleteQueue deletes a queue, dropping its messages, and returns how
	// many it held. A missing queue is not an error.
	DeleteQueue(ctx context.Context, name string) (int, error)
	// PurgeQueue drops a queue's ready messages and returns how many.
	PurgeQueue(ctx context.Context, name string) (int, error)
	Bind(ctx context.Context, b Binding) error
	Unbind(ctx context.Context, b Binding) error
	// Publish sends msg. It returns once the backend has taken
	// responsibility for the message (a broker confirm where there is one).
	Publish(ctx context.Context, exchange, routingKey string, msg Message) error
	// Consume starts a consumer on an existing queue.
	Consume(ctx context.Context, queue string, opts ConsumeOptions) (Consumer, error)
	// As sets target, a pointer to one of the types the driver documents
	// (its client's connection, say), and reports whether it did: the
	// escape hatch to what the portable model does not offer.
	As(target any) bool
	// Close releases the connection; consumers end, their unsettled
	// deliveries go back to their queues.
	Close() error
}

// Consumer is a stream of deliveries from one queue.
type Consumer interface {
	// Receive blocks for the next delivery until ctx ends (returning
	// ctx.Err()) or the consumer closes (ErrClosed).
	Receive(ctx context.Context) (Delivery, error)
	// Close stops the consumer; its unsettled deliveries go back to the
	// queue marked redelivered. Close is idempotent.
	Close() error
}

// Settler acknowledges, requeues or rejects deliveries by tag. The
// transport settles each tag at most once, so a driver need not guard
// against a second settlement; a tag it no longer holds (its consumer or
// channel ended) is ErrClosed.
type Settler interface {
	Ack(tag uint64) error
	// Nack returns the message to its queue when requeue is true, and
	// otherwise dead-letters or drops it.
	Nack(tag uint64, requeue bool) error
}

// HealthChecker is implemented by connections that can tell whether their
// backend is reachable right now.
type HealthChecker interface {
	Healthy(ctx context.Context) error
}

// CapabilityAdviser is implemented by connections that can say where a
// capability they lack is found, such as another scheme for the same
// broker; the transport adds the advice to its ErrUnsupported.
type CapabilityAdviser interface {
	// AdviseCapability is a short sentence for c, or "" for none.
	AdviseCapability(c Capability) string
}

// SystemNamer is implemented by a connection that knows which messaging
// system it reached, where its scheme does not tell (an AMQP 1.0 broker):
// MessagingSystem returns OpenTelemetry's messaging.system value for it
// ("rabbitmq", "activemq").
type SystemNamer interface {
	MessagingSystem() string
}

// Opener opens connections for one URL scheme.
type Opener interface {
	Open(ctx context.Context, u *URL) (Conn, error)
}

// OpenerFunc adapts a function to Opener.
type OpenerFunc func(ctx context.Context, u *URL) (Conn, error)

// Open calls f.
func (f OpenerFunc) Open(ctx context.Context, u *URL) (Conn, error) { return f(ctx, u) }
