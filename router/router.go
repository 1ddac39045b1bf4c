// Package router holds AMQP-style routing tables: exchanges of kind direct,
// fanout and topic, their bindings to destinations, and the routing of a
// published message to the destinations it reaches. It does no I/O, so the
// in-process broker and the ZeroMQ driver share one definition of routing.
//
// The default exchange "" is not stored here: a publish to it with routing
// key K goes to the destination named K, and only the caller knows whether
// such a destination exists.
package router

import (
	"errors"
	"fmt"
	"sync"
)

// Kind is an exchange kind.
type Kind string

// The exchange kinds, named as in AMQP so they can be passed through verbatim.
const (
	// Direct routes to destinations bound with a key equal to the routing key.
	Direct Kind = "direct"
	// Fanout routes to every bound destination, ignoring keys.
	Fanout Kind = "fanout"
	// Topic routes to destinations bound with a pattern matching the routing
	// key; see Match.
	Topic Kind = "topic"
)

// Errors returned by Table methods; they are wrapped with details, so test
// for them with errors.Is.
var (
	// ErrExchangeNotFound means the named exchange is not declared.
	ErrExchangeNotFound = errors.New("router: exchange not found")
	// ErrKindMismatch means an exchange was redeclared with a different kind.
	ErrKindMismatch = errors.New("router: exchange redeclared with a different kind")
	// ErrInvalidKind means a kind other than Direct, Fanout or Topic was given.
	ErrInvalidKind = errors.New("router: invalid exchange kind")
)

// errDefaultExchange is returned when declaring "", which always exists
// implicitly and is the caller's to handle.
var errDefaultExchange = errors.New("router: the default exchange cannot be declared")

// Table is a set of exchanges and their bindings to destinations of type D
// (queue names, or queue pointers). It is safe for concurrent use. The zero
// value is not usable; use New.
type Table[D comparable] struct {
	mu        sync.RWMutex // Route (every publish) only reads, so readers share
	exchanges map[string]*exchange[D]
}

// exchange is one exchange and its bindings. Only the routing structure for
// its kind is populated.
type exchange[D comparable] struct {
	kind Kind
	// keysByDest holds every key each destination is bound with: it makes Bind
	// idempotent, lets RemoveDestination find a destination's bindings without
	// scanning the exchange, and counts a fanout destination's bindings.
	keysByDest map[D]map[string]struct{}

	direct map[string][]D // Direct: destinations by binding key
	fanout []D            // Fanout: every bound destination once
	topic  *topicNode[D]  // Topic: root of the trie of binding patterns
}

// New returns an empty Table.
func New[D comparable]() *Table[D] {
	return &Table[D]{exchanges: make(map[string]*exchange[D])}
}

// notFound wraps ErrExchangeNotFound with the exchange name.
func notFound(name string) error {
	return fmt.Errorf("%w: %q", ErrExchangeNotFound, name)
}

// DeclareExchange creates the exchange, or does nothing if it exists with the
// same kind. Redeclaring with another kind returns an error wrapping
// ErrKindMismatch, an unknown kind one wrapping ErrInvalidKind. The default
// exchange "" cannot be declared.
func (t *Table[D]) DeclareExchange(name string, kind Kind) error {
	if name == "" {
		return errDefaultExchange
	}
	x := &exchange[D]{kind: kind, keysByDest: make(map[D]map[string]struct{})}
	switch kind {
	case Direct:
		x.direct = make(map[string][]D)
	case Fanout:
	case Topic:
		x.topic = new(topicNode[D])
	default:
		return fmt.Errorf("%w: %q", ErrInvalidKind, kind)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.exchanges[name]; ok {
		if old.kind != kind {
			return fmt.Errorf("%w: %q is %s, not %s", ErrKindMismatch, name, old.kind, kind)
		}
		return nil
	}
	t.exchanges[name] = x
	return nil
}

// DeleteExchange removes the exchange and its bindings and reports whether it
// existed.
func (t *Table[D]) DeleteExchange(name string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.exchanges[name]
	delete(t.exchanges, name)
	return ok
}

// ExchangeKind reports the kind of an exchange and whether it exists. The
// default exchange "" is never reported, as it is not stored in the table.
func (t *Table[D]) ExchangeKind(name string) (Kind, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if x, ok := t.exchanges[name]; ok {
		return x.kind, true
	}
	return "", false
}

// Bind binds dst to exchange with key, which is a pattern for topic exchanges
// and ignored for routing by fanout exchanges. Binding the same
// (exchange, key, dst) twice makes one binding. A missing exchange gives an
// error wrapping ErrExchangeNotFound.
func (t *Table[D]) Bind(exchange, key string, dst D) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	x, ok := t.exchanges[exchange]
	if !ok {
		return notFound(exchange)
	}
	x.bind(key, dst)
	return nil
}

