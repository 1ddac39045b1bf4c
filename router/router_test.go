package router

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

// refWords splits a key or pattern into words the obvious way: the empty
// string is zero words.
func refWords(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ".")
}

// refMatchWords is the reference topic matcher, a direct transcription of the
// rules: "#" matches zero words or one word and stays; "*" one word; any other
// word itself.
func refMatchWords(pattern, key []string) bool {
	if len(pattern) == 0 {
		return len(key) == 0
	}
	switch pattern[0] {
	case "#":
		return refMatchWords(pattern[1:], key) || len(key) > 0 && refMatchWords(pattern, key[1:])
	case "*":
		return len(key) > 0 && refMatchWords(pattern[1:], key[1:])
	default:
		return len(key) > 0 && key[0] == pattern[0] && refMatchWords(pattern[1:], key[1:])
	}
}

// refMatch is refMatchWords on unsplit strings; it is also the per-binding
// baseline of the benchmarks.
func refMatch(pattern, key string) bool {
	return refMatchWords(refWords(pattern), refWords(key))
}

// sorted returns a sorted copy of s, to compare routing results as sets.
func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

type binding struct{ key, dst string }

func newTable(t testing.TB, kind Kind, bindings ...binding) *Table[string] {
	t.Helper()
	tab := New[string]()
	if err := tab.DeclareExchange("x", kind); err != nil {
		t.Fatal(err)
	}
	for _, b := range bindings {
		if err := tab.Bind("x", b.key, b.dst); err != nil {
			t.Fatal(err)
		}
	}
	return tab
}

func route(t testing.TB, tab *Table[string], exchange, key string) []string {
	t.Helper()
	got, err := tab.Route(exchange, key, nil)
	if err != nil {
		t.Fatalf("Route(%q, %q): %v", exchange, key, err)
	}
	return sorted(got)
}

// topicCases are the topic examples that must hold, as (pattern, key, match).
var topicCases = []struct {
	pattern, key string
	match        bool
}{
	{"#", "", true},
	{"#", "a", true},
	{"#", "a.b.c", true},
	{"#", "a..b", true},
	{"*", "", false},
	{"*", "a", true},
	{"*", "a.b", false},
	{"*", ".", false},
	{"*.*", ".", true},
	{"", "", true},
	{"", "a", false},
	{"a", "", false},
	{"kern.*", "kern.critical", true},
	{"kern.*", "kern.critical.test", false},
	{"kern.*", "kern", false},
	{"kern.*", "kern.", true},
	{"*.critical", "kern.critical", true},
	{"*.critical", "critical", false},
	{"a.#.b", "a.b", true},
	{"a.#.b", "a.x.y.b", true},
	{"a.#.b", "a.x.y.c", false},
	{"a.#.b", "a.b.b", true},
	{"a.#.b", "b", false},
	{"#.#", "", true},
	{"#.#", "a", true},
	{"#.#", "a.b.c", true},
	{"#.#.#", "a.b", true},
	{"kern.#", "kern", true},
	{"kern.#", "kern.a.b", true},
	{"kern.#", "kernel", false},
	{"#.kern", "kern", true},
	{"#.kern", "a.b.kern", true},
	{"#.kern", "kern.a", false},
	{"#.*", "", false},
	{"#.*", "a", true},
	{"*.#", "a.b", true},
	{"*.#.*", "a", false},
	{"*.#.*", "a.b", true},
	{"#.a.#", "b.a.b", true},
	{"#.a.#", "b.b", false},
	{"a..b", "a..b", true},
	{"a.*.b", "a..b", true},
	{"a.b", "a..b", false},
	{"a.#", "a.", true},
	{".", ".", true},
	{".", "", false},
	{"a*", "ab", false},
	{"a*", "a*", true},
	{"#a", "a", false},
	{"a.#", "b.a", false},
}

func TestMatch(t *testing.T) {
	for _, c := range topicCases {
		if got := Match(c.pattern, c.key); got != c.match {
			t.Errorf("Match(%q, %q) = %v, want %v", c.pattern, c.key, got, c.match)
		}
		if got := refMatch(c.pattern, c.key); got != c.match {
			t.Errorf("refMatch(%q, %q) = %v, want %v", c.pattern, c.key, got, c.match)
		}
	}
}

