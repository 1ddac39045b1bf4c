package transport

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/switchyard-mq/switchyard/transport/driver"
)

// Target names where RPC requests and notifications go, as
// oslo.messaging's Target does. Which fields matter depends on the use:
//
//   - an RPC client's Cast and Call need Topic; Server sends to one server
//     instead of any; Fanout sends to every server on the topic.
//   - an RPC server needs Topic and Server.
//   - a notification listener needs Topic (its priorities are added to it).
//
// Exchange defaults to the control exchange ("openstack" unless
// configured). Namespace and Version select endpoints on the server:
// Version "X.Y" is served by an endpoint of the same major version whose
// minor version is at least Y.
type Target struct {
	Exchange  string
	Topic     string
	Namespace string
	Version   string
	Server    string
	Fanout    bool
}

// String is a compact form for logs, e.g. "nova/compute.host1 (v1.3)".
func (t Target) String() string {
	var b strings.Builder
	if t.Exchange != "" {
		b.WriteString(t.Exchange)
		b.WriteByte('/')
	}
	b.WriteString(t.Topic)
	if t.Server != "" {
		b.WriteByte('.')
		b.WriteString(t.Server)
	}
	if t.Fanout {
		b.WriteString(" (fanout)")
	}
	if t.Namespace != "" {
		b.WriteString(" ns=")
		b.WriteString(t.Namespace)
	}
	if t.Version != "" {
		b.WriteString(" v")
		b.WriteString(t.Version)
	}
	return b.String()
}

// Validate checks that Topic is set and that every field is well formed:
// names are at most 255 bytes of UTF-8 without control characters or
// spaces, and Version is "major.minor" or "major.minor.revision".
func (t Target) Validate() error {
	if t.Topic == "" {
		return fmt.Errorf("%w: target %s: topic is empty", ErrInvalid, t)
	}
	if err := validTargetField("exchange", t.Exchange); err != nil {
		return err
	}
	if err := validTargetField("topic", t.Topic); err != nil {
		return err
	}
	if err := validTargetField("server", t.Server); err != nil {
		return err
	}
	if err := validTargetField("namespace", t.Namespace); err != nil {
		return err
	}
	if t.Version != "" && !isCallVersion(t.Version) {
		// As oslo.messaging's clients refuse it: its servers cannot
		// dispatch a version without a minor number.
		return fmt.Errorf("%w: target version %q is not \"major.minor\" or \"major.minor.revision\"", ErrInvalid, t.Version)
	}
	return nil
}

// isCallVersion reports whether v is "major.minor" or
// "major.minor.revision", each a decimal number.
func isCallVersion(v string) bool {
	parts := strings.Split(v, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return false
	}
	for _, p := range parts {
		if p == "" || len(p) > 9 || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}

// validTargetField checks one field of a Target; it allocates only to
// report an error, since every RPC send validates its target.
func validTargetField(what, value string) error {
	if err := driver.CheckName(value, false); err != nil {
		return fmt.Errorf("%w: target %s %w", ErrInvalid, what, err)
	}
	return nil
}

// ParseVersion parses an RPC API version, "major.minor" or "major" (minor 0),
// as oslo.messaging writes them.
func ParseVersion(v string) (major, minor int, err error) {
	majorText, minorText, hasMinor := strings.Cut(v, ".")
	major, err = strconv.Atoi(majorText)
	if err == nil && hasMinor {
		minor, err = strconv.Atoi(minorText)
	}
	if err != nil || major < 0 || minor < 0 || strings.HasPrefix(minorText, "+") || strings.HasPrefix(majorText, "+") {
		return 0, 0, fmt.Errorf("%w: version %q is not \"major.minor\"", ErrInvalid, v)
	}
	return major, minor, nil
}
