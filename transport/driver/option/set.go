package option

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-mq/switchyard/transport/driver"
)

// Option is a declared option of any kind: a *BoolOpt, *IntOpt,
// *DurationOpt, *StringOpt or *ListOpt.
type Option interface {
	// Spec is the option's declaration.
	Spec() Spec
}

// BoolOpt is a boolean option.
type BoolOpt struct{ spec Spec }

// IntOpt is an integer option.
type IntOpt struct{ spec Spec }

// DurationOpt is a duration option.
type DurationOpt struct{ spec Spec }

// StringOpt is a string option.
type StringOpt struct{ spec Spec }

// ListOpt is a comma-separated list option.
type ListOpt struct{ spec Spec }

// Bool declares a boolean option.
func Bool(s Spec) *BoolOpt { s.kind = KindBool; return &BoolOpt{mustValid(s)} }

// Int declares an integer option.
func Int(s Spec) *IntOpt { s.kind = KindInt; return &IntOpt{mustValid(s)} }

// Duration declares a duration option.
func Duration(s Spec) *DurationOpt { s.kind = KindDuration; return &DurationOpt{mustValid(s)} }

// String declares a string option.
func String(s Spec) *StringOpt { s.kind = KindString; return &StringOpt{mustValid(s)} }

// List declares a list option.
func List(s Spec) *ListOpt { s.kind = KindList; return &ListOpt{mustValid(s)} }

// mustValid normalizes the declared default; a default its own option
// refuses is a programming error, found at package initialization.
func mustValid(s Spec) Spec {
	if s.Name == "" {
		panic("option: a Spec without a Name")
	}
	if s.Default != "" {
		norm, err := s.normalizeKind(s.Default)
		if err != nil {
			panic(fmt.Sprintf("option %s: default %v", s.Name, err))
		}
		s.Default = norm
	}
	return s
}

// Spec implements Option.
func (o *BoolOpt) Spec() Spec { return o.spec }

// Spec implements Option.
func (o *IntOpt) Spec() Spec { return o.spec }

// Spec implements Option.
func (o *DurationOpt) Spec() Spec { return o.spec }

// Spec implements Option.
func (o *StringOpt) Spec() Spec { return o.spec }

// Spec implements Option.
func (o *ListOpt) Spec() Spec { return o.spec }

// Get is the option's value in v, or its default.
func (o *BoolOpt) Get(v Values) bool { return o.Value(v.text(o.spec)) }

// Get is the option's value in v, or its default (0 without one).
func (o *IntOpt) Get(v Values) int { return o.Value(v.text(o.spec)) }

// Get is the option's value in v, or its default (0 without one).
func (o *DurationOpt) Get(v Values) time.Duration { return o.Value(v.text(o.spec)) }

// Get is the option's value in v, or its default.
func (o *StringOpt) Get(v Values) string { return v.text(o.spec) }

// Get is the option's items in v, or its default's; nil without either.
func (o *ListOpt) Get(v Values) []string { return o.Value(v.text(o.spec)) }

// Value is the boolean that norm, a text Spec.Normalize returned,
// stands for: for a reader that keeps normalized text from several
// sources (a file, the environment, flags) and converts the one that wins.
func (o *BoolOpt) Value(norm string) bool { return norm == "true" }

// Value is the number that norm, a text Spec.Normalize returned, stands
// for; 0 for "".
func (o *IntOpt) Value(norm string) int {
	n, _ := strconv.Atoi(norm)
	return n
}

// Value is the duration that norm, a text Spec.Normalize returned (in
// seconds), stands for; 0 for "".
func (o *DurationOpt) Value(norm string) time.Duration {
	secs, _ := strconv.ParseFloat(norm, 64)
	return time.Duration(secs * float64(time.Second))
}

// Value is the items of norm, a text Spec.Normalize returned; nil for "".
func (o *ListOpt) Value(norm string) []string {
	if norm == "" {
		return nil
	}
	return strings.Split(norm, ",")
}

// Set is the options one reader knows: a driver's, with the portable
// ones every scheme takes.
type Set struct {
	opts   []Option
	byName map[string]Option
}

// NewSet returns the set of opts. Two options of one name are a
// programming error.
func NewSet(opts ...Option) *Set {
	s := &Set{byName: make(map[string]Option, len(opts))}
	for _, o := range opts {
		name := o.Spec().Name
		if _, dup := s.byName[name]; dup {
			panic("option: two options named " + name)
		}
		s.byName[name] = o
		s.opts = append(s.opts, o)
	}
	return s
}

// All returns the options in declaration order.
func (s *Set) All() []Option { return slices.Clone(s.opts) }

// Lookup finds an option by name.
func (s *Set) Lookup(name string) (Option, bool) {
	o, ok := s.byName[name]
	return o, ok
}

// Parse reads u's query options: every one must be in the set, with a
// value its kind accepts (the last one, when repeated). Its errors wrap
// driver.ErrInvalid (and driver.ErrUnsupported for a value
// oslo.messaging has but Switchyard does not implement), name the option
// and u with the password hidden.
func (s *Set) Parse(u *driver.URL) (Values, error) {
	return s.ParseQuery(u.Options, u.String())
}

// ParseQuery is Parse for query options alone; where names their origin
// in errors (a URL with its password hidden, "rabbit://").
func (s *Set) ParseQuery(q url.Values, where string) (Values, error) {
	return s.parse(q, where, true)
}

// Pick reads the set's options from u's query and leaves the others to
// the reader that knows them: for a layer that reads a few options of
// URLs its driver has checked whole.
func (s *Set) Pick(u *driver.URL) (Values, error) {
	return s.parse(u.Options, u.String(), false)
}

func (s *Set) parse(q url.Values, where string, strict bool) (Values, error) {
	v := Values{set: s, values: make(map[string]string, len(q))}
	var unknown []string
	for name, vs := range q {
		o, ok := s.byName[name]
		if !ok {
			if strict {
				unknown = append(unknown, name)
			}
			continue
		}
		if len(vs) == 0 {
			continue
		}
		norm, err := o.Spec().Normalize(vs[len(vs)-1])
		if err != nil {
			return Values{}, fmt.Errorf("%w: option %s of %s: %w", driver.ErrInvalid, name, where, err)
		}
		v.values[name] = norm
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return Values{}, fmt.Errorf("%w: unknown option %s for %s (known: %s)", driver.ErrInvalid,
			strings.Join(unknown, ", "), where, strings.Join(s.names(), ", "))
	}
	return v, nil
}

func (s *Set) names() []string {
	names := make([]string, len(s.opts))
	for i, o := range s.opts {
		names[i] = o.Spec().Name
	}
	return names
}

// Values are the options read from one URL, normalized.
type Values struct {
	set    *Set
	values map[string]string
}

// text is the option's normalized value, or its default. An Ignored
// option reads as its default whatever was given.
func (v Values) text(s Spec) string {
	if t, ok := v.values[s.Name]; ok && s.Effect != Ignored {
		return t
	}
	return s.Default
}

// IsSet reports whether the option was given.
func (v Values) IsSet(o Option) bool {
	_, ok := v.values[o.Spec().Name]
	return ok
}

// Ignored names the options given that have no effect (Effect Ignored),
// sorted, for a driver to warn about.
func (v Values) Ignored() []string {
	var names []string
	for name := range v.values {
		if o, ok := v.set.byName[name]; ok && o.Spec().Effect == Ignored {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}
