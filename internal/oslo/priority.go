package oslo

// Priority is a notification's priority: one of the seven words oslo's
// notifier has a method for. Its value is the lower-case word, as in the
// routing key; on the wire the priority key holds it upper-case.
type Priority string

// The seven priorities. There is no "warning": oslo's method is warn and
// its priority WARN, and a Python listener drops any other word.
const (
	PriorityAudit    Priority = "audit"
	PriorityDebug    Priority = "debug"
	PriorityInfo     Priority = "info"
	PriorityWarn     Priority = "warn"
	PriorityError    Priority = "error"
	PriorityCritical Priority = "critical"
	PrioritySample   Priority = "sample"
)

// ParsePriority returns the priority that s names, ignoring ASCII case:
// "INFO", "info" and "Info" are PriorityInfo. Any other word, "warning"
// included, is an error wrapping ErrMalformed.
func ParsePriority(s string) (Priority, error) {
	for _, p := range [...]Priority{PriorityAudit, PriorityDebug, PriorityInfo,
		PriorityWarn, PriorityError, PriorityCritical, PrioritySample} {
		if equalFoldASCII(s, string(p)) {
			return p, nil
		}
	}
	return "", malformed("unknown notification priority %q, want one of audit, debug, info, warn, error, critical, sample", s)
}

// Valid reports whether p is one of the seven priority constants.
func (p Priority) Valid() bool {
	switch p {
	case PriorityAudit, PriorityDebug, PriorityInfo, PriorityWarn,
		PriorityError, PriorityCritical, PrioritySample:
		return true
	}
	return false
}

// Wire returns the word the priority key carries: p upper-cased (INFO).
func (p Priority) Wire() string {
	switch p {
	case PriorityAudit:
		return "AUDIT"
	case PriorityDebug:
		return "DEBUG"
	case PriorityInfo:
		return "INFO"
	case PriorityWarn:
		return "WARN"
	case PriorityError:
		return "ERROR"
	case PriorityCritical:
		return "CRITICAL"
	case PrioritySample:
		return "SAMPLE"
	}
	return asciiUpper(string(p))
}

// String returns p's lower-case word.
func (p Priority) String() string { return string(p) }

// equalFoldASCII reports whether s and t are equal ignoring ASCII case.
// Python's lower() also maps non-ASCII letters, but none of them to the
// letters of a priority word, which strings.EqualFold would do (ſ to s).
func equalFoldASCII(s, t string) bool {
	if len(s) != len(t) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if toLowerASCII(s[i]) != toLowerASCII(t[i]) {
			return false
		}
	}
	return true
}

func toLowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func asciiLower(s string) string { return mapASCII(s, toLowerASCII) }

func asciiUpper(s string) string {
	return mapASCII(s, func(c byte) byte {
		if 'a' <= c && c <= 'z' {
			return c - ('a' - 'A')
		}
		return c
	})
}

// mapASCII returns s with each byte mapped by f.
func mapASCII(s string, f func(byte) byte) string {
	b := []byte(s)
	for i, c := range b {
		b[i] = f(c)
	}
	return string(b)
}
