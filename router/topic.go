package router

import (
	"slices"
	"strings"
)

// Topic keys and patterns are sequences of words separated by ".". As in
// RabbitMQ, the empty string is zero words, while any other string has one
// more word than it has dots, empty words included ("a..b" is "a", "", "b").
// In a pattern, the word "*" matches exactly one word and "#" matches zero or
// more words; every other word matches only itself.

// topicNode is a node of the trie of binding patterns of a topic exchange. The
// path from the root spells a pattern, and the node holds the destinations
// bound with exactly that pattern, split in two lists so that Route only has
// to deduplicate destinations that have several bindings.
type topicNode[D comparable] struct {
	words map[string]*topicNode[D] // children by literal word; nil when none
	star  *topicNode[D]            // child for "*"
	hash  *topicNode[D]            // child for "#"
	// isHash is set on the "#" child of its parent: being at this node means a
	// "#" has been matched, and it may absorb further words.
	isHash bool
	// dests are bound to the exchange by this pattern only, so they are
	// routed at most once without checking.
	dests []D
	// sharedDests are also bound by other patterns of the exchange, so
	// several matched nodes may hold them.
	sharedDests []D
}

// linearDedupMax is the number of routed shared destinations up to which
// Route finds duplicates by scanning what it appended rather than building a
// set; below it a scan is cheaper than the allocation.
const linearDedupMax = 32

// activeNodesInline is how many active trie nodes Route tracks without
// allocating; realistic patterns rarely have more partial matches at once.
const activeNodesInline = 64

// route appends to buf every distinct destination bound with a pattern
// matching key, and returns the extended slice.
//
// It runs the trie as a nondeterministic automaton: after each word of key,
// cur holds every node whose pattern matches the words read so far, each node
// once. Since nodes are not repeated, each (node, word position) pair is
// visited at most once, which bounds the work by the key length times the
// number of nodes matching a prefix, however many "#" the patterns hold.
func (root *topicNode[D]) route(key string, buf []D) []D {
	var curInline, nextInline [activeNodesInline]*topicNode[D]
	cur := enter(curInline[:0], root)
	next := nextInline[:0]
	// Walk the words by index so that splitting the key does not allocate.
	for start := 0; key != "" && start <= len(key) && len(cur) > 0; {
		end := strings.IndexByte(key[start:], '.')
		if end < 0 {
			end = len(key)
		} else {
			end += start
		}
		word := key[start:end]
		start = end + 1

		next = next[:0]
		for _, n := range cur {
			if c := n.words[word]; c != nil {
				next = enter(next, c)
			}
			if n.star != nil {
				next = enter(next, n.star)
			}
			if n.isHash {
				next = enter(next, n) // "#" absorbs this word too
			}
		}
		cur, next = next, cur
	}
	return collect(cur, buf)
}

// enter adds n to the active nodes, followed by its "#" descendants, since a
// "#" may match zero words. Only "#" nodes can be reached twice in one step
// (by absorbing a word, and from their parent), so only they are checked for
// repeats; every other node has a single parent, itself active at most once.
func enter[D comparable](active []*topicNode[D], n *topicNode[D]) []*topicNode[D] {
	for ; n != nil; n = n.hash {
		if n.isHash && slices.Contains(active, n) {
			break // already entered, with its "#" descendants
		}
		active = append(active, n)
	}
	return active
}

// collect appends to buf the destinations at the matched nodes, each
// destination once although it may be bound at several of them.
func collect[D comparable](matched []*topicNode[D], buf []D) []D {
	for _, n := range matched {
		buf = append(buf, n.dests...)
	}
	start := len(buf)       // shared destinations from here on
	var seen map[D]struct{} // built only for many shared destinations
	for _, n := range matched {
		for _, d := range n.sharedDests {
			if seen == nil && len(buf)-start > linearDedupMax {
				seen = make(map[D]struct{}, 2*(len(buf)-start))
				for _, d := range buf[start:] {
					seen[d] = struct{}{}
				}
			}
			if seen != nil {
				if _, dup := seen[d]; dup {
					continue
				}
				seen[d] = struct{}{}
			} else if slices.Contains(buf[start:], d) {
				continue
			}
			buf = append(buf, d)
		}
	}
	return buf
}

// bind adds dst at the node for pattern, creating the path as needed; shared
// tells whether dst has other bindings in the exchange. The caller ensures the
// binding is new.
func (root *topicNode[D]) bind(pattern string, dst D, shared bool) {
	n := root
	for _, word := range splitWords(pattern) {
		n = n.child(word, true)
	}
	if shared {
		n.sharedDests = append(n.sharedDests, dst)
	} else {
		n.dests = append(n.dests, dst)
	}
}

