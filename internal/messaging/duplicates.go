package messaging

import "sync"

// DuplicateWindow is how many of the latest _unique_ids a DuplicateFilter
// remembers. oslo.messaging remembers 16; a failover retries more than
// that at once (a notification routed to two queues is nacked for the
// one whose leader died and enqueued in the other, so each retry adds a
// copy), and 4096 ids cost about 300 KB.
const DuplicateWindow = 4096

// DuplicateFilter remembers the last DuplicateWindow _unique_ids, as
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
	mu   sync.Mutex
	ring []string            // the ids remembered, oldest at next once full
	set  map[string]struct{} // the same ids, for lookup
	next int                 // where the next id goes once the ring is full
}

// Admit reports whether id is new, remembering it; false is a repeat, to
// drop.
func (f *DuplicateFilter) Admit(id string) bool {
	if id == "" {
		return true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.set[id]; ok {
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
	_, ok := f.set[id]
	return ok
}

// Remember records id, forgetting the oldest once DuplicateWindow are
// remembered.
func (f *DuplicateFilter) Remember(id string) {
	if id == "" {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rememberLocked(id)
}

func (f *DuplicateFilter) rememberLocked(id string) {
	if _, ok := f.set[id]; ok {
		return
	}
	if f.set == nil {
		f.set = make(map[string]struct{})
	}
	if len(f.ring) < DuplicateWindow {
		f.ring = append(f.ring, id)
	} else {
		delete(f.set, f.ring[f.next])
		f.ring[f.next] = id
		f.next = (f.next + 1) % DuplicateWindow
	}
	f.set[id] = struct{}{}
}
