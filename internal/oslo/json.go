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
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
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
	d := s.data
	s.pos++ // opening quote
	for s.pos < len(d) {
		// Plain bytes go eight at a time: on the RPC path strings are most
		// of a message.
		for s.pos+8 <= len(d) && !hasStringSpecial(binary.LittleEndian.Uint64(d[s.pos:])) {
			s.pos += 8
		}
		if s.pos >= len(d) {
			break
		}
		c := d[s.pos]
		switch {
		case c == '"':
			s.pos++
			return escaped, nil
		case c == '\\':
			escaped = true
			s.pos++
			if s.pos >= len(d) {
				return escaped, s.unexpected("in string escape code")
			}
			switch d[s.pos] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.pos++
			case 'u':
				s.pos++
				for range 4 {
					if s.pos >= len(d) || unhex(d[s.pos]) < 0 {
						return escaped, s.unexpected("in \\u hexadecimal character escape")
					}
					s.pos++
				}
			default:
				return escaped, s.unexpected("in string escape code")
			}
		case c < 0x20:
			return escaped, s.unexpected("in string literal")
		default:
			s.pos++
		}
	}
	return escaped, s.unexpected("in string literal")
}

// Bit tricks that test eight bytes of a uint64 at once, from "Bit Twiddling
// Hacks". A false positive (only possible above a true one) merely sends
// the caller to its byte-by-byte path.
const (
	swarLow  = 0x0101010101010101
	swarHigh = 0x8080808080808080
)

// hasByte reports whether some byte of x may be c.
func hasByte(x uint64, c byte) bool {
	v := x ^ (swarLow * uint64(c))
	return (v-swarLow)&^v&swarHigh != 0
}

// hasStringSpecial reports whether some byte of x may be '"', '\\' or a
// control character, the bytes that end or escape a JSON string's plain run.
func hasStringSpecial(x uint64) bool {
	return (x-swarLow*0x20)&^x&swarHigh != 0 || hasByte(x, '"') || hasByte(x, '\\')
}

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
	if err := s.skipValue(1); err != nil {
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
	for i := 0; i < len(body); {
		c := body[i]
		switch {
		case c == '\\':
			switch body[i+1] {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r := hex4(body[i+2:])
				i += 6
				if utf16.IsSurrogate(r) {
					// A pair is two escapes; anything else is one bad rune,
					// and the following escape is decoded on its own.
					r1 := rune(-1)
					if i+6 <= len(body) && body[i] == '\\' && body[i+1] == 'u' {
						r1 = hex4(body[i+2:])
					}
					if dec := utf16.DecodeRune(r, r1); dec != utf8.RuneError {
						r = dec
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				dst = utf8.AppendRune(dst, r)
				continue
			default: // '"', '\\', '/'
				dst = append(dst, body[i+1])
			}
			i += 2
		case c < utf8.RuneSelf:
			start := i
			for i < len(body) && body[i] < utf8.RuneSelf && body[i] != '\\' {
				i++
			}
			dst = append(dst, body[start:i]...)
		default:
			r, size := utf8.DecodeRune(body[i:])
			if r == utf8.RuneError && size == 1 {
				dst = utf8.AppendRune(dst, utf8.RuneError)
			} else {
				dst = append(dst, body[i:i+size]...)
			}
			i += size
		}
	}
	return dst
}

// hex4 decodes the four validated hex digits at the start of b.
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
	start := 0
	for i := 0; i < len(s); {
		// Eight plain ASCII bytes at a time; non-ASCII needs validating.
		for i+8 <= len(s) {
			x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
				uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
			if x&swarHigh != 0 || hasStringSpecial(x) {
				break
			}
			i += 8
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		// Only the few bytes of one rune are converted; such a short
		// conversion is done on the stack.
		r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...)
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
