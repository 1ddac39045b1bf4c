package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/switchyard-mq/switchyard/transport"
)

// featureCases are the queue properties: server-chosen names, exclusive
// and auto-delete queues, TTLs, expiry and length limits.
func featureCases() []testCase {
	return []testCase{
		{"server-named-queue", serverNamedQueue},
		{"exclusive-queue", exclusiveQueue},
		{"auto-delete-queue", autoDeleteQueue},
		{"auto-delete-exchange", autoDeleteExchange},
		{"message-ttl-per-queue", messageTTLPerQueue},
		{"message-ttl-per-message", messageTTLPerMessage},
		{"queue-expiry", queueExpiry},
		{"max-length-drops-oldest", maxLengthDropsOldest},
		{"unsupported-properties", unsupportedProperties},
		{"durable-outlives-transports", durableOutlivesTransports},
	}
}

// durableOutlivesTransports: a durable exchange and queue, their binding
// and a persistent message in the queue outlive the transport that made
// them; one opened later finds them, redeclares them as they were and
// receives the message. It is the part of durability every backend with
// CapDurable can show in a test (a broker restart is the rabbit driver's
// fault tests').
func durableOutlivesTransports(e *env) {
	require(e.t, e.caps, transport.CapDurable, transport.CapDirect, transport.CapQueueBinding)
	first := e.open()
	x := transport.Exchange{Name: uniqueName("durable"), Kind: transport.Direct, Durable: true}
	if err := first.DeclareExchange(e.ctx, x); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		_ = e.admin.DeleteExchange(ctx, x.Name)
	})
	q := transport.Queue{Name: uniqueName("durable"), Durable: true}
	e.declareQueue(first, q)
	e.bind(first, x.Name, q.Name, "key")
	e.publish(first, x.Name, "key", transport.Message{Body: []byte("kept"), Persistent: true})
	if err := first.Close(); err != nil {
		e.t.Fatalf("close the first transport: %v", err)
	}

	later := e.open()
	if err := later.DeclareExchange(e.ctx, x); err != nil {
		e.t.Errorf("redeclare the durable exchange as it was: %v", err)
	}
	if _, err := later.DeclareQueue(e.ctx, q); err != nil {
		e.t.Errorf("redeclare the durable queue as it was: %v", err)
	}
	c := e.consume(later, q.Name, transport.ConsumeOptions{})
	d := e.receive(c)
	if string(d.Body) != "kept" || !d.Persistent {
		e.t.Errorf("got %q (persistent %v), want the persistent message %q", d.Body, d.Persistent, "kept")
	}
	e.ack(d)
	e.publish(later, x.Name, "key", transport.Message{Body: []byte("still bound")})
	if got := e.receiveBodies(c, 1, false); got[0] != "still bound" {
		e.t.Errorf("after the first transport closed, the binding routed %q, want %q", got[0], "still bound")
	}
}

// propertyCase sets one property of the model, which needs capability c.
type propertyCase struct {
	property string
	c        transport.Capability
	use      func(ctx context.Context, tr *transport.Transport) error
}

