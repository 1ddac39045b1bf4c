package messaging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
)

// RequestContext is oslo.messaging's request context: a dictionary that
// travels with every request and notification (request_id, user_id,
// project_id, roles, ...). It goes on the wire as one _context_<key> entry
// per key, each value as JSON. Numbers a peer sends arrive as json.Number,
// so they keep their exact text when passed on.
type RequestContext map[string]any

// RequestContextKey is the context.Context key a RequestContext travels
// under. A context that carries one itself, without a context.WithValue
// layer (rpc's call and handler contexts), answers Value for it; everyone
// else uses WithRequestContext and RequestContextFrom.
type RequestContextKey struct{}

// WithRequestContext returns a copy of ctx that carries a copy of rc.
func WithRequestContext(ctx context.Context, rc RequestContext) context.Context {
	return context.WithValue(ctx, RequestContextKey{}, maps.Clone(rc))
}

// RequestContextFrom returns the request context ctx carries, or nil.
func RequestContextFrom(ctx context.Context) RequestContext {
	rc, _ := ctx.Value(RequestContextKey{}).(RequestContext)
	return rc
}

// EncodeRequestContext marshals each value of rc for the wire's _context_
// entries; an empty rc is nil.
func EncodeRequestContext(rc RequestContext) (map[string]json.RawMessage, error) {
	if len(rc) == 0 {
		return nil, nil
	}
	wire := make(map[string]json.RawMessage, len(rc))
	for k, v := range rc {
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("request context key %q: %w", k, err)
		}
		wire[k] = raw
	}
	return wire, nil
}

// DecodeRequestContext unmarshals a received context, keeping numbers as
// json.Number; an empty one is nil.
func DecodeRequestContext(wire map[string]json.RawMessage) (RequestContext, error) {
	if len(wire) == 0 {
		return nil, nil
	}
	rc := make(RequestContext, len(wire))
	for k, raw := range wire {
		var v any
		if err := DecodeJSON(raw, &v); err != nil {
			return nil, fmt.Errorf("request context key %q: %w", k, err)
		}
		rc[k] = v
	}
	return rc, nil
}

// errTrailingData: a JSON value followed by more than white space.
var errTrailingData = errors.New("unexpected data after the JSON value")

// DecodeJSON unmarshals the one JSON value in raw into dst, keeping the
// numbers it puts in interface values as json.Number, so that 2^63-1 and
// 2.0 reach a peer with the text they came with.
func DecodeJSON(raw []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(dst); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errTrailingData
	}
	return nil
}