// Unbind removes one binding and reports whether it existed. A missing
// exchange gives an error wrapping ErrExchangeNotFound.
func (t *Table[D]) Unbind(exchange, key string, dst D) (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	x, ok := t.exchanges[exchange]
	if !ok {
		return false, notFound(exchange)
	}
	return x.unbind(key, dst), nil
}

// RemoveDestination removes every binding of dst on every exchange, as when a
// queue is deleted.
func (t *Table[D]) RemoveDestination(dst D) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, x := range t.exchanges {
		for key := range x.keysByDest[dst] {
			x.unbind(key, dst)
		}
	}
}

// HasBindings reports whether exchange has at least one binding, so callers
// can delete auto-delete exchanges when it has none.
func (t *Table[D]) HasBindings(exchange string) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	x, ok := t.exchanges[exchange]
	return ok && len(x.keysByDest) > 0
}

// Route appends to buf every distinct destination that a message published to
// exchange with routingKey reaches, each exactly once even when it is bound by
// several matching keys, and returns the extended slice. Reusing buf across
// calls avoids allocation. A missing exchange, including the default exchange
// "" which the caller handles, leaves buf unchanged and gives an error
// wrapping ErrExchangeNotFound.
func (t *Table[D]) Route(exchange, routingKey string, buf []D) ([]D, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	x, ok := t.exchanges[exchange]
	if !ok {
		return buf, notFound(exchange)
	}
	switch x.kind {
	case Direct:
		return append(buf, x.direct[routingKey]...), nil
	case Fanout:
		return append(buf, x.fanout...), nil
	default:
		return x.topic.route(routingKey, buf), nil
	}
}

// bind adds the binding (key, dst) unless it exists.
func (x *exchange[D]) bind(key string, dst D) {
	keys := x.keysByDest[dst]
	if _, ok := keys[key]; ok {
		return
	}
	if keys == nil {
		keys = make(map[string]struct{})
		x.keysByDest[dst] = keys
		if x.kind == Fanout {
			x.fanout = append(x.fanout, dst) // first binding of dst
		}
	}
	keys[key] = struct{}{}
	switch x.kind {
	case Direct:
		x.direct[key] = append(x.direct[key], dst)
	case Topic:
		if len(keys) == 2 { // dst's first binding now needs deduplicating too
			for other := range keys {
				if other != key {
					x.topic.setShared(other, dst, true)
				}
			}
		}
		x.topic.bind(key, dst, len(keys) > 1)
	}
}

// unbind removes the binding (key, dst) and reports whether it existed.
func (x *exchange[D]) unbind(key string, dst D) bool {
	keys := x.keysByDest[dst]
	if _, ok := keys[key]; !ok {
		return false
	}
	delete(keys, key)
	if len(keys) == 0 {
		delete(x.keysByDest, dst)
		if x.kind == Fanout {
			x.fanout = removeDest(x.fanout, dst) // last binding of dst
		}
	}
	switch x.kind {
	case Direct:
		if dsts := removeDest(x.direct[key], dst); len(dsts) > 0 {
			x.direct[key] = dsts
		} else {
			delete(x.direct, key)
		}
	case Topic:
		x.topic.unbind(key, dst)
		if len(keys) == 1 { // dst's remaining binding no longer needs deduplicating
			for other := range keys {
				x.topic.setShared(other, dst, false)
			}
		}
	}
	return true
}

// removeDest removes dst from dsts, which holds it at most once. Order is not
// kept, so removal is cheap; the vacated slot is zeroed so a removed pointer
// destination can be collected.
func removeDest[D comparable](dsts []D, dst D) []D {
	for i, d := range dsts {
		if d == dst {
			last := len(dsts) - 1
			dsts[i] = dsts[last]
			var zero D
			dsts[last] = zero
			if last == 0 {
				return nil
			}
			return dsts[:last]
		}
	}
	return dsts
}
