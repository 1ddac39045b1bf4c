package messaging

import "sync"

// DuplicateWindow is how many of the latest _unique_ids a DuplicateFilter
// remembers. oslo.messaging remembers 16; a failover retries more than
// that at once (a notification routed to two queues is nacked for the
// one whose leader died and enqueued in the other, so each retry adds a
// copy), and 4096 ids cost about 300 KB.
const DuplicateWindow = 4096

// DuplicateFilter remembers at least the last DuplicateWindow _unique_ids
// (and at most twice as many), as
// oslo's RPC servers and notification listeners remember theirs, to drop
// a message delivered twice. An empty id is never a repeat and never
// remembered. The zero value is ready; it is safe for concurrent use.
//
// The two sides differ on when an id counts as seen. An RPC server drops a
// repeat before handling: Admit checks and remembers in one step, so that
// of two workers given the same request only one runs it. A listener
// remembers an id only once its notification is acked, so that a requeued
// one can come back: Seen, then Remember after the ack.
type DuplicateFilter struct {
	mu sync.Mutex
	// The ids remembered, in two generations: recent fills up to
	// DuplicateWindow, then becomes older and a new one starts, so that
	// forgetting costs no delete per id.
	recent, older map[string]struct{}
}

// Admit reports whether id is new, remembering it; false is a repeat, to
// drop.
func (f *DuplicateFilter) Admit(id string) bool {
	if id == "" {
		return true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seenLocked(id) {
		return false
	}
	f.rememberLocked(id)
	return true
}

// Seen reports whether id is remembered.
func (f *DuplicateFilter) Seen(id string) bool {
	if id == "" {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seenLocked(id)
}

// Remember records id, forgetting the oldest ones once DuplicateWindow are
// remembered.
func (f *DuplicateFilter) Remember(id string) {
	if id == "" {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.seenLocked(id) {
		f.rememberLocked(id)
	}
}

func (f *DuplicateFilter) seenLocked(id string) bool {
	if _, ok := f.recent[id]; ok {
		return true
	}
	_, ok := f.older[id]
	return ok
}

func (f *DuplicateFilter) rememberLocked(id string) {
	if len(f.recent) >= DuplicateWindow {
		// The older generation's map is cleared and reused: its ids are
		// at least DuplicateWindow old.
		clear(f.older)
		f.recent, f.older = f.older, f.recent
	}
	if f.recent == nil {
		f.recent = make(map[string]struct{})
	}
	f.recent[id] = struct{}{}
}
