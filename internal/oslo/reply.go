package oslo

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Reply is what a server sends back for a call, through the default exchange
// to the call's reply queue (amqpdriver.py's reply and heartbeat). It is also
// the call-monitor heartbeat: no result, no failure, Ending false.
//
// On the wire it always has the five keys result, failure, ending, _msg_id
// and _unique_id: a Python caller fails on a reply without failure, and waits
// until its timeout (or fails) on one without ending.
type Reply struct {
	// Result is the method's return value as JSON; nil is sent as null.
	// Decoding reads null as nil.
	Result json.RawMessage

	// Failure is the exception the method raised, or nil. It is sent as a
	// JSON string holding the failure's JSON text.
	Failure *Failure

	// Ending marks the last reply for MsgID. A 14.x server sends exactly one
	// reply with Ending true, after any heartbeats.
	Ending bool

	// EndingAbsent is set by decoding when the reply had no ending key, or
	// a null one, as some foreign peers send. Python reads that as false, so
	// such a reply never ends the call and, with a null result, counts as a
	// heartbeat. Encoders ignore it: they always write ending.
	EndingAbsent bool

	// MsgID is the _msg_id of the call answered.
	MsgID string

	// UniqueID, a NewID, is new for every reply, retries included.
	UniqueID string
}

// IsHeartbeat reports whether r is a call-monitor heartbeat: null result, no
// failure and Ending false. A Python caller restarts its call-monitor timer
// on one, and fails if it sent no _timeout, so send them only for calls whose
// Timeout is set.
func (r *Reply) IsHeartbeat() bool {
	return isNull(r.Result) && r.Failure == nil && !r.Ending
}

// isNull reports whether raw is JSON null or empty.
func isNull(raw []byte) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

// EncodeReply returns the JSON text of r, as the message of a 2.0 body (see
// Wrap and WrapReply). Errors wrap ErrMalformed: no MsgID, no UniqueID, a
// Result that is not JSON, or a Failure EncodeFailure refuses.
func EncodeReply(r *Reply) ([]byte, error) {
	return r.encode(nil)
}

// encode is EncodeReply, writing in buf if it is big enough.
func (r *Reply) encode(buf []byte) ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	var failure []byte
	if r.Failure != nil {
		// The failure's JSON text is only read to escape it into the
		// message: see scratchSize.
		var scratch [scratchSize]byte
		failure = r.Failure.appendJSON(buffer(scratch[:0], r.Failure.sizeHint()))
	}
	return r.appendJSON(buffer(buf, r.sizeHint(failure)), failure), nil
}

// WrapReply returns the 2.0 body carrying r: Wrap(EncodeReply(r)).
func WrapReply(r *Reply) ([]byte, error) {
	var scratch [scratchSize]byte
	msg, err := r.encode(scratch[:0])
	if err != nil {
		return nil, err
	}
	return appendWrapped(nil, msg), nil
}

// check validates r.
func (r *Reply) check() error {
	switch {
	case r == nil:
		return malformed("reply is nil")
	case r.MsgID == "":
		return malformed("reply has no MsgID")
	case r.UniqueID == "":
		return malformed("reply to %s has no UniqueID (use NewID)", r.MsgID)
	}
	if err := checkRaw(r.Result, "reply result"); err != nil {
		return err
	}
	if r.Failure != nil {
		return r.Failure.check()
	}
	return nil
}

func (r *Reply) sizeHint(failure []byte) int {
	n := 96 + len(r.Result) + len(r.MsgID) + len(r.UniqueID)
	if failure != nil {
		n += len(failure) + bytes.Count(failure, []byte{'"'}) + bytes.Count(failure, []byte{'\\'})
	}
	return n
}

// appendJSON appends r's JSON text, keys in Python's order; failure is the
// failure's JSON text, or nil.
func (r *Reply) appendJSON(b, failure []byte) []byte {
	b = append(b, `{"result": `...)
	b = appendRaw(b, r.Result)
	b = append(b, `, "failure": `...)
	if failure == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '"')
		b = appendStringBody(b, failure)
		b = append(b, '"')
	}
	b = append(b, `, "ending": `...)
	b = strconv.AppendBool(b, r.Ending)
	b = append(b, `, "_msg_id": `...)
	b = appendString(b, r.MsgID)
	b = append(b, `, "_unique_id": `...)
	b = appendString(b, r.UniqueID)
	return append(b, '}')
}

