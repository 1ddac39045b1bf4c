package rpc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

// profile is not flat (it embeds a struct and holds one), so its
// arguments and results take encoding/json.
type profile struct {
	flatProfile
	Tags struct{} `json:"tags"`
}

// flatProfile is a flat struct, which arguments and results take a fast
// path for; the test below checks that path against encoding/json.
type flatProfile struct {
	ID    int64   `json:"id"`
	Name  string  `json:"name"`
	Admin bool    `json:"admin,omitempty"`
	Score float64 `json:"score"`
	Quota *uint16 `json:"quota"`
	Ratio float32 `json:"ratio,omitempty"`
	Note  string  `json:"-"`
}

// dynamicArgs holds an interface, which takes numbers as json.Number: a
// scalar in it takes the fast path, an object or array encoding/json.
type dynamicArgs struct {
	Value any `json:"value"`
	N     int `json:"n"`
}

type profiles struct{}

// Dynamic returns what its interface received, as a Go value: a number
// arrives as a json.Number.
func (profiles) Dynamic(_ context.Context, a dynamicArgs) (string, error) {
	return fmt.Sprintf("%T %v %d", a.Value, a.Value, a.N), nil
}

func (profiles) Flat(_ context.Context, p flatProfile) (flatProfile, error) { return p, nil }
func (profiles) Nested(_ context.Context, p profile) (profile, error)       { return p, nil }
func (profiles) Name(_ context.Context, p flatProfile) (string, error)      { return p.Name, nil }
func (profiles) Score(_ context.Context, p flatProfile) (float64, error)    { return p.Score, nil }

// TestArgumentsAndResultsAsEncodingJSON: arguments and results decode and
// encode exactly as encoding/json does them, whether the fast path for
// flat structs and scalars takes them or encoding/json: for each case the
// want is worked out with encoding/json alone.
func TestArgumentsAndResultsAsEncodingJSON(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr := open(t)
	startServer(t, tr, "profiles", profiles{})
	client, err := rpc.NewClient(tr, rpc.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	target := transport.Target{Topic: "profiles"}

	quota := uint16(7)
	tests := []struct {
		name   string
		method string
		args   any
		// result is where the result is decoded: a pointer, maybe to a
		// value already set (encoding/json keeps what a result omits).
		result func() any
	}{
		{"flat", "flat", flatProfile{ID: 1, Name: "ada", Admin: true, Score: 1.5, Quota: &quota, Ratio: 0.1}, func() any { return new(flatProfile) }},
		{"flat zero", "flat", flatProfile{}, func() any { return new(flatProfile) }},
		{"flat from a pointer", "flat", &flatProfile{ID: 2}, func() any { return new(flatProfile) }},
		{"flat into a struct already set", "flat", flatProfile{ID: 3}, func() any { return &flatProfile{Admin: true, Note: "kept", Ratio: 2} }},
		{"escapes and HTML", "flat", flatProfile{Name: "a\"b\\c <d> & é\n"}, func() any { return new(flatProfile) }},
		{"keys of another case", "flat", map[string]any{"ID": 4, "NAME": "x", "Score": 2e300}, func() any { return new(flatProfile) }},
		{"unknown and null keys", "flat", map[string]any{"id": 5, "quota": nil, "extra": map[string]any{"a": []int{1}}}, func() any { return new(flatProfile) }},
		{"large and exponent numbers", "flat", map[string]any{"id": int64(1) << 60, "score": 1e-9, "ratio": 3.4e38}, func() any { return new(flatProfile) }},
		{"not flat", "nested", profile{flatProfile: flatProfile{ID: 6, Name: "n", Note: "dropped"}}, func() any { return new(profile) }},
		{"string result", "name", flatProfile{Name: "<x>"}, func() any { return new(string) }},
		{"string result into any", "name", flatProfile{Name: "y"}, func() any { return new(any) }},
		{"float result", "score", flatProfile{Score: 1e21}, func() any { return new(float64) }},
		{"float result into an int", "score", flatProfile{Score: 3}, func() any { return new(int) }},
		{"float result an int cannot hold", "score", flatProfile{Score: 3.5}, func() any { return new(int) }},
		{"float result into a named type", "score", flatProfile{Score: 0.5}, func() any { return new(json.Number) }},
		{"a number into an interface", "dynamic", map[string]any{"value": json.Number("12345678901234567890.50"), "n": 1}, func() any { return new(string) }},
		{"a string into an interface", "dynamic", dynamicArgs{Value: "ping", N: 2}, func() any { return new(string) }},
		{"a bool into an interface", "dynamic", dynamicArgs{Value: true}, func() any { return new(string) }},
		{"null into an interface", "dynamic", dynamicArgs{Value: nil, N: 4}, func() any { return new(string) }},
		{"an object into an interface", "dynamic", dynamicArgs{Value: map[string]any{"a": 1.5}, N: 3}, func() any { return new(string) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, wantErr := encodingJSONRoundTrip(t, tt.method, tt.args, tt.result())
			got := tt.result()
			err := client.Call(ctx, target, tt.method, tt.args, got)
			if (err != nil) != wantErr {
				t.Fatalf("call: %v; encoding/json fails: %v", err, wantErr)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("result %#v, encoding/json gives %#v", reflect.ValueOf(got).Elem(), reflect.ValueOf(want).Elem())
			}
		})
	}
}

// encodingJSONRoundTrip works out with encoding/json alone what a call of
// method (which returns its argument, or one field of it) puts in result;
// true: a step fails.
func encodingJSONRoundTrip(t *testing.T, method string, args, result any) (any, bool) {
	t.Helper()
	raw, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	var returned any
	switch method {
	case "dynamic":
		var a dynamicArgs
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&a); err != nil {
			return result, true
		}
		returned = fmt.Sprintf("%T %v %d", a.Value, a.Value, a.N)
	case "nested":
		var p profile
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatal(err)
		}
		returned = p
	default:
		var p flatProfile
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatal(err)
		}
		returned = map[string]any{"flat": p, "name": p.Name, "score": p.Score}[method]
	}
	if raw, err = json.Marshal(returned); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // as a call decodes numbers into interface values
	return result, dec.Decode(result) != nil
}
