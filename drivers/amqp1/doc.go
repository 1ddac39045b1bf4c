// Package amqp1 is Switchyard's AMQP 1.0 driver, on github.com/Azure/go-amqp.
// A blank import registers the amqp:// and amqps:// (TLS) schemes:
//
//	import _ "github.com/switchyard-mq/switchyard/drivers/amqp1"
//
//	tr, err := transport.Open(ctx, "amqp://guest:guest@127.0.0.1:5672/myvhost")
//
// amqp:// is AMQP 1.0 here. Go users of amqp091-go write amqp:// for
// RabbitMQ's AMQP 0-9-1, which is Switchyard's rabbit://, so the driver
// says "did you mean rabbit://...?" where that is the likely mistake: when
// the server answers the AMQP 1.0 protocol header with AMQP 0-9-1's (a
// broker without AMQP 1.0, such as RabbitMQ 3 without its plugin; the error
// is ErrUnsupported), and, on RabbitMQ, in the ErrUnsupported of every
// capability amqp:// lacks there and rabbit:// has.
//
// # URL
//
//	amqp://user:pass@host1:port,host2:port/vhost?option=value
//	amqps://user:pass@host:5671/vhost?ssl_ca_file=/etc/ca.pem
//
// The port defaults to 5672 (5671 for amqps). With a user the driver logs in
// with SASL PLAIN, without one with SASL ANONYMOUS. The path is the
// virtual host, sent to the broker as the connection's hostname
// "vhost:NAME", which is how RabbitMQ selects one (a bare name would land
// in the default virtual host); no path means the broker's default. On
// connection loss the driver re-dials, host after host, with backoff.
//
// Options (unknown ones are an error naming them; the portable options of
// package transport/driver are accepted too):
//
//	flavour                        auto (default), rabbitmq or proton: the broker profile, below
//	prefetch_size                  credit of a consumer whose ConsumeOptions.Prefetch is 0
//	                               (default 200; 10 on the proton flavour), 1 to 65535
//	presettled                     true: publish pre-settled (at most once, no wait for the
//	                               broker); default false
//	container_name                 the AMQP container id (default: random)
//	idle_timeout                   seconds without a frame before the connection is dead (60)
//	connection_retry_interval      seconds before the first re-dial (1)
//	connection_retry_backoff       seconds added per failed re-dial (2)
//	connection_retry_interval_max  cap of the re-dial delay, seconds (30)
//	ssl_ca_file, ssl_cert_file, ssl_key_file   PEM files, amqps:// only
//
// # Flavours
//
// AMQP 1.0 says how to move messages, not how brokers name or route them,
// so the driver has a profile per broker. The flavour is read from the
// "product" property the broker sends when the connection opens
// ("RabbitMQ": rabbitmq; anything else: proton), or forced with
// ?flavour=. On rabbitmq the "version" property picks between RabbitMQ 3's
// plugin and RabbitMQ 4 (major version 4 or later), below. Each has its
// own address mapping and capability set, which Capabilities reports per
// connection.
//
// rabbitmq, for RabbitMQ 3.10's rabbitmq_amqp1_0 plugin (enable it with
// rabbitmq-plugins enable rabbitmq_amqp1_0; it shares port 5672 with AMQP
// 0-9-1):
//
//	consume queue Q             source /amq/queue/Q  (never declares; missing: ErrNotFound)
//	publish, default exchange   target /queue, subject = routing key (a missing queue drops it)
//	publish, exchange X         target /exchange/X, subject = routing key (missing X: ErrNotFound)
//	declare / delete / purge / bind / unbind    the AMQP 0-9-1 side connection, below
//
// One link per exchange serves every routing key, since the key travels as
// the message's subject. "/" in a name is escaped as %2F, which is all the
// plugin unescapes (a name holding the text %2F is refused).
//
// rabbitmq on RabbitMQ 4 or later, where AMQP 1.0 is in the core and the
// plugin's v1 addresses are a deprecated feature (amqp_address_v1) that a
// node may deny ("Attach refused: amqp_address_v1_not_permitted"): the
// driver speaks only v2 addresses, each name percent-encoded (every byte
// but letters, digits and -._~), and declares topology through the
// broker's AMQP 1.0 management node, on the same connection:
//
//	consume queue Q             source /queues/Q  (never declares; missing: ErrNotFound)
//	publish, default exchange   anonymous link (null target), to = /queues/K (a missing queue drops it)
//	publish, exchange X         anonymous link, to = /exchanges/X/K, or /exchanges/X for an empty key
//	                            (missing X: ErrNotFound; unroutable: dropped)
//	declare queue               PUT /queues/Q {durable, exclusive, auto_delete, arguments}
//	declare / delete exchange   PUT, DELETE /exchanges/X {type, durable, auto_delete, internal, arguments}
//	bind / unbind               POST /bindings, DELETE /bindings/src=X;dstq=Q;key=K;args=
//	purge / delete queue        DELETE /queues/Q/messages, DELETE /queues/Q (both give message_count)
//	is the queue still there    GET /queues/Q
//
// One anonymous link serves every destination; the routing key also goes
// as the subject, and consumers read it (and the exchange) from the
// broker's x-routing-key and x-exchange annotations, so messages from AMQP
// 0-9-1 publishers carry them too. The management node is a link pair (a
// sender and a receiver of /management, named alike and marked paired) on
// a session of its own: a request is an amqp-value body with the path in
// to, the method in subject, a message id and reply-to "$me"; the reply's
// correlation id is that id, its subject the status code, its body a map
// or the broker's text. The pair is attached on first use and again after
// a reconnection; since the broker refuses a request it has no credit to
// answer, a new pair first sends a ping (a GET of a queue that does not
// exist) and is replaced if the broker refuses it for want of credit
// (go-amqp grants a receiver's first credit from a goroutine of its own).
//
// On RabbitMQ 4 there is no AMQP 0-9-1 side connection: everything the
// model declares, binds, purges, deletes or checks has a management
// request, and an exclusive queue declared through the management node
// belongs to the AMQP 1.0 connection, so this transport's links consume
// it. The side connection remains RabbitMQ 3's, whose plugin has no
// management node.
//
// proton, for the broker of Qpid Proton's examples (python/broker.py of
// libqpid-proton11-dev-examples) and any AMQP 1.0 peer that has only
// queues:
//
//	consume queue Q             source Q
//	publish, default exchange   target = the routing key (an empty key drops the message)
//	publish, exchange X         ErrNotFound: the broker has no exchanges
//	server-named queue          a dynamic source; a link without credit holds it open
//
// # Capabilities
//
//	capability          rabbitmq 3  rabbitmq 4  proton
//	direct              yes         yes         no (no exchanges)
//	fanout              yes         yes         no
//	topic               yes         yes         no
//	queue-binding       yes         yes         no
//	server-named-queue  yes         yes         yes (lives while the declaring connection does)
//	exclusive-queue     no          yes         no
//	auto-delete         yes         yes         no
//	message-ttl         yes         yes         no
//	queue-expiry        yes         yes         no
//	max-length          yes         yes         no
//	dead-letter         no          no          no
//	delivery-limit      no          no          no
//	mandatory           no          no          no
//	prefetch            yes         yes         yes
//	headers             yes         yes         yes
//	durable             yes         yes         no (nothing persists)
//	cross-process       yes         yes         yes
//	delivery-count      no          yes         yes (every return is the driver's copy, counted)
//	exclusive-consumer  no          no          no
//	queue-existence     yes         yes         no
//	quorum-queue        no          yes         no
//	stream-queue        no          no          no
//	transient-queue     yes         yes         yes
//
// On RabbitMQ 4 Nack with requeue sends the modified outcome with
// delivery-failed set, which the broker counts in the header's
// delivery-count (released, which RabbitMQ 3 needs, does not count), and
// a quorum queue is declared with x-queue-type quorum. Transient queues
// (neither durable nor exclusive) are declared as asked, which RabbitMQ 4
// permits by default; a node that denies its deprecated feature
// transient_nonexcl_queues answers 400, which the driver returns as
// ErrUnsupported with the broker's text, naming the feature. rpc and
// notify then need the options oslo.messaging's RabbitMQ guide
// recommends, rabbit_quorum_queue=true and rabbit_transient_quorum_queue=true,
// which the driver accepts in its URL for them. Not claimed on RabbitMQ
// 4, for want of time to prove them with the conformance suite rather
// than for a known gap: dead-lettering (the broker reports a dead letter's
// history to AMQP 1.0 consumers as an x-opt-deaths annotation, not the
// x-death header the model reads), delivery limits (quorum queues only),
// mandatory publishing (the broker releases an unroutable message, which
// the driver could report) and streams (they need a consumer offset).
//
// Why the rabbitmq gaps: exclusive queues would belong to the 0-9-1 side
// connection, so no AMQP 1.0 link could consume them; a dead letter
// reaches an AMQP 1.0 consumer with its original subject and without its
// x-death header (the plugin rebuilds the message from the AMQP 1.0
// sections it stored), so the dead-letter routing key and reason are lost;
// the plugin's released message keeps delivery-count 0 and classic
// queues have no x-delivery-limit; AMQP 1.0 has no unroutable returns
// (RabbitMQ accepts an unroutable message and drops it). The queue model
// beyond the capabilities holds on both flavours, with these exceptions
// that the conformance suite has no capability for yet: exclusive
// consumers on both (RabbitMQ's plugin always consumes non-exclusively; a
// request for one is ErrUnsupported), and on proton a missing queue is
// never ErrNotFound and a mismatched redeclaration never ErrPrecondition
// (the broker makes queues on first use and keeps no properties).
//
// # Topology on RabbitMQ: an AMQP 0-9-1 side connection
//
// RabbitMQ's AMQP 1.0 plugin cannot declare exchanges, bindings or queues
// with arguments (an attach declares only a plain queue, and fails when
// the queue exists with other arguments). The driver therefore declares
// topology over a small AMQP 0-9-1 connection (github.com/rabbitmq/amqp091-go)
// to the same host, port, TLS settings, credentials and virtual host,
// opened with the transport and re-opened when lost, and moves every
// message over AMQP 1.0. The alternative, the management HTTP API, was
// rejected: it needs another plugin, port and credentials path, its queue
// counts lag by seconds (so PurgeQueue and DeleteQueue could not report
// how many messages they dropped), it cannot declare a server-named queue,
// and its errors are HTTP statuses instead of AMQP's 404/406/405, which map
// one to one to ErrNotFound, ErrPrecondition and ErrInUse. Multiplexing
// exchanges over amq.topic (/exchange/amq.topic/<escaped exchange>.<key>)
// was rejected too: it gives fanout, direct and topic subscriptions, but
// not a named queue bound to an exchange and shared by competing consumers,
// which oslo's RPC topic queues need; and every subscription makes an
// amq.gen- queue that the plugin never deletes. The side connection costs
// one more TCP connection per transport and needs AMQP 0-9-1 on the
// broker's port, which RabbitMQ always has.
//
// A queue is declared with exactly the arguments the rabbit driver gives
// it (x-message-ttl, x-expires, x-max-length, and no x-overflow: the
// broker's default, drop-head, is the model's overflow), so that a queue
// declared through amqp:// and through rabbit:// is the same queue, and an
// oslo.messaging peer declaring it is not refused with 406.
//
// The driver never makes amq.gen- queues (it consumes only named queues
// through /amq/queue/, and names server-named queues switchyard.gen-...).
// Other AMQP 1.0 clients of the same virtual host that subscribe through
// /exchange/ or /topic/ addresses do leak them; give such a virtual host
// the policy the driver's tests use:
//
//	rabbitmqctl set_policy -p VHOST --apply-to queues amq-gen-expiry '^amq\.gen-' '{"expires":60000}'
//
// # Errors and the client underneath
//
// A refusal of RabbitMQ 4's management node is a *ManagementError with
// the request, the status and the broker's text: 404 is ErrNotFound, 409
// (an inequivalent redeclaration) ErrPrecondition, 405 and "in exclusive
// use" ErrInUse, 403 ErrInvalid, and 400 ErrUnsupported for a denied
// deprecated feature, ErrNotFound for a missing exchange or queue named in
// a binding, and ErrInvalid otherwise.
//
// A virtual host that does not exist, or that the user may not use, fails
// Open with ErrNotFound: RabbitMQ 3 refuses the connection's first session
// (amqp:unauthorized-access), while RabbitMQ 4 drops the connection during
// the AMQP handshake without a reason (after a delay of about 3 s; its log
// says which), so a broker that drops a connection to a named virtual host
// mid-handshake is read that way too.
//
// A refusal maps to the model's sentinel and keeps the client's own error
// in its chain: go-amqp's *amqp.Error, with its condition and description
// (and the *amqp.LinkError, *amqp.SessionError or *amqp.ConnError that
// carried it), for what AMQP 1.0 refuses; amqp091-go's *amqp091.Error,
// with its reply code and reason, for what the side connection refuses.
// amqp:not-found is ErrNotFound, amqp:precondition-failed ErrPrecondition,
// amqp:resource-locked ErrInUse, amqp:not-implemented ErrUnsupported, and
// amqp:invalid-field, amqp:not-allowed, amqp:decode-error,
// amqp:unauthorized-access and amqp:link:message-size-exceeded
// ErrInvalid; the side connection's reply codes map as in the rabbit
// driver.
//
//	_, err := tr.Consume(ctx, "missing", transport.ConsumeOptions{})
//	var refusal *amqp.Error
//	if errors.Is(err, transport.ErrNotFound) && errors.As(err, &refusal) {
//		log.Printf("%s: %s", refusal.Condition, refusal.Description) // amqp:not-found: ...
//	}
//
// Transport.As with a **amqp.Conn target gives the go-amqp connection in
// use, on either flavour; any other target (the side connection included)
// gets false, as does a transport that is reconnecting or closed. A
// reconnection replaces the connection, so fetch it again rather than keep
// it, and leave closing it to the transport.
//
// # Flow control
//
// Each consumer's link has manual credit (its prefetch), and the driver
// grants more only once every credit granted before has been used (all of
// it received), then tops up to the prefetch less what the application
// holds unsettled. Anything earlier stalls on RabbitMQ 3.10: a link whose
// credit ran out while its queue held a backlog stopped for good after a
// few hundred messages (reproduced with go-amqp's own credit management at
// credit 10, 100 and 1000, and with IssueCredit by hand).
//
// The cause, read in both sources and seen in go-amqp's frame log: the
// plugin turns each flow frame into an AMQP 0-9-1 basic.credit that sets
// the queue's credit for the consumer to delivery-count + link-credit −
// (the messages its session has already sent on), an absolute value
// (rabbit_amqp1_0_outgoing_link:flow/3). Messages the queue has already
// dispatched under the previous credit but that are still on their way to
// the session are not subtracted, so a flow sent while deliveries are in
// flight grants them again and the broker sends more than the link
// granted. go-amqp (1.7.0) does not check a transfer against the credit:
// its uint32 link-credit counter drops below zero and wraps to about four
// billion, after which its automatic top-up rule ("settled since the last
// flow ≥ link credit") never fires again, while the broker, whose own
// count is now past what it was granted, computes a negative credit (sent
// as a wrapped uint: link-credit 246 for −10) and sends nothing. In the
// recorded case go-amqp granted up to 132 and the broker sent 160: four
// flows (credit 4, 8, 16, 32) each re-granted what was in flight.
//
// With nothing in flight the broker's credit is exactly what the flow
// grants, so granting only when the last grant is used up never
// overshoots. It costs a round trip per prefetch's worth of messages; the
// tests drain a 100 000-message backlog with prefetch 100 (and backlogs
// at prefetch 1, 10 and 1000), and the benchmarks compare with raw go-amqp
// used the same way.
//
// # Other sharp edges the driver works around
//
//   - A failed attach on RabbitMQ ends the whole session: every link has a
//     session of its own.
//   - RabbitMQ answers a closing detach with a non-closing one, which
//     go-amqp refuses, so Receiver.Close and Sender.Close never return:
//     the driver ends a link's session instead (bounded by a two-second
//     deadline), and RabbitMQ returns its unsettled deliveries to the
//     queue. The Proton broker, by contrast, keeps a link whose session
//     ended as a consumer (and loses what it sends there), so on that
//     flavour links are detached first.
//   - A modified outcome ends the session on RabbitMQ: Nack never sends
//     one (release requeues, reject drops or dead-letters).
//   - Deleting a queue that an AMQP 1.0 link consumes makes RabbitMQ drop
//     the consumer's whole connection about three seconds later: DeleteQueue
//     first ends this transport's consumers of the queue (their Receive
//     returns ErrClosed), and other connections reconnect, after which the
//     re-attach is refused and their consumers end with ErrClosed and
//     ErrNotFound. Should a session be left neither delivering nor ended,
//     a Receive that has waited idleCheck (10 s) asks the side connection
//     whether the queue still exists, and ends the consumer if not.
//   - Message and correlation ids are always strings (RabbitMQ 3.10 fails
//     0-9-1 consumers on ulong ids); ids of other types from other peers
//     are rendered as text.
//   - Headers travel as application properties, which hold only simple
//     values: a nested map or list is ErrInvalid. They do not reach AMQP
//     0-9-1 consumers as headers (RabbitMQ keeps them as an opaque blob).
//   - The Proton broker forgets a message once it is sent: a released or
//     rejected one is lost. So Nack with requeue publishes a copy (marked
//     redelivered, counted in an x-opt-switchyard-delivery-count message
//     annotation) and then accepts the original, and Consumer.Close first
//     detaches, then publishes copies of the deliveries it held and of
//     those that had arrived but were never handed out. A requeued message
//     goes to the tail of the queue, and a consumer that dies without
//     closing (a crash, a lost connection) loses what it held.
//   - The Proton broker gives each message to the first consumer with
//     credit, so its default prefetch is small (10) to spread work.
//   - The Proton broker has no purge: PurgeQueue (and DeleteQueue) publish
//     a marker message (x-opt-switchyard-marker) and consume up to it;
//     queues are first in, first out, so what came before it was ready.
//     The driver's consumers drop markers they meet. If another consumer
//     with credit takes the marker, the purge waits until its context ends.
//
// # Guarantees
//
// Publish returns once the broker has accepted the message, which on
// RabbitMQ follows its publisher confirm (unless presettled=true). If the
// link or connection is lost before that, Publish sends once more on a
// fresh link after reconnecting: at least once. Delivery.Redelivered comes
// from the header's first-acquirer on RabbitMQ and from the delivery count
// on proton. A consumer's link lost with its session or connection is
// re-attached by the next Receive, which waits while the driver
// reconnects; its unsettled deliveries can no longer be settled (ErrClosed)
// and RabbitMQ hands them out again, marked redelivered. A link that the
// broker refuses on re-attach (its queue was deleted) ends the consumer
// with ErrClosed.
package amqp1