// DecodeReply decodes the JSON text of a reply (what Unwrap returns). The
// reply does not share msg's memory.
//
// It is liberal, as a caller must be with older or foreign servers: a
// missing result reads as null, a missing failure as none, a missing ending
// as false with EndingAbsent set, and a failure sent as a JSON object rather
// than a string is accepted. Any value Python reads as false (null, "", 0,
// [], {}) is no failure.
//
// Errors wrap ErrMalformed. If msg is not a JSON object, or _msg_id is not a
// string, the reply is nil. If only another key is wrong (NaN in result, a
// failure that does not decode, ending not a boolean, ...), the reply is
// returned too, with that field left empty, so that a caller can still fail
// the call MsgID names at once rather than time out.
func DecodeReply(msg []byte) (*Reply, error) {
	return decodeReply(ownedCopy(msg))
}

// UnwrapReply decodes a reply from a body, 2.0 or 1.0: DecodeReply of
// Unwrap(body), in one pass. Errors and partial results are DecodeReply's,
// plus Unwrap's ErrVersion. The reply does not share body's memory.
func UnwrapReply(body []byte) (*Reply, error) {
	msg, enveloped, err := unwrap(body, true)
	if err != nil {
		return nil, err
	}
	if !enveloped {
		msg = ownedCopy(msg)
	}
	return decodeReply(msg)
}

// decodeReply decodes msg, which it owns (raw values share its memory) and
// which is valid UTF-8 (see ownedCopy).
func decodeReply(msg []byte) (*Reply, error) {
	rd, err := readObject(msg, true)
	if err != nil {
		return nil, malformed("reply: %w", err)
	}
	var result, failure, ending, msgID, uniqueID member
	var m member
	for {
		ok, err := rd.next(&m)
		if err != nil {
			return nil, malformed("reply: %w", err)
		}
		if !ok {
			break
		}
		switch string(m.name()) {
		case "result":
			result = m
		case "failure":
			failure = m
		case "ending":
			ending = m
		case msgIDKey:
			msgID = m
		case uniqueIDKey:
			uniqueID = m
		}
	}

	r := new(Reply)
	var strs stringArena
	strs.reserve(len(msgID.value) + len(uniqueID.value))
	if r.MsgID, err = optionalString(&strs, &msgID, "reply _msg_id"); err != nil {
		return nil, err
	}
	var errs fieldErrors
	var e error
	r.UniqueID, e = optionalString(&strs, &uniqueID, "reply _unique_id")
	errs.add(e)
	switch {
	case result.value == nil || result.isNull():
	case result.nonFinite:
		errs.add(nonFiniteError("reply result"))
	default:
		r.Result = result.value
	}
	if failure.value != nil {
		r.Failure, e = replyFailure(&failure)
		errs.add(e)
	}
	switch {
	case ending.value == nil || ending.isNull():
		r.EndingAbsent = true
	case string(ending.value) == "true":
		r.Ending = true
	case string(ending.value) == "false":
	default:
		errs.add(malformed("reply ending is %s, want a boolean", kindName(ending.value)))
	}
	return r, errs.first
}

// replyFailure decodes a reply's failure value: a JSON string holding the
// failure's JSON text (or, tolerated, the object itself), or a value Python
// reads as false for no failure.
func replyFailure(m *member) (*Failure, error) {
	v := m.value
	switch v[0] {
	case '"':
		if len(v) == 2 {
			return nil, nil // "" is false in Python
		}
		return decodeFailure(appendUnquoted(make([]byte, 0, len(v)-2), v[1:len(v)-1]))
	case '{':
		if isEmptyContainer(v) {
			return nil, nil
		}
		return decodeFailure(v)
	case '[':
		if isEmptyContainer(v) {
			return nil, nil
		}
	case 'n', 'f':
		return nil, nil
	case 't':
	default: // a number, or NaN
		if f, _ := strconv.ParseFloat(string(v), 64); f == 0 {
			return nil, nil
		}
	}
	return nil, malformed("reply failure is %s, want a string holding the failure's JSON text", kindName(v))
}

// isEmptyContainer reports whether v, a validated object or array, is empty.
func isEmptyContainer(v []byte) bool {
	return len(bytes.TrimSpace(v[1:len(v)-1])) == 0
}
