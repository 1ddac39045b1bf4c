package oslo

import (
	"bytes"
	"encoding/json"
)

// Notification is an event a notifier publishes to the key N.p of its
// control exchange (oslo_messaging/notify/messaging.py). The messaging driver (v1)
// sends its JSON text as the body; messagingv2 wraps it in the 2.0 envelope.
//
// On the wire it has the keys message_id, publisher_id, event_type, priority,
// payload, timestamp and _unique_id, then one _context_<k> key per context
// entry.
type Notification struct {
	// MessageID is a uuid4 with dashes (NewDashedID), passed to listeners
	// in their metadata.
	MessageID string

	// PublisherID names the sender, e.g. "compute.host1".
	PublisherID string

	// EventType names the event, e.g. "compute.instance.create.end".
	EventType string

	// Priority picks the listener's handler; it is sent upper-case (INFO).
	Priority Priority

	// Payload is the event's JSON value; nil is sent as null. Decoding
	// reads null as nil.
	Payload json.RawMessage

	// Timestamp is the naive UTC time of the event as Python's str(datetime)
	// writes it (FormatTimestamp). Listeners get it as a string, unparsed.
	Timestamp string

	// UniqueID, a NewID, is new for every published message: listeners drop
	// repeats of the last ids they acked.
	UniqueID string

	// Context is the request context, one _context_<k> key per entry. A 14.x
	// notifier sends only the keys FilterNotificationContext keeps; encoding
	// sends whatever it is given.
	Context map[string]json.RawMessage
}

// EncodeNotification returns the JSON text of n: the body of a v1
// notification, and the message of a v2 one (see WrapNotification). Errors
// wrap ErrMalformed: no MessageID, no UniqueID, a Priority that is not one
// of the seven words (in any case), or a Payload or context value that is
// not JSON.
func EncodeNotification(n *Notification) ([]byte, error) {
	return n.encode(nil)
}

// encode is EncodeNotification, writing in buf if it is big enough.
func (n *Notification) encode(buf []byte) ([]byte, error) {
	p, err := n.check()
	if err != nil {
		return nil, err
	}
	var stack [16]contextEntry
	context, size, err := sortedContext(stack[:0], n.Context)
	if err != nil {
		return nil, err
	}
	return n.appendJSON(buffer(buf, n.sizeHint()+size), p, context), nil
}

// WrapNotification returns the 2.0 body of n, as the messagingv2 driver
// sends it: Wrap(EncodeNotification(n)).
func WrapNotification(n *Notification) ([]byte, error) {
	var scratch [scratchSize]byte
	msg, err := n.encode(scratch[:0])
	if err != nil {
		return nil, err
	}
	return appendWrapped(nil, msg), nil
}

// check validates n and returns its priority, canonical.
func (n *Notification) check() (Priority, error) {
	switch {
	case n == nil:
		return "", malformed("notification is nil")
	case n.MessageID == "":
		return "", malformed("notification has no MessageID (use NewDashedID)")
	case n.UniqueID == "":
		return "", malformed("notification %s has no UniqueID (use NewID)", n.MessageID)
	}
	p, err := ParsePriority(string(n.Priority))
	if err != nil {
		return "", err
	}
	if err := checkRaw(n.Payload, "notification payload"); err != nil {
		return "", err
	}
	return p, nil
}

// sizeHint estimates the length of n's JSON text without its context.
func (n *Notification) sizeHint() int {
	return 160 + len(n.MessageID) + len(n.PublisherID) + len(n.EventType) +
		len(n.Payload) + len(n.Timestamp) + len(n.UniqueID)
}

// appendJSON appends n's JSON text, keys in Python's order, with priority p
// and the sorted context.
func (n *Notification) appendJSON(b []byte, p Priority, context []contextEntry) []byte {
	b = append(b, `{"message_id": `...)
	b = appendString(b, n.MessageID)
	b = append(b, `, "publisher_id": `...)
	b = appendString(b, n.PublisherID)
	b = append(b, `, "event_type": `...)
	b = appendString(b, n.EventType)
	b = append(b, `, "priority": `...)
	b = appendString(b, p.Wire())
	b = append(b, `, "payload": `...)
	b = appendRaw(b, n.Payload)
	b = append(b, `, "timestamp": `...)
	b = appendString(b, n.Timestamp)
	b = append(b, `, "_unique_id": `...)
	b = appendString(b, n.UniqueID)
	b = appendContext(b, context)
	return append(b, '}')
}

