package flatjson

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"testing"
)

// appendBoth appends v with the StructEncoder for its type (AppendScalar if
// e is nil) and, when that is handled, checks the bytes against json.Marshal.
func appendBoth(t *testing.T, e *StructEncoder, v any) bool {
	t.Helper()
	prefix := []byte("prefix")
	var got []byte
	var ok bool
	if e != nil {
		got, ok = e.Append(prefix, reflect.ValueOf(v))
	} else {
		got, ok = AppendScalar(prefix, v)
	}
	if !ok {
		return false
	}
	want, err := json.Marshal(v)
	if err != nil {
		t.Errorf("%T %#v handled, but json.Marshal fails: %v", v, v, err)
	} else if !bytes.Equal(got, append(prefix, want...)) {
		t.Errorf("%T %#v: appended %q, json.Marshal gives %q", v, v, got[len(prefix):], want)
	}
	return true
}

func ptr[T any](v T) *T { return &v }

func TestAppend(t *testing.T) {
	negZero := math.Copysign(0, -1)
	tests := []struct {
		v    any
		want int
	}{
		{args{N: 5, Name: "x", OK: true, F: 1.5, P: ptr(7)}, yes},
		{args{}, yes},
		{args{F: 1e21, Name: "a b ~ !#$%'()*+,-./:;=?@[]^_`{|}"}, yes},
		{allKinds{
			B: true, S: "s", I: math.MinInt, I8: math.MinInt8, I16: math.MinInt16, I32: math.MinInt32, I64: math.MinInt64,
			U: math.MaxUint, U8: math.MaxUint8, U16: math.MaxUint16, U32: math.MaxUint32, U64: math.MaxUint64, UP: 1,
			F32: math.MaxFloat32, F64: math.SmallestNonzeroFloat64,
			PB: ptr(false), PS: ptr(""), PI: ptr(0), PU8: ptr(uint8(3)), PF32: ptr(float32(0.1)),
			NI: -1, NS: "n", NF: 1e-7, PNI: ptr(namedInt(2)), NP: ptr(3), Bad: 4, Dash: 5, Skip: 6, hidden: 7,
		}, yes},
		{allKinds{I: math.MaxInt, I64: math.MaxInt64}, yes},
		{omits{}, yes},
		{omits{C: ptr(0), H: ptr(""), K: ptr(0)}, yes}, // non-nil pointers to zero are not empty
		{omits{A: 1, B: "b", D: 0.5, E: true, F: 1, G: 2, I: 3, J: 4}, yes},
		{omits{D: negZero, F: negZero, J: float32(negZero)}, yes}, // -0 is neither empty nor zero
		{omits{A: 1}, yes},
		{omits{J: 1}, yes},
		{unexportedOK{N: 1, m: map[string]int{"a": 1}, X: []int{1}}, yes},
		{empty{}, yes},
		{plainZeroer{Z: 3}, yes},
		{args{Name: "<"}, no},
		{args{Name: ">"}, no},
		{args{Name: "&"}, no},
		{args{Name: `"`}, no},
		{args{Name: `\`}, no},
		{args{Name: "\n"}, no},
		{args{Name: "\x7f"}, no},
		{args{Name: "é"}, no},
		{args{Name: "\xff"}, no},
		{args{F: math.NaN()}, no},
		{args{F: math.Inf(-1)}, no},
		{allKinds{F32: float32(math.Inf(1))}, no},
	}
	for _, tt := range tests {
		e := NewStructEncoder(reflect.TypeOf(tt.v))
		if e == nil {
			t.Fatalf("NewStructEncoder(%T) = nil", tt.v)
		}
		got := appendBoth(t, e, tt.v)
		if tt.want == yes && !got || tt.want == no && got {
			t.Errorf("Append(%#v) handled = %v, want %v", tt.v, got, !got)
		}
	}

	e := NewStructEncoder(reflect.TypeFor[args]())
	if _, ok := e.Append(nil, reflect.ValueOf(allKinds{})); ok {
		t.Error("Append of another type handled")
	}
	if _, ok := e.Append(nil, reflect.Value{}); ok {
		t.Error("Append of the zero Value handled")
	}
	if _, ok := e.Append(nil, reflect.ValueOf(&args{})); ok {
		t.Error("Append of a pointer handled")
	}
	// An addressable value encodes the same.
	if got, ok := e.Append(nil, reflect.ValueOf(&args{N: 1}).Elem()); !ok || string(got) != `{"n":1,"name":"","ok":false,"f":0,"p":null}` {
		t.Errorf("Append of an addressable value = %q, %v", got, ok)
	}
}

// floatTests are float64 values whose float64 and float32 encodings are compared.
var floatTests = []float64{
	0, math.Copysign(0, -1), 1, -1, 0.1, 0.2, 0.3, 1.5, 123.456, -123.456, 100, 1e6, 1e7,
	1e20, 1e21, 1e22, 9.999999999999999e20, 1.0000000000000001e21, 123456789012345680000,
	1e-6, 1e-7, 9.99999e-7, 1.0000001e-6, 0.000001, 0.0000012345, 1e-9, 1e-10, 1e-100, -1e-7,
	5e-324, 2.2250738585072014e-308, 2.225073858507201e-308, // subnormals and the smallest normal
	math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64,
	math.MaxFloat32, math.SmallestNonzeroFloat32, 1.1754943508222875e-38, // float32 smallest normal
	16777216, 16777217, 1 << 53, 1<<53 + 1, math.Pi, math.E, 1e100, 1e300, 1e308,
	float64(float32(1e21)), float64(float32(1e-6)), float64(math.Nextafter32(1e21, 0)), float64(math.Nextafter32(1e-6, 1)),
	float64(math.Nextafter32(1e-6, 0)), math.Nextafter(1e21, 0), math.Nextafter(1e-6, 0),
}

func TestAppendFloat(t *testing.T) {
	for _, f := range floatTests {
		for _, v := range []any{f, -f, float32(f), -float32(f)} {
			if !appendBoth(t, nil, v) && !math.IsInf(reflect.ValueOf(v).Float(), 0) {
				t.Errorf("AppendScalar(%T(%v)) not handled", v, v)
			}
		}
	}
	for _, v := range []any{math.NaN(), math.Inf(1), math.Inf(-1), float32(math.NaN()), float32(math.Inf(-1))} {
		if _, ok := AppendScalar(nil, v); ok {
			t.Errorf("AppendScalar(%T(%v)) handled", v, v)
		}
	}
}

func TestAppendScalar(t *testing.T) {
	var nilInt *int
	tests := []struct {
		v    any
		want int
	}{
		{true, yes},
		{false, yes},
		{0, yes},
		{-5, yes},
		{math.MaxInt, yes},
		{math.MinInt, yes},
		{int8(math.MinInt8), yes},
		{int16(math.MaxInt16), yes},
		{int32(math.MinInt32), yes},
		{int64(math.MinInt64), yes},
		{uint(math.MaxUint), yes},
		{uint8(255), yes},
		{uint16(math.MaxUint16), yes},
		{uint32(math.MaxUint32), yes},
		{uint64(math.MaxUint64), yes},
		{"", yes},
		{"hello, world: {1} [2] ~'`", yes},
		{"a<b", no},
		{"a&b", no},
		{"tab\t", no},
		{"ü", no},
		{"\u2028", no},
		{namedInt(1), no},
		{namedStr("x"), no},
		{uintptr(1), no},
		{ptr(1), no},
		{nilInt, no},
		{nil, no},
		{[]int{1}, no},
		{complex(1, 2), no},
	}
	for _, tt := range tests {
		got := appendBoth(t, nil, tt.v)
		if tt.want == yes && !got || tt.want == no && got {
			t.Errorf("AppendScalar(%T(%#v)) handled = %v, want %v", tt.v, tt.v, got, !got)
		}
	}
}

func TestAllocs(t *testing.T) {
	d := NewStructDecoder(reflect.TypeFor[allKinds]())
	in := []byte(`{"B":true,"I":-1,"I8":2,"U64":3,"F32":1.5,"F64":-2.5e-3,"NI":4,"x":{"y":["z"]},"PI":null}`)
	v := reflect.New(reflect.TypeFor[allKinds]()).Elem()
	e := NewStructEncoder(reflect.TypeFor[args]())
	a := reflect.ValueOf(args{N: 5, Name: "some name", OK: true, F: 1.5, P: ptr(3)})
	buf := make([]byte, 0, 256)
	var n int
	var f float64
	var anyInt any = 123456
	var anyFloat any = 1.25e-9
	tests := []struct {
		name string
		fn   func() bool
	}{
		{"Decode", func() bool { v.SetZero(); return d.Decode(in, v) }},
		{"DecodeScalar int", func() bool { return DecodeScalar([]byte(" 12345 "), &n) }},
		{"DecodeScalar float", func() bool { return DecodeScalar([]byte("1.25e-9"), &f) }},
		{"Append", func() bool { _, ok := e.Append(buf[:0], a); return ok }},
		{"AppendScalar int", func() bool { _, ok := AppendScalar(buf[:0], anyInt); return ok }},
		{"AppendScalar float", func() bool { _, ok := AppendScalar(buf[:0], anyFloat); return ok }},
	}
	for _, tt := range tests {
		ok := true
		allocs := testing.AllocsPerRun(100, func() { ok = ok && tt.fn() })
		if !ok {
			t.Errorf("%s: not handled", tt.name)
		}
		if allocs != 0 {
			t.Errorf("%s: %v allocations, want 0", tt.name, allocs)
		}
	}
}
