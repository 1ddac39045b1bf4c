// Package rabbitmq holds what every driver that talks to RabbitMQ shares:
// the rabbit driver's options as oslo.messaging names them, AMQP 0-9-1's
// reply codes mapped to the model's errors, and the model's queue
// properties as RabbitMQ's queue arguments. The rabbit driver speaks AMQP
// 0-9-1 throughout; the amqp1 driver declares RabbitMQ's topology over
// AMQP 0-9-1 too, so both declare a queue alike.
package rabbitmq
