package rpc

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/switchyard-mq/switchyard/internal/oslo"
	"github.com/switchyard-mq/switchyard/transport"
)

// ErrorRegistry names Go errors for the wire, so that a Go caller gets
// back the error a Go endpoint returned: what oslo.messaging's
// allowed_remote_exmods does for Python exceptions. Each entry binds a
// sentinel value (ErrorValue, matched as errors.Is matches) or an error
// type (ErrorType, matched as errors.As matches) to a module and a class,
// the names a Python peer sees.
//
// A server given the registry with WithServerErrors sends a registered
// error under its module and class, with a type's exported fields as the
// failure's kwargs. A client given it with WithErrors rebuilds a failure
// of a registered module and class: the *RemoteError it returns unwraps
// to the sentinel, or to a new value of the type decoded from the kwargs
// with encoding/json, so that errors.Is and errors.As find them while
// errors.As still finds the *RemoteError, with its traceback. Give both
// sides the same registry (the package declaring the errors can offer a
// function that builds it). Failures whose module and class are not
// registered, and everything a client without a registry receives, stay a
// plain *RemoteError.
//
// A registry is made whole by NewErrorRegistry and never changes after,
// so one value serves any number of clients and servers without locks,
// and every mistake in it (an empty name, a name or value registered
// twice, a type whose fields cannot travel as kwargs) is reported there,
// at once.
//
// With Python peers: a Python caller sees a registered error as
// oslo.messaging sees a Python exception of that module and class,
// message the Go error's text, args [message] and kwargs the type's
// fields (none for a sentinel). It rebuilds Module.Class(*args, **kwargs)
// if its transport lists the module in allowed_remote_exmods and the
// module defines a class that accepts them; otherwise it raises
// oslo_messaging.RemoteError with Class as exc_type. A Python exception
// whose module and class a Go client registered arrives as that Go error,
// as above: a sentinel whatever its arguments, a type decoded from the
// exception's kwargs attribute. Kwargs that do not decode into the type
// leave the error a plain *RemoteError, and the client logs a warning.
type ErrorRegistry struct {
	entries []*ErrorEntry             // for sending: the first match wins
	byName  map[errorName]*ErrorEntry // for receiving
}

type errorName struct{ module, class string }

// ErrorEntry is one registration of an ErrorRegistry, made by ErrorValue
// or ErrorType.
type ErrorEntry struct {
	name errorName
	// what the entry registers, for messages and duplicates: the value
	// or the type.
	value error
	typ   reflect.Type
	// match returns the registered error that one error of a chain (not
	// what it wraps) is, as errors.Is and errors.As test each one.
	match func(node error) (error, bool)
	// kwargs returns the fields of a matched error, a JSON object; nil
	// for a sentinel.
	kwargs func(matched error) (map[string]json.RawMessage, error)
	// rebuild returns the Go error of a received failure's kwargs.
	rebuild func(kwargs map[string]json.RawMessage) (error, error)
	problem error // bad input, reported by NewErrorRegistry
}

// ErrorValue registers a sentinel error value (as made by errors.New)
// under module and class. An endpoint's error that errors.Is finds equal
// to err is sent as module.class; a client rebuilds it as err. err must be
// of a comparable type, as errors.Is compares by identity.
func ErrorValue(module, class string, err error) ErrorEntry {
	e := ErrorEntry{name: errorName{module, class}, value: err}
	switch {
	case err == nil:
		e.problem = fmt.Errorf("%w: error %s.%s: the value is nil", transport.ErrInvalid, module, class)
		return e
	case !reflect.TypeOf(err).Comparable():
		e.problem = fmt.Errorf("%w: error %s.%s: %T is not comparable, so errors.Is cannot match it; register its type with ErrorType",
			transport.ErrInvalid, module, class, err)
		return e
	}
	e.match = func(node error) (error, bool) {
		if node == err {
			return err, true
		}
		if x, ok := node.(interface{ Is(error) bool }); ok && x.Is(err) {
			return err, true
		}
		return nil, false
	}
	e.kwargs = func(error) (map[string]json.RawMessage, error) { return nil, nil }
	e.rebuild = func(map[string]json.RawMessage) (error, error) { return err, nil }
	return e
}

