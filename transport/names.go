package transport

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxNameLen is AMQP 0-9-1's short-string limit, the tightest of the
// backends, so a name valid on one backend is valid on all.
const maxNameLen = 255

// validName checks a queue or exchange name: at most 255 bytes of UTF-8
// without control characters. what names the field for the error.
func validName(what, name string) error {
	switch {
	case len(name) > maxNameLen:
		return fmt.Errorf("%w: %s %.40q... is %d bytes long (at most %d)", ErrInvalid, what, name, len(name), maxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: %s %q is not valid UTF-8", ErrInvalid, what, name)
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return fmt.Errorf("%w: %s %q contains a control character", ErrInvalid, what, name)
	}
	return nil
}

// validRequiredName is validName for a name that must not be empty.
func validRequiredName(what, name string) error {
	if name == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalid, what)
	}
	return validName(what, name)
}

// validDeclaredName also refuses the "amq." prefix, which AMQP brokers
// reserve for their own entities.
func validDeclaredName(what, name string) error {
	if err := validRequiredName(what, name); err != nil {
		return err
	}
	if strings.HasPrefix(name, "amq.") {
		return fmt.Errorf("%w: %s %q: the prefix \"amq.\" is reserved for the broker", ErrInvalid, what, name)
	}
	return nil
}
