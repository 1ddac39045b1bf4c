package rpc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// decodeAny decodes JSON keeping numbers as json.Number, so that 2^63-1
// and 2.0 reach a peer with the text they came with.
func decodeAny(raw []byte) (any, error) {
	var v any
	if err := decodeInto(raw, &v); err != nil {
		return nil, err
	}
	return v, nil
}

// decodeInto unmarshals raw into dst with numbers kept as json.Number
// where dst holds interface values, and refuses trailing data.
func decodeInto(raw []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(dst); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("unexpected data after the JSON value")
	}
	return nil
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
