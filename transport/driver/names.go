package driver

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxNameLen is the longest name of a queue, an exchange or a routing key:
// AMQP 0-9-1's short string, the tightest of the backends, so that a name
// valid on one backend is valid on all.
const MaxNameLen = 255

// CheckName says what is wrong with a name, quoting it: more than
// MaxNameLen bytes, not UTF-8, a control character, or, unless spaces is
// true, a space or tab (which oslo.messaging's names and a target's fields
// never hold). It returns nil for a good name, without allocating.
func CheckName(name string, spaces bool) error {
	if !spaces && strings.ContainsAny(name, " \t") {
		return fmt.Errorf("%q contains a space", name)
	}
	switch {
	case len(name) > MaxNameLen:
		return fmt.Errorf("%.40q... is %d bytes long (at most %d)", name, len(name), MaxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("%q is not valid UTF-8", name)
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return fmt.Errorf("%q contains a control character", name)
	}
	return nil
}
