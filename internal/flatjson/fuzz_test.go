package flatjson

import (
	"math"
	"reflect"
	"testing"
)

// fuzzStructTypes are the struct types every fuzzed input is decoded into.
var fuzzStructTypes = []reflect.Type{
	reflect.TypeFor[args](),
	reflect.TypeFor[allKinds](),
	reflect.TypeFor[folds](),
	reflect.TypeFor[kelvin](),
	reflect.TypeFor[anyF](),
}

func FuzzStructDecode(f *testing.F) {
	for _, tt := range decodeTests {
		f.Add([]byte(tt.in))
	}
	decoders := make([]*StructDecoder, len(fuzzStructTypes))
	for i, typ := range fuzzStructTypes {
		decoders[i] = NewStructDecoder(typ)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for i, typ := range fuzzStructTypes {
			decodeBoth(t, decoders[i], typ, data)
		}
	})
}

func FuzzDecodeScalar(f *testing.F) {
	for _, s := range []string{
		`0`, `-0`, `1`, `-1`, ` 5 `, `1.5`, `-2.5e-3`, `1E+2`, `1e400`, `255`, `256`, `-129`,
		`18446744073709551615`, `9223372036854775808`, `01`, `1.`, `.5`, `-`,
		`true`, `false`, `null`, `nul`, `"x"`, `"é"`, `"a\nb"`, "\"\xff\"", `"`, `[]`, `{}`, `1 2`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, typ := range scalarTypes {
			decodeScalarBoth(t, typ, data)
		}
	})
}

func FuzzAppendFloat(f *testing.F) {
	for _, v := range floatTests {
		f.Add(math.Float64bits(v))
		f.Add(uint64(math.Float32bits(float32(v))))
	}
	f.Fuzz(func(t *testing.T, bits uint64) {
		for _, v := range []any{math.Float64frombits(bits), math.Float32frombits(uint32(bits))} {
			handled := appendBoth(t, nil, v)
			if finite := !math.IsInf(reflect.ValueOf(v).Float(), 0) && !math.IsNaN(reflect.ValueOf(v).Float()); handled != finite {
				t.Errorf("AppendScalar(%T(%v)) handled = %v", v, v, handled)
			}
		}
	})
}

// FuzzAppend encodes fuzzed field values in a struct and as scalars.
func FuzzAppend(f *testing.F) {
	f.Add("x", int64(5), uint64(7), 1.5, true)
	f.Add("", int64(math.MinInt64), uint64(math.MaxUint64), math.Copysign(0, -1), false)
	f.Add("<&>\"\\\n\x7fé", int64(-1), uint64(0), 1e21, true)
	e := NewStructEncoder(reflect.TypeFor[allKinds]())
	o := NewStructEncoder(reflect.TypeFor[omits]())
	f.Fuzz(func(t *testing.T, s string, i int64, u uint64, fl float64, b bool) {
		v := allKinds{
			B: b, S: s, I: int(i), I8: int8(i), I16: int16(i), I32: int32(i), I64: i,
			U: uint(u), U8: uint8(u), U16: uint16(u), U32: uint32(u), U64: u, UP: uintptr(u),
			F32: float32(fl), F64: fl, NS: namedStr(s), NF: namedFloat(fl),
		}
		if b {
			v.PS, v.PI, v.PF32 = &s, ptr(int(i)), ptr(float32(fl))
		}
		appendBoth(t, e, v)
		appendBoth(t, o, omits{A: int(i), B: s, D: fl, E: b, F: fl, I: uint8(u), J: float32(fl)})
		for _, sv := range []any{s, i, u, fl, float32(fl), b, int8(i), uint16(u)} {
			appendBoth(t, nil, sv)
		}
	})
}
