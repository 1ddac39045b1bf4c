package oslo

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Request is an RPC call or cast, the message a client sends to a server's
// topic queue (amqpdriver.py's send). It is a call when MsgID is set
// and a cast otherwise; a fanout cast has the same form as a cast.
//
// On the wire a call has the keys method, args, namespace and version (these
// two only when set), _msg_id, _reply_q, _timeout and _unique_id, then one
// _context_<k> key per context entry. A cast has no _msg_id, _reply_q or
// _timeout key at all.
type Request struct {
	// Method is the endpoint method to run.
	Method string

	// Args is the JSON object of keyword arguments. Nil is sent as {}, never
	// as null, which a Python server fails on. A decoded request always has
	// it: {} when the key was missing.
	Args json.RawMessage

	// Namespace and Version are the target's; empty means not sent (Python's
	// None; a server then takes version "1.0"). A decoded null reads as
	// empty too.
	Namespace string
	Version   string

	// MsgID, a NewID, makes the request a call: the reply carries it back.
	// It is empty for a cast.
	MsgID string

	// ReplyQ is the queue a call's reply is sent to, through the default
	// exchange (see ReplyQueue). Calls only; required for them.
	ReplyQ string

	// Timeout is the call-monitor timeout in seconds, the _timeout key. Nil
	// sends null, which tells the server not to send heartbeats; a Python
	// server sends one every int(Timeout)/2 seconds when that is at least 1.
	// Calls only; a cast has no _timeout key.
	Timeout *float64

	// UniqueID, a NewID, is new for every published message: the receiver
	// drops repeats of the last ids it saw. Encoders require it; a decoded
	// request lacking the key has it empty.
	UniqueID string

	// Context is the caller's request context. Each entry k travels as the
	// top-level key _context_<k> with its value unchanged (nil means null).
	// Encoders write the entries sorted by key.
	Context map[string]json.RawMessage
}

// IsCall reports whether the request expects a reply: it has a MsgID.
func (r *Request) IsCall() bool { return r.MsgID != "" }

// Keys of a request and of every message.
const (
	contextPrefix = "_context_"
	uniqueIDKey   = "_unique_id"
	msgIDKey      = "_msg_id"
)

// EncodeRequest returns the JSON text of r, as the message of a 2.0 body (see
// Wrap and WrapRequest). It refuses, with errors wrapping ErrMalformed, what
// a Python server cannot take: no Method, no UniqueID, Args that are not a
// JSON object (ErrArgsNotObject), a call without ReplyQ, a cast with ReplyQ
// or Timeout, a non-finite Timeout, or a context value that is not JSON.
func EncodeRequest(r *Request) ([]byte, error) {
	return r.encode(nil)
}

// encode is EncodeRequest, writing in buf if it is big enough.
func (r *Request) encode(buf []byte) ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	var stack [16]contextEntry
	context, size, err := sortedContext(stack[:0], r.Context)
	if err != nil {
		return nil, err
	}
	return r.appendJSON(buffer(buf, r.sizeHint()+size), context), nil
}

// WrapRequest returns the 2.0 body carrying r: Wrap(EncodeRequest(r)).
func WrapRequest(r *Request) ([]byte, error) {
	var scratch [scratchSize]byte
	msg, err := r.encode(scratch[:0])
	if err != nil {
		return nil, err
	}
	return appendWrapped(nil, msg), nil
}

func (r *Request) check() error {
	switch {
	case r == nil:
		return malformed("request is nil")
	case r.Method == "":
		return malformed("request has no method")
	case r.UniqueID == "":
		return malformed("request has no UniqueID (use NewID)")
	case r.MsgID == "" && (r.ReplyQ != "" || r.Timeout != nil):
		return malformed("cast (no MsgID) has a ReplyQ or Timeout; set MsgID to make a call")
	case r.MsgID != "" && r.ReplyQ == "":
		return malformed("call %s has no ReplyQ", r.MsgID)
	case r.Timeout != nil && (math.IsNaN(*r.Timeout) || math.IsInf(*r.Timeout, 0)):
		return malformed("call timeout %v is not a finite number", *r.Timeout)
	}
	if len(r.Args) > 0 {
		if err := checkValid(r.Args); err != nil {
			return malformed("request args: %w", err)
		}
		if v := bytes.TrimLeft(r.Args, " \t\r\n"); v[0] != '{' {
			return errorf(ErrArgsNotObject, "got %s", kindName(v))
		}
	}
	return nil
}

// contextEntry is one entry of a request context.
type contextEntry struct {
	key   string
	value json.RawMessage
}

// sortedContext validates the values of ctx and appends its entries to dst,
// sorted by key so that the output is deterministic. It also returns about
// how many bytes they take on the wire.
func sortedContext(dst []contextEntry, ctx map[string]json.RawMessage) ([]contextEntry, int, error) {
	size := 0
	for k, v := range ctx {
		if len(v) > 0 {
			if err := checkValid(v); err != nil {
				return nil, 0, malformed("context value %q: %w", k, err)
			}
		}
		dst = append(dst, contextEntry{k, v})
		size += len(`, "_context_": `) + len(k) + max(len(v), len("null")) + 2
	}
	slices.SortFunc(dst, func(a, b contextEntry) int { return strings.Compare(a.key, b.key) })
	return dst, size, nil
}

