// Package flatjson is a fast path for encoding/json on flat values: scalars of
// the predeclared types and structs whose fields are all scalars or pointers to
// scalars.
//
// The contract is one-sided. When a function here reports that it handled a
// value, the result is exactly what encoding/json would have produced for it
// (a json.Decoder with UseNumber succeeding with the same decoded value, or
// json.Marshal's exact bytes). UseNumber, as package rpc decodes, matters
// only for interface fields: for any other type the result is
// json.Unmarshal's. When it reports false, nothing is promised about the result:
// the caller must fall back to encoding/json, which then produces the value or
// the error. Anything unusual (escaped strings, non-ASCII keys needing case
// folding, custom marshalers, deep nesting, ...) is deliberately not handled.
package flatjson

import (
	"encoding"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"unicode"
)

var (
	numberType          = reflect.TypeFor[json.Number]()
	marshalerType       = reflect.TypeFor[json.Marshaler]()
	textMarshalerType   = reflect.TypeFor[encoding.TextMarshaler]()
	unmarshalerType     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	isZeroerType        = reflect.TypeFor[interface{ IsZero() bool }]()
)

// flatField is one field of a flat struct that encoding/json sees.
type flatField struct {
	index int
	name  string // JSON object key
	omit  bool   // omitempty or omitzero; both mean reflect's IsZero for flat kinds
}

// flatFields returns the fields encoding/json sees in t, in declaration order,
// or false if t is not a flat struct for decoding (encode false) or encoding.
func flatFields(t reflect.Type, encode bool) ([]flatField, bool) {
	if t.Kind() != reflect.Struct || hasCustomCodec(t, encode) {
		return nil, false
	}
	var fields []flatField
	for i := range t.NumField() {
		sf := t.Field(i)
		if sf.Anonymous {
			return nil, false // embedding brings in dominance rules we do not reimplement
		}
		tag := sf.Tag.Get("json")
		if !sf.IsExported() || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if !isValidTag(name) {
			name = sf.Name
		}
		if hasOption(opts, "string") {
			return nil, false
		}
		base := sf.Type
		if base.Kind() == reflect.Pointer {
			base = base.Elem()
		}
		// json.Number is a string that encoding/json reads and writes as a number.
		scalar := isScalarKind(base.Kind()) && base != numberType && !hasCustomCodec(base, encode)
		if !scalar && (encode || !isEmptyInterface(sf.Type)) {
			return nil, false
		}
		omitZero := hasOption(opts, "omitzero")
		if encode && omitZero && (sf.Type.Implements(isZeroerType) || reflect.PointerTo(sf.Type).Implements(isZeroerType)) {
			return nil, false // omitzero would call the type's own IsZero
		}
		if slices.ContainsFunc(fields, func(f flatField) bool { return f.name == name }) {
			return nil, false // encoding/json would apply its dominance rules
		}
		fields = append(fields, flatField{index: i, name: name, omit: omitZero || hasOption(opts, "omitempty")})
	}
	return fields, true
}

// hasCustomCodec reports whether t or *t implements one of the interfaces
// encoding/json defers to when encoding (encode true) or decoding. The method
// set of *t includes that of t.
func hasCustomCodec(t reflect.Type, encode bool) bool {
	p := reflect.PointerTo(t)
	if encode {
		return p.Implements(marshalerType) || p.Implements(textMarshalerType)
	}
	return p.Implements(unmarshalerType) || p.Implements(textUnmarshalerType)
}

func isScalarKind(k reflect.Kind) bool {
	switch k {
	case reflect.Bool, reflect.String,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

// isEmptyInterface reports whether t is an interface without methods,
// such as any: encoding/json stores a decoded value of its own choosing in
// it.
func isEmptyInterface(t reflect.Type) bool {
	return t.Kind() == reflect.Interface && t.NumMethod() == 0
}

// hasOption reports whether the comma-separated tag options contain opt.
func hasOption(opts, opt string) bool {
	return slices.Contains(strings.Split(opts, ","), opt)
}

// isValidTag reports whether encoding/json accepts s as a key name from a tag.
func isValidTag(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		// Quote and backslash are reserved; other punctuation listed here is allowed.
		if !strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c) && !unicode.IsLetter(c) && !unicode.IsDigit(c) {
			return false
		}
	}
	return true
}
