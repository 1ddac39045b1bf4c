package rpc

import (
	"context"

	"github.com/switchyard-mq/switchyard/internal/messaging"
)

// RequestContext is oslo.messaging's request context: a dictionary that
// travels with every request and notification (request_id, user_id,
// project_id, roles, ...). It goes on the wire as one _context_<key> entry
// per key, each value as JSON. Numbers a peer sends arrive as json.Number,
// so they keep their exact text when passed on. It is the same type as
// notify.RequestContext.
type RequestContext = messaging.RequestContext

// WithRequestContext returns a copy of ctx that carries rc: calls, casts
// and notifications made with it send rc, and handlers find the caller's
// with RequestContextFrom.
func WithRequestContext(ctx context.Context, rc RequestContext) context.Context {
	return messaging.WithRequestContext(ctx, rc)
}

// RequestContextFrom returns the request context ctx carries, or nil. In a
// handler it is the caller's. The map is the caller's own copy: modifying
// it changes what this handler passes on, not what the caller sent.
func RequestContextFrom(ctx context.Context) RequestContext {
	return messaging.RequestContextFrom(ctx)
}