// DecodeNotification decodes the JSON text of a notification: a v1 body, or
// what Unwrap returns for a v2 one. The priority is read case-insensitively,
// as a Python listener does. The notification does not share msg's memory.
//
// Errors wrap ErrMalformed. If msg is not a JSON object the notification is
// nil. If only a key is wrong (priority missing or not one of the seven
// words, NaN in payload, a string key holding a number, ...), the
// notification is returned too with that field left empty; an unknown
// priority word is kept in Priority so that it can be logged, as Python
// logs it before dropping the message.
func DecodeNotification(msg []byte) (*Notification, error) {
	return decodeNotification(ownedCopy(msg))
}

// UnwrapNotification decodes a notification from a body, v2 or v1:
// DecodeNotification of Unwrap(body), in one pass. Errors and partial
// results are DecodeNotification's, plus Unwrap's ErrVersion. The
// notification does not share body's memory.
func UnwrapNotification(body []byte) (*Notification, error) {
	msg, enveloped, err := unwrap(body, true)
	if err != nil {
		return nil, err
	}
	if !enveloped {
		msg = ownedCopy(msg)
	}
	return decodeNotification(msg)
}

// decodeNotification decodes msg, which it owns (raw values share its
// memory) and which is valid UTF-8 (see ownedCopy).
func decodeNotification(msg []byte) (*Notification, error) {
	rd, err := readObject(msg, true)
	if err != nil {
		return nil, malformed("notification: %w", err)
	}
	var messageID, publisherID, eventType, priority, payload, timestamp, uniqueID member
	var stack [16]member
	ctx := stack[:0]
	ctxNonFinite := false
	var m member
	for {
		ok, err := rd.next(&m)
		if err != nil {
			return nil, malformed("notification: %w", err)
		}
		if !ok {
			break
		}
		name := m.name()
		switch string(name) {
		case "message_id":
			messageID = m
		case "publisher_id":
			publisherID = m
		case "event_type":
			eventType = m
		case "priority":
			priority = m
		case "payload":
			payload = m
		case "timestamp":
			timestamp = m
		case uniqueIDKey:
			uniqueID = m
		default:
			if bytes.HasPrefix(name, []byte(contextPrefix)) {
				m.key, m.keyEscaped = name[len(contextPrefix):], false
				ctx = append(ctx, m)
				ctxNonFinite = ctxNonFinite || m.nonFinite
			}
		}
	}

	n := new(Notification)
	var strs stringArena
	size := len(messageID.value) + len(publisherID.value) + len(eventType.value) +
		len(priority.value) + len(timestamp.value) + len(uniqueID.value)
	for i := range ctx {
		size += len(ctx[i].key)
	}
	strs.reserve(size)
	var errs fieldErrors
	var e error
	n.MessageID, e = optionalString(&strs, &messageID, "notification message_id")
	errs.add(e)
	n.PublisherID, e = optionalString(&strs, &publisherID, "notification publisher_id")
	errs.add(e)
	n.EventType, e = optionalString(&strs, &eventType, "notification event_type")
	errs.add(e)
	switch {
	case priority.value == nil:
		errs.add(malformed("notification has no priority"))
	case !priority.isString():
		errs.add(malformed("notification priority is %s, want a string", kindName(priority.value)))
	default:
		word := strs.string(priority.value)
		if n.Priority, e = ParsePriority(word); e != nil {
			n.Priority = Priority(word)
			errs.add(e)
		}
	}
	switch {
	case payload.value == nil || payload.isNull():
	case payload.nonFinite:
		errs.add(nonFiniteError("notification payload"))
	default:
		n.Payload = payload.value
	}
	n.Timestamp, e = optionalString(&strs, &timestamp, "notification timestamp")
	errs.add(e)
	n.UniqueID, e = optionalString(&strs, &uniqueID, "notification _unique_id")
	errs.add(e)
	if len(ctx) > 0 {
		n.Context = make(map[string]json.RawMessage, len(ctx))
		for i := range ctx {
			n.Context[strs.bytes(ctx[i].key)] = ctx[i].value
		}
		if ctxNonFinite {
			errs.add(contextNonFinite("notification", n.Context))
		}
	}
	return n, errs.first
}
