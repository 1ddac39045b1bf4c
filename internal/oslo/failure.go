package oslo

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
)

// Failure is an exception raised by a server's method, as a reply carries it
// (oslo_messaging/_drivers/common.py, serialize_remote_exception). On the wire it is an object with the six keys
// class, module, message, tb, args and kwargs, encoded as JSON text inside the
// reply's failure string.
//
// A Python client rebuilds the exception when Module is "builtins" (or is in
// its allowed_remote_exmods) and raises oslo_messaging.RemoteError otherwise.
// For a native Python exception send Module "builtins", a built-in Class such
// as ValueError, one string in Args and no Kwargs (see NewFailure).
type Failure struct {
	// Class is the exception's class name, e.g. "ValueError".
	Class string
	// Module is the module that defines Class, e.g. "builtins".
	Module string
	// Message is str() of the exception.
	Message string
	// Traceback is the tb key: the traceback's lines, each ending in "\n".
	Traceback []string
	// Args are the exception's args; nil is sent as [].
	Args []json.RawMessage
	// Kwargs are the exception's kwargs attribute; nil is sent as {}.
	Kwargs map[string]json.RawMessage
}

// remoteSuffix marks a class and module that Python generated for a
// re-raised remote exception.
const remoteSuffix = "_Remote"

// dispatcherModule is the module of oslo's dispatcher errors.
const dispatcherModule = "oslo_messaging.rpc.dispatcher"

// NewFailure returns the failure of an exception module.class with args
// [message] and no kwargs, the form a Python client can rebuild as a native
// exception when module is "builtins" (e.g. NewFailure("builtins",
// "ValueError", "bad size")).
func NewFailure(module, class, message string) *Failure {
	return &Failure{
		Class:   class,
		Module:  module,
		Message: message,
		Args:    []json.RawMessage{appendString(nil, message)},
	}
}

// NoSuchMethod returns the failure a Python server sends when no endpoint
// compatible with the request's namespace and version has the method:
// oslo_messaging.rpc.dispatcher.NoSuchMethod, "Endpoint does not support RPC
// method <method>", as oslo's dispatcher words them.
func NoSuchMethod(method string) *Failure {
	return NewFailure(dispatcherModule, "NoSuchMethod", "Endpoint does not support RPC method "+method)
}

// UnsupportedVersion returns the failure a Python server sends when no
// endpoint is compatible with the request's namespace and version:
// oslo_messaging.rpc.dispatcher.UnsupportedVersion, "Endpoint does not support
// RPC version <version>. Attempted method: <method>" (the last sentence only
// when method is not empty). The version is the request's, "1.0" if it had
// none.
func UnsupportedVersion(version, method string) *Failure {
	msg := "Endpoint does not support RPC version " + version
	if method != "" {
		msg += ". Attempted method: " + method
	}
	return NewFailure(dispatcherModule, "UnsupportedVersion", msg)
}

// ArgsNotObject returns the failure a Python server sends for a request whose
// args is not an object (see ErrArgsNotObject): the builtins AttributeError
// "'NoneType' object has no attribute 'items'", naming the Python type of
// args. Python raises it only once it has found the method, so a server
// answers NoSuchMethod or UnsupportedVersion first when those apply.
func ArgsNotObject(args json.RawMessage) *Failure {
	return NewFailure("builtins", "AttributeError", "'"+pythonType(args)+"' object has no attribute 'items'")
}

// pythonType names the Python type json.loads makes of a JSON value.
func pythonType(value []byte) string {
	value = bytes.TrimLeft(value, " \t\r\n")
	if len(value) == 0 {
		return "NoneType"
	}
	switch value[0] {
	case 'n':
		return "NoneType"
	case 't', 'f':
		return "bool"
	case '"':
		return "str"
	case '[':
		return "list"
	case '{':
		return "dict"
	case 'N', 'I':
		return "float"
	}
	if bytes.ContainsAny(value, ".eEI") {
		return "float"
	}
	return "int"
}

// EncodeFailure returns the JSON text of f, the text a reply's failure string
// holds. Errors wrap ErrMalformed: f is nil, or an arg or kwarg is not JSON.
func EncodeFailure(f *Failure) ([]byte, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	return f.appendJSON(make([]byte, 0, f.sizeHint())), nil
}

// sizeHint estimates the length of f's JSON text.
func (f *Failure) sizeHint() int {
	n := 96 + len(f.Class) + len(f.Module) + len(f.Message)
	for _, line := range f.Traceback {
		n += len(line) + 8 // quotes, separator and a few escapes
	}
	for _, a := range f.Args {
		n += len(a) + 2
	}
	for k, v := range f.Kwargs {
		n += len(k) + len(v) + 6
	}
	return n
}

func (f *Failure) check() error {
	if f == nil {
		return malformed("failure is nil")
	}
	for i, a := range f.Args {
		if len(a) == 0 {
			continue
		}
		if err := checkValid(a); err != nil {
			return malformed("failure arg %d: %w", i, err)
		}
	}
	for k, v := range f.Kwargs {
		if len(v) == 0 {
			continue
		}
		if err := checkValid(v); err != nil {
			return malformed("failure kwarg %q: %w", k, err)
		}
	}
	return nil
}

