// Package matchmaker is the ZeroMQ driver's directory: where each node (one
// open zmq:// transport) listens, which exchanges, queues and bindings are
// declared, and which consumers each queue has. Senders read it to resolve
// routes and to find a live consumer of each queue; nothing in it is on the
// path of a message.
//
// Two kinds of record live in it:
//
//   - Declarations (exchanges, queues, bindings) persist until deleted, as
//     on a broker: a queue declared by a transport that closed still exists.
//     An exclusive queue is the exception: it belongs to its owner node and
//     disappears with it.
//   - Liveness records (nodes and their consumers) carry a time to live that
//     their node refreshes with Heartbeat. A node that stops refreshing (a
//     crashed process, a partitioned host) disappears after the TTL, and
//     its consumers and exclusive queues with it.
//
// Two implementations exist: Memory, one registry per process shared by the
// transports opened in it, and Redis, shared by processes and hosts. Both
// give the same semantics and pass the same tests; another (etcd, Consul)
// can be added behind the Matchmaker interface.
package matchmaker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/switchyard-mq/switchyard/transport/driver"
)

// ErrExpired is returned by Heartbeat for a node that had expired (or never
// joined): its consumers are gone, and the node must Join and add them again.
var ErrExpired = errors.New("matchmaker: node expired")

// Node is one zmq:// transport: its unique ID and the ZeroMQ endpoint its
// peers dial, e.g. "tcp://127.0.0.1:40123".
type Node struct {
	ID       string `json:"id"`
	Endpoint string `json:"endpoint"`
}

// Exchange is a declared exchange.
type Exchange struct {
	Name       string `json:"name"`
	Kind       string `json:"kind"`
	Durable    bool   `json:"durable,omitempty"`
	AutoDelete bool   `json:"auto_delete,omitempty"`
}

// Queue is a declared queue: the properties its senders apply (TTL,
// dead-lettering, delivery limit), and for an exclusive queue its owner.
type Queue struct {
	Name                 string        `json:"name"`
	Durable              bool          `json:"durable,omitempty"`
	Exclusive            bool          `json:"exclusive,omitempty"`
	AutoDelete           bool          `json:"auto_delete,omitempty"`
	MessageTTL           time.Duration `json:"message_ttl,omitempty"`
	DeadLetterExchange   string        `json:"dlx,omitempty"`
	DeadLetterRoutingKey string        `json:"dlk,omitempty"`
	DeliveryLimit        int           `json:"delivery_limit,omitempty"`
	// Owner is the node ID of an exclusive queue's owner.
	Owner string `json:"owner,omitempty"`
}

// sameDeclaration reports whether q and o were declared with the same
// properties (owners aside).
func (q Queue) sameDeclaration(o Queue) bool {
	q.Owner, o.Owner = "", ""
	return q == o
}

// Binding routes an exchange's messages to a queue.
type Binding struct {
	Exchange string `json:"exchange"`
	Queue    string `json:"queue"`
	Key      string `json:"key"`
}

// Consumer is one consumer of a queue, on a node. ID is unique within its
// node; Prefetch is its credit (0: the sender's default window).
type Consumer struct {
	Queue     string `json:"queue"`
	Node      string `json:"node"`
	ID        uint64 `json:"id"`
	Prefetch  int    `json:"prefetch,omitempty"`
	Exclusive bool   `json:"exclusive,omitempty"`
}

// Registry is a snapshot of the directory, restricted to live nodes. It is
// immutable: callers must not modify it.
type Registry struct {
	// Version increases with every change; equal versions from one
	// Matchmaker mean equal contents.
	Version   uint64
	Nodes     map[string]Node
	Exchanges map[string]Exchange
	Queues    map[string]Queue
	Bindings  []Binding
	// Consumers lists each queue's consumers on live nodes, ordered by node
	// and ID so that every reader sees them in the same order.
	Consumers map[string][]Consumer
}

