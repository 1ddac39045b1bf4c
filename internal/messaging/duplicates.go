package messaging

import (
	"encoding/binary"
	"encoding/hex"
	"hash/maphash"
	"sync"
)

// DuplicateWindow is how many of the latest _unique_ids a DuplicateFilter
// remembers. oslo.messaging remembers 16; a failover retries more than
// that at once (a notification routed to two queues is nacked for the
// one whose leader died and enqueued in the other, so each retry adds a
// copy), and a filter full of ids of oslo's form (twice the window)
// holds 192 KB.
const DuplicateWindow = 4096

// DuplicateFilter remembers at least the last DuplicateWindow _unique_ids
// (and at most twice as many), as oslo's RPC servers and notification
// listeners remember theirs, to drop a message delivered twice. An empty
// id is never a repeat and never remembered. The zero value is ready; it
// is safe for concurrent use.
//
// Ids of oslo's form (uuid4().hex: 32 lowercase hex digits) are kept as
// their 16 bytes, in a table of their own (see osloWindow): cheaper to
// hash and compare than strings, and holding no pointer, so neither the
// garbage collector scans them nor do they keep alive the buffer the id
// was decoded from. Other ids are kept as strings, in a window of their
// own.
//
// The two sides differ on when an id counts as seen. An RPC server drops a
// repeat before handling: Admit checks and remembers in one step, so that
// of two workers given the same request only one runs it. A listener
// remembers an id only once its notification is acked, so that a requeued
// one can come back: Seen, then Remember after the ack.
type DuplicateFilter struct {
	mu    sync.Mutex
	oslo  osloWindow
	other generations[string]
}

// Admit reports whether id is new, remembering it; false is a repeat, to
// drop.
func (f *DuplicateFilter) Admit(id string) bool {
	if id == "" {
		return true
	}
	key, isOslo := osloKey(id)
	f.mu.Lock()
	defer f.mu.Unlock()
	if isOslo {
		return f.oslo.admit(key)
	}
	return f.other.admit(id)
}

// Seen reports whether id is remembered.
func (f *DuplicateFilter) Seen(id string) bool {
	if id == "" {
		return false
	}
	key, isOslo := osloKey(id)
	f.mu.Lock()
	defer f.mu.Unlock()
	if isOslo {
		return f.oslo.seen(key)
	}
	return f.other.seen(id)
}

// Remember records id, forgetting the oldest ones once DuplicateWindow are
// remembered.
func (f *DuplicateFilter) Remember(id string) {
	if id == "" {
		return
	}
	key, isOslo := osloKey(id)
	f.mu.Lock()
	defer f.mu.Unlock()
	if isOslo {
		f.oslo.admit(key)
	} else {
		f.other.admit(id)
	}
}

// osloKey returns the 16 bytes an id of oslo's form spells, and false for
// any other id. Only lowercase digits count, so that two ids that differ
// as strings never share a key: the key must spell id again.
func osloKey(id string) (key [16]byte, ok bool) {
	var digits [2 * len(key)]byte
	if len(id) != len(digits) {
		return key, false
	}
	copy(digits[:], id)
	// Table lookups rather than a branch per digit: the digits are random,
	// and branching on letter or number mispredicts often.
	if _, err := hex.Decode(key[:], digits[:]); err != nil {
		return key, false
	}
	// Every byte is a hex digit: a lowercase letter or a number has the
	// bit 0x20 set, an uppercase letter has it clear.
	const lower = 0x2020202020202020
	all := uint64(lower)
	for i := 0; i < len(digits); i += 8 {
		all &= binary.LittleEndian.Uint64(digits[i:])
	}
	return key, all&lower == lower
}

// osloWindow remembers the last osloWindowSize keys, forgetting the
// oldest first. It is a hash set of its own rather than a map: a key is
// checked and remembered with one probe sequence, and the oldest forgotten
// with one more, where maps holding a generation of keys each took three
// lookups per key. The zero value is ready; it grows with the keys it
// holds, so that a server that had few requests holds little.
//
// ring holds the keys in the order they came; index is an open-addressed
// table (linear probing, at most half full) of their positions in ring.
type osloWindow struct {
	seed  maphash.Seed
	ring  [][16]byte // grows to osloWindowSize, then wraps around
	next  int        // once ring is full, the position of the oldest key, which the next replaces
	index []uint32   // a power of two long
}

