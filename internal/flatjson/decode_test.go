package flatjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

// Expected handling in the tables: yes and no are asserted; either is only
// checked for agreement with encoding/json when handled.
const (
	either = iota
	yes
	no
)

// decodeBoth decodes in with the StructDecoder for typ and, when that is
// handled, checks that a json.Decoder with UseNumber succeeds with a deeply
// equal result, as does json.Unmarshal unless typ holds an interface.
func decodeBoth(t *testing.T, d *StructDecoder, typ reflect.Type, in []byte) bool {
	t.Helper()
	got := reflect.New(typ)
	if !d.Decode(in, got.Elem()) {
		return false
	}
	want := reflect.New(typ)
	if err := decodeUseNumber(in, want.Interface()); err != nil {
		t.Errorf("Decode(%q) into %v handled, but a json.Decoder with UseNumber fails: %v", in, typ, err)
	} else if !reflect.DeepEqual(got.Interface(), want.Interface()) {
		t.Errorf("Decode(%q) into %v = %+v, a json.Decoder with UseNumber gives %+v", in, typ, got.Elem(), want.Elem())
	}
	if typ == reflect.TypeFor[anyF]() {
		return true
	}
	unmarshaled := reflect.New(typ)
	if err := json.Unmarshal(in, unmarshaled.Interface()); err != nil {
		t.Errorf("Decode(%q) into %v handled, but json.Unmarshal fails: %v", in, typ, err)
	} else if !reflect.DeepEqual(got.Interface(), unmarshaled.Interface()) {
		t.Errorf("Decode(%q) into %v = %+v, json.Unmarshal gives %+v", in, typ, got.Elem(), unmarshaled.Elem())
	}
	return true
}

// decodeUseNumber decodes in, one JSON value and nothing after it, as
// package rpc decodes into types that hold interfaces.
func decodeUseNumber(in []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(in))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("after the value: %v", err)
	}
	return nil
}

var deepUnknown = `{"x":` + strings.Repeat("[", maxSkipDepth+1) + strings.Repeat("]", maxSkipDepth+1) + `,"n":1}`

