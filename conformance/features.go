package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
	}
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