const (
	// osloWindowSize is twice DuplicateWindow: as many as the generations
	// of other ids hold at most.
	osloWindowSize = 2 * DuplicateWindow
	// An index entry is the key's ring position plus one (0 is an empty
	// slot) in its low positionBits, and the high bits of the key's hash
	// above them: those name the key's home slot and tell most keys apart
	// without reading ring.
	positionBits = 14
	positionMask = 1<<positionBits - 1
	// minIndexSize is the index's size for the first keys.
	minIndexSize = 64
)

// The ring positions must fit an index entry's bits, and the hash bits
// above them must name a slot in the largest index.
var (
	_ [positionMask - osloWindowSize]struct{}
	_ [1<<(32-positionBits) - 2*osloWindowSize]struct{}
)

// hash returns k's hash, seeded per window (a peer choosing ids cannot
// make them collide), in the bits above positionBits.
func (w *osloWindow) hash(k [16]byte) uint32 {
	return uint32(maphash.Comparable(w.seed, k)>>32) &^ positionMask
}

// home is the slot where the probe sequence for an entry's key starts.
func (w *osloWindow) home(entry uint32) uint32 {
	return entry >> positionBits & uint32(len(w.index)-1)
}

// find returns the slot that holds k, or the empty slot where its probe
// sequence ends.
func (w *osloWindow) find(k [16]byte, h uint32) (slot uint32, found bool) {
	mask := uint32(len(w.index) - 1)
	for slot = w.home(h); ; slot = (slot + 1) & mask {
		e := w.index[slot]
		if e == 0 {
			return slot, false
		}
		if e&^positionMask == h && w.ring[e&positionMask-1] == k {
			return slot, true
		}
	}
}

func (w *osloWindow) seen(k [16]byte) bool {
	if w.index == nil {
		return false
	}
	_, found := w.find(k, w.hash(k))
	return found
}

// admit remembers k and reports whether it was new.
func (w *osloWindow) admit(k [16]byte) bool {
	if w.index == nil {
		w.seed = maphash.MakeSeed()
		w.index = make([]uint32, minIndexSize)
	}
	h := w.hash(k)
	slot, found := w.find(k, h)
	if found {
		return false
	}
	position := len(w.ring)
	switch {
	case position == osloWindowSize:
		// Forgetting the oldest key may move entries into the empty slot
		// found: look again.
		position = w.next
		w.forget(w.ring[position])
		w.ring[position] = k
		w.next = (position + 1) % osloWindowSize
		slot, _ = w.find(k, h)
	case 2*(position+1) > len(w.index):
		w.ring = append(w.ring, k)
		w.grow()
		slot, _ = w.find(k, h)
	default:
		w.ring = append(w.ring, k)
	}
	w.index[slot] = h | uint32(position+1)
	return true
}

// grow doubles the index, placing every entry again from its home.
func (w *osloWindow) grow() {
	old := w.index
	w.index = make([]uint32, 2*len(old))
	mask := uint32(len(w.index) - 1)
	for _, e := range old {
		if e == 0 {
			continue
		}
		slot := w.home(e)
		for w.index[slot] != 0 {
			slot = (slot + 1) & mask
		}
		w.index[slot] = e
	}
}

// forget removes k from index, moving back the entries after it in its
// probe sequence that could no longer be found past the slot it leaves
// empty (deletion by backward shift: linear probing needs no tombstones).
func (w *osloWindow) forget(k [16]byte) {
	hole, found := w.find(k, w.hash(k))
	if !found {
		return
	}
	mask := uint32(len(w.index) - 1)
	for slot := (hole + 1) & mask; ; slot = (slot + 1) & mask {
		e := w.index[slot]
		if e == 0 {
			break
		}
		// e stays where it is if its home lies cyclically in (hole, slot].
		if (slot-w.home(e))&mask < (slot-hole)&mask {
			continue
		}
		w.index[hole] = e
		hole = slot
	}
	w.index[hole] = 0
}

// generations holds the keys remembered in two generations: recent fills
// up to DuplicateWindow, then becomes older and a new one starts, so that
// forgetting costs no delete per key.
type generations[K comparable] struct {
	recent, older map[K]struct{}
}

func (g *generations[K]) seen(k K) bool {
	if _, ok := g.recent[k]; ok {
		return true
	}
	_, ok := g.older[k]
	return ok
}

// admit remembers k and reports whether it was new.
func (g *generations[K]) admit(k K) bool {
	if g.seen(k) {
		return false
	}
	if len(g.recent) >= DuplicateWindow {
		// The older generation's map is cleared and reused: its keys are
		// at least DuplicateWindow old.
		clear(g.older)
		g.recent, g.older = g.older, g.recent
	}
	if g.recent == nil {
		g.recent = make(map[K]struct{})
	}
	g.recent[k] = struct{}{}
	return true
}