var decodeTests = []struct {
	typ  reflect.Type
	in   string
	want int
}{
	// Common inputs must be handled.
	{reflect.TypeFor[args](), `{"n":5,"name":"x","ok":true,"f":1.5,"p":null}`, yes},
	{reflect.TypeFor[args](), `{"n":-5,"name":"","ok":false,"f":-0.25,"p":7}`, yes},
	{reflect.TypeFor[args](), `{}`, yes},
	{reflect.TypeFor[args](), "\t{\r\n \"n\" :\n5 ,\t\"name\"\r:\"x\" }\n ", yes},
	{reflect.TypeFor[args](), `null`, yes},
	{reflect.TypeFor[args](), " null\n", yes},
	{reflect.TypeFor[args](), `{"n":null,"name":null,"ok":null,"f":null,"p":null}`, yes},

	// Case-insensitive keys and duplicates (last wins).
	{reflect.TypeFor[args](), `{"N":5,"NAME":"y","Ok":true,"F":2}`, yes},
	{reflect.TypeFor[args](), `{"n":1,"n":2,"N":3}`, yes},
	{reflect.TypeFor[args](), `{"p":1,"p":null}`, yes},
	{reflect.TypeFor[args](), `{"p":1,"p":2}`, yes},
	{reflect.TypeFor[args](), `{"p":null,"p":3}`, yes},
	{reflect.TypeFor[folds](), `{"ab":1,"AB":2}`, yes},
	{reflect.TypeFor[folds](), `{"Ab":3}`, yes}, // folds to both: the first field wins
	{reflect.TypeFor[folds](), `{"aB":3,"AB":4}`, yes},
	{reflect.TypeFor[folds](), `{"count":1,"COUNT":2,"cOuNt":3}`, yes},
	{reflect.TypeFor[folds](), `{"s":1}`, yes}, // matches "ſ" by folding
	{reflect.TypeFor[folds](), `{"S":1}`, yes},
	{reflect.TypeFor[folds](), `{"ſ":1}`, yes}, // exact
	{reflect.TypeFor[folds](), `{"ü":1}`, yes}, // exact
	{reflect.TypeFor[folds](), `{"Ü":1}`, no},  // would need non-ASCII folding
	{reflect.TypeFor[kelvin](), `{"k":1}`, yes},
	{reflect.TypeFor[kelvin](), `{"K":1}`, yes},
	{reflect.TypeFor[kelvin](), `{"K":1}`, yes},

	// Unknown keys are skipped, but their values must be valid.
	{reflect.TypeFor[args](), `{"x":{"a":[1,-2.5e3,{"b":null}],"c":"d\"\u00e9\n\/"},"n":3}`, yes},
	{reflect.TypeFor[args](), `{"x":[[[[]]],{}],"y":"\u00E9\ud83d\ude00","z":true,"w":false,"v":null,"n":3}`, yes},
	{reflect.TypeFor[args](), "{\"x\":\"\xff\",\"n\":3}", yes}, // invalid UTF-8 is fine when skipped
	{reflect.TypeFor[args](), `{"x":[1,]}`, no},
	{reflect.TypeFor[args](), `{"x":{"a"}}`, no},
	{reflect.TypeFor[args](), `{"x":{"a":1,}}`, no},
	{reflect.TypeFor[args](), `{"x":[1 2]}`, no},
	{reflect.TypeFor[args](), `{"x":"\x"}`, no},
	{reflect.TypeFor[args](), `{"x":"\u12G4"}`, no},
	{reflect.TypeFor[args](), `{"x":tru}`, no},
	{reflect.TypeFor[args](), `{"x":[}`, no},
	{reflect.TypeFor[args](), `{"x":{]}`, no},
	{reflect.TypeFor[args](), deepUnknown, no}, // valid, but deeper than the skip limit
	{reflect.TypeFor[allKinds](), `{"hidden":5,"ignore":{"a":1},"Skip":3}`, yes},

	// Numbers.
	{reflect.TypeFor[args](), `{"n":-0}`, yes},
	{reflect.TypeFor[args](), `{"n":1.0}`, no},
	{reflect.TypeFor[args](), `{"n":1e2}`, no},
	{reflect.TypeFor[args](), `{"n":99999999999999999999}`, no},
	{reflect.TypeFor[args](), `{"n":01}`, no},
	{reflect.TypeFor[args](), `{"n":-}`, no},
	{reflect.TypeFor[args](), `{"n":+1}`, no},
	{reflect.TypeFor[args](), `{"n":0x10}`, no},
	{reflect.TypeFor[args](), `{"n":1_000}`, no},
	{reflect.TypeFor[args](), `{"f":1.}`, no},
	{reflect.TypeFor[args](), `{"f":.5}`, no},
	{reflect.TypeFor[args](), `{"f":1e}`, no},
	{reflect.TypeFor[args](), `{"f":1e+}`, no},
	{reflect.TypeFor[args](), `{"f":Infinity}`, no},
	{reflect.TypeFor[args](), `{"f":NaN}`, no},
	{reflect.TypeFor[args](), `{"f":1e400}`, no},
	{reflect.TypeFor[args](), `{"f":-1.5e-3,"p":-0}`, yes},
	{reflect.TypeFor[args](), `{"f":1E+2}`, yes},
	{reflect.TypeFor[args](), `{"f":0.1e-2}`, yes},
	{reflect.TypeFor[args](), `{"f":5}`, yes},
	{reflect.TypeFor[args](), `{"f":-0}`, yes},
	{reflect.TypeFor[args](), `{"f":1e-400}`, either},
	{reflect.TypeFor[args](), `{"f":123456789012345678901234567890123456789}`, yes},
	{reflect.TypeFor[allKinds](), `{"I8":127,"I16":-32768,"I32":2147483647,"I64":-9223372036854775808,"I":9223372036854775807}`, yes},
	{reflect.TypeFor[allKinds](), `{"U8":255,"U16":65535,"U32":4294967295,"U64":18446744073709551615,"U":0,"UP":12}`, yes},
	{reflect.TypeFor[allKinds](), `{"I8":128}`, no},
	{reflect.TypeFor[allKinds](), `{"I8":-129}`, no},
	{reflect.TypeFor[allKinds](), `{"I64":9223372036854775808}`, no},
	{reflect.TypeFor[allKinds](), `{"U8":256}`, no},
	{reflect.TypeFor[allKinds](), `{"U":-1}`, no},
	{reflect.TypeFor[allKinds](), `{"U":-0}`, no}, // ParseUint rejects the sign
	{reflect.TypeFor[allKinds](), `{"U64":18446744073709551616}`, no},
	{reflect.TypeFor[allKinds](), `{"U8":1.5}`, no},
	{reflect.TypeFor[allKinds](), `{"F32":3.4028234e38,"F64":1.7976931348623157e308}`, yes},
	{reflect.TypeFor[allKinds](), `{"F32":3.5e38}`, no},
	{reflect.TypeFor[allKinds](), `{"F32":1e-46}`, either},
	{reflect.TypeFor[allKinds](), `{"F32":0.1,"NF":0.1,"PF32":0.1}`, yes},

	// Empty interfaces take scalars as a json.Decoder with UseNumber does.
	{reflect.TypeFor[anyF](), `{"value":"ping","N":true,"S":"s"}`, yes},
	{reflect.TypeFor[anyF](), `{"value":-1.5e3,"N":12345678901234567890123}`, yes},
	{reflect.TypeFor[anyF](), `{"value":0,"N":false}`, yes},
	{reflect.TypeFor[anyF](), `{"value":null,"N":null}`, yes},
	{reflect.TypeFor[anyF](), `{"value":1,"value":null}`, yes},
	{reflect.TypeFor[anyF](), `{"value":"x","value":2}`, yes},
	{reflect.TypeFor[anyF](), `{"VALUE":"folded"}`, yes},
	{reflect.TypeFor[anyF](), `{"value":"é"}`, yes},
	{reflect.TypeFor[anyF](), `{"value":{"a":1}}`, no},
	{reflect.TypeFor[anyF](), `{"value":[1]}`, no},
	{reflect.TypeFor[anyF](), `{"value":"a\nb"}`, no},
	{reflect.TypeFor[anyF](), "{\"value\":\"\xff\"}", no},
	{reflect.TypeFor[anyF](), `{"value":01}`, no},
	{reflect.TypeFor[anyF](), `{"value":nul}`, no},

	// Every kind, pointers and named types.
	{reflect.TypeFor[allKinds](), `{"B":true,"S":"s","I":1,"I8":2,"I16":3,"I32":4,"I64":5,"U":6,"U8":7,"U16":8,"U32":9,"U64":10,"UP":11,"F32":1.5,"F64":2.5,
		"PB":false,"PS":"p","PI":-3,"PU8":200,"PF32":1.25,"NI":12,"NS":"named","NF":3.5,"PNI":13,"NP":14,"Bad":15,"-":16,"Opt":17}`, yes},
	{reflect.TypeFor[allKinds](), `{"PB":null,"PS":null,"PI":null,"PNI":null,"NP":null,"NI":null}`, yes},
	{reflect.TypeFor[allKinds](), `{"a'b":1}`, yes}, // invalid tag name: unknown key
	{reflect.TypeFor[allKinds](), `{"B":1}`, no},
	{reflect.TypeFor[allKinds](), `{"S":1}`, no},
	{reflect.TypeFor[allKinds](), `{"I":"1"}`, no},
	{reflect.TypeFor[allKinds](), `{"I":true}`, no},
	{reflect.TypeFor[allKinds](), `{"I":[]}`, no},
	{reflect.TypeFor[allKinds](), `{"I":{}}`, no},
	{reflect.TypeFor[allKinds](), `{"PI":"x"}`, no},
	{reflect.TypeFor[allKinds](), `{"B":nul}`, no},
	{reflect.TypeFor[allKinds](), `{"B":truex}`, no},
	{reflect.TypeFor[allKinds](), `{"B":True}`, no},

	// Strings.
	{reflect.TypeFor[args](), `{"name":"héllo wörld ☃ 😀"}`, yes},
	{reflect.TypeFor[args](), `{"name":"<a href='x'>&amp;</a>"}`, yes},
	{reflect.TypeFor[args](), `{"name":"a\nb"}`, no},
	{reflect.TypeFor[args](), `{"name":"\u0041"}`, no},
	{reflect.TypeFor[args](), "{\"name\":\"\xff\"}", no},         // encoding/json would substitute U+FFFD
	{reflect.TypeFor[args](), "{\"name\":\"\xed\xa0\x80\"}", no}, // surrogate half
	{reflect.TypeFor[args](), "{\"name\":\"a\tb\"}", no},         // raw control character: invalid
	{reflect.TypeFor[args](), "{\"name\":\"a\x7fb\"}", yes},      // DEL needs no escape
	{reflect.TypeFor[args](), `{"name":"abc}`, no},

	// Keys.
	{reflect.TypeFor[args](), `{"n\u0061me":"x"}`, no},
	{reflect.TypeFor[args](), `{"\u00e9":1}`, no},
	{reflect.TypeFor[args](), `{"é":1}`, no}, // unknown, but could fold to a name
	{reflect.TypeFor[args](), "{\"\xff\":1}", no},
	{reflect.TypeFor[args](), `{"":1,"nam":2,"names":3}`, yes},
	{reflect.TypeFor[args](), `{n:1}`, no},
	{reflect.TypeFor[args](), `{'n':1}`, no},
	{reflect.TypeFor[args](), `{"n" 1}`, no},
	{reflect.TypeFor[args](), `{"n"::1}`, no},
	{reflect.TypeFor[args](), `{1:1}`, no},

	// Structure.
	{reflect.TypeFor[args](), ``, no},
	{reflect.TypeFor[args](), `   `, no},
	{reflect.TypeFor[args](), `{`, no},
	{reflect.TypeFor[args](), `{"n":5`, no},
	{reflect.TypeFor[args](), `{"n":5,`, no},
	{reflect.TypeFor[args](), `{"n":5,}`, no},
	{reflect.TypeFor[args](), `{,}`, no},
	{reflect.TypeFor[args](), `{"n":5}x`, no},
	{reflect.TypeFor[args](), `{"n":5}{}`, no},
	{reflect.TypeFor[args](), `{"n":5}}`, no},
	{reflect.TypeFor[args](), `{"n":5};`, no},
	{reflect.TypeFor[args](), `{"n":5} null`, no},
	{reflect.TypeFor[args](), `{"n":5 "ok":true}`, no},
	{reflect.TypeFor[args](), "\ufeff{}", no},
	{reflect.TypeFor[args](), "{}\x00", no},
	{reflect.TypeFor[args](), "{\v}", no},
	{reflect.TypeFor[args](), `nul`, no},
	{reflect.TypeFor[args](), `nullx`, no},
	{reflect.TypeFor[args](), `null null`, no},
	{reflect.TypeFor[args](), `[]`, no},
	{reflect.TypeFor[args](), `5`, no},
	{reflect.TypeFor[args](), `"x"`, no},
	{reflect.TypeFor[args](), `true`, no},
	{reflect.TypeFor[empty](), `{"a":1}`, yes},
	{reflect.TypeFor[unexportedOK](), `{"N":1,"m":{"a":1},"s":[1],"X":[2]}`, yes},
}

