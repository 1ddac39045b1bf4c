package config

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/switchyard-mq/switchyard/transport/driver/option"
)

// iniFile is an oslo.config file, parsed by oslo.config's rules
// (oslo_config/iniparser.py and cfg.ConfigParser):
//
//   - "[section]" starts a section; section names are case-insensitive
//     except DEFAULT, which must be upper case (oslo lower-cases the others).
//   - "key = value" or "key: value", split at the first '=' or ':',
//     whichever comes first; key and value are trimmed, and one pair of
//     matching quotes around the value is removed.
//   - A line starting with '#' or ';' is a comment. There are no trailing
//     comments: "a = b # c" sets a to "b # c", as in oslo.
//   - A line starting with a space or tab continues the previous value
//     (joined with a newline); a blank line ends it.
//   - A key given twice keeps every value; single-valued options use the
//     last.
type iniFile struct {
	name     string
	sections map[string]*iniSection
	order    []string // section names as first seen, for deterministic errors
}

type iniSection struct {
	name   string // as written
	values map[string][]iniValue
	keys   []string // in order of first appearance
}

// iniValue is one assignment.
type iniValue struct {
	text string
	line int
}

// iniError is a syntax error in a file.
func iniError(name string, line int, format string, args ...any) error {
	return &OptionError{Origin: fmt.Sprintf("%s:%d", name, line), Option: "syntax", Err: fmt.Errorf(format, args...)}
}

func normalizeSection(s string) string {
	if s == option.GroupDefault {
		return s
	}
	return strings.ToLower(s)
}

// parseINI reads a file; name is used in errors.
func parseINI(name string, r io.Reader) (*iniFile, error) {
	f := &iniFile{name: name, sections: map[string]*iniSection{}}
	var (
		section  *iniSection
		key      string
		keyLine  int
		value    []string
		lineNo   int
		flushErr error
	)
	flush := func() {
		if key == "" {
			return
		}
		if section == nil {
			flushErr = iniError(name, keyLine, "%q is set before any [section]", key)
			return
		}
		if _, seen := section.values[key]; !seen {
			section.keys = append(section.keys, key)
		}
		section.values[key] = append(section.values[key], iniValue{text: strings.Join(value, "\n"), line: keyLine})
		key, value = "", nil
	}
	scanner := bufio.NewScanner(r)
	scanner.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for scanner.Scan() {
		lineNo++
		line := strings.TrimRight(scanner.Text(), " \t\r\n\f\v")
		switch {
		case line == "":
			flush()
		case line[0] == ' ' || line[0] == '\t':
			if key == "" {
				return nil, iniError(name, lineNo, "unexpected continuation line %q", strings.TrimSpace(line))
			}
			value = append(value, strings.TrimLeft(line, " \t"))
			continue
		default:
			flush()
			switch {
			case line[0] == '[':
				if !strings.HasSuffix(line, "]") {
					return nil, iniError(name, lineNo, "section %q does not end with ]", line)
				}
				if len(line) <= 2 {
					return nil, iniError(name, lineNo, "empty section name")
				}
				raw := line[1 : len(line)-1]
				norm := normalizeSection(raw)
				s, ok := f.sections[norm]
				if !ok {
					s = &iniSection{name: raw, values: map[string][]iniValue{}}
					f.sections[norm] = s
					f.order = append(f.order, norm)
				}
				section = s
			case line[0] == '#' || line[0] == ';':
			default:
				k, v, err := splitAssignment(line)
				if err != nil {
					return nil, iniError(name, lineNo, "%v: %q", err, line)
				}
				key, keyLine, value = k, lineNo, []string{v}
			}
		}
		if flushErr != nil {
			return nil, flushErr
		}
	}
	if err := scanner.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	flush()
	if flushErr != nil {
		return nil, flushErr
	}
	return f, nil
}