// ErrorType registers the error type T, a struct or a pointer to one (as
// *ShippedError), under module and class. An endpoint's error in whose
// chain errors.As finds a T is sent as module.class, the T's JSON encoding
// (its exported fields, by their json tags) as kwargs; a client rebuilds a
// T by decoding the kwargs into a new one with encoding/json. Fields JSON
// does not carry (unexported ones, a wrapped cause) arrive as their zero
// values.
func ErrorType[T error](module, class string) ErrorEntry {
	t := reflect.TypeFor[T]()
	e := ErrorEntry{name: errorName{module, class}, typ: t}
	elem := t
	if elem.Kind() == reflect.Pointer {
		elem = elem.Elem()
	}
	switch {
	case t.Kind() == reflect.Interface:
		e.problem = fmt.Errorf("%w: error %s.%s: %s is an interface; register a concrete type", transport.ErrInvalid, module, class, t)
		return e
	case t == reflect.TypeFor[*RemoteError]():
		e.problem = fmt.Errorf("%w: error %s.%s: a *RemoteError is sent as it is, under its own Module and Class", transport.ErrInvalid, module, class)
		return e
	case elem.Kind() != reflect.Struct:
		e.problem = fmt.Errorf("%w: error %s.%s: %s is not a struct or a pointer to one, so it cannot travel as keyword arguments (a JSON object)",
			transport.ErrInvalid, module, class, t)
		return e
	}
	e.match = func(node error) (error, bool) {
		if v, ok := node.(T); ok {
			return v, true
		}
		var v T
		if x, ok := node.(interface{ As(any) bool }); ok && x.As(&v) {
			return v, true
		}
		return nil, false
	}
	e.kwargs = func(matched error) (map[string]json.RawMessage, error) {
		raw, err := json.Marshal(matched)
		if err != nil {
			return nil, err
		}
		var kwargs map[string]json.RawMessage
		if err := json.Unmarshal(raw, &kwargs); err != nil {
			return nil, fmt.Errorf("%T encodes as %.40s, not a JSON object", matched, raw)
		}
		return kwargs, nil
	}
	e.rebuild = func(kwargs map[string]json.RawMessage) (error, error) {
		raw := []byte("{}")
		if len(kwargs) > 0 {
			var err error
			if raw, err = json.Marshal(kwargs); err != nil {
				return nil, err // unreachable: the kwargs are validated JSON
			}
		}
		var v T
		if err := decodeInto(raw, &v); err != nil {
			return nil, fmt.Errorf("kwargs %s do not decode into %s: %w", truncate(raw, 200), t, err)
		}
		return v, nil
	}
	return e
}

// NewErrorRegistry returns a registry of entries. Each module and class,
// each value and each type may be registered once; module and class must
// not be empty, and class must be a Python identifier. The errors wrap
// transport.ErrInvalid, one for each bad entry.
func NewErrorRegistry(entries ...ErrorEntry) (*ErrorRegistry, error) {
	r := &ErrorRegistry{byName: make(map[errorName]*ErrorEntry, len(entries))}
	var problems []error
	for _, entry := range entries {
		e := &entry
		if err := e.check(); err != nil {
			problems = append(problems, err)
			continue
		}
		if err := r.duplicate(e); err != nil {
			problems = append(problems, err)
			continue
		}
		r.byName[e.name] = e
		r.entries = append(r.entries, e)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("rpc error registry: %w", errors.Join(problems...))
	}
	return r, nil
}