func TestDecode(t *testing.T) {
	for _, tt := range decodeTests {
		d := NewStructDecoder(tt.typ)
		if d == nil {
			t.Fatalf("NewStructDecoder(%v) = nil", tt.typ)
		}
		got := decodeBoth(t, d, tt.typ, []byte(tt.in))
		if tt.want == yes && !got || tt.want == no && got {
			t.Errorf("Decode(%q) into %v handled = %v, want %v", tt.in, tt.typ, got, !got)
		}
	}
}

func TestDecodeWrongValue(t *testing.T) {
	d := NewStructDecoder(reflect.TypeFor[args]())
	in := []byte(`{"n":1}`)
	if d.Decode(in, reflect.New(reflect.TypeFor[allKinds]()).Elem()) {
		t.Error("Decode into another type handled")
	}
	if d.Decode(in, reflect.ValueOf(args{})) {
		t.Error("Decode into an unaddressable value handled")
	}
	if d.Decode(in, reflect.Value{}) {
		t.Error("Decode into the zero Value handled")
	}
}

// scalarTypes are the types DecodeScalar and AppendScalar handle.
var scalarTypes = []reflect.Type{
	reflect.TypeFor[bool](), reflect.TypeFor[string](),
	reflect.TypeFor[int](), reflect.TypeFor[int8](), reflect.TypeFor[int16](), reflect.TypeFor[int32](), reflect.TypeFor[int64](),
	reflect.TypeFor[uint](), reflect.TypeFor[uint8](), reflect.TypeFor[uint16](), reflect.TypeFor[uint32](), reflect.TypeFor[uint64](),
	reflect.TypeFor[float32](), reflect.TypeFor[float64](),
}

