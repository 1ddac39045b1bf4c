package config

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/switchyard-mq/switchyard/transport/driver/option"
)

// Sources says where Load reads the configuration. Each source overrides
// the ones before it, option by option: flags > environment > files >
// defaults.
type Sources struct {
	// Defaults is the configuration before any source is read; nil means
	// Default(). A service sets its own defaults here, e.g. a
	// notification driver.
	Defaults *Config
	// Files are oslo.config INI files, read in order: an option set in a
	// later file overrides the same option in an earlier one, as with
	// oslo's repeated --config-file. The flag -config-file, or else the
	// environment variable SWITCHYARD_CONFIG_FILE, replaces this list.
	Files []string
	// Env looks up environment variables, usually os.LookupEnv; nil reads
	// none. Each option Switchyard uses has one: SWITCHYARD_URL for
	// transport_url, SWITCHYARD_<NAME> for the others
	// (SWITCHYARD_CONTROL_EXCHANGE, SWITCHYARD_RABBIT_QOS_PREFETCH_COUNT),
	// SWITCHYARD_NOTIFICATIONS_<NAME> for [oslo_messaging_notifications].
	// Other SWITCHYARD_ variables are not read.
	Env func(key string) (string, bool)
	// Flags are the flags RegisterFlags declared, after their flag set is
	// parsed; nil reads none. Only the flags given on the command line
	// count.
	Flags *Flags
}

// setting is one option's value from one source.
type setting struct {
	value  string // normalized
	origin string // for errors
	name   string // the option as written at origin
}

// layer is one source's settings, by option.
type layer map[*entry]setting

