package rpc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"

	"github.com/switchyard-mq/switchyard/internal/flatjson"
	"github.com/switchyard-mq/switchyard/internal/messaging"
)

// decodeInto unmarshals raw into dst with numbers kept as json.Number
// where dst holds interface values. Types without interface values take
// json.Unmarshal, which is cheaper than a Decoder.
func decodeInto(raw []byte, dst any) error {
	if !holdsInterface(reflect.TypeOf(dst)) {
		return json.Unmarshal(raw, dst)
	}
	return messaging.DecodeJSON(raw, dst)
}

// holdsInterface reports whether decoding into t can produce interface
// values, where numbers would become float64 without UseNumber. Types
// nested deeper than it looks (or recursive ones) count as holding one.
func holdsInterface(t reflect.Type) bool { return holdsInterfaceDepth(t, 8) }

func holdsInterfaceDepth(t reflect.Type, depth int) bool {
	if t == nil {
		return false
	}
	if depth == 0 {
		return true
	}
	switch t.Kind() {
	case reflect.Interface:
		return true
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return holdsInterfaceDepth(t.Elem(), depth-1)
	case reflect.Map:
		return holdsInterfaceDepth(t.Key(), depth-1) || holdsInterfaceDepth(t.Elem(), depth-1)
	case reflect.Struct:
		for i := range t.NumField() {
			if holdsInterfaceDepth(t.Field(i).Type, depth-1) {
				return true
			}
		}
	}
	return false
}

// encodeArgs marshals call arguments, which must form a JSON object (oslo
// passes them as keyword arguments). nil is {}.
func encodeArgs(args any) (json.RawMessage, error) {
	if args == nil {
		return json.RawMessage("{}"), nil
	}
	raw, err := json.Marshal(args)
	if err != nil {
		return nil, err
	}
	trimmed := bytes.TrimSpace(raw)
	if string(trimmed) == "null" {
		return json.RawMessage("{}"), nil
	}
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, fmt.Errorf("arguments must encode to a JSON object (keyword arguments), not %.20s", trimmed)
	}
	return raw, nil
}

// isJSONObject reports whether raw is a JSON object.
func isJSONObject(raw []byte) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{'
}

// flatCodecs keeps, by Go type, the codecs of package flatjson for the
// flat structs a client sends as arguments and decodes results into, so
// that those skip encoding/json's reflection and double scan; a type that
// is not flat maps to nil and takes encoding/json.
type flatCodecs struct {
	encoders sync.Map // reflect.Type → *flatjson.StructEncoder
	decoders sync.Map // reflect.Type → *flatjson.StructDecoder
}

func (c *flatCodecs) encoder(t reflect.Type) *flatjson.StructEncoder {
	if e, ok := c.encoders.Load(t); ok {
		return e.(*flatjson.StructEncoder)
	}
	e, _ := c.encoders.LoadOrStore(t, flatjson.NewStructEncoder(t))
	return e.(*flatjson.StructEncoder)
}

func (c *flatCodecs) decoder(t reflect.Type) *flatjson.StructDecoder {
	if d, ok := c.decoders.Load(t); ok {
		return d.(*flatjson.StructDecoder)
	}
	d, _ := c.decoders.LoadOrStore(t, flatjson.NewStructDecoder(t))
	return d.(*flatjson.StructDecoder)
}

// encodeArgs is encodeArgs, through a flat struct's encoder where args
// is one (or a pointer to one).
func (c *flatCodecs) encodeArgs(args any) (json.RawMessage, error) {
	v := reflect.ValueOf(args)
	if v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	if v.Kind() == reflect.Struct {
		if e := c.encoder(v.Type()); e != nil {
			if raw, ok := e.Append(make([]byte, 0, 128), v); ok {
				return raw, nil
			}
		}
	}
	return encodeArgs(args)
}

// decodeResult is decodeInto for a call's result, through package
// flatjson where dst points to a scalar or to a flat struct still zero
// (flatjson decodes into a zero value only: encoding/json keeps the fields
// a result does not name).
func (c *flatCodecs) decodeResult(raw []byte, dst any) error {
	if flatjson.DecodeScalar(raw, dst) {
		return nil
	}
	if v := reflect.ValueOf(dst).Elem(); v.Kind() == reflect.Struct {
		if d := c.decoder(v.Type()); d != nil && v.IsZero() {
			if d.Decode(raw, v) {
				return nil
			}
			v.SetZero()
		}
	}
	return decodeInto(raw, dst)
}
