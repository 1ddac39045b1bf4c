package oslo

import (
	"bytes"
	"fmt"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// The string escaper, scanner and decoder go eight bytes at a time. These
// references do the same work a byte at a time, as plainly as possible, for
// FuzzStringCodec to compare them with.

// refShortEscapes are the escapes Python writes with a letter.
var refShortEscapes = map[byte]string{'"': `\"`, '\\': `\\`, '\b': `\b`, '\f': `\f`, '\n': `\n`, '\r': `\r`, '\t': `\t`}

// refAppendStringBody is appendStringBody.
func refAppendStringBody(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if esc, ok := refShortEscapes[c]; ok {
			dst = append(dst, esc...)
			i++
			continue
		}
		if c < 0x20 {
			dst = fmt.Appendf(dst, `\u%04x`, c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return dst
}

// refSkipString is skipString.
func (s *scanner) refSkipString() (escaped bool, err error) {
	d := s.data
	for s.pos++; s.pos < len(d); {
		switch c := d[s.pos]; {
		case c == '"':
			s.pos++
			return escaped, nil
		case c < 0x20:
			return escaped, s.unexpected("in string literal")
		case c != '\\':
			s.pos++
			continue
		}
		escaped = true
		s.pos++
		if s.pos >= len(d) || !bytes.ContainsRune([]byte(`"\/bfnrtu`), rune(d[s.pos])) {
			return escaped, s.unexpected("in string escape code")
		}
		if d[s.pos] == 'u' {
			for range 4 {
				s.pos++
				if s.pos >= len(d) || unhex(d[s.pos]) < 0 {
					return escaped, s.unexpected("in \\u hexadecimal character escape")
				}
			}
		}
		s.pos++
	}
	return escaped, s.unexpected("in string literal")
}

// refUnquote is unquote for the content of a string refSkipString accepts.
func refUnquote(body []byte) []byte {
	var out []byte
	for i := 0; i < len(body); {
		if body[i] != '\\' {
			r, size := utf8.DecodeRune(body[i:]) // U+FFFD for a bad byte
			out = utf8.AppendRune(out, r)
			i += size
			continue
		}
		if body[i+1] != 'u' {
			out = append(out, map[byte]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}[body[i+1]])
			i += 2
			continue
		}
		r := hex4(body[i+2:])
		i += 6
		if utf16.IsSurrogate(r) {
			r2 := rune(-1)
			if i+6 <= len(body) && body[i] == '\\' && body[i+1] == 'u' {
				r2 = hex4(body[i+2:])
			}
			if r = utf16.DecodeRune(r, r2); r != utf8.RuneError {
				i += 6
			}
		}
		out = utf8.AppendRune(out, r)
	}
	return out
}

// FuzzStringCodec checks appendStringBody, skipString, readString and
// appendUnquoted against the references, writing into buffers of several
// capacities (room) so that both the eight-byte and the byte paths run.
func FuzzStringCodec(f *testing.F) {
	for _, seed := range []string{
		``, `plain`, `0123456789abcdefghij`, `{"method": "m", "args": {"a": [1, "x\"y"]}}`,
		"q\"b\\s/\b\f\n\r\t\x00\x1f\x7f", `é😀`, "a\xffb\xed\xa0\x80c\xc3", `ends with \`,
		`\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00\ud83d\ude00x\ud83dx\ude00\ud83d\u0041`,
		`\ud83d\uZZZZ`, `\ud83d\`, `\x`, `\u12`, `"after`, "ctl\x01ctl", refFailureReply,
		refCallBody[len(envelopeHead):], // an escaped message as unwrapping reads it
	} {
		f.Add([]byte(seed), uint8(0))
		f.Add([]byte(seed), uint8(len(seed)))
	}
	f.Fuzz(func(t *testing.T, in []byte, room uint8) {
		// dst holds a byte already, and room bytes more at most.
		newDst := func() []byte { return append(make([]byte, 0, 1+int(room)), 'x') }

		want := refAppendStringBody([]byte{'x'}, string(in))
		if got := appendStringBody(newDst(), in); !bytes.Equal(got, want) {
			t.Fatalf("appendStringBody(%q) = %q, want %q", in, got, want)
		}
		if got := appendStringBody(newDst(), string(in)); !bytes.Equal(got, want) {
			t.Fatalf("appendStringBody(string %q) = %q, want %q", in, got, want)
		}

		// in is the rest of the input after a string's opening quote.
		data := append([]byte{'"'}, in...)
		ref := scanner{data: data}
		wantEscaped, wantErr := ref.refSkipString()
		s := scanner{data: data}
		escaped, err := s.skipString()
		if fmt.Sprint(err) != fmt.Sprint(wantErr) || s.pos != ref.pos || err == nil && escaped != wantEscaped {
			t.Fatalf("skipString(%q) = %v, %v at %d; want %v, %v at %d", data, escaped, err, s.pos, wantEscaped, wantErr, ref.pos)
		}
		s = scanner{data: data}
		got, err := s.readString(newDst())
		if fmt.Sprint(err) != fmt.Sprint(wantErr) || s.pos != ref.pos {
			t.Fatalf("readString(%q) = %v at %d; want %v at %d", data, err, s.pos, wantErr, ref.pos)
		}
		if wantErr != nil {
			return
		}
		want = append([]byte{'x'}, refUnquote(data[1:ref.pos-1])...)
		if !bytes.Equal(got, want) {
			t.Fatalf("readString(%q) = %q, want %q", data, got, want)
		}
		if got := appendUnquoted(newDst(), data[1:ref.pos-1]); !bytes.Equal(got, want) {
			t.Fatalf("appendUnquoted(%q) = %q, want %q", data[1:ref.pos-1], got, want)
		}
	})
}