// Matchmaker is the directory the ZeroMQ driver needs. Implementations are
// safe for concurrent use. Errors wrap the transport/driver sentinels
// (ErrNotFound, ErrPrecondition, ErrInUse) where they apply.
type Matchmaker interface {
	// Join registers a node with a time to live, replacing an earlier
	// registration of the same ID (its consumers are kept).
	Join(ctx context.Context, n Node, ttl time.Duration) error
	// Heartbeat extends a node's life by ttl. A node that had expired gets
	// ErrExpired and must Join again and re-add its consumers.
	Heartbeat(ctx context.Context, nodeID string, ttl time.Duration) error
	// Leave removes a node at once, with its consumers and exclusive queues.
	Leave(ctx context.Context, nodeID string) error

	// DeclareExchange records an exchange, or checks that an existing one
	// is the same (ErrPrecondition otherwise).
	DeclareExchange(ctx context.Context, x Exchange) error
	// DeleteExchange removes an exchange and its bindings; a missing one is
	// not an error.
	DeleteExchange(ctx context.Context, name string) error
	// DeclareQueue records a queue, or checks that an existing one is the
	// same (ErrPrecondition) and, if exclusive, owned by q.Owner (ErrInUse).
	DeclareQueue(ctx context.Context, q Queue) error
	// DeleteQueue removes a queue, its bindings and its consumers' records;
	// a missing one is not an error.
	DeleteQueue(ctx context.Context, name string) error
	// Bind records a binding; the exchange and queue must exist (ErrNotFound).
	Bind(ctx context.Context, b Binding) error
	// Unbind removes a binding; a missing one is not an error.
	Unbind(ctx context.Context, b Binding) error

	// AddConsumer records a consumer of an existing queue (ErrNotFound) on
	// a joined node. It lives as long as its node.
	AddConsumer(ctx context.Context, c Consumer) error
	// RemoveConsumer removes a consumer's record; a missing one is fine.
	RemoveConsumer(ctx context.Context, c Consumer) error

	// Registry returns the latest snapshot this Matchmaker holds, cheaply
	// (no round trip): for a shared remote store it may lag behind the
	// store by the propagation delay of a change notification.
	Registry(ctx context.Context) (*Registry, error)
	// Refresh reads the store and returns an up-to-date snapshot.
	Refresh(ctx context.Context) (*Registry, error)
	// Changes is signalled (capacity one, so never lost and never
	// blocking) whenever the snapshot Registry returns may have changed.
	Changes() <-chan struct{}
	// Ping checks that the store is reachable.
	Ping(ctx context.Context) error
	// Close releases this handle (its connections and goroutines); the
	// records stay.
	Close() error
}

// Registry construction shared by the implementations.

func newRegistry(version uint64) *Registry {
	return &Registry{
		Version:   version,
		Nodes:     map[string]Node{},
		Exchanges: map[string]Exchange{},
		Queues:    map[string]Queue{},
		Consumers: map[string][]Consumer{},
	}
}

// finish drops what belongs to dead nodes (exclusive queues, consumers of
// unknown queues) and orders consumers and bindings deterministically.
func (r *Registry) finish() {
	for name, q := range r.Queues {
		if q.Exclusive {
			if _, live := r.Nodes[q.Owner]; !live {
				delete(r.Queues, name)
			}
		}
	}
	r.Bindings = slices.DeleteFunc(r.Bindings, func(b Binding) bool {
		_, okq := r.Queues[b.Queue]
		_, okx := r.Exchanges[b.Exchange]
		return !okq || !okx
	})
	slices.SortFunc(r.Bindings, func(a, b Binding) int {
		return cmpStrings(a.Exchange+"\x00"+a.Queue+"\x00"+a.Key, b.Exchange+"\x00"+b.Queue+"\x00"+b.Key)
	})
	for q, cs := range r.Consumers {
		if _, ok := r.Queues[q]; !ok {
			delete(r.Consumers, q)
			continue
		}
		slices.SortFunc(cs, func(a, b Consumer) int {
			if c := cmpStrings(a.Node, b.Node); c != 0 {
				return c
			}
			return cmpUint(a.ID, b.ID)
		})
	}
}

func cmpStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// checkExchange compares a redeclaration with the existing exchange.
func checkExchange(cur, x Exchange) error {
	if cur != x {
		return fmt.Errorf("%w: exchange %q exists as %s (durable %v, auto-delete %v), declared as %s (durable %v, auto-delete %v)",
			driver.ErrPrecondition, x.Name, cur.Kind, cur.Durable, cur.AutoDelete, x.Kind, x.Durable, x.AutoDelete)
	}
	return nil
}

// checkQueue compares a redeclaration with the existing queue; liveOwner
// tells whether cur's owner (if exclusive) is alive.
func checkQueue(cur, q Queue, liveOwner bool) error {
	if cur.Exclusive && liveOwner && cur.Owner != q.Owner {
		return fmt.Errorf("%w: queue %q is exclusive to another connection", driver.ErrInUse, q.Name)
	}
	if !cur.sameDeclaration(q) {
		return fmt.Errorf("%w: queue %q exists with other properties (%+v), declared as %+v", driver.ErrPrecondition, q.Name, cur, q)
	}
	return nil
}

func errNoExchange(name string) error {
	return fmt.Errorf("%w: no exchange %q", driver.ErrNotFound, name)
}

func errNoQueue(name string) error {
	return fmt.Errorf("%w: no queue %q", driver.ErrNotFound, name)
}

// signal wakes a Changes channel without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
