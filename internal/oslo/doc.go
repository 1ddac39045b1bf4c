// Package oslo encodes and decodes the messages of OpenStack's oslo.messaging
// (release 14, rabbit driver) byte for byte, and holds its naming rules, so that
// Switchyard's rpc and notify packages interoperate with Python peers on every
// backend. It is pure: no I/O and no package-level state; only the id
// generators read crypto/rand.
//
// The format is what oslo.messaging 14's rabbit driver puts on the wire,
// as its modules write it (oslo_messaging/_drivers/impl_rabbit.py,
// amqpdriver.py, common.py and the notify package), checked against frames
// captured between real oslo.messaging programs and RabbitMQ; the golden
// tests hold captured examples.
//
// # Envelope
//
// A body is a JSON object. In format 2.0 it has exactly two keys:
//
//	{"oslo.version": "2.0", "oslo.message": "<the message's JSON text, as a string>"}
//
// [Wrap] builds it and [Unwrap] opens it. An object that lacks either key is
// the message itself (format 1.0, used by v1 notifications) and is accepted
// too.
//
// # Messages
//
// A message is a flat JSON object: a [Request] (call or cast), a [Reply] (also
// the call-monitor heartbeat) or a [Notification]. The caller's request context
// travels as one top-level key "_context_<k>" per entry. A reply's [Failure] is
// JSON text inside a JSON string, so inside a 2.0 body it is encoded three
// times. EncodeX returns a message's JSON text and WrapX a ready 2.0 body;
// DecodeX and UnwrapX do the reverse.
//
// Encoders write every key Python writes, in Python's order and with Python's
// ", " and ": " separators (context entries sorted by key), and refuse what a
// Python peer would fail on: args that are not an object, a call without a
// reply queue, a missing _unique_id. Non-ASCII text is written as raw UTF-8,
// which Python accepts, rather than as Python's \uXXXX escapes.
//
// Decoders keep every value they do not interpret (args, result, payload,
// context values, failure args and kwargs) as a json.RawMessage holding the
// exact text received, so 2**63-1 stays exact and 2.0 stays a float for the
// Python peer. They follow Python where it is liberal: unknown keys are
// ignored, the last of duplicate keys wins, keys match case-sensitively. When
// a message is readable but one of its keys is wrong, they return the message
// together with the error, so that a server can still answer a call with a
// failure (as Python does for null args) and a client can fail a call at once
// instead of timing out.
//
// Python writes non-finite floats as the bare words NaN, Infinity and
// -Infinity, which are not JSON: they are refused with [ErrMalformed] naming
// the key that holds one, rather than rewritten, because any rewrite would
// change the value. Text is decoded as encoding/json decodes it: a lone UTF-16
// surrogate escape becomes U+FFFD, and so does each byte of invalid UTF-8,
// raw values included (Python never sends invalid UTF-8).
//
// # Naming
//
// [ServerQueue], [FanoutExchange], [FanoutQueue], [ReplyQueue] and
// [NotificationKey] give the exchange, queue and routing-key names of the
// rabbit driver; [NewID] and [NewDashedID] make the uuid4 ids of messages and
// queue names; the Default constants are oslo's defaults.
//
// # Tracebacks
//
// A [Failure]'s Traceback is what Python's traceback.format_exception
// writes; [TracebackHeader], [TracebackFrame], [ExceptionLine] and
// [CauseSeparator] write its lines the same way, so that a traceback a Go
// server sends has the shape of a Python server's.
package oslo