// propertyCases are the model's properties and the capability each needs:
// every property of Exchange, Queue, Binding, Message and ConsumeOptions
// that a backend may lack. caps are the backend's, so that each case sets
// only the property it is about (a durable queue where the backend has
// durability, an exchange of a kind it has).
func propertyCases(caps transport.Capabilities) []propertyCase {
	kind := transport.Direct
	for _, k := range []transport.ExchangeKind{transport.Direct, transport.Fanout, transport.Topic} {
		if caps.Has(map[transport.ExchangeKind]transport.Capability{
			transport.Direct: transport.CapDirect, transport.Fanout: transport.CapFanout, transport.Topic: transport.CapTopic}[k]) {
			kind = k
			break
		}
	}
	durable := caps.Has(transport.CapDurable)
	exchange := func(x transport.Exchange) func(context.Context, *transport.Transport) error {
		return func(ctx context.Context, tr *transport.Transport) error {
			x.Name = uniqueName("unsupported")
			return tr.DeclareExchange(ctx, x)
		}
	}
	queue := func(q transport.Queue) func(context.Context, *transport.Transport) error {
		return func(ctx context.Context, tr *transport.Transport) error {
			if q.Name == "-" {
				q.Name = uniqueName("unsupported")
			}
			_, err := tr.DeclareQueue(ctx, q)
			return err
		}
	}
	publish := func(msg transport.Message) func(context.Context, *transport.Transport) error {
		return func(ctx context.Context, tr *transport.Transport) error {
			return tr.Publish(ctx, "", uniqueName("unsupported"), msg)
		}
	}
	consume := func(opts transport.ConsumeOptions) func(context.Context, *transport.Transport) error {
		return func(ctx context.Context, tr *transport.Transport) error {
			c, err := tr.Consume(ctx, uniqueName("unsupported"), opts)
			if err == nil {
				_ = c.Close()
			}
			return err
		}
	}
	return []propertyCase{
		{"Exchange.Kind direct", transport.CapDirect, exchange(transport.Exchange{Kind: transport.Direct})},
		{"Exchange.Kind fanout", transport.CapFanout, exchange(transport.Exchange{Kind: transport.Fanout})},
		{"Exchange.Kind topic", transport.CapTopic, exchange(transport.Exchange{Kind: transport.Topic})},
		{"Exchange.Durable", transport.CapDurable, exchange(transport.Exchange{Kind: kind, Durable: true})},
		{"Exchange.AutoDelete", transport.CapAutoDelete, exchange(transport.Exchange{Kind: kind, AutoDelete: true})},
		{"Queue.Name empty", transport.CapServerNamedQueue, queue(transport.Queue{Durable: durable})},
		{"Queue.Durable", transport.CapDurable, queue(transport.Queue{Name: "-", Durable: true})},
		{"Queue neither durable nor exclusive", transport.CapTransientQueue, queue(transport.Queue{Name: "-"})},
		{"Queue.Exclusive", transport.CapExclusiveQueue, queue(transport.Queue{Name: "-", Exclusive: true})},
		{"Queue.AutoDelete", transport.CapAutoDelete, queue(transport.Queue{Name: "-", Durable: durable, AutoDelete: true})},
		{"Queue.MessageTTL", transport.CapMessageTTL, queue(transport.Queue{Name: "-", Durable: durable, MessageTTL: time.Minute})},
		{"Queue.Expires", transport.CapQueueExpiry, queue(transport.Queue{Name: "-", Durable: durable, Expires: time.Minute})},
		{"Queue.MaxLength", transport.CapMaxLength, queue(transport.Queue{Name: "-", Durable: durable, MaxLength: 10})},
		{"Queue.DeadLetterExchange", transport.CapDeadLetter, queue(transport.Queue{Name: "-", Durable: durable, DeadLetterExchange: "dlx"})},
		{"Queue.DeliveryLimit", transport.CapDeliveryLimit, queue(transport.Queue{Name: "-", Durable: durable, DeliveryLimit: 3})},
		{"Queue.Type quorum", transport.CapQuorumQueue, queue(transport.Queue{Name: "-", Durable: true, Type: transport.QuorumQueue})},
		{"Queue.Type stream", transport.CapStreamQueue, queue(transport.Queue{Name: "-", Durable: true, Type: transport.StreamQueue})},
		{"Binding", transport.CapQueueBinding, func(ctx context.Context, tr *transport.Transport) error {
			return tr.Bind(ctx, transport.Binding{Exchange: "amq." + string(kind), Queue: uniqueName("unsupported"), Key: "k"})
		}},
		{"Message.Persistent", transport.CapDurable, publish(transport.Message{Persistent: true})},
		{"Message.Expiration", transport.CapMessageTTL, publish(transport.Message{Expiration: time.Minute})},
		{"Message.Headers", transport.CapHeaders, publish(transport.Message{Headers: transport.Headers{"k": "v"}})},
		{"Message.Mandatory", transport.CapMandatory, publish(transport.Message{Mandatory: true})},
		{"ConsumeOptions.Prefetch", transport.CapPrefetch, consume(transport.ConsumeOptions{Prefetch: 1})},
		{"ConsumeOptions.Exclusive", transport.CapExclusiveConsumer, consume(transport.ConsumeOptions{Exclusive: true})},
	}
}

// behaviourCapabilities are the capabilities that no property asks for:
// what a backend does (reach other processes, count deliveries, keep
// queues to their declarations), which the other cases check.
var behaviourCapabilities = []transport.Capability{
	transport.CapCrossProcess, transport.CapDeliveryCount, transport.CapQueueExistence,
}