// sizeHint estimates the length of r's JSON text without its context, so
// that encoding allocates once in the common case.
func (r *Request) sizeHint() int {
	return 160 + len(r.Method) + len(r.Args) + len(r.Namespace) + len(r.Version) +
		len(r.MsgID) + len(r.ReplyQ) + len(r.UniqueID)
}

// appendJSON appends r's JSON text, keys in Python's order, with its sorted
// context.
func (r *Request) appendJSON(b []byte, context []contextEntry) []byte {
	b = append(b, `{"method": `...)
	b = appendString(b, r.Method)
	b = append(b, `, "args": `...)
	if len(r.Args) == 0 {
		b = append(b, "{}"...)
	} else {
		b = append(b, r.Args...)
	}
	if r.Namespace != "" {
		b = append(b, `, "namespace": `...)
		b = appendString(b, r.Namespace)
	}
	if r.Version != "" {
		b = append(b, `, "version": `...)
		b = appendString(b, r.Version)
	}
	if r.MsgID != "" {
		b = append(b, `, "_msg_id": `...)
		b = appendString(b, r.MsgID)
		b = append(b, `, "_reply_q": `...)
		b = appendString(b, r.ReplyQ)
		b = append(b, `, "_timeout": `...)
		if r.Timeout == nil {
			b = append(b, "null"...)
		} else {
			b = appendFloat(b, *r.Timeout)
		}
	}
	b = append(b, `, "_unique_id": `...)
	b = appendString(b, r.UniqueID)
	b = appendContext(b, context)
	return append(b, '}')
}

// appendContext appends one ", "_context_<k>": v" member per entry.
func appendContext(b []byte, context []contextEntry) []byte {
	for _, e := range context {
		b = append(b, `, "_context_`...)
		b = appendStringBody(b, e.key)
		b = append(b, `": `...)
		b = appendRaw(b, e.value)
	}
	return b
}

// DecodeRequest decodes the JSON text of a request (a 1.0 body, or what
// Unwrap returns). The returned request does not share msg's memory.
//
// It pops _msg_id, _reply_q, _timeout and _unique_id into their fields, moves
// the _context_<k> keys into Context and ignores unknown keys. As in Python,
// _reply_q and _timeout are ignored on a cast, and a missing args means {}.
//
// Errors wrap ErrMalformed. If msg is not a JSON object, or _msg_id or
// _reply_q is not a string, the request is nil. If only another key is wrong
// (method missing or not a string, args not an object, _timeout not a number,
// NaN in a value, a call without _reply_q, ...), the request is returned
// too, with that field left empty (Args keeps the wrong value), so that a
// server can still answer the call with a failure as Python does; for args
// the error wraps ErrArgsNotObject (see ArgsNotObject).
func DecodeRequest(msg []byte) (*Request, error) {
	return decodeRequest(ownedCopy(msg))
}

// UnwrapRequest decodes a request from a body, 2.0 or 1.0: DecodeRequest of
// Unwrap(body), in one pass. Errors and partial results are DecodeRequest's,
// plus Unwrap's ErrVersion. The request does not share body's memory.
func UnwrapRequest(body []byte) (*Request, error) {
	msg, enveloped, err := unwrap(body, true)
	if err != nil {
		return nil, err
	}
	if !enveloped {
		msg = ownedCopy(msg)
	}
	return decodeRequest(msg)
}

// requestAlloc holds a decoded request and its timeout in one allocation.
type requestAlloc struct {
	r       Request
	timeout float64
}

// requestMembers are the members of a request object, found by scan.
// Values are interpreted after the scan, so that the last of duplicate
// keys wins, as in Python.
type requestMembers struct {
	method, args, namespace, version, msgID, replyQ, timeout, uniqueID member
	ctxNonFinite                                                       bool // a "_context_" member holds NaN or an infinity
}

// scan reads msg's members into rm, and returns ctx with the "_context_"
// members appended, their prefix cut.
func (rm *requestMembers) scan(msg []byte, ctx []member) ([]member, error) {
	rd, err := readObject(msg, true)
	if err != nil {
		return nil, malformed("request: %w", err)
	}
	var m member
	for {
		ok, err := rd.next(&m)
		if err != nil {
			return nil, malformed("request: %w", err)
		}
		if !ok {
			return ctx, nil
		}
		name := m.name()
		switch string(name) {
		case "method":
			rm.method = m
		case "args":
			rm.args = m
		case "namespace":
			rm.namespace = m
		case "version":
			rm.version = m
		case msgIDKey:
			rm.msgID = m
		case "_reply_q":
			rm.replyQ = m
		case "_timeout":
			rm.timeout = m
		case uniqueIDKey:
			rm.uniqueID = m
		default:
			if bytes.HasPrefix(name, []byte(contextPrefix)) {
				m.key, m.keyEscaped = name[len(contextPrefix):], false
				ctx = append(ctx, m)
				rm.ctxNonFinite = rm.ctxNonFinite || m.nonFinite
			}
		}
	}
}