// setShared moves dst, bound with pattern, to the node's shared or unshared
// list, as its number of bindings in the exchange crosses one.
func (root *topicNode[D]) setShared(pattern string, dst D, shared bool) {
	n := root
	for _, word := range splitWords(pattern) {
		if n = n.child(word, false); n == nil {
			return
		}
	}
	if shared {
		n.dests = removeDest(n.dests, dst)
		n.sharedDests = append(n.sharedDests, dst)
	} else {
		n.sharedDests = removeDest(n.sharedDests, dst)
		n.dests = append(n.dests, dst)
	}
}

// unbind removes dst from the node for pattern, then prunes nodes left with no
// destinations and no children, so the trie does not grow with churn.
func (root *topicNode[D]) unbind(pattern string, dst D) {
	root.remove(splitWords(pattern), dst)
}

// remove removes dst from the node that words lead to from n, pruning the
// nodes left empty below n.
func (n *topicNode[D]) remove(words []string, dst D) {
	if len(words) == 0 {
		n.dests = removeDest(n.dests, dst)
		n.sharedDests = removeDest(n.sharedDests, dst)
		return
	}
	c := n.child(words[0], false)
	if c == nil {
		return
	}
	c.remove(words[1:], dst)
	if len(c.dests) > 0 || len(c.sharedDests) > 0 || len(c.words) > 0 || c.star != nil || c.hash != nil {
		return
	}
	switch words[0] {
	case "*":
		n.star = nil
	case "#":
		n.hash = nil
	default:
		delete(n.words, words[0])
		if len(n.words) == 0 {
			n.words = nil // an emptied map keeps its memory
		}
	}
}

// child returns the child of n for a pattern word, creating it if create is
// set and returning nil otherwise.
func (n *topicNode[D]) child(word string, create bool) *topicNode[D] {
	var slot **topicNode[D]
	switch word {
	case "*":
		slot = &n.star
	case "#":
		slot = &n.hash
	default:
		if c := n.words[word]; c != nil || !create {
			return c
		}
		c := new(topicNode[D])
		if n.words == nil {
			n.words = make(map[string]*topicNode[D])
		}
		n.words[word] = c
		return c
	}
	if *slot == nil && create {
		*slot = &topicNode[D]{isHash: word == "#"}
	}
	return *slot
}

// splitWords splits a pattern into words; the empty pattern has none.
func splitWords(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ".")
}

// Match reports whether a topic binding pattern matches a routing key under
// AMQP topic rules: both are split into words on ".", "*" matches exactly one
// word and "#" matches zero or more words. The empty string is zero words, so
// "#" matches "" and "*" does not. It is exported for drivers that match on
// the subscriber side; it does not allocate.
func Match(pattern, key string) bool {
	// Wildcard matching over words, with "#" as the multi-word wildcard: on a
	// mismatch, backtrack to the most recent "#" and let it absorb one more
	// word. Retrying only the latest "#" suffices, as in glob matching, since
	// any later match it could enable is also reachable from it.
	p, k := firstWord(pattern), firstWord(key)
	hashNext, hashKey := -1, -1 // pattern after the last "#", key position it resumed at
	for k <= len(key) {
		if p <= len(pattern) {
			pw, pn := wordAt(pattern, p)
			if pw == "#" {
				hashNext, hashKey, p = pn, k, pn
				continue
			}
			kw, kn := wordAt(key, k)
			if pw == "*" || pw == kw {
				p, k = pn, kn
				continue
			}
		}
		if hashNext < 0 {
			return false
		}
		_, hashKey = wordAt(key, hashKey)
		p, k = hashNext, hashKey
	}
	for p <= len(pattern) { // only "#"s, matching nothing, may remain
		pw, pn := wordAt(pattern, p)
		if pw != "#" {
			return false
		}
		p = pn
	}
	return true
}

// firstWord returns the offset of the first word of s, or len(s)+1, meaning
// no words are left, when s is empty.
func firstWord(s string) int {
	if s == "" {
		return 1
	}
	return 0
}

// wordAt returns the word of s starting at offset i and the offset of the
// next word, which is len(s)+1 after the last word.
func wordAt(s string, i int) (word string, next int) {
	end := strings.IndexByte(s[i:], '.')
	if end < 0 {
		return s[i:], len(s) + 1
	}
	return s[i : i+end], i + end + 1
}
