// Package transport is what Switchyard users hold: a Target to address RPC
// servers and notification listeners, and a Transport, opened from a URL,
// that speaks the portable messaging model every backend implements.
//
// The model is RabbitMQ's, made backend-neutral: exchanges (direct, fanout
// and topic) route published messages to the queues bound to them; queues
// hold messages until a consumer acknowledges them. The five RabbitMQ
// tutorials (hello world, work queues, publish/subscribe, routing, topics)
// run unchanged on every backend.
//
// A backend is chosen by URL scheme alone, like oslo.messaging's
// transport_url:
//
//	memory://          the in-process broker (memory://NAME for another one)
//	rabbit://user:pass@host1:5672,host2:5672/vhost
//	amqp://user:pass@host:5672/vhost
//	zmq://
//
// A driver registers its scheme when its package is imported; import
// github.com/switchyard-mq/switchyard/drivers/all for every driver.
//
// Every error wraps one of the sentinel errors below, so callers branch with
// errors.Is whatever the backend; the message says what failed and where.
// Where a backend's client failed or a broker refused, the client's own
// error is in the chain too, for errors.As (rabbit:// keeps amqp091-go's
// *amqp091.Error with its reply code); Transport.As reaches the client
// itself. Passwords never appear in errors, logs or String forms.
//
// The driver contract, package transport/driver, is for those who write a
// backend; a user never needs it.
package transport
