package rpc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"

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