// newScalar returns a pointer to a non-zero value of typ, so that a null
// leaving it unchanged is visible.
func newScalar(typ reflect.Type) reflect.Value {
	p := reflect.New(typ)
	switch typ.Kind() {
	case reflect.Bool:
		p.Elem().SetBool(true)
	case reflect.String:
		p.Elem().SetString("init")
	case reflect.Float32, reflect.Float64:
		p.Elem().SetFloat(7)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		p.Elem().SetInt(7)
	default:
		p.Elem().SetUint(7)
	}
	return p
}

// decodeScalarBoth is decodeBoth for DecodeScalar, which must also leave its
// target unchanged when not handled.
func decodeScalarBoth(t *testing.T, typ reflect.Type, in []byte) bool {
	t.Helper()
	got, want := newScalar(typ), newScalar(typ)
	if !DecodeScalar(in, got.Interface()) {
		if !reflect.DeepEqual(got.Interface(), want.Interface()) {
			t.Errorf("DecodeScalar(%q) into %v not handled, but wrote %v", in, typ, got.Elem())
		}
		return false
	}
	if err := json.Unmarshal(in, want.Interface()); err != nil {
		t.Errorf("DecodeScalar(%q) into %v handled, but json.Unmarshal fails: %v", in, typ, err)
	} else if !reflect.DeepEqual(got.Interface(), want.Interface()) {
		t.Errorf("DecodeScalar(%q) into %v = %v, json.Unmarshal gives %v", in, typ, got.Elem(), want.Elem())
	}
	return true
}