// check reports what is wrong with e on its own.
func (e *ErrorEntry) check() error {
	if e.problem != nil {
		return e.problem
	}
	if e.match == nil {
		return fmt.Errorf("%w: an ErrorEntry not made by ErrorValue or ErrorType", transport.ErrInvalid)
	}
	module, class := e.name.module, e.name.class
	if module == "" || strings.ContainsAny(module, " \t\r\n:") {
		return fmt.Errorf("%w: error %s.%s: module %q is empty or holds a space or a colon", transport.ErrInvalid, module, class, module)
	}
	if !isIdentifier(class) {
		return fmt.Errorf("%w: error %s.%s: class %q is not a Python identifier", transport.ErrInvalid, module, class, class)
	}
	if strings.HasSuffix(class, "_Remote") {
		return fmt.Errorf("%w: error %s.%s: the suffix _Remote marks what Python makes of a remote exception", transport.ErrInvalid, module, class)
	}
	return nil
}

// duplicate reports e's name, value or type registered already.
func (r *ErrorRegistry) duplicate(e *ErrorEntry) error {
	if other, dup := r.byName[e.name]; dup {
		return fmt.Errorf("%w: error %s.%s: registered for %s and for %s",
			transport.ErrInvalid, e.name.module, e.name.class, other.what(), e.what())
	}
	for _, other := range r.entries {
		if e.value != nil && other.value == e.value || e.typ != nil && other.typ == e.typ {
			return fmt.Errorf("%w: %s registered as %s.%s and as %s.%s",
				transport.ErrInvalid, e.what(), other.name.module, other.name.class, e.name.module, e.name.class)
		}
	}
	return nil
}

// what names what e registers.
func (e *ErrorEntry) what() string {
	if e.typ != nil {
		return "type " + e.typ.String()
	}
	return fmt.Sprintf("value %q", e.value.Error())
}

// isIdentifier reports whether s is an ASCII Python identifier.
func isIdentifier(s string) bool {
	for i, c := range s {
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return s != ""
}

// find returns the entry naming err, and the registered error it
// matched: the outermost error of err's chain that one matches, walking
// the chain as errors.Is does, entries tried in registration order on
// each error.
func (r *ErrorRegistry) find(err error) (*ErrorEntry, error) {
	if r == nil {
		return nil, nil
	}
	var found *ErrorEntry
	var matched error
	visited := 0
	var walk func(error) bool
	walk = func(node error) bool {
		if node == nil || visited == maxChain {
			return false
		}
		visited++
		for _, e := range r.entries {
			if m, ok := e.match(node); ok {
				found, matched = e, m
				return true
			}
		}
		switch x := node.(type) {
		case interface{ Unwrap() error }:
			return walk(x.Unwrap())
		case interface{ Unwrap() []error }:
			for _, inner := range x.Unwrap() {
				if walk(inner) {
					return true
				}
			}
		}
		return false
	}
	walk(err)
	return found, matched
}

// exceptionLine is the traceback line of one error of a chain (not what
// it wraps) that an entry matches, named by its module and class; "" if
// none does (or r is nil).
func (r *ErrorRegistry) exceptionLine(node error) string {
	if r == nil {
		return ""
	}
	for _, e := range r.entries {
		if _, ok := e.match(node); ok {
			return oslo.ExceptionLine(e.name.module, e.name.class, node.Error())
		}
	}
	return ""
}

// rebuild sets re's Go error when its module and class are registered.
// It returns why the kwargs did not decode into a registered type.
func (r *ErrorRegistry) rebuild(re *RemoteError, kwargs map[string]json.RawMessage) error {
	if r == nil {
		return nil
	}
	e, ok := r.byName[errorName{re.Module, re.Class}]
	if !ok {
		return nil
	}
	local, err := e.rebuild(kwargs)
	if err != nil {
		return fmt.Errorf("remote error %s.%s is not rebuilt as %s: %w", re.Module, re.Class, e.what(), err)
	}
	re.local = local
	return nil
}
