// Package zmq is Switchyard's broker-less driver, registered as the zmq://
// transport scheme: services talk to each other directly over ZeroMQ (ZMTP
// 3.0 over TCP, via github.com/go-zeromq/zmq4), with no broker in between.
// Switchyard supplies what a broker would: discovery (a matchmaker),
// routing, acknowledgements and redelivery. Import it for its side effect:
//
//	import _ "github.com/switchyard-mq/switchyard/drivers/zmq"
//
// # URL and options
//
//	zmq://                      in-process matchmaker (one process; needs nothing)
//	zmq://NAME                  a separate in-process registry called NAME
//	zmq://?matchmaker=redis://127.0.0.1:6379/0
//	                            Redis matchmaker: many processes and hosts
//	zmq://NAME?matchmaker=redis://...
//	                            Redis keys under "switchyard:zmq:NAME:" (default NAME: "default")
//
// The matchmaker is a query option rather than the URL's host so that the
// URL keeps one meaning across backends: its host part names the registry
// (as memory://NAME names a broker), and the Redis URL, credentials and
// database included, is passed whole to go-redis. Options:
//
//	matchmaker=memory|redis://[user:pass@]host:port/db   default memory
//	bind=127.0.0.1              address (host or host:port) this node listens on;
//	                            the default is loopback with a port the system picks.
//	                            Other hosts need an address they can reach.
//	ack_timeout=30s             a delivery not settled this long after it was sent goes
//	                            to another consumer (0: never)
//	liveness_ttl=10s            how long the matchmaker keeps a node (and its consumers)
//	                            that stopped refreshing
//	liveness_refresh=ttl/3      how often a node refreshes its liveness (and reloads a
//	                            Redis registry)
//	buffer_size=10000           messages a sender holds per queue that no consumer can take
//	buffer_time=0               how long such a message may wait (0: no limit)
//	send_timeout=5s             bound on one write to a peer, a dial and a handshake
//
// Unknown options are errors naming the option.
//
// # Design
//
// Each open transport is a node: a TCP listener (its endpoint) and an ID,
// registered in the matchmaker. The matchmaker (package
// drivers/zmq/internal/matchmaker, an interface with an in-process and a Redis
// implementation) records exchanges, queues and bindings, which persist
// until deleted as on a broker, and each node's endpoint and consumers,
// which live as long as the node refreshes its liveness TTL.
//
// Routing happens on the sending side: the sender resolves the queues a
// message reaches with package router (direct, fanout, topic with * and #)
// from its copy of the registry, so ZeroMQ's prefix-only subscription
// filters are never relied on. The sender then holds one copy per queue
// and sends each copy to one live consumer of that queue, round robin among
// the consumers with credit. A consumer's credit is its prefetch (or a
// window of 1024 without one): how many of this sender's deliveries it may
// have unsettled or buffered. Deliveries travel on a direct TCP connection
// from the sender's node to the consumer's node, one hop; a request and its
// reply (publish to a server's queue, publish back to the caller's queue
// through the default exchange) take one hop each way, and the reply reuses
// the connection the request came on.
//
// ZeroMQ's own sockets are not used for distribution: zmq4's PUSH and
// DEALER copy each message to every peer instead of distributing, and its
// ROUTER writes under one lock with no write deadline. zmq4 does each
// connection's ZMTP handshake (any ZMTP peer can connect; the driver dials
// as DEALER, accepts as ROUTER, identities are node IDs); the driver frames
// and writes the traffic itself, batching writes, bounding each by
// send_timeout, with one reader goroutine per connection.
//
// # Acknowledgements and redelivery
//
// A message stays with its sender until acknowledged. The consumer's node
// sends settlements back to it (batched; at once when the consumer goes
// idle): ack frees the message; nack with requeue sends it to a consumer
// again (possibly the same one) with Redelivered set and DeliveryCount
// increased; reject dead-letters or drops it. When a consumer closes, its
// unsettled deliveries return (counted) and its buffered ones return
// (uncounted) to their senders. When a consumer's connection fails (its
// process died) or its node disappears from the matchmaker, its senders
// return what it held, counted. When a delivery is not settled within
// ack_timeout, it is sent again, to another consumer if one has credit.
// The receiving node drops duplicates by sender and sequence: a copy of a
// delivery it still holds, or of one it settled recently (whose settlement
// it sends again).
//
// Dead-lettering (rejected, expired, past the delivery limit, with
// RabbitMQ's x-death headers), the delivery limit and message TTL (per
// queue and per message, applied while the sender holds the message and
// again before the consumer hands it out) are done by the sender.
// Exclusive queues belong to their node and disappear with it; auto-delete
// queues go with their last consumer, auto-delete exchanges with their last
// binding.
//
// # What a broker-less design cannot promise
//
//   - Messages do not survive their sender's crash. A message lives in the
//     memory of the process that published it until a consumer acknowledges
//     it: if that process dies first, the message is lost. Close does
//     better: it hands the messages no consumer has to another live node
//     (one consuming the queue if any), which holds them from then on; only
//     messages a consumer has but has not settled stay with it, and if that
//     consumer then fails they are lost (Close logs what could not be handed
//     off). There is no durability (no CapDurable): a durable exchange or
//     queue and a persistent message are ErrUnsupported, so that code
//     written for a broker's guarantees learns at once that it has none
//     here. The rpc and notify layers ask for durability only where a
//     backend has it (amqp_durable_queues=true declares transient here,
//     with a warning).
//   - A queue holds nothing by itself. Messages for a queue with no live
//     consumer wait in their sender, at most buffer_size per queue and
//     sender (then Publish fails with ErrBufferFull, which also matches
//     ErrUnroutable) and at most buffer_time if set (then they are dropped
//     with a logged warning). PurgeQueue and DeleteQueue count only what
//     this node holds; other senders drop theirs when they see the deletion.
//     So a notifier's "<topic>.<priority>" queue, which it declares as
//     oslo's does, fills its buffer when nobody listens, and Notify then
//     fails: notify.QueuePolicy's PublishOnly holds nothing for an absent
//     listener, and its MessageTTL drops what waited too long.
//   - Delivery is at least once: a consumer that dies, or takes longer
//     than ack_timeout, may have handled a message that is delivered again.
//   - Declarations, liveness and consumers propagate through the
//     matchmaker. With Redis, a declaration, binding or Consume returns once
//     every live node has loaded it, so what any process publishes next is
//     routed by it; a node that does not keep up (paused, overloaded) is
//     waited for at most liveness_refresh, capped at a second, and sees the
//     change when its pub/sub notification or periodic reload arrives. A
//     crashed node's consumers linger until its liveness_ttl runs out (its
//     connections fail at once, though, which returns what it held).
//   - No max length or queue expiry (queues have no single place to count
//     or time them); no authentication or encryption: run it on a trusted
//     network (loopback by default).
//   - Capabilities: everything but durable, max-length and queue-expiry;
//     cross-process only with the Redis matchmaker.
//
// Frames over 64 MiB are refused. A peer that sends malformed frames is
// logged and disconnected; it never makes the node panic or block another
// peer.
package zmq