// unsupportedProperties: every property whose capability the driver does
// not declare fails with ErrUnsupported, naming that capability, rather
// than being accepted and dropped; it holds the driver's own Capabilities()
// (not the harness's) to the README's matrix, where the matrix's "no"
// means exactly this. Every capability is a property here or a behaviour.
func unsupportedProperties(e *env) {
	tr := e.open()
	caps := tr.Capabilities()
	cases := propertyCases(caps)
	for _, c := range transport.AllCapabilities() {
		if !slices.ContainsFunc(cases, func(p propertyCase) bool { return p.c == c }) && !slices.Contains(behaviourCapabilities, c) {
			e.t.Errorf("capability %q is neither a property's (propertyCases) nor a behaviour (behaviourCapabilities)", c)
		}
	}
	lacking := 0
	for _, p := range cases {
		if caps.Has(p.c) {
			continue // the cases of the capability check that it works
		}
		lacking++
		err := p.use(e.ctx, tr)
		if !errors.Is(err, transport.ErrUnsupported) || !strings.Contains(err.Error(), fmt.Sprintf("%q", p.c.String())) {
			e.t.Errorf("%s without capability %q: got %v, want ErrUnsupported naming the capability", p.property, p.c, err)
		}
	}
	e.t.Logf("%d of %d properties need a capability this backend lacks (%s), each refused", lacking, len(cases), caps)
}

// serverNamedQueue: a queue declared without a name gets a unique one that
// works like any other.
func serverNamedQueue(e *env) {
	require(e.t, e.caps, transport.CapServerNamedQueue)
	tr := e.open()
	names := []string{e.declareQueue(tr, transport.Queue{}), e.declareQueue(tr, transport.Queue{})}
	if names[0] == "" || names[0] == names[1] {
		e.t.Fatalf("server-named queues %q: want two distinct non-empty names", names)
	}
	for _, q := range names {
		e.publishBodies(tr, "", q, "to "+q)
		if got := e.receiveBodies(e.consume(tr, q, transport.ConsumeOptions{}), 1, false); got[0] != "to "+q {
			e.t.Errorf("queue %q: got %q, want %q", q, got[0], "to "+q)
		}
	}
}

// exclusiveQueue: an exclusive queue belongs to the transport that
// declared it: another transport may publish to it but neither redeclare
// nor consume it (ErrInUse), and it is deleted when its owner closes.
func exclusiveQueue(e *env) {
	require(e.t, e.caps, transport.CapExclusiveQueue)
	owner, other := e.open(), e.open()
	decl := transport.Queue{Name: uniqueName("exclusive"), Exclusive: true}
	q := e.declareQueue(owner, decl)

	_, err := other.DeclareQueue(e.ctx, decl)
	e.wantErr("another transport redeclares the exclusive queue", err, transport.ErrInUse)
	_, err = other.Consume(e.ctx, q, transport.ConsumeOptions{})
	e.wantErr("another transport consumes the exclusive queue", err, transport.ErrInUse)

	e.publishBodies(other, "", q, "from another transport")
	if got := e.receiveBodies(e.consume(owner, q, transport.ConsumeOptions{}), 1, false); got[0] != "from another transport" {
		e.t.Errorf("owner got %q", got[0])
	}
	if err := owner.Close(); err != nil {
		e.t.Fatalf("close owner: %v", err)
	}
	e.queueGone(other, q)
}

// autoDeleteQueue: an auto-delete queue lives until its last consumer
// goes; one that never had a consumer stays.
func autoDeleteQueue(e *env) {
	require(e.t, e.caps, transport.CapAutoDelete)
	tr := e.open()
	q := e.declareQueue(tr, transport.Queue{Name: uniqueName("auto-delete"), AutoDelete: true})
	e.queueExists(tr, q)
	first := e.consume(tr, q, transport.ConsumeOptions{})
	last := e.consume(e.open(), q, transport.ConsumeOptions{})
	if err := first.Close(); err != nil {
		e.t.Fatalf("close first consumer: %v", err)
	}
	e.queueExists(tr, q)
	if err := last.Close(); err != nil {
		e.t.Fatalf("close last consumer: %v", err)
	}
	e.queueGone(tr, q)
}

