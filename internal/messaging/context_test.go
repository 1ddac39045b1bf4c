package messaging_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/switchyard-mq/switchyard/internal/messaging"
)

func TestRequestContextTravelsAsACopy(t *testing.T) {
	rc := messaging.RequestContext{"user": "alice"}
	ctx := messaging.WithRequestContext(context.Background(), rc)
	rc["user"] = "mallory"
	if got := messaging.RequestContextFrom(ctx); got["user"] != "alice" {
		t.Errorf("RequestContextFrom = %v, want the copy made by WithRequestContext", got)
	}
	if got := messaging.RequestContextFrom(context.Background()); got != nil {
		t.Errorf("RequestContextFrom(a context without one) = %v, want nil", got)
	}
}

// TestRequestContextWire: what a context becomes on the wire, and what a
// received one decodes to, numbers keeping their text.
func TestRequestContextWire(t *testing.T) {
	tests := []struct {
		name string
		rc   messaging.RequestContext
		wire map[string]json.RawMessage
	}{
		{"empty", nil, nil},
		{"strings and lists", messaging.RequestContext{"request_id": "req-1", "roles": []any{"admin"}},
			map[string]json.RawMessage{"request_id": json.RawMessage(`"req-1"`), "roles": json.RawMessage(`["admin"]`)}},
		{"numbers keep their text", messaging.RequestContext{"big": json.Number("9223372036854775807"), "float": json.Number("2.0")},
			map[string]json.RawMessage{"big": json.RawMessage(`9223372036854775807`), "float": json.RawMessage(`2.0`)}},
		{"null and booleans", messaging.RequestContext{"is_admin": true, "user": nil},
			map[string]json.RawMessage{"is_admin": json.RawMessage(`true`), "user": json.RawMessage(`null`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wire, err := messaging.EncodeRequestContext(tt.rc)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(wire, tt.wire) {
				t.Errorf("EncodeRequestContext = %s, want %s", wire, tt.wire)
			}
			rc, err := messaging.DecodeRequestContext(tt.wire)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(rc, tt.rc) {
				t.Errorf("DecodeRequestContext = %#v, want %#v", rc, tt.rc)
			}
		})
	}
}

func TestRequestContextWireErrorsNameTheKey(t *testing.T) {
	if _, err := messaging.EncodeRequestContext(messaging.RequestContext{"fn": func() {}}); err == nil || !strings.Contains(err.Error(), `"fn"`) {
		t.Errorf("encoding a function: %v, want an error naming the key", err)
	}
	if _, err := messaging.DecodeRequestContext(map[string]json.RawMessage{"bad": json.RawMessage(`{`)}); err == nil || !strings.Contains(err.Error(), `"bad"`) {
		t.Errorf("decoding broken JSON: %v, want an error naming the key", err)
	}
}

func TestDecodeJSON(t *testing.T) {
	tests := []struct {
		raw     string
		want    any
		wantErr bool
	}{
		{`1`, json.Number("1"), false},
		{` {"a": [2.0]} `, map[string]any{"a": []any{json.Number("2.0")}}, false},
		{`"s"`, "s", false},
		{`1 2`, nil, true},
		{`{`, nil, true},
		{``, nil, true},
	}
	for _, tt := range tests {
		var got any
		err := messaging.DecodeJSON([]byte(tt.raw), &got)
		if (err != nil) != tt.wantErr || (err == nil && !reflect.DeepEqual(got, tt.want)) {
			t.Errorf("DecodeJSON(%q) = %#v, %v; want %#v, error %v", tt.raw, got, err, tt.want, tt.wantErr)
		}
	}
}
