package router

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// topicWorkload is a set of topic bindings with distinct destinations and
// routing keys to publish with.
type topicWorkload struct {
	bindings []binding
	keys     []string
}

// newTopicWorkload makes n realistic bindings: patterns of 3 or 4 words drawn
// from a vocabulary of 300, where each word is "*" or "#" with probability
// 10% each. Half the keys are made from a binding's pattern, so they match at
// least it; the other half are random words from the same vocabulary.
func newTopicWorkload(n int) topicWorkload {
	rng := rand.New(rand.NewPCG(1, uint64(n)))
	vocab := make([]string, 300)
	for i := range vocab {
		vocab[i] = fmt.Sprint("w", i)
	}
	var w topicWorkload
	for i := range n {
		words := make([]string, 3+rng.IntN(2))
		for j := range words {
			switch r := rng.IntN(10); r {
			case 0:
				words[j] = "*"
			case 1:
				words[j] = "#"
			default:
				words[j] = vocab[rng.IntN(len(vocab))]
			}
		}
		w.bindings = append(w.bindings, binding{strings.Join(words, "."), fmt.Sprint("q", i)})
	}
	for i := range 1024 {
		var words []string
		if i%2 == 0 {
			for _, pw := range strings.Split(w.bindings[rng.IntN(n)].key, ".") {
				switch pw {
				case "*":
					words = append(words, vocab[rng.IntN(len(vocab))])
				case "#":
					for range rng.IntN(3) {
						words = append(words, vocab[rng.IntN(len(vocab))])
					}
				default:
					words = append(words, pw)
				}
			}
		} else {
			for range 3 + rng.IntN(2) {
				words = append(words, vocab[rng.IntN(len(vocab))])
			}
		}
		w.keys = append(w.keys, strings.Join(words, "."))
	}
	return w
}

// naiveRoute is the per-binding baseline: the reference matcher, which splits
// pattern and key, applied to every binding.
func naiveRoute(bindings []binding, key string, buf []string) []string {
	start := len(buf)
	for _, b := range bindings {
		if refMatch(b.key, key) && !slices.Contains(buf[start:], b.dst) {
			buf = append(buf, b.dst)
		}
	}
	return buf
}

func BenchmarkTopicRoute(b *testing.B) {
	for _, n := range []int{10, 1000, 100000} {
		w := newTopicWorkload(n)
		tab := newTable(b, Topic, w.bindings...)
		// The baseline must compute the same thing.
		for _, key := range w.keys[:16] {
			if got, want := route(b, tab, "x", key), sorted(naiveRoute(w.bindings, key, nil)); !slices.Equal(got, want) {
				b.Fatalf("key %q: trie %q, naive %q", key, got, want)
			}
		}
		b.Run(fmt.Sprintf("bindings=%d/trie", n), func(b *testing.B) {
			b.ReportAllocs()
			var buf []string
			i := 0
			for b.Loop() {
				buf, _ = tab.Route("x", w.keys[i%len(w.keys)], buf[:0])
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "routes/s")
		})
		b.Run(fmt.Sprintf("bindings=%d/naive", n), func(b *testing.B) {
			b.ReportAllocs()
			var buf []string
			i := 0
			for b.Loop() {
				buf = naiveRoute(w.bindings, w.keys[i%len(w.keys)], buf[:0])
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "routes/s")
		})
	}
}

// smallBindings binds 10 destinations with keys k0..k4, two per key.
func smallBindings() []binding {
	var bs []binding
	for i := range 10 {
		bs = append(bs, binding{fmt.Sprint("k", i%5), fmt.Sprint("q", i)})
	}
	return bs
}

func BenchmarkDirectRoute(b *testing.B) {
	tab := newTable(b, Direct, smallBindings()...)
	b.ReportAllocs()
	var buf []string
	for b.Loop() {
		buf, _ = tab.Route("x", "k3", buf[:0])
	}
}

func BenchmarkFanoutRoute(b *testing.B) {
	tab := newTable(b, Fanout, smallBindings()...)
	b.ReportAllocs()
	var buf []string
	for b.Loop() {
		buf, _ = tab.Route("x", "k3", buf[:0])
	}
}
