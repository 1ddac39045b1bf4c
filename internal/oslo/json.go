package oslo

// A small JSON reader and writer. encoding/json would do, but it matches keys
// case-insensitively (Python does not), cannot name Python's NaN as the cause
// of a failure, and costs a map or reflection round trip per message on the
// RPC hot path. This code walks the input once, without allocating, and hands
// out spans of it.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds nesting so that hostile input cannot exhaust the stack.
// encoding/json uses the same limit; Python's decoder gives up near 1000.
const maxDepth = 10000

// scanner validates and walks JSON text (RFC 8259).
type scanner struct {
	data []byte
	pos  int
	// lenient accepts Python's non-finite float words NaN, Infinity and
	// -Infinity as numbers and counts them in nonFinite, so that a decoder
	// can name the key that holds one instead of failing the whole message.
	lenient   bool
	nonFinite int
}

// syntaxError is a scanner error. Public functions wrap it once, with
// ErrMalformed and the name of what was being read.
type syntaxError struct {
	msg    string
	offset int
}

func (e *syntaxError) Error() string { return fmt.Sprintf("%s at offset %d", e.msg, e.offset) }

func (s *scanner) errorf(format string, args ...any) error {
	return &syntaxError{msg: fmt.Sprintf(format, args...), offset: s.pos}
}

// unexpected reports the byte at s.pos (or the end of input) as wrong.
func (s *scanner) unexpected(context string) error {
	if s.pos >= len(s.data) {
		return s.errorf("unexpected end of JSON input %s", context)
	}
	return s.errorf("invalid character %s %s", quoteChar(s.data[s.pos]), context)
}

