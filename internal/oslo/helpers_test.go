package oslo

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"testing"
)

// The helpers below use encoding/json as an independent oracle.

// keysOf returns the top-level keys of a JSON object, in order.
func keysOf(t testing.TB, msg []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(msg))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object: %s (%v)", msg, err)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("reading key of %s: %v", msg, err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatalf("reading value of %s: %v", msg, err)
		}
	}
	return keys
}

// sameKeys reports whether two key lists hold the same keys, in any order.
func sameKeys(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// jsonValue decodes JSON text keeping numbers as their text.
func jsonValue(t testing.TB, data []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("not JSON: %q: %v", data, err)
	}
	return v
}

// assertJSONEqual fails unless a and b hold the same JSON value, numbers
// compared by their text.
func assertJSONEqual(t testing.TB, got, want []byte) {
	t.Helper()
	if g, w := jsonValue(t, got), jsonValue(t, want); !reflect.DeepEqual(g, w) {
		t.Errorf("JSON differs:\n got %s\nwant %s", got, want)
	}
}

// raw is shorthand for a json.RawMessage literal.
func raw(s string) json.RawMessage { return json.RawMessage(s) }

// ctx builds a context map from key/value pairs.
func ctx(kv ...string) map[string]json.RawMessage {
	m := make(map[string]json.RawMessage, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = raw(kv[i+1])
	}
	return m
}

func seconds(f float64) *float64 { return &f }
