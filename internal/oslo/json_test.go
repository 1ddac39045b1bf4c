package oslo

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// scannerInputs are JSON texts, valid and not, on which the scanner must
// agree with encoding/json.
var scannerInputs = []string{
	``, ` `, `{}`, ` {} `, `[]`, `[ ]`, `null`, `true`, `false`, `nul`, `tru`, `falsey`,
	`0`, `-0`, `01`, `-`, `1.`, `.5`, `1.5`, `1e5`, `1E+5`, `1e-5`, `1e`, `1e+`, `-01`,
	`9007199254740993`, `1e400`, `-1e400`, `123456789012345678901234567890`,
	`""`, `"abc"`, `"a\"b"`, `"\u00e9"`, `"\ud83d\ude00"`, `"\ud83d"`, `"\u12"`, `"\x"`,
	"\"\x00\"", "\"\x1f\"", "\"\x7f\"", "\"\xff\"", "\"é\"", `"\/"`, `"abc`, `"\`,
	`{"a":1}`, `{"a":1,}`, `{"a" 1}`, `{a:1}`, `{"a":1 "b":2}`, `{"a":}`, `{,}`,
	`[1,2,3]`, `[1,]`, `[,1]`, `[1 2]`, `[[[]]]`, `[{"a":[{"b":null}]}]`,
	`{"a":1}x`, `{} {}`, `NaN`, `Infinity`, `-Infinity`, `[NaN]`, `nan`, `-Inf`,
	"\ufeff{}", "{\t\"a\"\r\n:\n1}", `{"a":1}` + "\x00",
	strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth),
	strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1),
}

func TestCheckValidAgreesWithEncodingJSON(t *testing.T) {
	for _, in := range scannerInputs {
		got := checkValid([]byte(in)) == nil
		if want := json.Valid([]byte(in)); got != want {
			name := in
			if len(name) > 40 {
				name = name[:40] + "…"
			}
			t.Errorf("checkValid(%q) valid = %v, encoding/json says %v", name, got, want)
		}
	}
}

func TestNonFiniteNumbers(t *testing.T) {
	for _, in := range []string{`NaN`, `Infinity`, `-Infinity`, `{"a": [1, NaN]}`} {
		err := checkValid([]byte(in))
		if err == nil || !strings.Contains(err.Error(), "non-finite number") {
			t.Errorf("checkValid(%s) = %v, want a non-finite number error", in, err)
		}
		s := scanner{data: []byte(in), lenient: true}
		if err := s.skipValue(0); err != nil || s.nonFinite != 1 || s.pos != len(in) {
			t.Errorf("lenient scan of %s: err %v, nonFinite %d, pos %d", in, err, s.nonFinite, s.pos)
		}
	}
}

func TestUnquoteAgreesWithEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`""`, `"abc"`, `"a\"b\\c\/d"`, `"\b\f\n\r\t"`, `"\u0000\u001f"`, `"\u00e9"`,
		`"\ud83d\ude00"`, `"\ud83d"`, `"\ude00"`, `"\ud83dx"`, `"\ud83d\u0041"`,
		`"\ud83d\ud83d\ude00"`, `"\uDE00\uD83D"`, "\"\xff\xfe\"", "\"\xed\xa0\x80\"", `"é😀"`,
		"\"a\xc3\"", `"\ufffd"`,
	} {
		var want string
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			t.Fatalf("bad test input %q: %v", in, err)
		}
		if got := unquote([]byte(in[1 : len(in)-1])); got != want {
			t.Errorf("unquote(%q) = %q, encoding/json gives %q", in, got, want)
		}
	}
}

func TestAppendStringBody(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"plain", "plain"},
		// Python's json.dumps forms: short escapes, \u00XX lower-case.
		{"q\"b\\s/\b\f\n\r\t\x00\x1f", `q\"b\\s/\b\f\n\r\t\u0000\u001f`},
		{"\x7f", "\x7f"},
		{"é😀\u2028", "é😀\u2028"},
		{"a\xffb", `a\ufffdb`},
		{"\xed\xa0\x80", `\ufffd\ufffd\ufffd`},
		{"end\xc3", `end\ufffd`},
	}
	for _, tt := range tests {
		if got := string(appendStringBody(nil, tt.in)); got != tt.want {
			t.Errorf("appendStringBody(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := string(appendStringBody(nil, []byte(tt.in))); got != tt.want {
			t.Errorf("appendStringBody([]byte(%q)) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestAppendFloat(t *testing.T) {
	for f, want := range map[float64]string{
		0: "0", 2: "2", 2.5: "2.5", -60: "-60", 1e-7: "1e-7", 1e21: "1e+21", 123456789: "123456789",
	} {
		if got := string(appendFloat(nil, f)); got != want {
			t.Errorf("appendFloat(%v) = %s, want %s", f, got, want)
		}
	}
}

func TestSyntaxErrorsWrapErrMalformed(t *testing.T) {
	_, err := DecodeRequest([]byte(`{"method": "x", "args": {"a": }}`))
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrMalformed", err)
	}
	if !strings.Contains(err.Error(), "offset 30") {
		t.Errorf("err = %v, want the offset named", err)
	}
}

// FuzzScanner checks the scanner against encoding/json on any input.
func FuzzScanner(f *testing.F) {
	for _, in := range scannerInputs {
		if len(in) < 100 {
			f.Add(in)
		}
	}
	f.Fuzz(func(t *testing.T, in string) {
		valid := checkValid([]byte(in)) == nil
		if want := json.Valid([]byte(in)); valid != want {
			t.Fatalf("checkValid(%q) valid = %v, encoding/json says %v", in, valid, want)
		}
		// Escaping any text gives a JSON string that decodes to the text,
		// with invalid UTF-8 replaced.
		quoted := appendString(nil, in)
		var back string
		if err := json.Unmarshal(quoted, &back); err != nil {
			t.Fatalf("appendString(%q) = %s: not JSON: %v", in, quoted, err)
		}
		if want := string([]rune(in)); back != want { // each invalid byte becomes U+FFFD
			t.Fatalf("appendString(%q) decodes to %q", in, back)
		}
		if !utf8.Valid(quoted) {
			t.Fatalf("appendString(%q) = %q is not UTF-8", in, quoted)
		}
		if valid && len(in) > 0 && in[0] == '"' && in[len(in)-1] == '"' && len(in) >= 2 {
			var want string
			if json.Unmarshal([]byte(in), &want) == nil {
				if got := unquote([]byte(in[1 : len(in)-1])); got != want {
					t.Fatalf("unquote(%q) = %q, encoding/json gives %q", in, got, want)
				}
			}
		}
	})
}
