package oslo

import (
	"errors"
	"strings"
	"testing"
)

func TestWrap(t *testing.T) {
	tests := []struct{ msg, want string }{
		{`{}`, `{"oslo.version": "2.0", "oslo.message": "{}"}`},
		{`{"a": "q\"b\\c"}`, `{"oslo.version": "2.0", "oslo.message": "{\"a\": \"q\\\"b\\\\c\"}"}`},
		// Raw white space between tokens is escaped like any control character.
		{"{\n\t\"a\": 1\r\n}", `{"oslo.version": "2.0", "oslo.message": "{\n\t\"a\": 1\r\n}"}`},
		// Non-ASCII stays raw UTF-8; Python would write \u00e9.
		{`{"a": "é"}`, `{"oslo.version": "2.0", "oslo.message": "{\"a\": \"é\"}"}`},
		// Invalid UTF-8 inside the message becomes U+FFFD.
		{"{\"a\": \"\xff\"}", `{"oslo.version": "2.0", "oslo.message": "{\"a\": \"\ufffd\"}"}`},
	}
	for _, tt := range tests {
		got, err := Wrap([]byte(tt.msg))
		if err != nil || string(got) != tt.want {
			t.Errorf("Wrap(%q) = %s, %v; want %s", tt.msg, got, err, tt.want)
		}
	}
	for _, bad := range []string{``, `[]`, `"x"`, `{"a": NaN}`, `{"a"}`, `{} x`} {
		if _, err := Wrap([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("Wrap(%q) err = %v, want ErrMalformed", bad, err)
		}
	}
}

func TestUnwrap(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    string // the message, when no error
		wantErr error
		errText string // part of the error message
	}{
		{name: "2.0", body: `{"oslo.version": "2.0", "oslo.message": "{\"a\": 1}"}`, want: `{"a": 1}`},
		{name: "2.0 keys reversed", body: `{"oslo.message": "{\"a\": 1}", "oslo.version": "2.0"}`, want: `{"a": 1}`},
		{name: "2.0 with extra key", body: `{"oslo.version": "2.0", "x": [1], "oslo.message": "{}"}`, want: `{}`},
		{name: "2.0.0", body: `{"oslo.version": "2.0.0", "oslo.message": "{}"}`, want: `{}`},
		{name: "2.00", body: `{"oslo.version": "2.00", "oslo.message": "{}"}`, want: `{}`},
		{name: "escaped key", body: `{"oslo\u002eversion": "2.0", "oslo.message": "{}"}`, want: `{}`},
		{name: "duplicate key, last wins", body: `{"oslo.version": "2.0", "oslo.message": "{\"a\": 1}", "oslo.message": "{\"b\": 2}"}`, want: `{"b": 2}`},
		// The message is decoded as it is read, unless its key has an escape.
		{name: "escaped message key", body: `{"oslo.version": "2.0", "oslo\u002emessage": "{\"a\": \"\u00e9\"}"}`, want: `{"a": "é"}`},
		{name: "escaped message key wins", body: `{"oslo.version": "2.0", "oslo.message": "{\"a\": 1}", "oslo\u002emessage": "{\"b\": 2}"}`, want: `{"b": 2}`},
		{name: "escaped message key loses", body: `{"oslo.version": "2.0", "oslo\u002emessage": "{\"a\": 1}", "oslo.message": "{\"b\": 2}"}`, want: `{"b": 2}`},
		{name: "decoded message then non-string", body: `{"oslo.version": "2.0", "oslo.message": "{}", "oslo.message": 1}`, wantErr: ErrMalformed, errText: "oslo.message is a number"},
		{name: "unicode escapes", body: `{"oslo.version": "2.0", "oslo.message": "{\"s\": \"\u00e9\ud83d\ude00\"}"}`, want: `{"s": "é😀"}`},
		{name: "escapes kept inside message", body: `{"oslo.version": "2.0", "oslo.message": "{\"s\": \"\\u00e9\\n\"}"}`, want: `{"s": "\u00e9\n"}`},

		{name: "1.0 message", body: `{"method": "echo", "args": {}}`, want: `{"method": "echo", "args": {}}`},
		{name: "1.0 with only oslo.version", body: `{"oslo.version": "2.0", "a": 1}`, want: `{"oslo.version": "2.0", "a": 1}`},
		{name: "1.0 with only oslo.message", body: `{"oslo.message": "{}"}`, want: `{"oslo.message": "{}"}`},
		{name: "keys are case-sensitive", body: `{"OSLO.VERSION": "9", "oslo.message": 1}`, want: `{"OSLO.VERSION": "9", "oslo.message": 1}`},
		{name: "1.0 empty object", body: ` {} `, want: ` {} `},

		{name: "2.1", body: `{"oslo.version": "2.1", "oslo.message": "{}"}`, wantErr: ErrVersion, errText: `"2.1" is not compatible`},
		{name: "2.0.1", body: `{"oslo.version": "2.0.1", "oslo.message": "{}"}`, wantErr: ErrVersion},
		{name: "3.0", body: `{"oslo.version": "3.0", "oslo.message": "{}"}`, wantErr: ErrVersion},
		{name: "1.0", body: `{"oslo.version": "1.0", "oslo.message": "{}"}`, wantErr: ErrVersion},
		{name: "major only", body: `{"oslo.version": "2", "oslo.message": "{}"}`, wantErr: ErrVersion},
		{name: "not digits", body: `{"oslo.version": "2.x", "oslo.message": "{}"}`, wantErr: ErrVersion},
		{name: "version number", body: `{"oslo.version": 2.0, "oslo.message": "{}"}`, wantErr: ErrVersion},
		{name: "version null", body: `{"oslo.version": null, "oslo.message": "{}"}`, wantErr: ErrVersion},
		{name: "version checked first", body: `{"oslo.version": "2.1", "oslo.message": {}}`, wantErr: ErrVersion},

		{name: "message object", body: `{"oslo.version": "2.0", "oslo.message": {"method": "echo"}}`, wantErr: ErrMalformed, errText: "oslo.message is an object, want a string"},
		{name: "message null", body: `{"oslo.version": "2.0", "oslo.message": null}`, wantErr: ErrMalformed},
		{name: "message not JSON", body: `{"oslo.version": "2.0", "oslo.message": "{"}`, wantErr: ErrMalformed},
		{name: "message array", body: `{"oslo.version": "2.0", "oslo.message": "[1]"}`, wantErr: ErrMalformed, errText: "want a JSON object"},
		{name: "message with NaN", body: `{"oslo.version": "2.0", "oslo.message": "{\"a\": NaN}"}`, wantErr: ErrMalformed, errText: "non-finite number NaN"},
		{name: "not JSON", body: `hello`, wantErr: ErrMalformed},
		{name: "empty", body: ``, wantErr: ErrMalformed},
		{name: "array", body: `[{"oslo.version": "2.0"}]`, wantErr: ErrMalformed, errText: "got an array, want a JSON object"},
		{name: "string", body: `"{}"`, wantErr: ErrMalformed},
		{name: "trailing data", body: `{} {}`, wantErr: ErrMalformed},
		{name: "truncated", body: `{"oslo.version": "2.0", "oslo.message": "{}"`, wantErr: ErrMalformed},
		{name: "truncated message", body: `{"oslo.version": "2.0", "oslo.message": "{\"a\": 1}`, wantErr: ErrMalformed, errText: "unexpected end of JSON input in string literal at offset 51"},
		{name: "bad escape in message", body: `{"oslo.version": "2.0", "oslo.message": "{\"a\": \"\ud83d\uZ\"}"}`, wantErr: ErrMalformed, errText: "invalid character 'Z' in \\u hexadecimal character escape at offset 59"},
		{name: "control character in message", body: "{\"oslo.version\": \"2.0\", \"oslo.message\": \"{\t}\"}", wantErr: ErrMalformed, errText: "invalid character byte 0x09 in string literal at offset 42"},
		{name: "1.0 with NaN", body: `{"a": NaN}`, wantErr: ErrMalformed, errText: "NaN"},
		{name: "1.0 with Infinity", body: `{"a": [-Infinity]}`, wantErr: ErrMalformed, errText: "-Infinity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Unwrap([]byte(tt.body))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("Unwrap = %s, %v; want error %v containing %q", got, err, tt.wantErr, tt.errText)
				}
				if tt.wantErr == ErrVersion && errors.Is(err, ErrMalformed) {
					t.Errorf("version error %v also wraps ErrMalformed", err)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("Unwrap = %s, %v; want %s", got, err, tt.want)
			}
		})
	}
}

func TestUnwrapSharesOnlyFormat10Bodies(t *testing.T) {
	body := []byte(`{"a": 1}`)
	got, _ := Unwrap(body)
	if &got[0] != &body[0] {
		t.Error("a 1.0 body is not returned as is")
	}
	body = []byte(`{"oslo.version": "2.0", "oslo.message": "{}"}`)
	got, _ = Unwrap(body)
	body[len(body)-4] = 'X'
	if string(got) != `{}` {
		t.Error("an enveloped message shares the body's memory")
	}
}
