// Package option declares the options a transport URL's query and an
// oslo.config file carry, and reads them one way for everyone: the
// drivers, the rpc and notify layers and the configuration loader. A
// boolean, an integer or a duration spelled one way is accepted, or
// refused with the same message, wherever it is given.
//
// A driver declares its options once, as package variables:
//
//	var heartbeat = option.Duration(option.Spec{
//		Name: "heartbeat_timeout_threshold", Default: "60", Max: 65535,
//		Group: "oslo_messaging_rabbit", Doc: "heartbeat timeout in `seconds`",
//	})
//	var options = option.NewSet(append(option.Portable(), heartbeat)...)
//
// and reads a URL with them when it opens:
//
//	values, err := options.Parse(u) // unknown or malformed options: ErrInvalid
//	interval := heartbeat.Get(values)
//
// The spellings every option takes:
//
//   - a boolean: true, yes, on or 1; false, no, off or 0; in any case.
//   - an integer: decimal digits, optionally signed, within the option's
//     bounds.
//   - a duration: a number of seconds, fractions allowed ("1.5"), as
//     oslo.messaging writes them, or a Go duration ("1500ms", "1m30s").
//   - a list: comma-separated items; spaces around items and empty items
//     are dropped.
//
// Surrounding spaces are ignored, except in a string.
package option

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-mq/switchyard/transport/driver"
)

// Kind is the type of an option's value.
type Kind int

// The kinds of option.
const (
	// KindString is text, taken as given.
	KindString Kind = iota
	// KindBool is true or false.
	KindBool
	// KindInt is a whole number.
	KindInt
	// KindDuration is a length of time, in seconds or as a Go duration.
	KindDuration
	// KindList is a comma-separated list of strings.
	KindList
)

// String names the kind as an error message says it.
func (k Kind) String() string {
	switch k {
	case KindBool:
		return "boolean"
	case KindInt:
		return "whole number"
	case KindDuration:
		return "duration"
	case KindList:
		return "list"
	}
	return "string"
}

// Effect is what Switchyard does with an option's value.
type Effect int

// The effects.
const (
	// Used: the option does what its documentation says.
	Used Effect = iota
	// Ignored: an oslo.messaging option that tunes only its Python
	// implementation (thread pools, eventlet). Its value is checked, then
	// has no effect; Spec.Why says what Switchyard does instead.
	Ignored
	// OnlyValues: an oslo.messaging option Switchyard does not implement.
	// It is accepted only with one of Spec.Only, the values that describe
	// what Switchyard does anyway (Spec.Why), so that a setting is never
	// dropped silently.
	OnlyValues
)

// Alias is another place an option is read from: a deprecated name, or a
// deprecated oslo.config section.
type Alias struct {
	Group, Name string
}

// Spec declares an option.
type Spec struct {
	// Name is the option's name in a URL query and in its oslo.config
	// section (oslo.messaging's name where it has one).
	Name string
	// Default is the value when the option is not given, spelled as a
	// user would; "" is none (the zero value of the kind).
	Default string
	// Min and Max bound an integer, or a duration in seconds. Max 0 is no
	// upper bound. A duration is never negative.
	Min, Max float64
	// Doc says what the option does, in one line; a word in backquotes
	// names the value in a flag's usage ("heartbeat timeout in `seconds`").
	Doc string
	// Group is the option's oslo.config section; empty for an option that
	// only a URL carries.
	Group string
	// Aliases are deprecated names and sections it is also read from.
	Aliases []Alias
	// Effect says whether the value is used; Only and Why go with it.
	Effect Effect
	// Only are the values accepted for an OnlyValues option, normalized.
	Only []string
	// Why says what Switchyard does instead, for Ignored and OnlyValues.
	Why string
	// Check validates a string, or each item of a list, beyond its kind:
	// a name, a URL, one of a set of words. An error from Unsupported
	// says the value is oslo.messaging's but not implemented.
	Check func(string) error

	kind Kind
}

