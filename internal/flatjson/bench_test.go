package flatjson

import (
	"encoding/json"
	"reflect"
	"testing"
)

func BenchmarkDecode(b *testing.B) {
	data := []byte(`{"n": 5, "name": "x", "ok": true, "f": 1.5, "p": null}`)
	b.Run("flatjson", func(b *testing.B) { benchStructDecode(b, reflect.TypeFor[args](), data) })
	b.Run("encoding-json", func(b *testing.B) {
		var a args
		b.ReportAllocs()
		for b.Loop() {
			a = args{}
			if err := json.Unmarshal(data, &a); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDecodeInterface: an interface field, as oslo peers' dynamic
// arguments arrive, beside a json.Decoder with UseNumber.
func BenchmarkDecodeInterface(b *testing.B) {
	data := []byte(`{"value": "ping", "N": 42}`)
	b.Run("flatjson", func(b *testing.B) { benchStructDecode(b, reflect.TypeFor[anyF](), data) })
	b.Run("encoding-json-usenumber", func(b *testing.B) {
		var a anyF
		b.ReportAllocs()
		for b.Loop() {
			a = anyF{}
			if err := decodeUseNumber(data, &a); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchStructDecode decodes data into a zero value of typ with a
// StructDecoder, b.N times.
func benchStructDecode(b *testing.B, typ reflect.Type, data []byte) {
	d := NewStructDecoder(typ)
	v := reflect.New(typ).Elem()
	b.ReportAllocs()
	for b.Loop() {
		v.SetZero()
		if !d.Decode(data, v) {
			b.Fatal("not handled")
		}
	}
}

func BenchmarkDecodeScalar(b *testing.B) {
	data := []byte(`12345`)
	var n int
	b.Run("flatjson", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !DecodeScalar(data, &n) {
				b.Fatal("not handled")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := json.Unmarshal(data, &n); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkAppendScalar(b *testing.B) {
	var v any = 12345
	b.Run("flatjson", func(b *testing.B) {
		buf := make([]byte, 0, 64)
		b.ReportAllocs()
		for b.Loop() {
			var ok bool
			if buf, ok = AppendScalar(buf[:0], v); !ok {
				b.Fatal("not handled")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(v); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkAppend(b *testing.B) {
	a := args{N: 5, Name: "x", OK: true, F: 1.5}
	b.Run("flatjson", func(b *testing.B) {
		e := NewStructEncoder(reflect.TypeFor[args]())
		v := reflect.ValueOf(a)
		buf := make([]byte, 0, 128)
		b.ReportAllocs()
		for b.Loop() {
			var ok bool
			if buf, ok = e.Append(buf[:0], v); !ok {
				b.Fatal("not handled")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(a); err != nil {
				b.Fatal(err)
			}
		}
	})
}
