package messaging

import (
	"slices"
	"sync"
)

// DuplicateFilter remembers the last 16 _unique_ids, as oslo's RPC servers
// and notification listeners do, to drop a message delivered twice. An
// empty id is never a repeat and never remembered. The zero value is
// ready; it is safe for concurrent use.
//
// The two sides differ on when an id counts as seen. An RPC server drops a
// repeat before handling: Admit checks and remembers in one step, so that
// of two workers given the same request only one runs it. A listener
// remembers an id only once its notification is acked, so that a requeued
// one can come back: Seen, then Remember after the ack.
type DuplicateFilter struct {
	mu   sync.Mutex
	ids  [16]string
	next int // where the next id goes, over the oldest
}

// Admit reports whether id is new, remembering it; false is a repeat, to
// drop.
func (f *DuplicateFilter) Admit(id string) bool {
	if id == "" {
		return true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if slices.Contains(f.ids[:], id) {
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
	return slices.Contains(f.ids[:], id)
}

// Remember records id, forgetting the oldest of the 16.
func (f *DuplicateFilter) Remember(id string) {
	if id == "" {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rememberLocked(id)
}

func (f *DuplicateFilter) rememberLocked(id string) {
	f.ids[f.next] = id
	f.next = (f.next + 1) % len(f.ids)
}
