package option_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/transport/driver"
	"github.com/switchyard-mq/switchyard/transport/driver/option"
)

// TestNormalize: the one reading of every kind's spellings.
func TestNormalize(t *testing.T) {
	flag := option.Bool(option.Spec{Name: "flag"})
	count := option.Int(option.Spec{Name: "count", Min: -1, Max: 100})
	wait := option.Duration(option.Spec{Name: "wait", Max: 3600})
	atLeastOne := option.Duration(option.Spec{Name: "ttl", Min: 1})
	words := option.List(option.Spec{Name: "words"})
	text := option.String(option.Spec{Name: "text"})
	tests := []struct {
		opt     option.Option
		in      string
		want    string // "" when refused
		wantErr string
	}{
		{flag, "true", "true", ""},
		{flag, "YES", "true", ""},
		{flag, " on ", "true", ""},
		{flag, "1", "true", ""},
		{flag, "False", "false", ""},
		{flag, "no", "false", ""},
		{flag, "off", "false", ""},
		{flag, "0", "false", ""},
		{flag, "t", "", "is not a boolean"},
		{flag, "maybe", "", "is not a boolean"},
		{flag, "", "", "is not a boolean"},
		{count, "42", "42", ""},
		{count, " 7 ", "7", ""},
		{count, "-1", "-1", ""},
		{count, "+5", "5", ""},
		{count, "-2", "", "from -1 to 100"},
		{count, "101", "", "from -1 to 100"},
		{count, "1.5", "", "is not a whole number"},
		{count, "ten", "", "is not a whole number"},
		{wait, "30", "30", ""},
		{wait, "1.5", "1.5", ""},
		{wait, "1500ms", "1.5", ""},
		{wait, "1m30s", "90", ""},
		{wait, "0", "0", ""},
		{wait, "-1", "", "is not a duration"},
		{wait, "-1s", "", "is not a duration"},
		{wait, "2h", "", "from 0 to 3600 seconds"},
		{wait, "NaN", "", "is not a duration"},
		{wait, "Inf", "", "is not a duration"},
		{wait, "soon", "", "is not a duration"},
		{wait, "5 s", "", "is not a duration"},
		{atLeastOne, "0.5", "", "of at least 1 seconds"},
		{words, "a, b,,c ,", "a,b,c", ""},
		{words, " , ", "", "is an empty list"},
		{text, " kept as given ", " kept as given ", ""},
	}
	for _, tt := range tests {
		got, err := tt.opt.Spec().Normalize(tt.in)
		switch {
		case tt.wantErr == "" && (err != nil || got != tt.want):
			t.Errorf("%s %q: got %q, %v; want %q", tt.opt.Spec().Name, tt.in, got, err, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s %q: got %q, %v; want an error saying %q", tt.opt.Spec().Name, tt.in, got, err, tt.wantErr)
		}
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