// Kind is the type of the option's value.
func (s Spec) Kind() Kind { return s.kind }

// Normalize checks v against the option and returns it in canonical form:
// a boolean as "true" or "false", an integer in decimal, a duration as
// seconds ("1.5"), a list without spaces or empty items. The error says
// what is wrong with v without naming the option; it matches
// driver.ErrUnsupported when the value is oslo.messaging's but
// not implemented by Switchyard.
func (s Spec) Normalize(v string) (string, error) {
	norm, err := s.normalizeKind(v)
	if err != nil {
		return "", err
	}
	if s.Effect == OnlyValues && !slices.Contains(s.Only, norm) {
		if len(s.Only) == 0 {
			return "", Unsupported("is not supported by Switchyard: " + s.Why)
		}
		return "", Unsupported(fmt.Sprintf("%q is not supported by Switchyard (only %s): %s", norm, strings.Join(s.Only, " or "), s.Why))
	}
	return norm, nil
}

func (s Spec) normalizeKind(v string) (string, error) {
	switch s.kind {
	case KindBool:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true", "yes", "on", "1":
			return "true", nil
		case "false", "no", "off", "0":
			return "false", nil
		}
		return "", fmt.Errorf("%q is not a boolean (true/false, yes/no, on/off or 1/0)", v)
	case KindInt:
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || !s.inRange(float64(n)) {
			return "", fmt.Errorf("%q is not a whole number %s", v, s.rangeText())
		}
		return strconv.Itoa(n), nil
	case KindDuration:
		secs, ok := parseSeconds(strings.TrimSpace(v))
		if !ok || secs < 0 || !s.inRange(secs) {
			return "", fmt.Errorf("%q is not a duration %s (a number of seconds, or a Go duration such as 1500ms)", v, s.rangeText())
		}
		if secs >= maxSeconds {
			return "", fmt.Errorf("%q is longer than a Go duration holds (about 292 years)", v)
		}
		return strconv.FormatFloat(secs, 'f', -1, 64), nil
	case KindList:
		var items []string
		for _, item := range strings.Split(v, ",") {
			if item = strings.TrimSpace(item); item == "" {
				continue
			}
			if err := s.check(item); err != nil {
				return "", err
			}
			items = append(items, item)
		}
		if len(items) == 0 {
			return "", fmt.Errorf("%q is an empty list", v)
		}
		return strings.Join(items, ","), nil
	}
	if err := s.check(v); err != nil {
		return "", err
	}
	return v, nil
}

func (s Spec) check(v string) error {
	if s.Check == nil {
		return nil
	}
	return s.Check(v)
}

// maxSeconds is the longest time.Duration, in seconds: an option without
// an upper bound must still convert to one.
const maxSeconds = float64(math.MaxInt64) / float64(time.Second)

// parseSeconds reads a number of seconds or a Go duration.
func parseSeconds(v string) (float64, bool) {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		return f, !math.IsNaN(f) && !math.IsInf(f, 0)
	}
	if !strings.ContainsAny(v, "hmnsuµ") { // a malformed number, not a duration
		return 0, false
	}
	d, err := time.ParseDuration(v)
	return d.Seconds(), err == nil
}

func (s Spec) inRange(f float64) bool {
	return f >= s.Min && (s.Max == 0 || f <= s.Max)
}

func (s Spec) rangeText() string {
	unit := ""
	if s.kind == KindDuration {
		unit = " seconds"
	}
	number := func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
	if s.Max == 0 {
		return "of at least " + number(s.Min) + unit
	}
	return "from " + number(s.Min) + " to " + number(s.Max) + unit
}

// Unsupported returns an error saying msg that matches
// driver.ErrUnsupported, for a Check function refusing a value
// oslo.messaging accepts but Switchyard does not implement.
func Unsupported(msg string) error { return &unsupportedError{msg} }

type unsupportedError struct{ msg string }

func (e *unsupportedError) Error() string        { return e.msg }
func (e *unsupportedError) Is(target error) bool { return target == driver.ErrUnsupported }
