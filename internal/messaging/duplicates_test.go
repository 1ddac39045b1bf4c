package messaging_test

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/switchyard-mq/switchyard/internal/messaging"
)

// TestDuplicateFilter runs a sequence of steps on one filter each. The
// step "admit x" expects Admit("x") to report want; "seen x" Seen("x");
// "remember x" records x. "window" remembers DuplicateWindow-1 ids of its
// own, after which an id is still remembered; "fill" remembers twice
// DuplicateWindow, after which it is forgotten. "window oslo" and "fill
// oslo" do the same with ids of oslo's form (uuid4().hex), which are
// kept apart from others.
func TestDuplicateFilter(t *testing.T) {
	const osloID, otherOsloID = "3f2b8c1d9e7a4b6c8d0e1f2a3b4c5d6e", "0123456789abcdef0123456789abcdef"
	type step struct {
		op, id string
		want   bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"rpc: the second delivery of an id is a repeat",
			[]step{{"admit", "a", true}, {"admit", "b", true}, {"admit", "a", false}, {"admit", "a", false}}},
		{"rpc: an empty id is never a repeat",
			[]step{{"admit", "", true}, {"admit", "", true}, {"seen", "", false}}},
		{"rpc: an id is remembered through the window",
			[]step{{"admit", "a", true}, {"window", "", false}, {"admit", "a", false}}},
		{"notify: an id is remembered through the window",
			[]step{{"remember", "a", false}, {"window", "", false}, {"seen", "a", true}}},
		{"rpc: ids past the window push out the first",
			[]step{{"admit", "a", true}, {"fill", "", false}, {"admit", "a", true}, {"admit", "a", false}}},
		{"notify: seen does not remember",
			[]step{{"seen", "a", false}, {"seen", "a", false}, {"admit", "a", true}}},
		{"notify: remembered once acked",
			[]step{{"seen", "a", false}, {"remember", "a", false}, {"seen", "a", true}, {"admit", "a", false}}},
		{"notify: an empty id is not remembered",
			[]step{{"remember", "", false}, {"seen", "", false}}},
		{"notify: the oldest is forgotten",
			[]step{{"remember", "a", false}, {"fill", "", false}, {"seen", "a", false}}},
		{"notify: remembering an id twice takes one place",
			[]step{{"remember", "a", false}, {"remember", "b", false}, {"remember", "a", false}, {"seen", "b", true}, {"seen", "a", true}}},
		{"oslo ids: the second delivery is a repeat",
			[]step{{"admit", osloID, true}, {"admit", otherOsloID, true}, {"admit", osloID, false}, {"seen", otherOsloID, true}}},
		{"oslo ids: remembered through the window",
			[]step{{"admit", osloID, true}, {"window oslo", "", false}, {"admit", osloID, false}}},
		{"oslo ids: past the window the first is forgotten",
			[]step{{"remember", osloID, false}, {"fill oslo", "", false}, {"seen", osloID, false}, {"admit", osloID, true}}},
		{"oslo ids: other ids do not push them out",
			[]step{{"admit", osloID, true}, {"fill", "", false}, {"admit", osloID, false}}},
		{"oslo ids: uppercase is another id",
			[]step{{"admit", strings.ToUpper(osloID), true}, {"admit", osloID, true}, {"admit", strings.ToUpper(osloID), false}}},
		{"oslo ids: one digit short is another id",
			[]step{{"admit", osloID, true}, {"admit", osloID[1:], true}, {"admit", osloID[1:], false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f messaging.DuplicateFilter
			for i, s := range tt.steps {
				var got bool
				switch s.op {
				case "admit":
					got = f.Admit(s.id)
				case "seen":
					got = f.Seen(s.id)
				case "remember":
					f.Remember(s.id)
					continue
				case "window", "fill", "window oslo", "fill oslo":
					n := messaging.DuplicateWindow - 1
					if strings.HasPrefix(s.op, "fill") {
						n = 2 * messaging.DuplicateWindow
					}
					for j := range n {
						id := s.op + "-" + strconv.Itoa(j)
						if strings.HasSuffix(s.op, "oslo") {
							id = fmt.Sprintf("%032x", j)
						}
						f.Remember(id)
					}
					continue
				}
				if got != s.want {
					t.Fatalf("step %d: %s(%q) = %v, want %v", i, s.op, s.id, got, s.want)
				}
			}
		})
	}
}

// TestDuplicateFilterAdmitsOnce: of concurrent workers given the same id,
// exactly one runs it.
func TestDuplicateFilterAdmitsOnce(t *testing.T) {
	var f messaging.DuplicateFilter
	var admitted atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if f.Admit("same") {
				admitted.Add(1)
			}
		})
	}
	wg.Wait()
	if n := admitted.Load(); n != 1 {
		t.Errorf("admitted %d times, want once", n)
	}
}

// TestDuplicateFilterOsloModel checks the filter against a model, a
// first-in first-out list of the last 2*DuplicateWindow distinct ids of
// oslo's form, over enough random steps to fill and wrap its window
// several times: fresh ids, repeats of recent ones, ids just forgotten,
// and Seen, which must not remember.
func TestDuplicateFilterOsloModel(t *testing.T) {
	const window = 2 * messaging.DuplicateWindow
	rng := rand.New(rand.NewPCG(1, 2))
	newID := func() string { return fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64()) }
	var (
		f       messaging.DuplicateFilter
		order   []string // every id the model remembered, oldest first
		members = map[string]bool{}
	)
	remember := func(id string) {
		order = append(order, id)
		members[id] = true
		if len(order) > window {
			delete(members, order[len(order)-window-1])
		}
	}
	for step := range 6 * window {
		var id string
		switch op := rng.IntN(10); {
		case op < 6 || len(order) < window+1:
			id = newID()
		case op < 8: // a remembered one
			id = order[len(order)-1-rng.IntN(window)]
		default: // one just forgotten, or a fresh one never admitted
			id = order[len(order)-window-1]
			if rng.IntN(2) == 0 {
				id = newID()
				if got := f.Seen(id); got {
					t.Fatalf("step %d: Seen(%s) of a fresh id = true", step, id)
				}
			}
		}
		want := !members[id]
		if got := f.Seen(id); got == want {
			t.Fatalf("step %d: Seen(%s) = %v, want %v", step, id, got, !want)
		}
		if got := f.Admit(id); got != want {
			t.Fatalf("step %d: Admit(%s) = %v, want %v (%d ids remembered)", step, id, got, want, len(members))
		}
		if want {
			remember(id)
		}
	}
	for _, id := range order[len(order)-window:] {
		if !f.Seen(id) {
			t.Fatalf("%s, among the last %d ids, is forgotten", id, window)
		}
	}
}
