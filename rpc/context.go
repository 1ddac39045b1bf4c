package rpc

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
)

// RequestContext is oslo.messaging's request context: a dictionary that
// travels with every request and notification (request_id, user_id,
// project_id, roles, ...). It goes on the wire as one _context_<key> entry
// per key, each value as JSON. Numbers a peer sends arrive as json.Number,
// so they keep their exact text when passed on.
type RequestContext map[string]any

type requestContextKey struct{}

// WithRequestContext returns a copy of ctx that carries rc: calls, casts
// and notifications made with it send rc, and handlers find the caller's
// with RequestContextFrom.
func WithRequestContext(ctx context.Context, rc RequestContext) context.Context {
	return context.WithValue(ctx, requestContextKey{}, maps.Clone(rc))
}

// RequestContextFrom returns the request context ctx carries, or nil. In a
// handler it is the caller's. The map is the caller's own copy: modifying
// it changes what this handler passes on, not what the caller sent.
func RequestContextFrom(ctx context.Context) RequestContext {
	rc, _ := ctx.Value(requestContextKey{}).(RequestContext)
	return rc
}

// EncodeRequestContext marshals each value of rc for the wire.
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
// json.Number.
func DecodeRequestContext(wire map[string]json.RawMessage) (RequestContext, error) {
	if len(wire) == 0 {
		return nil, nil
	}
	rc := make(RequestContext, len(wire))
	for k, raw := range wire {
		v, err := decodeAny(raw)
		if err != nil {
			return nil, fmt.Errorf("request context key %q: %w", k, err)
		}
		rc[k] = v
	}
	return rc, nil
}