// decodeRequest decodes msg, which it owns (raw values share its memory)
// and which is valid UTF-8 (see ownedCopy).
func decodeRequest(msg []byte) (*Request, error) {
	var rm requestMembers
	var stack [16]member // the context members of most requests, without allocating
	ctx, err := rm.scan(msg, stack[:0])
	if err != nil {
		return nil, err
	}
	method, args, namespace, version, msgID, replyQ, timeout, uniqueID, ctxNonFinite :=
		&rm.method, &rm.args, &rm.namespace, &rm.version, &rm.msgID, &rm.replyQ, &rm.timeout, &rm.uniqueID, rm.ctxNonFinite

	a := new(requestAlloc)
	r := &a.r
	var strs stringArena
	n := len(method.value) + len(namespace.value) + len(version.value) +
		len(msgID.value) + len(replyQ.value) + len(uniqueID.value)
	for i := range ctx {
		n += len(ctx[i].key)
	}
	strs.reserve(n)
	// Without these two no reply can be sent: no partial request.
	if r.MsgID, err = optionalString(&strs, msgID, "request _msg_id"); err != nil {
		return nil, err
	}
	if r.ReplyQ, err = optionalString(&strs, replyQ, "request _reply_q"); err != nil {
		return nil, err
	}

	var errs fieldErrors
	if method.value == nil {
		errs.add(malformed("request has no method"))
	} else if !method.isString() {
		errs.add(malformed("request method is %s, want a string", kindName(method.value)))
	} else if r.Method = strs.string(method.value); r.Method == "" {
		errs.add(malformed("request method is empty"))
	}
	switch {
	case args.value == nil:
		r.Args = json.RawMessage("{}")
	case args.value[0] != '{':
		r.Args = args.value
		errs.add(errorf(ErrArgsNotObject, "got %s", kindName(args.value)))
	case args.nonFinite:
		errs.add(nonFiniteError("request args"))
	default:
		r.Args = args.value
	}
	var e error
	r.Namespace, e = optionalString(&strs, namespace, "request namespace")
	errs.add(e)
	r.Version, e = optionalString(&strs, version, "request version")
	errs.add(e)
	r.UniqueID, e = optionalString(&strs, uniqueID, "request _unique_id")
	errs.add(e)
	if r.MsgID == "" {
		r.ReplyQ = "" // Python pops both from a cast and never uses them
	} else {
		if r.ReplyQ == "" {
			errs.add(malformed("request call %s has no _reply_q", r.MsgID))
		}
		if timeout.value != nil && !timeout.isNull() {
			a.timeout, e = parseTimeout(timeout)
			if e == nil {
				r.Timeout = &a.timeout
			}
			errs.add(e)
		}
	}
	if len(ctx) > 0 {
		r.Context = make(map[string]json.RawMessage, len(ctx))
		for i := range ctx {
			r.Context[strs.bytes(ctx[i].key)] = ctx[i].value
		}
		if ctxNonFinite {
			errs.add(contextNonFinite("request", r.Context))
		}
	}
	if errs.first != nil {
		return r, errs.first
	}
	return r, nil
}

// fieldErrors keeps the first error about one key of a message.
type fieldErrors struct{ first error }

func (f *fieldErrors) add(err error) {
	if f.first == nil {
		f.first = err
	}
}

// optionalString reads a member that is a string or null (read as "").
// A missing member (nil value) reads as "" too. what names it in errors.
func optionalString(a *stringArena, m *member, what string) (string, error) {
	switch {
	case m.value == nil || m.isNull():
		return "", nil
	case m.isString():
		return a.string(m.value), nil
	}
	return "", malformed("%s is %s, want a string", what, kindName(m.value))
}

// parseTimeout reads _timeout, which must be a finite number.
func parseTimeout(m *member) (float64, error) {
	if m.nonFinite {
		return 0, nonFiniteError("request _timeout")
	}
	if c := m.value[0]; c != '-' && (c < '0' || c > '9') {
		return 0, malformed("request _timeout is %s, want a number of seconds or null", kindName(m.value))
	}
	f, err := strconv.ParseFloat(string(m.value), 64)
	if err != nil {
		return 0, malformed("request _timeout %s is out of range", m.value)
	}
	return f, nil
}

func nonFiniteError(what string) error {
	return malformed("%s holds NaN or Infinity, which Python writes but JSON cannot carry", what)
}

// contextNonFinite names the first context entry that holds NaN or Infinity.
// kind names the message in the error.
func contextNonFinite(kind string, ctx map[string]json.RawMessage) error {
	keys := make([]string, 0, len(ctx))
	for k, v := range ctx {
		if checkValid(v) != nil {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil // only an overridden duplicate held one
	}
	slices.Sort(keys)
	return nonFiniteError(kind + " context value " + strconv.Quote(keys[0]))
}