func TestTopicRouteSingleBinding(t *testing.T) {
	for _, c := range topicCases {
		tab := newTable(t, Topic, binding{c.pattern, "q"})
		got := route(t, tab, "x", c.key)
		if matched := len(got) == 1; matched != c.match || len(got) > 1 {
			t.Errorf("pattern %q, key %q: routed to %q, want match %v", c.pattern, c.key, got, c.match)
		}
	}
}

func TestRoute(t *testing.T) {
	tests := []struct {
		name     string
		kind     Kind
		bindings []binding
		key      string
		want     []string
	}{
		{"direct equal key", Direct, []binding{{"a", "q1"}, {"b", "q2"}, {"a", "q3"}}, "a", []string{"q1", "q3"}},
		{"direct no match", Direct, []binding{{"a", "q1"}}, "b", nil},
		{"direct is not a pattern", Direct, []binding{{"#", "q1"}, {"*", "q2"}}, "a", nil},
		{"direct empty key", Direct, []binding{{"", "q1"}, {"a", "q2"}}, "", []string{"q1"}},
		{"direct same dst two keys", Direct, []binding{{"a", "q1"}, {"b", "q1"}}, "b", []string{"q1"}},
		{"fanout ignores key", Fanout, []binding{{"a", "q1"}, {"", "q2"}}, "zzz", []string{"q1", "q2"}},
		{"fanout dst once", Fanout, []binding{{"a", "q1"}, {"b", "q1"}}, "a", []string{"q1"}},
		{"fanout empty", Fanout, nil, "a", nil},
		{"topic dedup", Topic, []binding{{"kern.*", "q1"}, {"*.critical", "q1"}, {"#", "q1"}}, "kern.critical", []string{"q1"}},
		{"topic several", Topic,
			[]binding{{"kern.*", "q1"}, {"*.critical", "q2"}, {"#", "q3"}, {"kern.#", "q4"}, {"mail.*", "q5"}, {"kern", "q6"}},
			"kern.critical", []string{"q1", "q2", "q3", "q4"}},
		{"topic empty key", Topic, []binding{{"#", "q1"}, {"*", "q2"}, {"", "q3"}, {"#.#", "q4"}}, "", []string{"q1", "q3", "q4"}},
		{"topic hash chain", Topic, []binding{{"#.#", "q1"}, {"#.#.#", "q1"}, {"a.#.#.b", "q2"}}, "a.x.b", []string{"q1", "q2"}},
		{"topic shared prefix", Topic, []binding{{"a.b", "q1"}, {"a.b.c", "q2"}, {"a", "q3"}}, "a.b", []string{"q1"}},
		{"topic same pattern many dsts", Topic, []binding{{"a.*", "q1"}, {"a.*", "q2"}, {"a.#", "q2"}}, "a.b", []string{"q1", "q2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := newTable(t, tt.kind, tt.bindings...)
			if got := route(t, tab, "x", tt.key); !slices.Equal(got, sorted(tt.want)) {
				t.Errorf("Route(%q) = %q, want %q", tt.key, got, tt.want)
			}
		})
	}
}

