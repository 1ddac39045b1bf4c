package config_test

import (
	"errors"
	"flag"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard-mq/switchyard/config"
	"github.com/switchyard-mq/switchyard/internal/rabbitmq"
	"github.com/switchyard-mq/switchyard/transport"
	"github.com/switchyard-mq/switchyard/transport/driver/option"
)

// loadFile loads a file of text, and nothing else.
func loadFile(t *testing.T, text string) (config.Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f.conf")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return config.Load(config.Sources{Files: []string{path}})
}

// loaded is the value an option of rabbitmq.Options has in c.
func loaded(c config.Config, name string) string {
	if name == option.ControlExchange.Spec().Name {
		return c.ControlExchange
	}
	return c.TransportOptions.Get(name)
}

// sample is a value the option accepts, other than its default; "" for an
// option that accepts none.
func sample(s option.Spec) string {
	if s.Effect == option.OnlyValues {
		if len(s.Only) == 0 {
			return ""
		}
		return s.Only[0]
	}
	switch s.Kind() {
	case option.KindBool:
		if s.Default == "true" {
			return "no"
		}
		return "yes"
	case option.KindInt:
		return "7"
	case option.KindDuration:
		return "2m"
	}
	return "nova"
}

// TestRabbitOptionsFromEverySource: every option a rabbit:// URL takes is
// read from a file, under its name and its deprecated ones; those
// Switchyard uses from a flag and an environment variable too, named
// after it. The others are checked, then dropped.
func TestRabbitOptionsFromEverySource(t *testing.T) {
	for _, o := range rabbitmq.Options.All() {
		spec := o.Spec()
		value := sample(spec)
		if value == "" {
			continue // no value is accepted: TestFileSpellingsAreTheURLs refuses some
		}
		want, err := spec.Normalize(value)
		if err != nil {
			t.Fatalf("%s: sample %q: %v", spec.Name, value, err)
		}
		if spec.Effect != option.Used {
			want = ""
		}
		t.Run(spec.Name, func(t *testing.T) {
			places := append([]option.Alias{{Group: spec.Group, Name: spec.Name}}, spec.Aliases...)
			for _, at := range places {
				c, err := loadFile(t, "["+at.Group+"]\n"+at.Name+" = "+value+"\n")
				if err != nil {
					t.Fatalf("[%s] %s = %s: %v", at.Group, at.Name, value, err)
				}
				if got := loaded(c, spec.Name); got != want {
					t.Errorf("[%s] %s = %s: loaded %q, want %q", at.Group, at.Name, value, got, want)
				}
			}

			flagName := strings.ReplaceAll(spec.Name, "_", "-")
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			flags := config.RegisterFlags(fs)
			if spec.Effect != option.Used {
				if fs.Lookup(flagName) != nil {
					t.Errorf("-%s: a flag for an option Switchyard does not use", flagName)
				}
				return
			}
			if err := fs.Parse([]string{"-" + flagName + "=" + value}); err != nil {
				t.Fatal(err)
			}
			envName := "SWITCHYARD_" + strings.ToUpper(spec.Name)
			for source, s := range map[string]config.Sources{
				"-" + flagName: {Flags: flags},
				envName:        {Env: env(map[string]string{envName: value})},
			} {
				c, err := config.Load(s)
				if err != nil {
					t.Fatalf("%s=%s: %v", source, value, err)
				}
				if got := loaded(c, spec.Name); got != want {
					t.Errorf("%s=%s: loaded %q, want %q", source, value, got, want)
				}
			}
		})
	}
}

// TestFileSpellingsAreTheURLs: a file accepts exactly the spellings of an
// option that a rabbit:// URL accepts, reads them as the same value, and
// refuses the others with the same message: both are read by the
// option's Normalize.
func TestFileSpellingsAreTheURLs(t *testing.T) {
	spellings := []string{
		"true", "False", "YES", "off", "1", "0", "-1", "7", "65535", "65536", "2147483648",
		"1.5", "1500ms", "2m", "-2s", "1e300", "x", "nova", "round-robin", "AMQPLAIN", "PLAIN", "60", "gzip",
	}
	for _, o := range rabbitmq.Options.All() {
		spec := o.Spec()
		for _, v := range spellings {
			_, urlErr := rabbitmq.Options.ParseQuery(url.Values{spec.Name: {v}}, "rabbit://h/")
			c, fileErr := loadFile(t, "["+spec.Group+"]\n"+spec.Name+" = "+v+"\n")
			norm, err := spec.Normalize(v)
			switch {
			case (urlErr == nil) != (fileErr == nil):
				t.Errorf("%s=%s: the URL says %v, the file %v", spec.Name, v, urlErr, fileErr)
			case err != nil:
				for _, got := range []error{urlErr, fileErr} {
					if !strings.HasSuffix(got.Error(), ": "+err.Error()) ||
						errors.Is(got, transport.ErrUnsupported) != errors.Is(err, transport.ErrUnsupported) {
						t.Errorf("%s=%s: %v, want Normalize's %v", spec.Name, v, got, err)
					}
				}
			case spec.Effect == option.Used && loaded(c, spec.Name) != norm:
				t.Errorf("%s=%s: the file reads %q, the URL %q", spec.Name, v, loaded(c, spec.Name), norm)
			}
		}
	}
}

// TestControlExchangeIsAName: control_exchange is checked as a name, in a
// file (which has no trailing comments, so "nova # the exchange" is a
// value) as in a URL.
func TestControlExchangeIsAName(t *testing.T) {
	const v = "nova # the exchange"
	if _, err := rabbitmq.Options.ParseQuery(url.Values{"control_exchange": {v}}, "rabbit://h/"); err == nil || !strings.Contains(err.Error(), "is not a valid name") {
		t.Errorf("URL: %v, want the name refused", err)
	}
	if _, err := loadFile(t, "[DEFAULT]\ncontrol_exchange = "+v+"\n"); err == nil || !strings.Contains(err.Error(), "is not a valid name") {
		t.Errorf("file: %v, want the name refused", err)
	}
}
