package oslo

import (
	"bytes"
	"fmt"
)

// EnvelopeVersion is the envelope version Wrap writes. Unwrap accepts the
// versions compatible with it: major 2, minor 0, revision (if any) 0.
const EnvelopeVersion = "2.0"

// The two keys of a 2.0 envelope.
const (
	versionKey = "oslo.version"
	messageKey = "oslo.message"
)

// The parts of a 2.0 body around the escaped message, with Python's separators.
const (
	envelopeHead = `{"oslo.version": "2.0", "oslo.message": "`
	envelopeTail = `"}`
)

// Wrap returns the 2.0 body that carries msg, the JSON text of a message:
//
//	{"oslo.version": "2.0", "oslo.message": "<msg as a JSON string>"}
//
// msg must be a JSON object. See the package doc, Envelope.
func Wrap(msg []byte) ([]byte, error) {
	if err := checkObject(msg); err != nil {
		return nil, malformed("message to wrap: %w", err)
	}
	return appendWrapped(nil, msg), nil
}

// scratchSize is the size of the stack buffers the Wrap functions write a
// message's JSON text in: the text is only read to escape it into the body,
// so it need not be on the heap. Most RPC messages fit; a bigger one gets a
// heap buffer, as from the Encode functions.
const scratchSize = 1024

// buffer returns buf, emptied, if it can hold n bytes, and a new buffer that
// can otherwise.
func buffer(buf []byte, n int) []byte {
	if cap(buf) < n {
		return make([]byte, 0, n)
	}
	return buf[:0]
}

// appendWrapped appends the 2.0 body carrying msg, which must be valid JSON.
func appendWrapped(dst, msg []byte) []byte {
	// Quotes and backslashes are most of what gets escaped; counting them
	// sizes the body exactly in the common case.
	n := len(envelopeHead) + len(msg) + bytes.Count(msg, []byte{'"'}) +
		bytes.Count(msg, []byte{'\\'}) + len(envelopeTail)
	if dst == nil {
		dst = make([]byte, 0, n)
	}
	dst = append(dst, envelopeHead...)
	dst = appendStringBody(dst, msg)
	return append(dst, envelopeTail...)
}

// Unwrap returns the JSON text of the message a body carries. For a 2.0
// envelope (an object with both oslo.version and oslo.message) that is the
// decoded oslo.message string, in new memory. An object lacking either key is
// the message itself (format 1.0) and is returned as is, sharing body's memory.
//
// Errors wrap ErrVersion for an oslo.version that is not compatible with
// "2.0" ("2.1", "3.0" and "1.0" are not), and ErrMalformed for anything else:
// a body that is not a JSON object, an oslo.message that is not a string, or
// one whose text is not a JSON object. See the package doc, Envelope.
func Unwrap(body []byte) ([]byte, error) {
	msg, enveloped, err := unwrap(body, false)
	if err != nil {
		return nil, err
	}
	if enveloped {
		if err := checkObject(msg); err != nil {
			return nil, malformed("%s: %w", messageKey, err)
		}
	}
	return msg, nil
}

// unwrap is Unwrap without the check of the enveloped message, which the
// decoders make anyway. enveloped reports a 2.0 body (msg is then new memory).
// lenient lets a 1.0 message through with NaN in it, for a decoder to name.
func unwrap(body []byte, lenient bool) (msg []byte, enveloped bool, err error) {
	r, err := readObject(body, lenient)
	if err != nil {
		return nil, false, malformed("body: %w", err)
	}
	r.unquoteKey = messageKey
	var version, message []byte
	var unquoted bool
	var m member
	for {
		ok, err := r.next(&m)
		if err != nil {
			return nil, false, malformed("body: %w", err)
		}
		if !ok {
			break
		}
		// Python's dict keeps the last of duplicate keys; so do we.
		switch string(m.name()) {
		case versionKey:
			version = m.value
		case messageKey:
			message, unquoted = m.value, m.unquoted
		}
	}
	if version == nil || message == nil {
		return body, false, nil
	}
	if err := checkVersion(version); err != nil {
		return nil, false, err
	}
	if message[0] != '"' {
		return nil, false, malformed("%s is %s, want a string holding the message's JSON text", messageKey, kindName(message))
	}
	if !unquoted { // its key was written with an escape
		return appendUnquoted(make([]byte, 0, len(message)-2), message[1:len(message)-1]), true, nil
	}
	return r.unquoted, true, nil
}

// checkVersion applies oslo's version_is_compatible("2.0", v) to the JSON
// value of oslo.version: v must read MAJOR.MINOR[.REV[...]] with major 2 and
// minor and revision 0. Python's int() also takes signs, spaces and
// underscores in each part; only digits are taken here.
func checkVersion(value []byte) error {
	if string(value) == `"`+EnvelopeVersion+`"` {
		return nil // what every peer sends
	}
	if value[0] != '"' {
		return fmt.Errorf("%w: %s is %s, want a string such as %q", ErrVersion, versionKey, kindName(value), EnvelopeVersion)
	}
	v := unquote(value[1 : len(value)-1])
	parts := bytes.SplitN([]byte(v), []byte{'.'}, 4)
	if len(parts) < 2 {
		return fmt.Errorf("%w: %s %q is not MAJOR.MINOR", ErrVersion, versionKey, v)
	}
	if len(parts) > 3 {
		parts = parts[:3] // Python never looks past the revision
	}
	for _, p := range parts {
		if len(p) == 0 || len(bytes.Trim(p, "0123456789")) != 0 {
			return fmt.Errorf("%w: %s %q is not made of decimal numbers", ErrVersion, versionKey, v)
		}
	}
	major := bytes.TrimLeft(parts[0], "0")
	if string(major) != "2" || !allZero(parts[1]) || len(parts) == 3 && !allZero(parts[2]) {
		return fmt.Errorf("%w: %s %q is not compatible with %q", ErrVersion, versionKey, v, EnvelopeVersion)
	}
	return nil
}

func allZero(digits []byte) bool { return len(bytes.TrimLeft(digits, "0")) == 0 }

// checkObject reports whether data is exactly one JSON object (NaN refused).
func checkObject(data []byte) error {
	if err := checkValid(data); err != nil {
		return err
	}
	if v := bytes.TrimLeft(data, " \t\r\n"); v[0] != '{' {
		return &syntaxError{msg: fmt.Sprintf("got %s, want a JSON object", kindName(v))}
	}
	return nil
}
