package amqp091

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrSyntax reports a frame payload that does not decode: truncated,
// trailing bytes, or a field of an unknown type.
var ErrSyntax = errors.New("amqp091: syntax error")

// Table is a field table. Its values are nil, bool, int8, uint8, int16,
// uint16, int32, uint32, int64, float32, float64, Decimal, string, []byte,
// time.Time, Table and []any; encoding also takes int, uint, uint64 and
// map[string]any.
type Table map[string]any

// Decimal is the field-table decimal: Value / 10^Scale.
type Decimal struct {
	Scale uint8
	Value int32
}

// maxNesting bounds how deep tables and arrays nest, so that a hostile
// peer cannot exhaust the stack.
const maxNesting = 64

// Encoder appends AMQP encodings to a byte slice.
type Encoder struct {
	buf []byte
	err error
}

// Bytes returns what was encoded.
func (w *Encoder) Bytes() []byte { return w.buf }

// Err reports the first value that could not be encoded.
func (w *Encoder) Err() error { return w.err }

func (w *Encoder) fail(format string, args ...any) {
	if w.err == nil {
		w.err = fmt.Errorf("amqp091: "+format, args...)
	}
}

// Octet appends an 8-bit unsigned integer.
func (w *Encoder) Octet(v uint8) { w.buf = append(w.buf, v) }

// Short appends a 16-bit unsigned integer.
func (w *Encoder) Short(v uint16) { w.buf = binary.BigEndian.AppendUint16(w.buf, v) }

// Long appends a 32-bit unsigned integer.
func (w *Encoder) Long(v uint32) { w.buf = binary.BigEndian.AppendUint32(w.buf, v) }

// LongLong appends a 64-bit unsigned integer.
func (w *Encoder) LongLong(v uint64) { w.buf = binary.BigEndian.AppendUint64(w.buf, v) }

// ShortStr appends a short string (at most 255 bytes).
func (w *Encoder) ShortStr(s string) {
	if len(s) > math.MaxUint8 {
		w.fail("short string of %d bytes (at most 255)", len(s))
		s = s[:math.MaxUint8]
	}
	w.buf = append(w.buf, byte(len(s)))
	w.buf = append(w.buf, s...)
}

// LongStr appends a long string.
func (w *Encoder) LongStr(s string) {
	w.Long(uint32(len(s)))
	w.buf = append(w.buf, s...)
}

// Timestamp appends a timestamp: seconds since the Unix epoch.
func (w *Encoder) Timestamp(t time.Time) { w.LongLong(uint64(t.Unix())) }

// Table appends a field table.
func (w *Encoder) Table(t Table) { w.table(t, 0) }

func (w *Encoder) table(t map[string]any, depth int) {
	at := len(w.buf)
	w.Long(0)
	for k, v := range t {
		w.ShortStr(k)
		w.value(v, depth+1)
	}
	binary.BigEndian.PutUint32(w.buf[at:], uint32(len(w.buf)-at-4))
}

func (w *Encoder) array(a []any, depth int) {
	at := len(w.buf)
	w.Long(0)
	for _, v := range a {
		w.value(v, depth+1)
	}
	binary.BigEndian.PutUint32(w.buf[at:], uint32(len(w.buf)-at-4))
}

// value appends a typed field value.
func (w *Encoder) value(v any, depth int) {
	if depth > maxNesting {
		w.fail("field values nest deeper than %d", maxNesting)
		w.Octet('V')
		return
	}
	switch x := v.(type) {
	case nil:
		w.Octet('V')
	case bool:
		w.Octet('t')
		if x {
			w.Octet(1)
		} else {
			w.Octet(0)
		}
	case int8:
		w.Octet('b')
		w.Octet(uint8(x))
	case uint8:
		w.Octet('B')
		w.Octet(x)
	case int16:
		w.Octet('s')
		w.Short(uint16(x))
	case uint16:
		w.Octet('u')
		w.Short(x)
	case int32:
		w.Octet('I')
		w.Long(uint32(x))
	case uint32:
		w.Octet('i')
		w.Long(x)
	case int64:
		w.Octet('l')
		w.LongLong(uint64(x))
	case int:
		w.Octet('l')
		w.LongLong(uint64(x))
	case uint:
		w.Octet('l')
		w.LongLong(uint64(x))
	case uint64:
		w.Octet('l')
		w.LongLong(x)
	case float32:
		w.Octet('f')
		w.Long(math.Float32bits(x))
	case float64:
		w.Octet('d')
		w.LongLong(math.Float64bits(x))
	case Decimal:
		w.Octet('D')
		w.Octet(x.Scale)
		w.Long(uint32(x.Value))
	case string:
		w.Octet('S')
		w.LongStr(x)
	case []byte:
		w.Octet('x')
		w.Long(uint32(len(x)))
		w.buf = append(w.buf, x...)
	case time.Time:
		w.Octet('T')
		w.Timestamp(x)
	case Table:
		w.Octet('F')
		w.table(x, depth)
	case map[string]any:
		w.Octet('F')
		w.table(x, depth)
	case []any:
		w.Octet('A')
		w.array(x, depth)
	default:
		w.fail("a %T is not a field value", v)
		w.Octet('V')
	}
}

