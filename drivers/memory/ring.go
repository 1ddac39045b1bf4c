package memory

// ring is a growable double-ended queue. Queues hold their ready messages
// in one, so that publish, consume and requeue at the head are all O(1)
// without allocating per message.
type ring[T any] struct {
	buf  []T // len(buf) is zero or a power of two
	head int
	n    int
}

func (r *ring[T]) len() int { return r.n }

func (r *ring[T]) grow() {
	size := max(2*len(r.buf), 16)
	buf := make([]T, size)
	for i := 0; i < r.n; i++ {
		buf[i] = r.buf[(r.head+i)&(len(r.buf)-1)]
	}
	r.buf, r.head = buf, 0
}

func (r *ring[T]) pushBack(v T) {
	if r.n == len(r.buf) {
		r.grow()
	}
	r.buf[(r.head+r.n)&(len(r.buf)-1)] = v
	r.n++
}

func (r *ring[T]) pushFront(v T) {
	if r.n == len(r.buf) {
		r.grow()
	}
	r.head = (r.head - 1) & (len(r.buf) - 1)
	r.buf[r.head] = v
	r.n++
}

// at returns a pointer to the i-th element from the front.
func (r *ring[T]) at(i int) *T { return &r.buf[(r.head+i)&(len(r.buf)-1)] }

func (r *ring[T]) popFront() T {
	var zero T
	v := r.buf[r.head]
	r.buf[r.head] = zero // let the garbage collector have it
	r.head = (r.head + 1) & (len(r.buf) - 1)
	r.n--
	return v
}

// filter keeps, in order, the elements for which keep returns true.
func (r *ring[T]) filter(keep func(*T) bool) {
	var zero T
	kept := 0
	for i := 0; i < r.n; i++ {
		if v := r.at(i); keep(v) {
			*r.at(kept) = *v
			kept++
		}
	}
	for i := kept; i < r.n; i++ {
		*r.at(i) = zero
	}
	r.n = kept
}

// clear drops every element.
func (r *ring[T]) clear() { *r = ring[T]{} }
