package messaging_test

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/switchyard-mq/switchyard/internal/messaging"
)

// TestDuplicateFilter runs a sequence of steps on one filter each. The
// step "admit x" expects Admit("x") to report want; "seen x" Seen("x");
// "remember x" records x. "window" remembers DuplicateWindow-1 ids of its
// own, after which an id is still remembered; "fill" remembers twice
// DuplicateWindow, after which it is forgotten.
func TestDuplicateFilter(t *testing.T) {
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
				case "window", "fill":
					n := messaging.DuplicateWindow - 1
					if s.op == "fill" {
						n = 2 * messaging.DuplicateWindow
					}
					for j := range n {
						f.Remember(s.op + "-" + strconv.Itoa(j))
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