func quoteChar(c byte) string {
	switch {
	case c == '\'':
		return `'\''`
	case c >= 0x20 && c < 0x7f:
		return "'" + string(rune(c)) + "'"
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

func (s *scanner) skipSpace() {
	// Called between any two tokens, mostly to find none or one space.
	d, i := s.data, s.pos
	for i < len(d) && d[i] <= ' ' && (d[i] == ' ' || d[i] == '\t' || d[i] == '\n' || d[i] == '\r') {
		i++
	}
	s.pos = i
}

// atEnd reports an error unless only white space is left.
func (s *scanner) atEnd() error {
	s.skipSpace()
	if s.pos < len(s.data) {
		return s.unexpected("after top-level value")
	}
	return nil
}

// skipValue moves s.pos past the value that starts at s.pos.
func (s *scanner) skipValue(depth int) error {
	if s.pos >= len(s.data) {
		return s.unexpected("looking for beginning of value")
	}
	switch c := s.data[s.pos]; c {
	case '{':
		return s.skipObject(depth + 1)
	case '[':
		return s.skipArray(depth + 1)
	case '"':
		_, err := s.skipString()
		return err
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	case 'N', 'I':
		return s.nonFiniteNumber()
	default:
		if c == '-' || c >= '0' && c <= '9' {
			return s.number()
		}
		return s.unexpected("looking for beginning of value")
	}
}

func (s *scanner) literal(word string) error {
	if !bytes.HasPrefix(s.data[s.pos:], []byte(word)) {
		for i := 0; i < len(word) && s.pos < len(s.data) && s.data[s.pos] == word[i]; i++ {
			s.pos++
		}
		return s.unexpected("in literal " + word)
	}
	s.pos += len(word)
	return nil
}

// nonFiniteNumber handles NaN, Infinity and -Infinity at s.pos: counted when
// lenient, refused with a pointed message otherwise.
func (s *scanner) nonFiniteNumber() error {
	rest := s.data[s.pos:]
	for _, word := range [...]string{"NaN", "Infinity", "-Infinity"} {
		if bytes.HasPrefix(rest, []byte(word)) {
			if !s.lenient {
				return s.errorf("non-finite number %s (Python writes it, but it is not JSON)", word)
			}
			s.nonFinite++
			s.pos += len(word)
			return nil
		}
	}
	return s.unexpected("looking for beginning of value")
}

func (s *scanner) number() error {
	d := s.data
	if d[s.pos] == '-' {
		s.pos++
		if s.pos < len(d) && d[s.pos] == 'I' {
			s.pos--
			return s.nonFiniteNumber()
		}
	}
	switch {
	case s.pos < len(d) && d[s.pos] == '0':
		s.pos++
	case s.pos < len(d) && d[s.pos] >= '1' && d[s.pos] <= '9':
		s.skipDigits()
	default:
		return s.unexpected("in numeric literal")
	}
	if s.pos < len(d) && d[s.pos] == '.' {
		s.pos++
		if !s.skipDigits() {
			return s.unexpected("after decimal point in numeric literal")
		}
	}
	if s.pos < len(d) && (d[s.pos] == 'e' || d[s.pos] == 'E') {
		s.pos++
		if s.pos < len(d) && (d[s.pos] == '+' || d[s.pos] == '-') {
			s.pos++
		}
		if !s.skipDigits() {
			return s.unexpected("in exponent of numeric literal")
		}
	}
	return nil
}

// skipDigits moves past a run of digits and reports whether there was one.
func (s *scanner) skipDigits() bool {
	start := s.pos
	for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
		s.pos++
	}
	return s.pos > start
}

// skipString moves past the string that starts at s.pos and reports whether
// its content holds a backslash escape.
func (s *scanner) skipString() (escaped bool, err error) {
	// A local index, stored back on return, keeps the loop in registers.
	d, i := s.data, s.pos+1 // past the opening quote
	for {
		// Plain bytes go eight at a time: on the RPC path strings are most
		// of a message. The mask locates the first special byte exactly.
		for i+8 <= len(d) {
			if m := stringSpecials(binary.LittleEndian.Uint64(d[i:])); m != 0 {
				i += bits.TrailingZeros64(m) / 8
				break
			}
			i += 8
		}
		if i >= len(d) {
			break
		}
		switch c := d[i]; {
		case c == '"':
			s.pos = i + 1
			return escaped, nil
		case c == '\\':
			escaped = true
			i++
			if i >= len(d) {
				s.pos = i
				return escaped, s.unexpected("in string escape code")
			}
			switch d[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				i++
				for range 4 {
					if i >= len(d) || unhex(d[i]) < 0 {
						s.pos = i
						return escaped, s.unexpected("in \\u hexadecimal character escape")
					}
					i++
				}
			default:
				s.pos = i
				return escaped, s.unexpected("in string escape code")
			}
		case c < 0x20:
			s.pos = i
			return escaped, s.unexpected("in string literal")
		default:
			i++ // a plain byte among the last seven of the input
		}
	}
	s.pos = len(d)
	return escaped, s.unexpected("in string literal")
}

// Bit tricks from "Bit Twiddling Hacks" that test the eight bytes of a
// little-endian uint64 at once, returning a mask with the high bit of each
// byte found set. A subtraction that finds a byte borrows from the next one,
// which may then be found falsely; so bits above the lowest set one may be
// wrong, but the lowest always marks the first byte to be found.
const (
	swarLow  = 0x0101010101010101
	swarHigh = 0x8080808080808080
)

// escapeSpecials finds the bytes appendStringBody cannot copy as they are:
// '"', '\\', control characters (each wraps around in b-0x20, (b^'"')-1 or
// (b^'\\')-1) and non-ASCII bytes, which must be checked as UTF-8.
func escapeSpecials(x uint64) uint64 {
	ctl := x - swarLow*0x20
	quote := (x ^ swarLow*'"') - swarLow
	backslash := (x ^ swarLow*'\\') - swarLow
	return (ctl | quote | backslash | x) & swarHigh
}

// stringSpecials finds the bytes that end or escape a JSON string's plain
// run: those of escapeSpecials but the non-ASCII ones.
func stringSpecials(x uint64) uint64 { return escapeSpecials(x) &^ x }

func (s *scanner) skipObject(depth int) error {
	if depth > maxDepth {
		return s.errorf("exceeded max depth %d", maxDepth)
	}
	s.pos++ // '{'
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		return nil
	}
	for {
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return s.unexpected("looking for beginning of object key string")
		}
		if _, err := s.skipString(); err != nil {
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return s.unexpected("after object key")
		}
		s.pos++
		s.skipSpace()
		if err := s.skipValue(depth); err != nil {
			return err
		}
		s.skipSpace()
		if s.pos < len(s.data) {
			switch s.data[s.pos] {
			case ',':
				s.pos++
				s.skipSpace()
				continue
			case '}':
				s.pos++
				return nil
			}
		}
		return s.unexpected("after object key:value pair")
	}
}