func splitAssignment(line string) (key, value string, err error) {
	colon, equal := strings.IndexByte(line, ':'), strings.IndexByte(line, '=')
	var at int
	switch {
	case colon < 0 && equal < 0:
		return "", "", fmt.Errorf("no '=' or ':' in an assignment")
	case colon < 0 || (equal >= 0 && equal < colon):
		at = equal
	default:
		at = colon
	}
	key, value = strings.TrimSpace(line[:at]), strings.TrimSpace(line[at+1:])
	if key == "" {
		return "", "", fmt.Errorf("empty key")
	}
	if len(value) >= 2 && (value[0] == '"' || value[0] == '\'') && value[len(value)-1] == value[0] {
		value = value[1 : len(value)-1]
	}
	return key, value, nil
}

// last returns the last value of key in section, if set.
func (f *iniFile) last(section, key string) (iniValue, bool) {
	s, ok := f.sections[section]
	if !ok {
		return iniValue{}, false
	}
	vs := s.values[key]
	if len(vs) == 0 {
		return iniValue{}, false
	}
	return vs[len(vs)-1], true
}

// maxSubstitutionDepth bounds nested references, and so reference cycles.
const maxSubstitutionDepth = 10

// substitute expands oslo.config's templates in a value of section:
// "$$" and "\$" are a literal '$'; "$name" and "${name}" are the value of
// option name in the same section, else in [DEFAULT]; "${group.name}" names
// the section. Like oslo, a '$' that starts no name is kept as it is.
// Unlike oslo, which knows every registered option's default, Switchyard
// can only substitute values set in the file; a reference to another is an
// error.
func (f *iniFile) substitute(section, value string, depth int) (string, error) {
	if !strings.Contains(value, "$") {
		return value, nil
	}
	if depth > maxSubstitutionDepth {
		return "", fmt.Errorf("substitutions nested more than %d deep (a cycle?)", maxSubstitutionDepth)
	}
	value = strings.ReplaceAll(value, `\$`, "$$")
	var b strings.Builder
	for i := 0; i < len(value); i++ {
		c := value[i]
		if c != '$' || i+1 == len(value) {
			b.WriteByte(c)
			continue
		}
		next := value[i+1]
		var ref string
		switch {
		case next == '$':
			b.WriteByte('$')
			i++
			continue
		case next == '{':
			end := strings.IndexByte(value[i+2:], '}')
			if end < 0 || !isTemplateName(value[i+2:i+2+end]) {
				b.WriteByte(c)
				continue
			}
			ref = value[i+2 : i+2+end]
			i += 2 + end
		default:
			n := templateNameLen(value[i+1:])
			if n == 0 {
				b.WriteByte(c)
				continue
			}
			ref = value[i+1 : i+1+n]
			i += n
		}
		expanded, err := f.resolve(section, ref, depth)
		if err != nil {
			return "", err
		}
		b.WriteString(expanded)
	}
	return b.String(), nil
}

func (f *iniFile) resolve(section, ref string, depth int) (string, error) {
	candidates := []struct{ section, key string }{{section, ref}, {option.GroupDefault, ref}}
	if group, key, ok := strings.Cut(ref, "."); ok {
		candidates = append([]struct{ section, key string }{{normalizeSection(group), key}}, candidates...)
	}
	for _, c := range candidates {
		if v, ok := f.last(c.section, c.key); ok {
			return f.substitute(c.section, v.text, depth+1)
		}
	}
	return "", fmt.Errorf("$%s is not set in the file (Switchyard substitutes only values the file sets; write $$ for a literal $)", ref)
}

// templateNameLen is the length of the name at the start of s, by
// Python string.Template's rule as oslo.config sets it:
// [_a-z][._a-z0-9]*, case-insensitive.
func templateNameLen(s string) int {
	n := 0
	for n < len(s) {
		c := s[n]
		letter := c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !letter && (n == 0 || !(c == '.' || c >= '0' && c <= '9')) {
			break
		}
		n++
	}
	return n
}

func isTemplateName(s string) bool { return s != "" && templateNameLen(s) == len(s) }