func TestDecodeScalar(t *testing.T) {
	tests := []struct {
		typ  reflect.Type
		in   string
		want int
	}{
		{reflect.TypeFor[int](), `5`, yes},
		{reflect.TypeFor[int](), " \n-42\t", yes},
		{reflect.TypeFor[int](), `null`, yes},
		{reflect.TypeFor[int](), `5.0`, no},
		{reflect.TypeFor[int](), `"5"`, no},
		{reflect.TypeFor[int](), `5 6`, no},
		{reflect.TypeFor[int](), `05`, no},
		{reflect.TypeFor[int](), ``, no},
		{reflect.TypeFor[int8](), `-128`, yes},
		{reflect.TypeFor[int8](), `128`, no},
		{reflect.TypeFor[uint](), `-1`, no},
		{reflect.TypeFor[uint64](), `18446744073709551615`, yes},
		{reflect.TypeFor[uint16](), `65536`, no},
		{reflect.TypeFor[float64](), `1.5e300`, yes},
		{reflect.TypeFor[float64](), `-0`, yes},
		{reflect.TypeFor[float64](), `1e309`, no},
		{reflect.TypeFor[float32](), `1e39`, no},
		{reflect.TypeFor[float32](), `0.1`, yes},
		{reflect.TypeFor[bool](), `true`, yes},
		{reflect.TypeFor[bool](), ` false `, yes},
		{reflect.TypeFor[bool](), `null`, yes},
		{reflect.TypeFor[bool](), `1`, no},
		{reflect.TypeFor[string](), `"hello"`, yes},
		{reflect.TypeFor[string](), `""`, yes},
		{reflect.TypeFor[string](), `null`, yes},
		{reflect.TypeFor[string](), `"a\"b"`, no},
		{reflect.TypeFor[string](), `"abc`, no},
		{reflect.TypeFor[string](), `5`, no},
		{reflect.TypeFor[string](), `{}`, no},
		{reflect.TypeFor[string](), `[]`, no},
	}
	for _, tt := range tests {
		got := decodeScalarBoth(t, tt.typ, []byte(tt.in))
		if tt.want == yes && !got || tt.want == no && got {
			t.Errorf("DecodeScalar(%q) into %v handled = %v, want %v", tt.in, tt.typ, got, !got)
		}
	}

	var i int
	var ni namedInt
	pi := &i
	for _, dst := range []any{nil, i, (*int)(nil), &ni, &pi, &[]int{}, &struct{}{}, new(any), new(uintptr), new(complex64)} {
		if DecodeScalar([]byte(`1`), dst) {
			t.Errorf("DecodeScalar into %T handled", dst)
		}
	}
}
