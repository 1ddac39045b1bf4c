package option_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/transport/driver/option"
)

// TestNormalizeAndValue: each kind's spellings normalize to one text, and
// Value reads that text back as the typed value Get returns.
func TestNormalizeAndValue(t *testing.T) {
	b := option.Bool(option.Spec{Name: "b"})
	n := option.Int(option.Spec{Name: "n", Min: -1, Max: 100})
	d := option.Duration(option.Spec{Name: "d", Min: 1})
	l := option.List(option.Spec{Name: "l"})
	tests := []struct {
		opt     option.Option
		in      string
		norm    string // "" when refused
		value   any
		wantErr string
	}{
		{b, "Yes", "true", true, ""},
		{b, " off ", "false", false, ""},
		{b, "maybe", "", nil, "is not a boolean"},
		{n, " 42 ", "42", 42, ""},
		{n, "-1", "-1", -1, ""},
		{n, "101", "", nil, "is not a whole number from -1 to 100"},
		{n, "1.5", "", nil, "is not a whole number"},
		{d, "1.5", "1.5", 1500 * time.Millisecond, ""},
		{d, "1500ms", "1.5", 1500 * time.Millisecond, ""},
		{d, "2m", "120", 2 * time.Minute, ""},
		{d, "0.5", "", nil, "is not a duration of at least 1 seconds"},
		{d, "soon", "", nil, "is not a duration"},
		// Beyond time.Duration: refused rather than wrapped round to a
		// negative duration.
		{d, "1e300", "", nil, "is longer than a Go duration holds"},
		{d, "9300000000", "", nil, "is longer than a Go duration holds"},
		{l, " a, b ,,c,", "a,b,c", []string{"a", "b", "c"}, ""},
		{l, " , ", "", nil, "is an empty list"},
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
