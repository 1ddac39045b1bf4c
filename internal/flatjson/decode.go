package flatjson

import (
	"encoding/json"
	"reflect"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// maxSkipDepth bounds the nesting of skipped values (unknown keys), so that
// skipping recurses only so far; deeper input is left to encoding/json.
const maxSkipDepth = 100

// StructDecoder decodes a JSON object into one flat struct type: a struct
// without embedded fields whose exported fields are bools, strings, integers
// or floats, or pointers to them, without custom unmarshalers or ",string",
// or empty interfaces (any). An empty interface field takes a string, a
// bool, nil for null, or a json.Number for a number, as a json.Decoder with
// UseNumber stores them; an object or an array in one is not handled.
type StructDecoder struct {
	typ    reflect.Type
	fields []decodeField
}

type decodeField struct {
	index  int
	name   string
	folded string // name folded as encoding/json does, for case-insensitive matching
}

// NewStructDecoder returns a decoder for t, or nil if t is not flat.
func NewStructDecoder(t reflect.Type) *StructDecoder {
	fields, ok := flatFields(t, false)
	if !ok {
		return nil
	}
	d := &StructDecoder{typ: t}
	for _, f := range fields {
		d.fields = append(d.fields, decodeField{index: f.index, name: f.name, folded: foldName(f.name)})
	}
	return d
}

// Decode decodes data into v, an addressable zero value of the decoder's type
// (e.g. reflect.New(t).Elem()), and reports whether it did so exactly as
// json.Unmarshal would, without error. On false, v may be partly written: the
// caller zeroes it and uses encoding/json. Decode never panics, whatever data is.
func (d *StructDecoder) Decode(data []byte, v reflect.Value) bool {
	if !v.CanSet() || v.Type() != d.typ {
		return false
	}
	s := scanner{data: data}
	s.skipSpace()
	if s.peek() == 'n' {
		return s.literal("null") && s.end() // null leaves a struct unchanged
	}
	return d.object(&s, v) && s.end()
}

func (d *StructDecoder) object(s *scanner, v reflect.Value) bool {
	if !s.consume('{') {
		return false
	}
	s.skipSpace()
	if s.consume('}') {
		return true
	}
	for {
		key, escaped, ok := s.str()
		if !ok || escaped {
			return false
		}
		f, ok := d.field(key)
		if !ok {
			return false
		}
		s.skipSpace()
		if !s.consume(':') {
			return false
		}
		s.skipSpace()
		if f == nil {
			ok = s.skip(0) // unknown keys are ignored, but their values must be valid
		} else {
			tok, valid := s.token()
			ok = valid && store(v.Field(f.index), tok)
		}
		if !ok {
			return false
		}
		s.skipSpace()
		if s.consume('}') {
			return true
		}
		if !s.consume(',') {
			return false
		}
		s.skipSpace()
	}
}

// field returns the field for key as encoding/json chooses it (exact name,
// else the first field in declaration order with the same folded name), nil
// for an unknown key, and false when the key is not ASCII and matches no name
// exactly, because folding such keys is left to encoding/json.
func (d *StructDecoder) field(key []byte) (*decodeField, bool) {
	for i := range d.fields {
		if string(key) == d.fields[i].name {
			return &d.fields[i], true
		}
	}
	for _, c := range key {
		if c >= utf8.RuneSelf {
			return nil, false
		}
	}
	for i := range d.fields {
		if equalFoldedASCII(key, d.fields[i].folded) {
			return &d.fields[i], true
		}
	}
	return nil, true
}

// equalFoldedASCII reports whether the ASCII key folds to folded: encoding/json
// folds ASCII by upper-casing letters.
func equalFoldedASCII(key []byte, folded string) bool {
	if len(key) != len(folded) {
		return false
	}
	for i, c := range key {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != folded[i] {
			return false
		}
	}
	return true
}

// foldName folds name as encoding/json's foldName does: ASCII letters to upper
// case, any other rune to the smallest rune of its case-folding orbit (so that,
// for example, the Kelvin sign folds to 'K').
func foldName(name string) string {
	var b []byte
	for _, r := range name {
		if r < utf8.RuneSelf {
			if 'a' <= r && r <= 'z' {
				r -= 'a' - 'A'
			}
			b = append(b, byte(r))
			continue
		}
		// Walk the orbit upwards until it wraps around to its smallest rune.
		next := unicode.SimpleFold(r)
		for next > r {
			r, next = next, unicode.SimpleFold(next)
		}
		b = utf8.AppendRune(b, next)
	}
	return string(b)
}

// DecodeScalar decodes data into dst when dst is a non-nil pointer to one of
// the predeclared types bool, string, int, int8, int16, int32, int64, uint,
// uint8, uint16, uint32, uint64, float32 or float64 (not a named type), and
// reports whether it did so as json.Unmarshal would, without error. On false,
// *dst is unchanged.
func DecodeScalar(data []byte, dst any) bool {
	switch dst.(type) {
	case *bool, *string,
		*int, *int8, *int16, *int32, *int64,
		*uint, *uint8, *uint16, *uint32, *uint64,
		*float32, *float64:
	default:
		return false
	}
	p := reflect.ValueOf(dst)
	if p.IsNil() {
		return false
	}
	s := scanner{data: data}
	s.skipSpace()
	tok, ok := s.token()
	return ok && s.end() && store(p.Elem(), tok)
}

// scanner reads JSON from data. Its methods report false on anything that is
// not valid JSON or not handled; the scanner is then abandoned.
type scanner struct {
	data []byte
	pos  int
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

// end reports whether only whitespace remains.
func (s *scanner) end() bool {
	s.skipSpace()
	return s.pos == len(s.data)
}

// peek returns the next byte, or 0 (never valid here) at the end of data.
func (s *scanner) peek() byte {
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

// consume skips the next byte if it is c.
func (s *scanner) consume(c byte) bool {
	if s.peek() != c {
		return false
	}
	s.pos++
	return true
}

// literal skips lit (true, false or null) if it comes next.
func (s *scanner) literal(lit string) bool {
	if len(s.data)-s.pos < len(lit) || string(s.data[s.pos:s.pos+len(lit)]) != lit {
		return false
	}
	s.pos += len(lit)
	return true
}

// digits skips one or more decimal digits.
func (s *scanner) digits() bool {
	start := s.pos
	for c := s.peek(); '0' <= c && c <= '9'; c = s.peek() {
		s.pos++
	}
	return s.pos > start
}

// number skips a number with JSON's grammar and returns its text.
func (s *scanner) number() ([]byte, bool) {
	start := s.pos
	s.consume('-')
	// A leading 0 stands alone: digits after it fail the caller's next check.
	if !s.consume('0') && !s.digits() {
		return nil, false
	}
	if s.consume('.') && !s.digits() {
		return nil, false
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.pos++
		if c := s.peek(); c == '+' || c == '-' {
			s.pos++
		}
		if !s.digits() {
			return nil, false
		}
	}
	return s.data[start:s.pos], true
}

// str skips a string and returns the bytes between its quotes and whether
// they contain a backslash escape (validated, not decoded).
func (s *scanner) str() (content []byte, escaped, ok bool) {
	if !s.consume('"') {
		return nil, false, false
	}
	start := s.pos
	for s.pos < len(s.data) {
		switch c := s.data[s.pos]; {
		case c == '"':
			s.pos++
			return s.data[start : s.pos-1], escaped, true
		case c == '\\':
			escaped = true
			if !s.escape() {
				return nil, false, false
			}
		case c < 0x20:
			return nil, false, false // control characters must be escaped
		default:
			s.pos++
		}
	}
	return nil, false, false
}

// escape skips the escape sequence at the backslash at s.pos.
func (s *scanner) escape() bool {
	s.pos++
	switch s.peek() {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		s.pos++
		return true
	case 'u':
		s.pos++
		for range 4 {
			switch c := s.peek(); {
			case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
				s.pos++
			default:
				return false
			}
		}
		return true
	}
	return false
}

// skip skips any JSON value, nested at most maxSkipDepth-depth levels deep.
func (s *scanner) skip(depth int) bool {
	switch c := s.peek(); c {
	case '{', '[':
		if depth == maxSkipDepth {
			return false
		}
		closing := byte(']')
		if c == '{' {
			closing = '}'
		}
		s.pos++
		s.skipSpace()
		if s.consume(closing) {
			return true
		}
		for {
			if c == '{' {
				if _, _, ok := s.str(); !ok {
					return false
				}
				s.skipSpace()
				if !s.consume(':') {
					return false
				}
				s.skipSpace()
			}
			if !s.skip(depth + 1) {
				return false
			}
			s.skipSpace()
			if s.consume(closing) {
				return true
			}
			if !s.consume(',') {
				return false
			}
			s.skipSpace()
		}
	case '"':
		_, _, ok := s.str()
		return ok
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	}
	_, ok := s.number()
	return ok
}

// token skips a literal, a string without escapes or a number, and returns
// its text (a string with its quotes). Anything else is not handled.
func (s *scanner) token() ([]byte, bool) {
	start := s.pos
	var ok bool
	switch s.peek() {
	case 'n':
		ok = s.literal("null")
	case 't':
		ok = s.literal("true")
	case 'f':
		ok = s.literal("false")
	case '"':
		var escaped bool
		_, escaped, ok = s.str()
		ok = ok && !escaped
	default:
		_, ok = s.number()
	}
	return s.data[start:s.pos], ok
}

// store stores tok, from token, into fv, whose type is a flat scalar kind or
// a pointer to one, as encoding/json's literalStore would. It writes fv only
// when it reports true.
func store(fv reflect.Value, tok []byte) bool {
	if fv.Kind() == reflect.Interface {
		return storeInterface(fv, tok)
	}
	t := fv.Type()
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch c := tok[0]; c {
	case 'n':
		if fv.Kind() == reflect.Pointer {
			fv.SetZero() // null sets a pointer to nil and leaves anything else unchanged
		}
		return true
	case 't', 'f':
		if t.Kind() != reflect.Bool {
			return false
		}
		settable(fv).SetBool(c == 't')
		return true
	case '"':
		// Without escapes and with valid UTF-8, encoding/json keeps the bytes as they are.
		b := tok[1 : len(tok)-1]
		if t.Kind() != reflect.String || !utf8.Valid(b) {
			return false
		}
		settable(fv).SetString(string(b))
		return true
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(string(tok), 10, 64)
		if err != nil || t.OverflowInt(n) {
			return false
		}
		settable(fv).SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n, err := strconv.ParseUint(string(tok), 10, 64)
		if err != nil || t.OverflowUint(n) {
			return false
		}
		settable(fv).SetUint(n)
	case reflect.Float32, reflect.Float64:
		// Parsing at the field's size reports overflow itself.
		f, err := strconv.ParseFloat(string(tok), t.Bits())
		if err != nil {
			return false
		}
		settable(fv).SetFloat(f)
	default:
		return false
	}
	return true
}

// storeInterface stores tok, from token, into fv, an empty interface, as a
// json.Decoder with UseNumber would. It writes fv only when it reports
// true.
func storeInterface(fv reflect.Value, tok []byte) bool {
	switch c := tok[0]; c {
	case 'n':
		fv.SetZero()
	case 't', 'f':
		fv.Set(reflect.ValueOf(c == 't'))
	case '"':
		b := tok[1 : len(tok)-1]
		if !utf8.Valid(b) {
			return false
		}
		fv.Set(reflect.ValueOf(string(b)))
	default:
		fv.Set(reflect.ValueOf(json.Number(tok)))
	}
	return true
}

// settable returns fv, or for a pointer its pointee, allocated if nil.
func settable(fv reflect.Value) reflect.Value {
	if fv.Kind() != reflect.Pointer {
		return fv
	}
	if fv.IsNil() {
		fv.Set(reflect.New(fv.Type().Elem()))
	}
	return fv.Elem()
}
