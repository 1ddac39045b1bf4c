// Package messaging is what rpc and notify share on the transport, as
// oslo.messaging's amqpdriver shares it between its RPC and notification
// sides:
//
//   - [Topology]: oslo's topology options (control_exchange,
//     amqp_durable_queues, amqp_auto_delete, rabbit_transient_queues_ttl,
//     rabbit_quorum_queue) read from the transport URL and turned into the
//     portable model's exchanges and queues.
//   - [RequestContext]: the dictionary that travels with every request and
//     notification, the context.Context key it travels under in Go, and its
//     _context_ entries on the wire, numbers keeping their text
//     ([DecodeJSON]).
//   - [Publisher]: the publish retry rule, 100 ms doubling to 2 s, for
//     failures that may heal ([Permanent] tells those that cannot).
//   - [DuplicateFilter]: at least the last DuplicateWindow (4096) _unique_ids, by which
//     oslo's servers and listeners drop a message delivered twice.
//   - [WorkerPool]: the goroutines that receive from several consumers and
//     handle each delivery where it was received, up to a bound, resuming
//     a consumer the broker ends; owned and stopped by the WorkerPool.
//
// The wire codec itself is package oslo. Nothing here is mutable at the
// package level: each piece belongs to the client, server, notifier or
// listener that made it.
package messaging