// Load reads the configuration from its sources and validates it. An
// empty value ("name =" in a file, an empty variable) leaves the option
// unset. Errors name the option and where it was set (an *OptionError);
// several errors are joined.
func Load(s Sources) (Config, error) {
	cfg := Default()
	if s.Defaults != nil {
		cfg = s.Defaults.Clone()
	}
	if cfg.TransportOptions == nil {
		cfg.TransportOptions = url.Values{}
	}
	files := s.Files
	if s.Flags != nil && len(s.Flags.files) > 0 {
		files = s.Flags.files
	} else if s.Env != nil {
		if f, ok := s.Env("SWITCHYARD_CONFIG_FILE"); ok && f != "" {
			files = []string{f}
		}
	}
	var layers []layer
	var errs []error
	for _, path := range files {
		l, err := readFile(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		layers = append(layers, l)
	}
	if s.Env != nil {
		l, err := envLayer(s.Env)
		errs = append(errs, err)
		layers = append(layers, l)
	}
	if s.Flags != nil {
		l, err := s.Flags.layer()
		errs = append(errs, err)
		layers = append(layers, l)
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	for _, l := range layers {
		for _, e := range known {
			st, ok := l[e]
			if !ok {
				continue
			}
			if e.apply != nil {
				e.apply(&cfg, st.value)
			} else {
				cfg.TransportOptions.Set(e.spec.Name, st.value)
			}
		}
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// add normalizes a value and records it in l; the options Switchyard
// does not use (Ignored and OnlyValues) are checked and dropped.
func (l layer) add(e *entry, value, origin, name string) error {
	if value == "" {
		return nil
	}
	norm, err := e.spec.Normalize(value)
	if err != nil {
		return &OptionError{Origin: origin, Option: name, Err: err}
	}
	if e.spec.Effect == option.Used {
		l[e] = setting{value: norm, origin: origin, name: name}
	}
	return nil
}

// foldURLQuery moves the options of the layer's transport URL's query
// that travel in it into the layer, as options set by the same source:
// oslo lets the URL's query override the file's options (oslo.messaging's
// ConfigOptsProxy), and a source of higher precedence overrides both.
// Other query options stay in the URL: another driver's, and the rabbit
// driver's own when the URL is another driver's (amqps:// takes
// ssl_ca_file too, and would lose it).
func (l layer) foldURLQuery() error {
	urlEntry := known.entryOf(transportURL)
	st, ok := l[urlEntry]
	if !ok {
		return nil
	}
	origin, name := st.origin, st.name
	base, rawQuery, ok := strings.Cut(st.value, "?")
	if !ok {
		return nil
	}
	query, err := url.ParseQuery(rawQuery)
	if err != nil {
		return &OptionError{Origin: origin, Option: name, Err: fmt.Errorf("query: %v", err)}
	}
	scheme, _, _ := strings.Cut(base, "://")
	var errs []error
	for _, key := range sortedKeys(query) {
		e := known.inQuery(key)
		if e == nil || !e.travels(strings.ToLower(scheme)) {
			continue
		}
		vs := query[key]
		delete(query, key)
		errs = append(errs, l.add(e, vs[len(vs)-1], origin, name+" option "+key))
	}
	if len(query) > 0 {
		base += "?" + query.Encode()
	}
	st.value = base
	l[urlEntry] = st
	return errors.Join(errs...)
}

// readFile reads an oslo.config file into a layer.
func readFile(path string) (layer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	ini, err := parseINI(path, f)
	if err != nil {
		return nil, err
	}
	l := layer{}
	var errs []error
	// Deprecated names first, so that an option's current name wins.
	for _, deprecated := range []bool{true, false} {
		for _, sectionName := range ini.order {
			section := ini.sections[sectionName]
			owned := slices.Contains(ownedSections, sectionName)
			for _, key := range section.keys {
				e, isAlias := known.lookup(sectionName, key)
				if e == nil {
					if owned && !deprecated {
						errs = append(errs, &OptionError{
							Origin: fmt.Sprintf("%s:%d", path, section.values[key][0].line),
							Option: "[" + section.name + "] " + key,
							Err:    errors.New("unknown option" + known.suggest(sectionName, key)),
						})
					}
					continue
				}
				if isAlias != deprecated {
					continue
				}
				errs = append(errs, l.addFileValues(ini, sectionName, section, key, e)...)
			}
		}
	}
	errs = append(errs, l.foldURLQuery())
	return l, errors.Join(errs...)
}

func (l layer) addFileValues(ini *iniFile, sectionName string, section *iniSection, key string, e *entry) []error {
	values := section.values[key]
	name := "[" + section.name + "] " + key
	if e.opt == notificationDriver {
		// A MultiStrOpt: every line is a driver.
		var set []iniValue
		for _, v := range values {
			if v.text != "" {
				set = append(set, v)
			}
		}
		if len(set) > 1 {
			return []error{&OptionError{Origin: fmt.Sprintf("%s:%d", ini.name, set[1].line), Option: name,
				Err: option.Unsupported("several notification drivers are not supported by Switchyard (one driver per service)")}}
		}
	}
	var errs []error
	for _, v := range values {
		origin := fmt.Sprintf("%s:%d", ini.name, v.line)
		text, err := ini.substitute(sectionName, v.text, 0)
		if err != nil {
			errs = append(errs, &OptionError{Origin: origin, Option: name, Err: err})
			continue
		}
		// Every value is checked; the last one counts, as in oslo.
		if err := l.add(e, text, origin, name); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// envLayer reads the options' environment variables.
func envLayer(env func(string) (string, bool)) (layer, error) {
	l := layer{}
	var errs []error
	for _, e := range known {
		if !e.settable() {
			continue
		}
		if v, ok := env(e.envName()); ok {
			errs = append(errs, l.add(e, v, "environment", e.envName()))
		}
	}
	errs = append(errs, l.foldURLQuery())
	return l, errors.Join(errs...)
}

// Flags are the command-line flags of the configuration, declared by
// RegisterFlags.
type Flags struct {
	fs     *flag.FlagSet
	files  []string
	values map[*entry]string
}

// RegisterFlags declares on fs a flag for each option Switchyard uses,
// named after the oslo option with dashes (-transport-url,
// -control-exchange, -rpc-response-timeout, -rabbit-qos-prefetch-count,
// -notifications-driver, ...), and -config-file (repeatable) for oslo
// configuration files. Pass the result as Sources.Flags once fs is parsed.
func RegisterFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{fs: fs, values: map[*entry]string{}}
	fs.Func("config-file", "oslo.config `file` (nova.conf style) to read; repeat for several, later ones override", func(path string) error {
		f.files = append(f.files, path)
		return nil
	})
	for _, e := range known {
		if e.settable() {
			fs.Var(&flagValue{f: f, e: e}, e.flagName(), e.usage())
		}
	}
	return f
}

// flagValue is one option's flag.
type flagValue struct {
	f *Flags
	e *entry
}

// String shows the flag's value, with a URL's password hidden.
func (v *flagValue) String() string {
	if v == nil || v.f == nil {
		return ""
	}
	s := v.f.values[v.e]
	if v.e.url {
		return redactURL(s)
	}
	return s
}

// Set checks the value, except a URL's: package flag would quote a bad
// URL, password and all, in its error; Load reports it instead.
func (v *flagValue) Set(s string) error {
	if !v.e.url && s != "" {
		if _, err := v.e.spec.Normalize(s); err != nil {
			return err
		}
	}
	v.f.values[v.e] = s
	return nil
}

// IsBoolFlag lets boolean options be given as -name alone.
func (v *flagValue) IsBoolFlag() bool { return v.e.spec.Kind() == option.KindBool }

func (f *Flags) layer() (layer, error) {
	l := layer{}
	var errs []error
	for _, e := range known {
		if v, ok := f.values[e]; ok {
			errs = append(errs, l.add(e, v, "command line", "-"+e.flagName()))
		}
	}
	errs = append(errs, l.foldURLQuery())
	return l, errors.Join(errs...)
}