// TestTopicLargeDedup exercises the set-based dedup used for large results.
func TestTopicLargeDedup(t *testing.T) {
	tab := newTable(t, Topic)
	var want []string
	for i := range 3 * linearDedupMax {
		dst := fmt.Sprint("q", i)
		want = append(want, dst)
		for _, pattern := range []string{"#", "a.*", "*.b", "a.b", "#.b"} {
			if err := tab.Bind("x", pattern, dst); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := route(t, tab, "x", "a.b"); !slices.Equal(got, sorted(want)) {
		t.Errorf("Route = %d destinations, want %d distinct", len(got), len(want))
	}
}

func TestRouteAppendsToBuf(t *testing.T) {
	tab := newTable(t, Topic, binding{"a.*", "q1"}, binding{"#", "q2"}, binding{"#", "pre"})
	buf := []string{"pre"}
	got, err := tab.Route("x", "a.b", buf)
	if err != nil {
		t.Fatal(err)
	}
	// Only what Route appends is deduplicated; buf's contents are kept.
	if got[0] != "pre" || !slices.Equal(sorted(got[1:]), []string{"pre", "q1", "q2"}) {
		t.Errorf("Route = %q", got)
	}
}

func TestBindIdempotent(t *testing.T) {
	for _, kind := range []Kind{Direct, Fanout, Topic} {
		t.Run(string(kind), func(t *testing.T) {
			tab := newTable(t, kind, binding{"a", "q1"}, binding{"a", "q1"})
			if got := route(t, tab, "x", "a"); !slices.Equal(got, []string{"q1"}) {
				t.Errorf("Route = %q, want [q1]", got)
			}
			// One binding, so one Unbind removes it.
			if ok, err := tab.Unbind("x", "a", "q1"); !ok || err != nil {
				t.Fatalf("Unbind = %v, %v", ok, err)
			}
			if got := route(t, tab, "x", "a"); len(got) != 0 {
				t.Errorf("after Unbind, Route = %q", got)
			}
			if tab.HasBindings("x") {
				t.Error("HasBindings after removing the only binding")
			}
		})
	}
}

func TestUnbind(t *testing.T) {
	tests := []struct {
		name     string
		kind     Kind
		bindings []binding
		unbind   binding
		existed  bool
		key      string
		want     []string
	}{
		{"direct", Direct, []binding{{"a", "q1"}, {"a", "q2"}}, binding{"a", "q1"}, true, "a", []string{"q2"}},
		{"direct absent key", Direct, []binding{{"a", "q1"}}, binding{"b", "q1"}, false, "a", []string{"q1"}},
		{"direct absent dst", Direct, []binding{{"a", "q1"}}, binding{"a", "q2"}, false, "a", []string{"q1"}},
		{"fanout other key remains", Fanout, []binding{{"a", "q1"}, {"b", "q1"}}, binding{"a", "q1"}, true, "", []string{"q1"}},
		{"fanout last key", Fanout, []binding{{"a", "q1"}, {"b", "q2"}}, binding{"a", "q1"}, true, "", []string{"q2"}},
		{"fanout key matters", Fanout, []binding{{"a", "q1"}}, binding{"b", "q1"}, false, "", []string{"q1"}},
		{"topic", Topic, []binding{{"a.*", "q1"}, {"a.#", "q1"}}, binding{"a.*", "q1"}, true, "a.b", []string{"q1"}},
		{"topic both", Topic, []binding{{"a.*", "q1"}, {"a.b", "q2"}}, binding{"a.*", "q1"}, true, "a.b", []string{"q2"}},
		{"topic absent pattern", Topic, []binding{{"a.*", "q1"}}, binding{"a.#", "q1"}, false, "a.b", []string{"q1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := newTable(t, tt.kind, tt.bindings...)
			existed, err := tab.Unbind("x", tt.unbind.key, tt.unbind.dst)
			if err != nil || existed != tt.existed {
				t.Errorf("Unbind = %v, %v; want %v, nil", existed, err, tt.existed)
			}
			if got := route(t, tab, "x", tt.key); !slices.Equal(got, sorted(tt.want)) {
				t.Errorf("Route(%q) = %q, want %q", tt.key, got, tt.want)
			}
		})
	}
}

// TestTopicPrune checks that unbinding everything leaves an empty trie.
func TestTopicPrune(t *testing.T) {
	patterns := []string{"", "#", "#.#", "a", "a.b", "a.*", "a.#", "a.#.b", "*.b.#", "a..b", "a.b.c.d"}
	tab := newTable(t, Topic)
	for i, p := range patterns {
		for _, dst := range []string{"q1", "q2", fmt.Sprint("own", i)} {
			if err := tab.Bind("x", p, dst); err != nil {
				t.Fatal(err)
			}
		}
	}
	tab.RemoveDestination("q1")
	for i, p := range patterns {
		if ok, err := tab.Unbind("x", p, fmt.Sprint("own", i)); !ok || err != nil {
			t.Fatalf("Unbind(%q) = %v, %v", p, ok, err)
		}
	}
	tab.RemoveDestination("q2")
	root := tab.exchanges["x"].topic
	if root.words != nil || root.star != nil || root.hash != nil || root.dests != nil || root.sharedDests != nil {
		t.Errorf("trie not pruned: %+v", *root)
	}
	if tab.HasBindings("x") {
		t.Error("HasBindings after removing every binding")
	}
}

func TestRemoveDestination(t *testing.T) {
	tab := New[string]()
	for _, x := range []struct {
		name string
		kind Kind
	}{{"d", Direct}, {"f", Fanout}, {"t", Topic}} {
		if err := tab.DeclareExchange(x.name, x.kind); err != nil {
			t.Fatal(err)
		}
		for _, b := range []binding{{"a", "q1"}, {"b", "q1"}, {"a", "q2"}} {
			if err := tab.Bind(x.name, b.key, b.dst); err != nil {
				t.Fatal(err)
			}
		}
	}
	tab.RemoveDestination("q1")
	tab.RemoveDestination("absent")
	for _, x := range []string{"d", "f", "t"} {
		if got := route(t, tab, x, "a"); !slices.Equal(got, []string{"q2"}) {
			t.Errorf("%s: Route(a) = %q, want [q2]", x, got)
		}
		if ok, _ := tab.Unbind(x, "b", "q1"); ok {
			t.Errorf("%s: binding of removed destination still there", x)
		}
	}
}

func TestExchanges(t *testing.T) {
	tab := New[string]()
	if err := tab.DeclareExchange("x", Topic); err != nil {
		t.Fatal(err)
	}
	if err := tab.DeclareExchange("x", Topic); err != nil {
		t.Errorf("redeclare with same kind: %v", err)
	}
	if err := tab.DeclareExchange("x", Direct); !errors.Is(err, ErrKindMismatch) {
		t.Errorf("redeclare with other kind: %v, want ErrKindMismatch", err)
	}
	if err := tab.DeclareExchange("y", "headers"); !errors.Is(err, ErrInvalidKind) {
		t.Errorf("declare invalid kind: %v, want ErrInvalidKind", err)
	}
	if err := tab.DeclareExchange("x", "bogus"); !errors.Is(err, ErrInvalidKind) {
		t.Errorf("redeclare with invalid kind: %v, want ErrInvalidKind", err)
	}
	if err := tab.DeclareExchange("", Direct); err == nil {
		t.Error("declaring the default exchange succeeded")
	}
	if kind, ok := tab.ExchangeKind("x"); kind != Topic || !ok {
		t.Errorf("ExchangeKind(x) = %q, %v", kind, ok)
	}
	for _, name := range []string{"y", ""} {
		if kind, ok := tab.ExchangeKind(name); kind != "" || ok {
			t.Errorf("ExchangeKind(%q) = %q, %v", name, kind, ok)
		}
	}

	if err := tab.Bind("x", "a.#", "q1"); err != nil {
		t.Fatal(err)
	}
	if !tab.HasBindings("x") {
		t.Error("HasBindings(x) = false with a binding")
	}
	if !tab.DeleteExchange("x") {
		t.Error("DeleteExchange(x) = false")
	}
	if tab.DeleteExchange("x") {
		t.Error("second DeleteExchange(x) = true")
	}
	if tab.HasBindings("x") {
		t.Error("HasBindings on a deleted exchange")
	}
	// A redeclared exchange starts without the old bindings.
	if err := tab.DeclareExchange("x", Fanout); err != nil {
		t.Fatalf("redeclare after delete: %v", err)
	}
	if got := route(t, tab, "x", "a.b"); len(got) != 0 {
		t.Errorf("Route after delete and redeclare = %q", got)
	}
}

func TestMissingExchange(t *testing.T) {
	tab := New[string]()
	for _, name := range []string{"nope", ""} {
		if err := tab.Bind(name, "k", "q"); !errors.Is(err, ErrExchangeNotFound) {
			t.Errorf("Bind(%q): %v, want ErrExchangeNotFound", name, err)
		}
		if ok, err := tab.Unbind(name, "k", "q"); ok || !errors.Is(err, ErrExchangeNotFound) {
			t.Errorf("Unbind(%q): %v, %v, want ErrExchangeNotFound", name, ok, err)
		}
		buf := []string{"kept"}
		got, err := tab.Route(name, "k", buf)
		if !errors.Is(err, ErrExchangeNotFound) || !slices.Equal(got, buf) {
			t.Errorf("Route(%q) = %q, %v; want buf unchanged, ErrExchangeNotFound", name, got, err)
		}
		if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("%q", name)) {
			t.Errorf("error %q does not name the exchange", err)
		}
		if tab.HasBindings(name) || tab.DeleteExchange(name) {
			t.Errorf("HasBindings or DeleteExchange true for missing %q", name)
		}
	}
}

// TestConcurrent runs Route against Bind, Unbind, RemoveDestination and
// exchange churn; it is meant for -race. Stable bindings that are never
// removed must be routed throughout.
func TestConcurrent(t *testing.T) {
	tab := newTable(t, Topic, binding{"a.*", "stable"})
	if err := tab.DeclareExchange("d", Direct); err != nil {
		t.Fatal(err)
	}
	const rounds = 500
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range rounds {
				dst := fmt.Sprint("q", w, "-", i%7)
				pattern := []string{"a.#", "*.b", "a.b", "#"}[i%4]
				if err := tab.Bind("x", pattern, dst); err != nil {
					t.Error(err)
					return
				}
				_ = tab.Bind("d", "k", dst)
				if i%3 == 0 {
					tab.RemoveDestination(dst)
				} else if _, err := tab.Unbind("x", pattern, dst); err != nil {
					t.Error(err)
					return
				}
				tab.HasBindings("x")
				_ = tab.DeclareExchange(fmt.Sprint("tmp", w), Fanout)
				tab.DeleteExchange(fmt.Sprint("tmp", w))
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			var buf []string
			for range rounds {
				var err error
				buf, err = tab.Route("x", "a.b", buf[:0])
				if err != nil || !slices.Contains(buf, "stable") {
					t.Errorf("Route = %q, %v; want stable included", buf, err)
					return
				}
				if seen := sorted(buf); len(slices.Compact(seen)) != len(buf) {
					t.Errorf("Route returned duplicates: %q", buf)
					return
				}
				buf, _ = tab.Route("d", "k", buf[:0])
				tab.ExchangeKind("x")
			}
		})
	}
	wg.Wait()
}

