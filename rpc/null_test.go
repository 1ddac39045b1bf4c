package rpc_test

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestNullResult: a null result decodes as encoding/json decodes null: an
// interface, map, slice or pointer becomes nil, other types keep their
// value.
func TestNullResult(t *testing.T) {
	client, target := startFailer(t, nil)
	seven := 7
	tests := []struct {
		name   string
		result func() any // a pointer holding a previous value
		want   any        // what it points to after the call
	}{
		{"any", func() any { v := any("previous"); return &v }, nil},
		{"map", func() any { v := map[string]any{"k": 1}; return &v }, map[string]any(nil)},
		{"slice", func() any { v := []int{1}; return &v }, []int(nil)},
		{"pointer", func() any { v := &seven; return &v }, (*int)(nil)},
		{"raw_message", func() any { v := json.RawMessage(`1`); return &v }, json.RawMessage("null")},
		{"int", func() any { v := 3; return &v }, 3},
		{"string", func() any { v := "kept"; return &v }, "kept"},
		{"struct", func() any { v := struct{ A int }{1}; return &v }, struct{ A int }{1}},
	}
	for _, method := range []string{"nothing", "done"} {
		for _, tt := range tests {
			t.Run(method+"/"+tt.name, func(t *testing.T) {
				result := tt.result()
				if err := client.Call(testCtx(t), target, method, nil, result); err != nil {
					t.Fatal(err)
				}
				if got := reflect.ValueOf(result).Elem().Interface(); !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("after a null result: %#v, want %#v", got, tt.want)
				}
				// encoding/json agrees.
				again := tt.result()
				if err := json.Unmarshal([]byte("null"), again); err != nil || !reflect.DeepEqual(reflect.ValueOf(again).Elem().Interface(), tt.want) {
					t.Fatalf("encoding/json decodes null into %T as %#v", again, reflect.ValueOf(again).Elem().Interface())
				}
			})
		}
	}
}
