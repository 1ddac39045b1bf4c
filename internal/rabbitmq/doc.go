// Package rabbitmq holds what every driver that talks to RabbitMQ shares:
// the rabbit driver's options as oslo.messaging names them (options.go),
// AMQP 0-9-1's reply codes read as the model's errors with the client's
// error kept in the chain (errors.go), and the model's topology as AMQP
// 0-9-1 declarations: a queue's flags and x-arguments, exchanges,
// bindings and the names of server-named queues (topology.go). The rabbit
// driver speaks AMQP 0-9-1 throughout; the amqp1 driver declares
// RabbitMQ's topology over an AMQP 0-9-1 side connection with the same
// mappings, so that both declare an entity alike and read the broker's
// refusals alike.
package rabbitmq
