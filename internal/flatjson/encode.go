package flatjson

import (
	"math"
	"reflect"
	"strconv"
)

// StructEncoder encodes one flat struct type as json.Marshal does: a struct
// without embedded fields whose exported fields are bools, strings, integers
// or floats, or pointers to them, without custom marshalers or ",string".
type StructEncoder struct {
	typ    reflect.Type
	fields []encodeField
}

type encodeField struct {
	index int
	key   []byte // `"name":`
	omit  bool
}

// NewStructEncoder returns an encoder for t, or nil if t is not flat for
// encoding. Field names must also be plain printable ASCII (see AppendScalar),
// so that they need no escaping.
func NewStructEncoder(t reflect.Type) *StructEncoder {
	fields, ok := flatFields(t, true)
	if !ok {
		return nil
	}
	e := &StructEncoder{typ: t}
	for _, f := range fields {
		key, ok := appendString(nil, f.name)
		if !ok {
			return nil
		}
		e.fields = append(e.fields, encodeField{index: f.index, key: append(key, ':'), omit: f.omit})
	}
	return e
}

// Append appends json.Marshal's encoding of v, a value of the encoder's type,
// to dst and reports whether it did. On false the returned slice is
// meaningless and the caller uses json.Marshal.
func (e *StructEncoder) Append(dst []byte, v reflect.Value) ([]byte, bool) {
	if !v.IsValid() || v.Type() != e.typ {
		return dst, false
	}
	dst = append(dst, '{')
	start := len(dst)
	for _, f := range e.fields {
		fv := v.Field(f.index)
		// For flat kinds, omitempty and omitzero both reduce to IsZero
		// (which, as in encoding/json, does not count -0.0 as zero).
		if f.omit && fv.IsZero() {
			continue
		}
		if len(dst) > start {
			dst = append(dst, ',')
		}
		dst = append(dst, f.key...)
		var ok bool
		if dst, ok = appendValue(dst, fv); !ok {
			return dst, false
		}
	}
	return append(dst, '}'), true
}

// AppendScalar appends json.Marshal(v)'s output to dst when v's dynamic type
// is one of the predeclared types listed for DecodeScalar, and reports whether
// it did. Strings are handled only when every byte is printable ASCII other
// than '"', '\\', '<', '>' and '&', which json.Marshal copies verbatim;
// NaN and infinities, which json.Marshal rejects, are not handled.
func AppendScalar(dst []byte, v any) ([]byte, bool) {
	switch v.(type) {
	case bool, string,
		int, int8, int16, int32, int64,
		uint, uint8, uint16, uint32, uint64,
		float32, float64:
		return appendValue(dst, reflect.ValueOf(v))
	}
	return dst, false
}

// appendValue appends the encoding of v, a flat scalar kind or a pointer to one.
func appendValue(dst []byte, v reflect.Value) ([]byte, bool) {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return append(dst, "null"...), true
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Bool:
		return strconv.AppendBool(dst, v.Bool()), true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.AppendInt(dst, v.Int(), 10), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.AppendUint(dst, v.Uint(), 10), true
	case reflect.Float32:
		return appendFloat(dst, v.Float(), 32)
	case reflect.Float64:
		return appendFloat(dst, v.Float(), 64)
	case reflect.String:
		return appendString(dst, v.String())
	}
	return dst, false
}

// appendFloat formats f as encoding/json's floatEncoder does: like ES6 number
// to string, that is shortest 'f' formatting, or 'e' formatting below 1e-6 or
// from 1e21 on, with a two-digit negative exponent shortened to one digit.
func appendFloat(dst []byte, f float64, bits int) ([]byte, bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return dst, false
	}
	format := byte('f')
	// A float32 must be compared as float32 for the cutoffs to be exact.
	if abs := math.Abs(f); abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	dst = strconv.AppendFloat(dst, f, format, -1, bits)
	if n := len(dst); format == 'e' && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
		dst[n-2] = dst[n-1] // e-07 becomes e-7
		dst = dst[:n-1]
	}
	return dst, true
}

// appendString appends s quoted, when every byte is one json.Marshal writes
// unchanged: printable ASCII other than '"', '\\' and the HTML-escaped '<',
// '>' and '&'.
func appendString(dst []byte, s string) ([]byte, bool) {
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return dst, false
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"'), true
}