// autoDeleteExchange: an auto-delete exchange lives until its last
// binding goes; one that never had a binding stays.
func autoDeleteExchange(e *env) {
	require(e.t, e.caps, transport.CapAutoDelete, transport.CapDirect, transport.CapQueueBinding)
	tr := e.open()
	x := transport.Exchange{Name: uniqueName("auto-delete"), Kind: transport.Direct, AutoDelete: true}
	if err := tr.DeclareExchange(e.ctx, x); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		_ = e.admin.DeleteExchange(ctx, x.Name)
	})
	exists := func(ctx context.Context) error {
		return tr.Publish(ctx, x.Name, "key", transport.Message{Body: []byte("probe")})
	}
	if err := exists(e.ctx); err != nil {
		e.t.Fatalf("an auto-delete exchange never bound should exist: %v", err)
	}
	q1, q2 := e.simpleQueue(tr, "q"), e.simpleQueue(tr, "q")
	e.bind(tr, x.Name, q1, "key")
	e.bind(tr, x.Name, q2, "key")
	if err := tr.Unbind(e.ctx, transport.Binding{Exchange: x.Name, Queue: q1, Key: "key"}); err != nil {
		e.t.Fatal(err)
	}
	if err := exists(e.ctx); err != nil {
		e.t.Fatalf("an auto-delete exchange with a binding left should exist: %v", err)
	}
	if _, err := tr.DeleteQueue(e.ctx, q2); err != nil { // takes its binding with it
		e.t.Fatal(err)
	}
	e.eventually("auto-delete exchange deleted with its last binding", func(ctx context.Context) error {
		if err := exists(ctx); !errors.Is(err, transport.ErrNotFound) {
			return fmt.Errorf("publish answers %v", err)
		}
		return nil
	})
}

// ttl is short so cases stay fast, and long enough that publishing the
// messages of a case takes less.
const ttl = 100 * time.Millisecond

// messageTTLPerQueue: messages older than the queue's TTL are never
// delivered, even if their own expiration is longer (the lower wins).
func messageTTLPerQueue(e *env) {
	require(e.t, e.caps, transport.CapMessageTTL)
	tr := e.open()
	q := e.declareQueue(tr, transport.Queue{Name: uniqueName("ttl"), MessageTTL: ttl})
	e.publish(tr, "", q, transport.Message{Body: []byte("expires")})
	e.publish(tr, "", q, transport.Message{Body: []byte("expires too"), Expiration: time.Hour})
	e.elapse(3 * ttl)
	e.publishBodies(tr, "", q, "fresh")
	c := e.consume(tr, q, transport.ConsumeOptions{})
	if got := e.receiveBodies(c, 1, false); got[0] != "fresh" {
		e.t.Errorf("got %q, want %q (the others expired)", got[0], "fresh")
	}
	e.expectNone(c)
}

// messageTTLPerMessage: a message's own expiration applies to it alone.
func messageTTLPerMessage(e *env) {
	require(e.t, e.caps, transport.CapMessageTTL)
	tr := e.open()
	q := e.simpleQueue(tr, "ttl")
	e.publish(tr, "", q, transport.Message{Body: []byte("short"), Expiration: ttl})
	e.publish(tr, "", q, transport.Message{Body: []byte("long"), Expiration: time.Hour})
	e.publish(tr, "", q, transport.Message{Body: []byte("none")})
	e.elapse(3 * ttl)
	c := e.consume(tr, q, transport.ConsumeOptions{})
	if got, want := e.receiveBodies(c, 2, false), []string{"long", "none"}; !slices.Equal(got, want) {
		e.t.Errorf("got %q, want %q", got, want)
	}
	e.expectNone(c)
}

// queueExpiry: a queue unused for its Expires duration is deleted; one
// with a consumer is in use and stays.
func queueExpiry(e *env) {
	require(e.t, e.caps, transport.CapQueueExpiry)
	tr := e.open()
	unused := e.declareQueue(tr, transport.Queue{Name: uniqueName("expires"), Expires: ttl})
	used := e.declareQueue(tr, transport.Queue{Name: uniqueName("expires"), Expires: ttl})
	c := e.consume(tr, used, transport.ConsumeOptions{})
	e.queueGone(tr, unused)
	e.elapse(3 * ttl)
	e.queueExists(tr, used)
	if err := c.Close(); err != nil {
		e.t.Fatalf("close consumer: %v", err)
	}
	e.queueGone(tr, used)
}

// maxLengthDropsOldest: past MaxLength ready messages, the oldest are
// dropped (drop-head overflow).
func maxLengthDropsOldest(e *env) {
	require(e.t, e.caps, transport.CapMaxLength)
	tr := e.open()
	q := e.declareQueue(tr, transport.Queue{Name: uniqueName("max-length"), MaxLength: 3})
	e.publishBodies(tr, "", q, bodies("m", 5)...)
	c := e.consume(tr, q, transport.ConsumeOptions{})
	if got, want := e.receiveBodies(c, 3, false), []string{"m-2", "m-3", "m-4"}; !slices.Equal(got, want) {
		e.t.Errorf("got %q, want %q (the two oldest dropped)", got, want)
	}
	e.expectNone(c)
}
