package zmq

import (
	"sync"
	"time"
)

// Deduplication on the receiving side. A sender may send a message again
// although the consumer's node still holds it (its ack timeout ran out, or
// the connection failed and came back) or already settled it (the
// settlement was lost). The node remembers, per sender and sequence, the
// deliveries it holds and the recent final settlements: a duplicate of a
// held delivery is dropped; one of a settled delivery is dropped and its
// settlement sent again.

// A copy sent to another consumer of the same node (the first one's ack
// timeout ran out) is not a duplicate: the key names the consumer.
type dedupKey struct {
	node     string
	consumer uint64
	seq      uint64
}

// Recent final settlements are kept this long, and at most this many.
const (
	dedupKeep = 2 * time.Minute
	dedupMax  = 1 << 16
)

// dedup is the duplicate filter of a node's consumers.
type dedup struct {
	mu    sync.Mutex
	held  map[dedupKey]struct{}
	done  map[dedupKey]settleOp
	order []dedupEntry // final settlements, oldest first
	head  int
}

type dedupEntry struct {
	key dedupKey
	at  time.Time
}

func newDedup() dedup {
	return dedup{held: map[dedupKey]struct{}{}, done: map[dedupKey]settleOp{}}
}

// arrive records a delivery, reporting whether it is new and, for a
// duplicate of a settled one, the settlement to send again.
func (d *dedup) arrive(k dedupKey) (fresh bool, resend settleOp) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.held[k]; ok {
		return false, 0
	}
	if op, ok := d.done[k]; ok {
		return false, op
	}
	d.held[k] = struct{}{}
	return true, 0
}

// settled records a settlement: a final one is remembered, a return
// forgets the delivery, which its sender may legitimately send again.
func (d *dedup) settled(k dedupKey, op settleOp) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.held, k)
	switch op {
	case opAck, opReject, opExpired:
		d.done[k] = op
		d.order = append(d.order, dedupEntry{key: k, at: time.Now()})
		if len(d.order)-d.head > dedupMax {
			d.dropOldestLocked()
		}
	}
}

func (d *dedup) dropOldestLocked() {
	delete(d.done, d.order[d.head].key)
	d.order[d.head] = dedupEntry{}
	d.head++
	if d.head > 1024 && d.head > len(d.order)/2 {
		d.order = append(d.order[:0], d.order[d.head:]...)
		d.head = 0
	}
}

// evict forgets final settlements older than dedupKeep.
func (d *dedup) evict(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for d.head < len(d.order) && now.Sub(d.order[d.head].at) > dedupKeep {
		d.dropOldestLocked()
	}
}