func (s *scanner) skipArray(depth int) error {
	if depth > maxDepth {
		return s.errorf("exceeded max depth %d", maxDepth)
	}
	s.pos++ // '['
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		return nil
	}
	for {
		if err := s.skipValue(depth); err != nil {
			return err
		}
		s.skipSpace()
		if s.pos < len(s.data) {
			switch s.data[s.pos] {
			case ',':
				s.pos++
				s.skipSpace()
				continue
			case ']':
				s.pos++
				return nil
			}
		}
		return s.unexpected("after array element")
	}
}

// checkValid reports whether data is exactly one JSON value, surrounded by
// optional white space. NaN and Infinity are refused.
func checkValid(data []byte) error {
	s := scanner{data: data}
	s.skipSpace()
	if err := s.skipValue(0); err != nil {
		return err
	}
	return s.atEnd()
}

// kindName names the JSON type of a value from its first byte, for messages.
func kindName(value []byte) string {
	if len(value) == 0 {
		return "nothing"
	}
	switch value[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// member is one name/value pair of a JSON object, as spans of the input.
type member struct {
	key        []byte // between the quotes; still escaped if keyEscaped
	keyEscaped bool
	value      []byte // the value's JSON text
	nonFinite  bool   // value holds NaN or ±Infinity (lenient readers only)
	unquoted   bool   // value is a string decoded by next (see unquoteKey)
}

// name returns the member's key, unescaped. It allocates only for escaped
// keys; compare with string(m.name()) in a switch to avoid a copy.
func (m *member) name() []byte {
	if !m.keyEscaped {
		return m.key
	}
	return appendUnquoted(nil, m.key)
}

func (m *member) isString() bool { return m.value[0] == '"' }
func (m *member) isNull() bool   { return m.value[0] == 'n' }

// objectReader reads the members of the top-level JSON object of its input.
type objectReader struct {
	s    scanner
	more bool // a member may follow (false after '}')

	// If unquoteKey is set, next decodes the string value of a member with
	// that key (written without escapes) into unquoted, in the pass that
	// checks it, and marks the member unquoted. Unwrapping uses it for
	// oslo.message, most of a body.
	unquoteKey string
	unquoted   []byte
}

// readObject starts reading data, which must hold a single JSON object.
// Reading validates the whole input, so a nil error from the last next call
// means data was valid (NaN and Infinity aside when lenient).
func readObject(data []byte, lenient bool) (objectReader, error) {
	r := objectReader{s: scanner{data: data, lenient: lenient}}
	r.s.skipSpace()
	if r.s.pos >= len(r.s.data) {
		return r, r.s.errorf("empty input, want a JSON object")
	}
	if r.s.data[r.s.pos] != '{' {
		if err := checkValid(data); err != nil {
			return r, err
		}
		return r, r.s.errorf("got %s, want a JSON object", kindName(bytes.TrimLeft(data, " \t\r\n")))
	}
	r.s.pos++
	r.s.skipSpace()
	if r.s.pos < len(r.s.data) && r.s.data[r.s.pos] == '}' {
		r.s.pos++
		return r, r.s.atEnd()
	}
	r.more = true
	return r, nil
}

// next reads the next member into m and reports whether there was one.
func (r *objectReader) next(m *member) (bool, error) {
	if !r.more {
		return false, nil
	}
	s := &r.s
	if s.pos >= len(s.data) || s.data[s.pos] != '"' {
		return false, s.unexpected("looking for beginning of object key string")
	}
	start := s.pos
	escaped, err := s.skipString()
	if err != nil {
		return false, err
	}
	m.key, m.keyEscaped = s.data[start+1:s.pos-1], escaped
	s.skipSpace()
	if s.pos >= len(s.data) || s.data[s.pos] != ':' {
		return false, s.unexpected("after object key")
	}
	s.pos++
	s.skipSpace()
	start, nonFinite := s.pos, s.nonFinite
	m.unquoted = r.unquoteKey != "" && !escaped && string(m.key) == r.unquoteKey &&
		s.pos < len(s.data) && s.data[s.pos] == '"'
	if m.unquoted {
		if r.unquoted == nil {
			// The rest of the input, but for the string's quotes and the
			// object's '}', bounds its decoded length in a valid input
			// (invalid UTF-8 aside): exactly, for a 2.0 body's message.
			r.unquoted = make([]byte, 0, max(len(s.data)-s.pos-3, 0))
		}
		r.unquoted, err = s.readString(r.unquoted[:0])
	} else {
		err = s.skipValue(1)
	}
	if err != nil {
		return false, err
	}
	m.value, m.nonFinite = s.data[start:s.pos], s.nonFinite != nonFinite
	s.skipSpace()
	if s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ',':
			s.pos++
			s.skipSpace()
			return true, nil
		case '}':
			s.pos++
			r.more = false
			return true, s.atEnd()
		}
	}
	return false, s.unexpected("after object key:value pair")
}

