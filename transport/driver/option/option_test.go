package option_test

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/transport/driver"
	"github.com/switchyard-mq/switchyard/transport/driver/option"
)

// TestNormalizeAndValue: each kind's spellings normalize to one text, and
// Value reads that text back as the typed value Get returns.
func TestNormalizeAndValue(t *testing.T) {
	b := option.Bool(option.Spec{Name: "b"})
	n := option.Int(option.Spec{Name: "n", Min: -1, Max: 100})
	d := option.Duration(option.Spec{Name: "d", Min: 1})
	w := option.Duration(option.Spec{Name: "w", Max: 3600})
	l := option.List(option.Spec{Name: "l"})
	s := option.String(option.Spec{Name: "s"})
	tests := []struct {
		opt     option.Option
		in      string
		norm    string // "" when refused
		value   any
		wantErr string
	}{
		{b, "Yes", "true", true, ""},
		{b, " off ", "false", false, ""},
		{b, "true", "true", true, ""},
		{b, "YES", "true", true, ""},
		{b, " on ", "true", true, ""},
		{b, "1", "true", true, ""},
		{b, "False", "false", false, ""},
		{b, "no", "false", false, ""},
		{b, "0", "false", false, ""},
		{b, "maybe", "", nil, "is not a boolean"},
		{b, "t", "", nil, "is not a boolean"},
		{b, "", "", nil, "is not a boolean"},
		{n, " 42 ", "42", 42, ""},
		{n, "-1", "-1", -1, ""},
		{n, "101", "", nil, "is not a whole number from -1 to 100"},
		{n, "+5", "5", 5, ""},
		{n, "-2", "", nil, "is not a whole number from -1 to 100"},
		{n, "1.5", "", nil, "is not a whole number"},
		{n, "ten", "", nil, "is not a whole number"},
		{d, "1.5", "1.5", 1500 * time.Millisecond, ""},
		{d, "1500ms", "1.5", 1500 * time.Millisecond, ""},
		{d, "2m", "120", 2 * time.Minute, ""},
		{d, "0.5", "", nil, "is not a duration of at least 1 seconds"},
		{d, "soon", "", nil, "is not a duration"},
		{d, "5 s", "", nil, "is not a duration"},
		{d, "NaN", "", nil, "is not a duration"},
		{d, "Inf", "", nil, "is not a duration"},
		{w, "30", "30", 30 * time.Second, ""},
		{w, "1m30s", "90", 90 * time.Second, ""},
		{w, "0", "0", time.Duration(0), ""},
		{w, "-1", "", nil, "is not a duration"},
		{w, "-1s", "", nil, "is not a duration"},
		{w, "2h", "", nil, "from 0 to 3600 seconds"},
		// Beyond time.Duration: refused rather than wrapped round to a
		// negative duration.
		{d, "1e300", "", nil, "is longer than a Go duration holds"},
		{d, "9300000000", "", nil, "is longer than a Go duration holds"},
		{l, " a, b ,,c,", "a,b,c", []string{"a", "b", "c"}, ""},
		{l, " , ", "", nil, "is an empty list"},
		{s, " kept as given ", " kept as given ", " kept as given ", ""},
	}
	for _, tt := range tests {
		t.Run(tt.opt.Spec().Name+"="+tt.in, func(t *testing.T) {
			norm, err := tt.opt.Spec().Normalize(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Normalize(%q) = %q, %v; want an error with %q", tt.in, norm, err, tt.wantErr)
				}
				return
			}
			if err != nil || norm != tt.norm {
				t.Fatalf("Normalize(%q) = %q, %v; want %q", tt.in, norm, err, tt.norm)
			}
			var got any
			switch o := tt.opt.(type) {
			case *option.BoolOpt:
				got = o.Value(norm)
			case *option.IntOpt:
				got = o.Value(norm)
			case *option.DurationOpt:
				got = o.Value(norm)
			case *option.ListOpt:
				got = o.Value(norm)
			case *option.StringOpt:
				got = norm
			}
			if l, ok := got.([]string); ok {
				if !slices.Equal(l, tt.value.([]string)) {
					t.Errorf("Value(%q) = %q, want %q", norm, l, tt.value)
				}
			} else if got != tt.value {
				t.Errorf("Value(%q) = %v, want %v", norm, got, tt.value)
			}
		})
	}
}