// Decoder reads AMQP encodings from a byte slice. The first error sticks:
// every later read returns a zero value, and Err reports it.
type Decoder struct {
	buf []byte
	err error
}

// NewDecoder returns a decoder of b.
func NewDecoder(b []byte) *Decoder { return &Decoder{buf: b} }

// Err reports the first decoding error, wrapping ErrSyntax.
func (r *Decoder) Err() error { return r.err }

// Len is how many bytes are left.
func (r *Decoder) Len() int { return len(r.buf) }

func (r *Decoder) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrSyntax}, args...)...)
	}
	r.buf = nil
}

func (r *Decoder) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.buf) {
		r.fail("%s needs %d bytes, %d left", what, n, len(r.buf))
		return nil
	}
	b := r.buf[:n:n]
	r.buf = r.buf[n:]
	return b
}

// Octet reads an 8-bit unsigned integer.
func (r *Decoder) Octet() uint8 {
	if b := r.take(1, "octet"); b != nil {
		return b[0]
	}
	return 0
}

// Short reads a 16-bit unsigned integer.
func (r *Decoder) Short() uint16 {
	if b := r.take(2, "short"); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

// Long reads a 32-bit unsigned integer.
func (r *Decoder) Long() uint32 {
	if b := r.take(4, "long"); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

// LongLong reads a 64-bit unsigned integer.
func (r *Decoder) LongLong() uint64 {
	if b := r.take(8, "longlong"); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// ShortStr reads a short string.
func (r *Decoder) ShortStr() string {
	n := r.Octet()
	return string(r.take(int(n), "short string"))
}

// LongStr reads a long string.
func (r *Decoder) LongStr() string { return string(r.longBytes("long string")) }

func (r *Decoder) longBytes(what string) []byte {
	n := r.Long()
	if r.err != nil {
		return nil
	}
	if uint64(n) > uint64(len(r.buf)) {
		r.fail("%s of %d bytes, %d left", what, n, len(r.buf))
		return nil
	}
	return r.take(int(n), what)
}

// Timestamp reads a timestamp.
func (r *Decoder) Timestamp() time.Time {
	v := r.LongLong()
	if r.err != nil {
		return time.Time{}
	}
	return time.Unix(int64(v), 0).UTC()
}

// Table reads a field table.
func (r *Decoder) Table() Table { return r.table(0) }

func (r *Decoder) table(depth int) Table {
	body := r.longBytes("field table")
	if r.err != nil {
		return nil
	}
	t := Table{}
	sub := Decoder{buf: body}
	for len(sub.buf) > 0 && sub.err == nil {
		k := sub.ShortStr()
		v := sub.value(depth + 1)
		if sub.err == nil {
			t[k] = v
		}
	}
	if sub.err != nil {
		r.fail("field table: %v", errors.Unwrap(sub.err))
		return nil
	}
	return t
}

// TableBody reads a field table's entries with no length before them, as
// the AMQPLAIN mechanism writes its response.
func TableBody(b []byte) (Table, error) {
	n := make([]byte, 4, 4+len(b))
	binary.BigEndian.PutUint32(n, uint32(len(b)))
	r := NewDecoder(append(n, b...))
	t := r.Table()
	return t, r.Err()
}

func (r *Decoder) array(depth int) []any {
	body := r.longBytes("field array")
	if r.err != nil {
		return nil
	}
	a := []any{}
	sub := Decoder{buf: body}
	for len(sub.buf) > 0 && sub.err == nil {
		v := sub.value(depth + 1)
		if sub.err == nil {
			a = append(a, v)
		}
	}
	if sub.err != nil {
		r.fail("field array: %v", errors.Unwrap(sub.err))
		return nil
	}
	return a
}

func (r *Decoder) value(depth int) any {
	if depth > maxNesting {
		r.fail("field values nest deeper than %d", maxNesting)
		return nil
	}
	switch t := r.Octet(); t {
	case 't':
		return r.Octet() != 0
	case 'b':
		return int8(r.Octet())
	case 'B':
		return r.Octet()
	case 's':
		return int16(r.Short())
	case 'u':
		return r.Short()
	case 'I':
		return int32(r.Long())
	case 'i':
		return r.Long()
	case 'l':
		return int64(r.LongLong())
	case 'f':
		return math.Float32frombits(r.Long())
	case 'd':
		return math.Float64frombits(r.LongLong())
	case 'D':
		scale := r.Octet()
		return Decimal{Scale: scale, Value: int32(r.Long())}
	case 'S':
		return r.LongStr()
	case 'x':
		b := r.longBytes("byte array")
		return append([]byte{}, b...)
	case 'T':
		return r.Timestamp()
	case 'F':
		return r.table(depth)
	case 'A':
		return r.array(depth)
	case 'V':
		return nil
	default:
		if r.err == nil {
			r.fail("unknown field type %q", t)
		}
		return nil
	}
}

// packBits packs up to eight bits into an octet, the first in the lowest
// bit.
func packBits(bits ...bool) uint8 {
	var o uint8
	for i, b := range bits {
		if b {
			o |= 1 << i
		}
	}
	return o
}
