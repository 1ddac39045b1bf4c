// Package rabbit is Switchyard's RabbitMQ driver, speaking AMQP 0-9-1 with
// github.com/rabbitmq/amqp091-go. It registers the URL schemes rabbit
// (TCP) and rabbits (TLS); import it for that side effect:
//
//	import _ "github.com/switchyard-mq/switchyard/drivers/rabbit"
//
//	tr, err := transport.Open(ctx, "rabbit://user:pass@host1:5672,host2:5672/vhost?heartbeat_timeout_threshold=30")
//
// # URL
//
//	rabbit://user:pass@host1:5672,host2:5672/vhost?option=value&...
//	rabbits://user:pass@host:5671/vhost
//
// The URL is oslo.messaging's transport_url, so an OpenStack service's
// URL works unchanged. Without credentials the driver logs in as
// guest/guest; without a host it connects to localhost. The port defaults
// to 5672, or 5671 with TLS. An empty path is the virtual host "/"
// (rabbit://h/ and rabbit://h// both mean "/"); a percent-escaped path is
// unescaped. Several hosts are for failover: the driver connects to the
// first that answers, round robin. The password never appears in logs,
// errors or String forms.
//
// # Options
//
// The query options have oslo.messaging's names where oslo has one. An
// unknown option is an error naming it (ErrInvalid), as is a malformed
// value. The options that the rpc and notify layers read
// (control_exchange, amqp_durable_queues, amqp_auto_delete,
// rabbit_transient_queues_ttl) are accepted too.
//
//   - heartbeat_timeout_threshold: seconds, default 60. The heartbeat
//     interval proposed to the broker (oslo sends the same in Tune-Ok).
//     amqp091-go sends heartbeats every half interval and takes the
//     connection for dead after one and a half intervals without a frame
//     from the broker. 0 proposes
//     none; the broker's own proposal (RabbitMQ's default is 60 s) then
//     applies, since amqp091-go cannot refuse it.
//   - rabbit_qos_prefetch_count: the prefetch (basic.qos) of consumers
//     whose ConsumeOptions.Prefetch is 0; default 0, no limit.
//   - confirms: true (default) or false. With confirms, every publish
//     waits for the broker's basic.ack; with false, a publish returns once
//     written to the socket (at-most-once: a message can be lost with the
//     connection, or in a channel closed by an earlier publish's error).
//     Mandatory publishes wait for a confirm either way (below).
//   - ssl: true for TLS, as the rabbits scheme (ssl=false with rabbits is
//     an error). ssl_ca_file: PEM file of the CAs to trust (default: the
//     system's). ssl_cert_file and ssl_key_file: the client certificate
//     and key, both or neither. The ssl_* files require TLS.
//   - rabbit_quorum_queue: true declares every queue that may be a quorum
//     queue as one (see Mapping). Default false.
//   - rabbit_quorum_delivery_limit: x-delivery-limit of quorum queues
//     whose Queue.DeliveryLimit is 0. Default 0, none.
//   - rabbit_ha_queues: true adds x-ha-policy=all to every queue (classic
//     mirrored queues of RabbitMQ before 3.0; newer brokers use policies
//     and ignore it). It cannot be combined with rabbit_quorum_queue.
//   - rabbit_retry_interval (default 1), rabbit_retry_backoff (default 2),
//     rabbit_interval_max (default 30): seconds, fractions allowed; the
//     reconnection backoff (see Faults).
//
// # Mapping
//
// The portable model maps onto RabbitMQ's own objects, which a plain AMQP
// client sees as they are: exchanges (direct, fanout, topic) with their
// durable and auto-delete flags; bindings; queues with their durable,
// exclusive and auto-delete flags and exactly the arguments the model's
// fields ask for, and no others, so that an oslo.messaging peer declaring
// the same entity is not refused with 406 PRECONDITION_FAILED (the amqp1
// driver declares a queue on RabbitMQ with the same arguments):
//
//	MessageTTL            x-message-ttl (ms)
//	Expires               x-expires (ms)
//	MaxLength             x-max-length (no x-overflow: drop-head is the broker's default)
//	DeadLetterExchange    x-dead-letter-exchange
//	DeadLetterRoutingKey  x-dead-letter-routing-key
//	DeliveryLimit         x-delivery-limit on quorum queues; counted by the driver on classic ones
//
// With rabbit_quorum_queue=true, a queue that is not exclusive, not
// auto-delete and has no Expires is declared as a quorum queue
// (x-queue-type=quorum, durable, x-delivery-limit from DeliveryLimit or
// rabbit_quorum_delivery_limit); the others stay classic, as
// oslo.messaging's reply and fanout queues do. The driver does not make
// exchanges durable: oslo makes its exchange durable when
// amqp_durable_queues or rabbit_quorum_queue is set, and the layer that
// declares it must do the same. RabbitMQ accepts an exclusive consumer
// on a quorum or stream queue and does not enforce it, so Consume with
// Exclusive on such a queue (declared through this transport) is
// ErrUnsupported; declare it with Type ClassicQueue.
//
// A queue declared with an empty name gets a name chosen by the driver,
// switchyard.gen-<random>, rather than the broker's amq.gen-<random>: a
// name in the reserved amq. space cannot be declared again after a
// reconnection, and the name users hold must stay valid.
//
// Messages map field by field onto AMQP properties: Persistent is
// delivery mode 2, Expiration the expiration property in milliseconds,
// Headers the headers table (Go int values are sent as 64-bit integers;
// values AMQP cannot carry are an ErrInvalid error naming the header).
// AMQP timestamps have one-second resolution.
//
// # Channels and errors
//
// Declarations share one channel. A transport's first 16 consumers have a
// channel each (RabbitMQ handles a channel's methods one at a time, and a
// basic.consume on a queue whose leader is on a frozen node stalls the
// consumes behind it); further ones share those channels, the least busy
// first, up to 64 on each, each with its own prefetch (a basic.qos with
// global=false before its basic.consume), so that a process with a
// thousand RPC servers (three consumers each) runs on one connection and
// about fifty channels, far below RabbitMQ's channel_max of 2047; a consumer whose
// basic.consume the broker may refuse (of a queue not declared through
// the transport, exclusive, or of a stream) has a channel of its own. A
// consumer that closes cancels itself and gives back to its queue what it
// was delivered and had not settled. Publishes share one channel
// (amqp091-go serialises their frames, and each publish waits for its own
// confirm), and mandatory ones share a second, always in confirm mode
// (below). A
// channel error maps to a sentinel, wrapped with the broker's text: 404
// NOT_FOUND is ErrNotFound, 406 PRECONDITION_FAILED
// ErrPrecondition, 405 RESOURCE_LOCKED and 403 "in exclusive use"
// ErrInUse, other 403 ACCESS_REFUSED ErrInvalid. It closes only its
// channel, which the driver replaces at the next use; other publishers
// carry on. The consumers of a channel that closes all consume again, on
// another, their queues declared again first (logged once, at warning
// level); what they had not settled goes back to their queues and comes
// again marked redelivered.
// Publishing to a missing exchange fails with ErrNotFound once the broker
// closes the channel; publishes that shared that channel are published
// again.
//
// The error keeps amqp091-go's own *amqp091.Error in its chain, with the
// reply code and the broker's reason:
//
//	_, err := tr.Consume(ctx, "missing", transport.ConsumeOptions{})
//	var reply *amqp091.Error
//	if errors.Is(err, transport.ErrNotFound) && errors.As(err, &reply) {
//		log.Printf("AMQP reply %d: %s", reply.Code, reply.Reason) // 404: NOT_FOUND - no queue 'missing' in vhost '/'
//	}
//
// A mandatory message that reaches no queue fails Publish with
// ErrUnroutable. A basic.return names no delivery tag: the driver reads the
// channel's returns and confirms in the order the broker sent them, and
// RabbitMQ returns a message before it confirms it, so a publish knows
// whether it was returned once its confirm arrives. A return goes to the
// earliest unconfirmed mandatory publish of the same exchange, routing key
// and body; among copies identical in all three (published while a binding
// changes), which one was returned cannot be told, but as many publishes
// fail as copies were returned. At most 256 such publishes are in flight
// at once; more wait for room.
//
// RPC call requests and replies are such mandatory, confirmed publishes.
// Settling them without confirms, by a synchronous method sent after the
// publishes in flight, kept every promise but storage and was measured
// slower (BENCHMARKS.md): no publish may be written on a channel while
// that method is.
//
// # The client underneath
//
// Transport.As with a **amqp091.Connection target gives the amqp091-go
// connection in use, for what the model does not offer (a passive declare,
// say); any other target gets false, as does a transport that is
// reconnecting or closed. A reconnection replaces the connection, so
// fetch it again rather than keep it, and leave closing it to the
// transport:
//
//	var conn *amqp091.Connection
//	if tr.As(&conn) {
//		ch, err := conn.Channel()
//		...
//	}
//
// # Delivery limit and counts
//
// Quorum queues count returns themselves: DeliveryCount comes from their
// x-delivery-count header, and past x-delivery-limit the broker
// dead-letters the message with reason delivery_limit.
//
// On a classic queue declared through the same transport with a
// DeliveryLimit, the driver counts. Nack with requeue publishes a copy of
// the message to the back of the queue (through the default exchange,
// with the broker's confirm) carrying the count of returns and where it
// was first published, then acks the original; the consumer of the copy
// sees the original exchange and routing key, Redelivered set and the
// count; Switchyard consumers never see the driver's x-switchyard-*
// headers (other clients do). A broker redelivery (a consumer that
// closed or lost its connection unsettled) is counted when a consumer
// receives it: the driver republishes it the same way before handing it
// out, so that a message that kills its consumers is counted too. Past
// the limit the driver dead-letters the message as a quorum queue would:
// to the queue's dead-letter exchange with its dead-letter routing key
// (or the original key), an x-death entry with reason delivery_limit and
// no expiration; without a dead-letter exchange it is dropped. The
// consequences, at-least-once: a copy moves to the back of the queue (a
// redelivery does not keep its place), a per-message TTL starts again
// with the copy, and if the connection drops between the copy's confirm
// and the original's ack both are delivered. Consumers with AutoAck, and
// transports that did not declare the queue, do not count: on a classic
// queue declared elsewhere, a message nacked with requeue comes back at
// once, as often as it is nacked (thousands of times a second), with
// DeliveryCount 1 and no limit. Declare the queue through the consuming
// transport too (declaring it again with the same arguments changes
// nothing on the broker), use a quorum queue, or nack without requeue
// to a dead-letter exchange. Consume says so, with a warning, when it
// starts a consumer (without AutoAck) on a queue the transport did not
// declare.
//
// Elsewhere DeliveryCount is 1 for a broker redelivery and 0 otherwise.
//
// # Faults and guarantees
//
// Heartbeats detect a dead connection. When the connection drops, the
// driver reconnects: it tries the URL's hosts in turn, and after a round
// in which none answered waits a backoff that starts at
// rabbit_retry_interval, doubles and grows by rabbit_retry_backoff each
// round up to rabbit_interval_max, jittered down by up to half. On the
// new connection it declares again the exchanges, queues and bindings
// declared through this transport (in that order; not those deleted
// through it, nor auto-delete queues whose consumers it closed), then
// starts every consumer again on its queue. Each reconnection is logged
// with slog, without the password. The re-declaration and the consumers'
// starts are given 5 s: on a cluster, a node frozen (a stalled VM or host)
// but not yet given up by its peers (net_ticktime, 60 s by default) holds
// every declaration and consume that touches it until it resumes. What
// has not answered by then goes on in the background and the connection
// is used at once: publishes, and consumers of queues the healthy nodes
// serve, resume after the heartbeat timeout and those 5 s; a consumer
// still starting is reported by Healthy, and further declarations through
// the transport wait for the background re-declaration to end.
//
// A consumer is never left deaf. When the broker cancels it (its queue
// was deleted by someone else, or the queue's node went away), or it
// cannot start again after a reconnection, it tries again with the same
// backoff: it declares the queue and its bindings again where this
// transport declared them, and otherwise waits for the queue to come
// back. Each failed attempt is logged at error level, and Healthy
// reports the consumer until it consumes again. Only a queue deleted
// through the consumer's own transport ends its consumer (ErrClosed).
//
// Delivery is at-least-once:
//
//   - A Receive blocked across the outage goes on with the resumed
//     consumer. Deliveries received before the drop can no longer be
//     settled: Ack, Nack and Reject return an error wrapping ErrClosed,
//     and the broker delivers those messages again, marked redelivered.
//   - A Publish during an outage waits for the reconnection, or for its
//     context; it never drops the message. A publish whose confirm was
//     outstanding when the connection dropped is published again on the
//     new connection with the same body, marked with a header
//     (x-switchyard-resent) that makes its consumers see it as
//     redelivered, since the broker may have taken the first copy: a
//     message that arrives twice is marked redelivered the second time.
//     The first copy may also come after the one sent again (a frozen
//     node reads a connection's last publishes once it resumes, after the
//     driver gave that connection up): a consumer remembers the message
//     ids of the last 4096 copies it handed out marked resent, and marks a
//     later copy with the same id redelivered. A message without a
//     MessageID, or whose copies go to different consumers, is not
//     covered.
//     A confirmed message is never lost (in a durable queue, as
//     persistent, it also survives a broker restart).
//   - A publish the broker nacks is sent again on a new channel, marked
//     resent, up to six times over about 3 s (50 ms doubling to 1 s), and
//     only then fails: after a quorum queue's leader moved, RabbitMQ may
//     nack everything on a channel opened during the election until the
//     old leader's node returns, while a new channel is acked, and a
//     nacked message may still have reached some of its queues. The
//     publishes still in flight on the old channel are sent again, marked
//     resent, too.
//   - Close ends the consumers (the broker requeues their unsettled
//     deliveries), closes the connection with a bounded handshake and
//     waits for the driver's goroutines.
//
// On a RabbitMQ cluster (3.10, quorum queues; see TestClusterFaults and
// the README's "Running on a RabbitMQ cluster"), what a fault costs:
//
//   - A node killed: its connections move to another node in well under a
//     second; a quorum queue whose leader died elects another, and may
//     nack publishes in the meantime (each fails, its channel replaced;
//     publishing again is the application's choice, and the copy it
//     publishes is a new message to the broker, not marked redelivered).
//   - A node frozen: its connections are found dead after the heartbeat
//     timeout, then the 5 s above. A transport's publishes share a
//     channel, and RabbitMQ stalls a channel (confirms and all) that
//     routes a message to a queue on the frozen node: keep publishes to
//     queues on different nodes on different transports where that
//     matters. Calls to a server whose queue is on the frozen node fail
//     with their timeout.
//   - A queue deleted by someone else: what is routed to it until its
//     consumer declares it again (casts, which are not mandatory) is lost.
//
// Things the driver does not change: an exclusive queue, an auto-delete
// queue and its messages are lost with the connection (the broker deletes
// them; the driver declares them again, empty); and while the broker is
// unreachable, declarations, consumers and publishes wait for it, bounded
// only by their contexts.
package rabbit
