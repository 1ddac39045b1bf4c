package amqp091

import "fmt"

// Method is one of the protocol's methods.
type Method interface {
	ClassID() uint16
	MethodID() uint16
	// Name is the specification's name, such as "basic.publish".
	Name() string
	// HasContent reports whether a content header and body follow.
	HasContent() bool
	encode(w *Encoder)
	decode(r *Decoder)
}

// UnknownMethodError is a method frame naming a class and method the
// specification does not define.
type UnknownMethodError struct {
	Class, Method uint16
}

func (e *UnknownMethodError) Error() string {
	return fmt.Sprintf("amqp091: unknown method %d.%d", e.Class, e.Method)
}

// DecodeMethod decodes a method frame's payload. Errors are an
// *UnknownMethodError or wrap ErrSyntax.
func DecodeMethod(payload []byte) (Method, error) {
	r := NewDecoder(payload)
	class, id := r.Short(), r.Short()
	if r.err != nil {
		return nil, fmt.Errorf("method frame of %d bytes: %w", len(payload), r.err)
	}
	m := newMethod(class, id)
	if m == nil {
		return nil, &UnknownMethodError{Class: class, Method: id}
	}
	m.decode(r)
	if r.err == nil && len(r.buf) > 0 {
		r.fail("%d bytes after the arguments", len(r.buf))
	}
	if r.err != nil {
		return nil, fmt.Errorf("%s: %w", m.Name(), r.err)
	}
	return m, nil
}