// fuzzWords are the literal words fuzz inputs map to: few, so that patterns
// and keys often match, and one that looks like a wildcard but is not.
var fuzzWords = []string{"a", "b", "c", "a*"}

// fuzzNormalize maps s onto at most maxWords words of fuzzWords, "", "*" and
// "#" ("*" and "#" only if wildcards), keeping its word structure.
func fuzzNormalize(s string, wildcards bool) string {
	const maxWords = 8
	words := refWords(s)
	if len(words) > maxWords {
		words = words[:maxWords]
	}
	for i, w := range words {
		switch {
		case w == "":
		case wildcards && (w == "*" || w == "#"):
		default:
			sum := 0
			for _, c := range []byte(w) {
				sum += int(c)
			}
			words[i] = fuzzWords[sum%len(fuzzWords)]
		}
	}
	return strings.Join(words, ".")
}

// FuzzTopicMatch checks the topic trie and Match against the reference
// matcher. patterns holds up to 8 binding patterns separated by "|"; binding
// i goes to destination i%3, so some destinations are bound several times.
func FuzzTopicMatch(f *testing.F) {
	for _, c := range topicCases {
		f.Add(c.pattern, c.key)
	}
	f.Add("kern.*|*.critical|#|kern.#|a.#.b", "kern.critical")
	f.Add("#.#|#|*.#.*|a.#.#.b|", "a.x.b")
	f.Add("a.#|a.*|a|#.a|*.a.#", "a")
	f.Fuzz(func(t *testing.T, patternList, key string) {
		patterns := strings.Split(patternList, "|")
		if len(patterns) > 8 {
			patterns = patterns[:8]
		}
		for i := range patterns {
			patterns[i] = fuzzNormalize(patterns[i], true)
		}
		key = fuzzNormalize(key, false)

		tab := New[int]()
		if err := tab.DeclareExchange("x", Topic); err != nil {
			t.Fatal(err)
		}
		for i, p := range patterns {
			if err := tab.Bind("x", p, i%3); err != nil {
				t.Fatal(err)
			}
		}
		check := func(bound []bool) {
			t.Helper()
			var want []int
			for i, p := range patterns {
				match := refMatch(p, key)
				if got := Match(p, key); got != match {
					t.Fatalf("Match(%q, %q) = %v, reference %v", p, key, got, match)
				}
				if bound[i] && match && !slices.Contains(want, i%3) {
					want = append(want, i%3)
				}
			}
			got, err := tab.Route("x", key, nil)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("patterns %q, key %q: Route = %v, reference %v", patterns, key, got, want)
			}
		}
		bound := make([]bool, len(patterns))
		for i := range bound {
			bound[i] = true
		}
		check(bound)

		// Unbind every other binding; routing must follow, and the trie must
		// be empty once all are gone.
		for _, parity := range []int{0, 1} {
			for i, p := range patterns {
				if i%2 == parity && bound[i] {
					if _, err := tab.Unbind("x", p, i%3); err != nil {
						t.Fatal(err)
					}
					// Identical bindings are one binding.
					for j := range patterns {
						if patterns[j] == p && j%3 == i%3 {
							bound[j] = false
						}
					}
				}
			}
			check(bound)
		}
		root := tab.exchanges["x"].topic
		if root.words != nil || root.star != nil || root.hash != nil || root.dests != nil || root.sharedDests != nil {
			t.Fatalf("trie not empty after unbinding %q", patterns)
		}
	})
}