// TestValueOfNothing: Value of "" is the kind's zero value, as Get of an
// option without a default.
func TestValueOfNothing(t *testing.T) {
	if v := option.Bool(option.Spec{Name: "b"}).Value(""); v {
		t.Errorf("BoolOpt.Value(\"\") = %v", v)
	}
	if v := option.Int(option.Spec{Name: "n"}).Value(""); v != 0 {
		t.Errorf("IntOpt.Value(\"\") = %v", v)
	}
	if v := option.Duration(option.Spec{Name: "d"}).Value(""); v != 0 {
		t.Errorf("DurationOpt.Value(\"\") = %v", v)
	}
	if v := option.List(option.Spec{Name: "l"}).Value(""); v != nil {
		t.Errorf("ListOpt.Value(\"\") = %q", v)
	}
}

func TestOnlyValuesAndCheck(t *testing.T) {
	strategy := option.String(option.Spec{Name: "strategy", Effect: option.OnlyValues, Only: []string{"round-robin"}, Why: "hosts are tried in turn"})
	never := option.String(option.Spec{Name: "compression", Effect: option.OnlyValues, Why: "bodies go uncompressed"})
	checked := option.String(option.Spec{Name: "driver", Check: func(v string) error {
		if v == "routing" {
			return option.Unsupported("routing is oslo's, not implemented")
		}
		return nil
	}})
	if _, err := strategy.Spec().Normalize("round-robin"); err != nil {
		t.Errorf("the one accepted value: %v", err)
	}
	for _, c := range []struct {
		opt option.Option
		v   string
	}{{strategy, "shuffle"}, {never, "gzip"}, {checked, "routing"}} {
		_, err := c.opt.Spec().Normalize(c.v)
		if !errors.Is(err, driver.ErrUnsupported) {
			t.Errorf("%s=%s: %v, want an error matching ErrUnsupported", c.opt.Spec().Name, c.v, err)
		}
	}
}

func TestSetParse(t *testing.T) {
	flag := option.Bool(option.Spec{Name: "flag", Default: "yes"})
	wait := option.Duration(option.Spec{Name: "wait", Default: "2s"})
	tuning := option.Int(option.Spec{Name: "pool", Default: "30", Effect: option.Ignored, Why: "Python's threads"})
	set := option.NewSet(flag, wait, tuning)

	v, err := set.ParseQuery(url.Values{}, "test://")
	if err != nil {
		t.Fatal(err)
	}
	if !flag.Get(v) || wait.Get(v) != 2*time.Second || v.IsSet(flag) {
		t.Errorf("defaults: flag %v, wait %v, set %v", flag.Get(v), wait.Get(v), v.IsSet(flag))
	}

	v, err = set.ParseQuery(url.Values{"flag": {"yes", "off"}, "wait": {"250ms"}, "pool": {"5"}}, "test://")
	if err != nil {
		t.Fatal(err)
	}
	if flag.Get(v) || wait.Get(v) != 250*time.Millisecond || !v.IsSet(flag) {
		t.Errorf("the last value counts: flag %v, wait %v", flag.Get(v), wait.Get(v))
	}
	if tuning.Get(v) != 30 || strings.Join(v.Ignored(), ",") != "pool" {
		t.Errorf("an ignored option reads as its default and is reported: %d, %v", tuning.Get(v), v.Ignored())
	}

	for _, tt := range []struct {
		query url.Values
		want  string
	}{
		{url.Values{"bogus": {"1"}, "flag": {"1"}}, "unknown option bogus for test:// (known: flag, wait, pool)"},
		{url.Values{"wait": {"later"}}, `option wait of test://: "later" is not a duration`},
	} {
		_, err := set.ParseQuery(tt.query, "test://")
		if !errors.Is(err, driver.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseQuery(%v): %v, want ErrInvalid saying %q", tt.query, err, tt.want)
		}
	}

	u := &driver.URL{Scheme: "test", Options: url.Values{"flag": {"no"}, "other": {"x"}}}
	if _, err := set.Parse(u); err == nil {
		t.Error("Parse accepted an option it does not know")
	}
	if v, err := set.Pick(u); err != nil || flag.Get(v) {
		t.Errorf("Pick reads its own options and leaves the rest: %v, flag %v", err, flag.Get(v))
	}
}

func TestDeclarationErrorsPanicAtInit(t *testing.T) {
	for name, declare := range map[string]func(){
		"bad default": func() { option.Int(option.Spec{Name: "n", Default: "x"}) },
		"no name":     func() { option.Bool(option.Spec{}) },
		"same name":   func() { option.NewSet(option.Bool(option.Spec{Name: "a"}), option.Int(option.Spec{Name: "a"})) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			declare()
		}()
	}
}