// appendJSON appends f's JSON text, keys in Python's order.
func (f *Failure) appendJSON(b []byte) []byte {
	b = append(b, `{"class": `...)
	b = appendString(b, f.Class)
	b = append(b, `, "module": `...)
	b = appendString(b, f.Module)
	b = append(b, `, "message": `...)
	b = appendString(b, f.Message)
	b = append(b, `, "tb": [`...)
	for i, line := range f.Traceback {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = appendString(b, line)
	}
	b = append(b, `], "args": [`...)
	for i, a := range f.Args {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = appendRaw(b, a)
	}
	b = append(b, `], "kwargs": {`...)
	keys := make([]string, 0, len(f.Kwargs))
	for k := range f.Kwargs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = appendString(b, k)
		b = append(b, ": "...)
		b = appendRaw(b, f.Kwargs[k])
	}
	return append(b, "}}"...)
}

// stripRemote removes the "_Remote" suffix when class and module both have
// it: Python gives a rebuilt remote exception such names, and strips them
// when it sends the exception on (cells re-raising), so that the next caller
// sees the original class. Decoding strips them for the same reason.
func stripRemote(class, module string) (string, string) {
	if strings.HasSuffix(class, remoteSuffix) && strings.HasSuffix(module, remoteSuffix) {
		return class[:len(class)-len(remoteSuffix)], module[:len(module)-len(remoteSuffix)]
	}
	return class, module
}

// DecodeFailure decodes the JSON text of a failure (the content of a reply's
// failure string). Missing keys read as empty, as in Python; a "_Remote"
// suffix on both class and module is stripped. The failure does not share
// data's memory. Errors wrap ErrMalformed.
func DecodeFailure(data []byte) (*Failure, error) {
	return decodeFailure(ownedCopy(data))
}

// decodeFailure decodes data, which it owns (raw values share its memory)
// and which is valid UTF-8 (see ownedCopy).
func decodeFailure(data []byte) (*Failure, error) {
	rd, err := readObject(data, true)
	if err != nil {
		return nil, malformed("failure: %w", err)
	}
	f := new(Failure)
	var strs stringArena
	strs.reserve(len(data)) // mostly tb, which is mostly strings
	var m member
	for {
		ok, err := rd.next(&m)
		if err != nil {
			return nil, malformed("failure: %w", err)
		}
		if !ok {
			break
		}
		// Every key is read as it comes; a duplicate key overwrites it.
		var e error
		switch string(m.name()) {
		case "class":
			f.Class, e = optionalString(&strs, &m, "failure class")
		case "module":
			f.Module, e = optionalString(&strs, &m, "failure module")
		case "message":
			f.Message, e = optionalString(&strs, &m, "failure message")
		case "tb":
			f.Traceback, e = decodeTraceback(&strs, &m)
		case "args":
			f.Args, e = decodeFailureArgs(&m)
		case "kwargs":
			f.Kwargs, e = decodeFailureKwargs(&strs, &m)
		}
		if e != nil {
			return nil, e
		}
	}
	f.Class, f.Module = stripRemote(f.Class, f.Module)
	return f, nil
}

// decodeTraceback reads tb: a list of strings, null, or (tolerated) one string.
func decodeTraceback(strs *stringArena, m *member) ([]string, error) {
	switch m.value[0] {
	case 'n':
		return nil, nil
	case '"':
		return []string{strs.string(m.value)}, nil
	case '[':
	default:
		return nil, malformed("failure tb is %s, want a list of strings", kindName(m.value))
	}
	var lines []string
	err := forEachElement(m.value, func(elem []byte) error {
		if elem[0] != '"' {
			return malformed("failure tb holds %s, want strings", kindName(elem))
		}
		lines = append(lines, strs.string(elem))
		return nil
	})
	return lines, err
}

func decodeFailureArgs(m *member) ([]json.RawMessage, error) {
	switch {
	case m.isNull():
		return nil, nil
	case m.value[0] != '[':
		return nil, malformed("failure args is %s, want a list", kindName(m.value))
	case m.nonFinite:
		return nil, nonFiniteError("failure args")
	}
	var args []json.RawMessage
	err := forEachElement(m.value, func(elem []byte) error {
		args = append(args, elem)
		return nil
	})
	return args, err
}

func decodeFailureKwargs(strs *stringArena, m *member) (map[string]json.RawMessage, error) {
	switch {
	case m.isNull():
		return nil, nil
	case m.value[0] != '{':
		return nil, malformed("failure kwargs is %s, want an object", kindName(m.value))
	case m.nonFinite:
		return nil, nonFiniteError("failure kwargs")
	}
	rd, err := readObject(m.value, false)
	if err != nil {
		return nil, malformed("failure kwargs: %w", err)
	}
	var kwargs map[string]json.RawMessage
	var kw member
	for {
		ok, err := rd.next(&kw)
		if err != nil {
			return nil, malformed("failure kwargs: %w", err)
		}
		if !ok {
			return kwargs, nil
		}
		if kwargs == nil {
			kwargs = make(map[string]json.RawMessage)
		}
		kwargs[strs.bytes(kw.name())] = kw.value
	}
}

// forEachElement calls fn with the JSON text of each element of array, a
// validated JSON array.
func forEachElement(array []byte, fn func(elem []byte) error) error {
	s := scanner{data: array, pos: 1, lenient: true}
	s.skipSpace()
	if array[s.pos] == ']' {
		return nil
	}
	for {
		start := s.pos
		if err := s.skipValue(1); err != nil {
			return err // unreachable: array was validated
		}
		if err := fn(array[start:s.pos]); err != nil {
			return err
		}
		s.skipSpace()
		if array[s.pos] == ']' {
			return nil
		}
		s.pos++ // ','
		s.skipSpace()
	}
}