// stringArena holds the decoded strings of one message in one allocation:
// a decoder reserves room for all of them, then cuts each from the same
// buffer. Its input must be valid UTF-8, as the decoders' always is.
type stringArena struct{ sb strings.Builder }

// reserve makes room for n more bytes of strings. Decoding a JSON string
// never makes it longer, so the length of its JSON text is enough.
func (a *stringArena) reserve(n int) { a.sb.Grow(n) }

// string decodes v, the JSON text of a string, quotes included.
func (a *stringArena) string(v []byte) string {
	body := v[1 : len(v)-1]
	if bytes.IndexByte(body, '\\') >= 0 {
		body = appendUnquoted(nil, body) // rare in ids and names
	}
	return a.bytes(body)
}

// bytes returns b as a string in the arena.
func (a *stringArena) bytes(b []byte) string {
	start := a.sb.Len()
	a.sb.Write(b)
	// Earlier strings stay valid even if the buffer had to grow: a Builder
	// never changes bytes it has handed out.
	return a.sb.String()[start:]
}

func unhex(c byte) rune {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0')
	case c >= 'a' && c <= 'f':
		return rune(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// unquote decodes the content of a validated JSON string (without its
// quotes), as encoding/json does: invalid UTF-8 and unpaired surrogate escapes
// become U+FFFD.
func unquote(body []byte) string {
	if bytes.IndexByte(body, '\\') < 0 && utf8.Valid(body) {
		return string(body)
	}
	return string(appendUnquoted(make([]byte, 0, len(body)), body))
}

// appendUnquoted appends the decoded content of a validated JSON string.
func appendUnquoted(dst, body []byte) []byte {
	// Decoding does not lengthen a string, invalid UTF-8 aside.
	dst, _ = appendStringContent(slices.Grow(dst, len(body)), body, 0)
	return dst
}

// readString is skipString for a string whose content is wanted: it
// appends it to dst, decoded, in the same pass.
func (s *scanner) readString(dst []byte) ([]byte, error) {
	dst, end := appendStringContent(dst, s.data, s.pos+1)
	if end < len(s.data) && s.data[end] == '"' {
		s.pos = end + 1
		return dst, nil
	}
	// Decoding stopped where skipString fails; let it word the error.
	_, err := s.skipString()
	return dst, err
}

// appendStringContent decodes the JSON string content that starts at
// data[i], as encoding/json does (invalid UTF-8 and unpaired surrogate
// escapes become U+FFFD), and appends it to dst. It stops at the end of
// data or at the first byte that ends the content or makes it invalid (a
// quote, a control character, a bad escape) and returns where that is.
func appendStringContent(dst, data []byte, i int) ([]byte, int) {
	// Output goes by index into buf, all of dst's capacity, n bytes used:
	// plain bytes are copied eight at a time with one load and one store,
	// of which only those before the first special byte are kept.
	buf, n := dst[:cap(dst)], len(dst)
	for i < len(data) {
		if i+8 <= len(data) && n+8 <= len(buf) {
			k := copyPlain(buf[n:], binary.LittleEndian.Uint64(data[i:]))
			i += k
			n += k
			if k == 8 {
				continue
			}
		}
		var r rune
		var size int
		switch c := data[i]; {
		case c == '\\':
			if i+1 < len(data) && unescapeTable[data[i+1]] != 0 {
				// A two-character escape: mostly \" or \\ in a message's
				// JSON text.
				if n == len(buf) {
					buf = grow(buf[:n], 1)
				}
				buf[n] = unescapeTable[data[i+1]]
				n++
				i += 2
				continue
			}
			if r, size = decodeUnicodeEscape(data[i:]); size == 0 {
				return buf[:n], i
			}
		case c >= utf8.RuneSelf:
			r, size = utf8.DecodeRune(data[i:]) // an invalid byte is U+FFFD
		case c == '"' || c < 0x20:
			return buf[:n], i
		default: // a plain byte where eight could not be copied at once
			if n == len(buf) {
				buf = grow(buf[:n], 1)
			}
			buf[n] = c
			n++
			i++
			continue
		}
		// buf grows only by what is needed, so that a dst sized for the
		// result is not reallocated.
		if need := utf8.RuneLen(r); n+need > len(buf) {
			buf = grow(buf[:n], need)
		}
		n += utf8.EncodeRune(buf[n:], r)
		i += size
	}
	return buf[:n], i
}

// copyPlain stores the eight bytes x at the start of dst (which has room)
// and returns how many of them, from the first, are plain: the caller
// keeps those and handles the byte after them.
func copyPlain(dst []byte, x uint64) int {
	binary.LittleEndian.PutUint64(dst, x)
	if m := escapeSpecials(x); m != 0 {
		return bits.TrailingZeros64(m) / 8
	}
	return 8
}

// decodeUnicodeEscape decodes the \uXXXX escape at the start of b, or the
// surrogate pair of two, and returns its rune and length, or a length of 0
// if b does not start with a valid one.
func decodeUnicodeEscape(b []byte) (rune, int) {
	if len(b) < 6 || b[1] != 'u' {
		return 0, 0
	}
	r := hex4(b[2:])
	switch {
	case r < 0:
		return 0, 0
	case !utf16.IsSurrogate(r):
		return r, 6
	}
	// A pair is two escapes; anything else is one bad rune, and the
	// following escape is decoded on its own. (A pair decodes only if the
	// second has four hex digits, so it is valid too.)
	if len(b) >= 12 && b[6] == '\\' && b[7] == 'u' {
		if dec := utf16.DecodeRune(r, hex4(b[8:])); dec != utf8.RuneError {
			return dec, 12
		}
	}
	return utf8.RuneError, 6
}

// unescapeTable maps the letter of a two-character escape to its byte, and
// other bytes to 0.
var unescapeTable = [256]byte{
	'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t',
}

// grow returns buf, whose bytes are all in use, extended to its capacity
// after making room for need more. It is seldom called, and kept out of line
// so as not to crowd the loops that call it.
//
//go:noinline
func grow(buf []byte, need int) []byte {
	buf = slices.Grow(buf, need)
	return buf[:cap(buf)]
}

// hex4 decodes the four hex digits at the start of b; it is negative if one
// is not a hex digit (unhex's -1 sets every bit).
func hex4(b []byte) rune {
	return unhex(b[0])<<12 | unhex(b[1])<<8 | unhex(b[2])<<4 | unhex(b[3])
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = appendStringBody(dst, s)
	return append(dst, '"')
}

// appendStringBody appends s escaped as the content of a JSON string, the way
// Python's json.dumps(ensure_ascii=False) does: '"' and '\\' escaped, control
// characters as \b \f \n \r \t or \u00XX, everything else raw. Invalid UTF-8
// becomes \ufffd (as in encoding/json) so the output is always valid UTF-8.
func appendStringBody[T string | []byte](dst []byte, s T) []byte {
	// As in appendStringContent, output goes by index into dst's capacity,
	// eight plain bytes with one store. Between the quotes of a message's
	// JSON text the runs of plain bytes are short, so the copying of each
	// must cost next to nothing.
	buf, n := slices.Grow(dst, len(s)), len(dst) // room for s unescaped
	buf = buf[:cap(buf)]
	for i := 0; i < len(s); {
		if i+8 <= len(s) && n+8 <= len(buf) {
			k := copyPlain(buf[n:], load64(s, i))
			i += k
			n += k
			if k == 8 {
				continue
			}
		} else if c := s[i]; escapeTable[c] == 0 {
			if n == len(buf) {
				buf = grow(buf[:n], 1)
			}
			buf[n] = c
			n++
			i++
			continue
		}
		// s[i] needs escaping or checking. buf grows only by what is
		// written, so that a dst sized for the result is not reallocated.
		c := s[i]
		if e := escapeTable[c]; e > escNonASCII {
			// A two-byte escape: mostly \" or \\ in a message's JSON text.
			if n+2 > len(buf) {
				buf = grow(buf[:n], 2)
			}
			buf[n], buf[n+1] = '\\', e
			n += 2
			i++
		} else if e == escUnicode {
			if n+6 > len(buf) {
				buf = grow(buf[:n], 6)
			}
			b := buf[n : n+6]
			b[0], b[1], b[2], b[3], b[4], b[5] = '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf]
			n += 6
			i++
		} else {
			// Only the few bytes of one rune are converted; such a short
			// conversion is done on the stack.
			r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
			if r == utf8.RuneError && size == 1 {
				if n+len(`\ufffd`) > len(buf) {
					buf = grow(buf[:n], len(`\ufffd`))
				}
				n += copy(buf[n:], `\ufffd`)
			} else {
				if n+size > len(buf) {
					buf = grow(buf[:n], size)
				}
				n += copy(buf[n:], s[i:i+size])
			}
			i += size
		}
	}
	return buf[:n]
}

// escapeTable tells how appendStringBody writes each byte: as it is (0),
// escaped as \u00XX (escUnicode), checked as the start of a UTF-8 sequence
// (escNonASCII), or as a backslash and the letter given.
var escapeTable = func() (t [256]byte) {
	for c := range 0x20 {
		t[c] = escUnicode
	}
	for c := 0x80; c < 0x100; c++ {
		t[c] = escNonASCII
	}
	t['"'], t['\\'] = '"', '\\'
	t['\b'], t['\f'], t['\n'], t['\r'], t['\t'] = 'b', 'f', 'n', 'r', 't'
	return t
}()

// The entries of escapeTable that are not escape letters, all below them.
const (
	escUnicode = 1 + iota
	escNonASCII
)

// load64 returns the eight bytes of s from i as a little-endian uint64; the
// compiler makes the byte loads one.
func load64[T string | []byte](s T, i int) uint64 {
	b := s[i : i+8]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

// appendFloat appends f as encoding/json writes a float64.
func appendFloat(dst []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// Turn e-09 into e-9, as encoding/json does.
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

// appendRaw appends a raw JSON value, or null for an empty one.
func appendRaw(dst []byte, raw []byte) []byte {
	if len(raw) == 0 {
		return append(dst, "null"...)
	}
	return append(dst, raw...)
}

// checkRaw validates a raw JSON value the caller wants sent; an empty value
// means null. what names it in the error.
func checkRaw(raw []byte, what string) error {
	if len(raw) == 0 {
		return nil
	}
	if err := checkValid(raw); err != nil {
		return malformed("%s: %w", what, err)
	}
	return nil
}

// ownedCopy returns a copy of a message for a decoder to own, with each byte
// of invalid UTF-8 replaced by U+FFFD, as encoding/json decodes strings; the
// message of a 2.0 body gets the same treatment from appendUnquoted. Raw
// values are thus always valid UTF-8 and survive a trip through a 2.0 body.
func ownedCopy(msg []byte) []byte {
	if utf8.Valid(msg) {
		return bytes.Clone(msg)
	}
	out := make([]byte, 0, len(msg)+16)
	for i := 0; i < len(msg); {
		r, size := utf8.DecodeRune(msg[i:])
		if r == utf8.RuneError && size == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, msg[i:i+size]...)
		}
		i += size
	}
	return out
}
