package messaging

import "sync"

// DuplicateWindow is how many of the latest _unique_ids a DuplicateFilter
// remembers. oslo.messaging remembers 16; a failover retries more than
// that at once (a notification routed to two queues is nacked for the
// one whose leader died and enqueued in the other, so each retry adds a
// copy), and 4096 ids of oslo's form cost about 130 KB.
const DuplicateWindow = 4096

// DuplicateFilter remembers at least the last DuplicateWindow _unique_ids
// (and at most twice as many), as
// oslo's RPC servers and notification listeners remember theirs, to drop
// a message delivered twice. An empty id is never a repeat and never
// remembered. The zero value is ready; it is safe for concurrent use.
//
// Ids of oslo's form (uuid4().hex: 32 lowercase hex digits) are kept as
// their 16 bytes: cheaper to hash and compare than strings, and holding
// no pointer, so neither the garbage collector scans them nor do they
// keep alive the buffer the id was decoded from. Other ids are kept as
// strings, in a window of their own.
//
// The two sides differ on when an id counts as seen. An RPC server drops a
// repeat before handling: Admit checks and remembers in one step, so that
// of two workers given the same request only one runs it. A listener
// remembers an id only once its notification is acked, so that a requeued
// one can come back: Seen, then Remember after the ack.
type DuplicateFilter struct {
	mu    sync.Mutex
	oslo  generations[[16]byte]
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
// as strings never share a key.
func osloKey(id string) (key [16]byte, ok bool) {
	if len(id) != 2*len(key) {
		return key, false
	}
	for i := range key {
		hi, okHi := hexDigit(id[2*i])
		lo, okLo := hexDigit(id[2*i+1])
		if !okHi || !okLo {
			return key, false
		}
		key[i] = hi<<4 | lo
	}
	return key, true
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
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
