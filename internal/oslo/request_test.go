package oslo

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

const (
	testMsgID    = "0123456789abcdef0123456789abcdef"
	testReplyQ   = "reply_fedcba9876543210fedcba9876543210"
	testUniqueID = "abcdefabcdefabcdefabcdefabcdef01"
)

func TestEncodeRequestKeys(t *testing.T) {
	tests := []struct {
		name string
		req  *Request
		want string
	}{
		{
			name: "cast has no call keys, nil args is {}",
			req:  &Request{Method: "m", UniqueID: testUniqueID},
			want: `{"method": "m", "args": {}, "_unique_id": "` + testUniqueID + `"}`,
		},
		{
			name: "call with null timeout",
			req:  &Request{Method: "m", Args: raw(`{"a": [1, 2]}`), MsgID: testMsgID, ReplyQ: testReplyQ, UniqueID: testUniqueID},
			want: `{"method": "m", "args": {"a": [1, 2]}, "_msg_id": "` + testMsgID + `", "_reply_q": "` + testReplyQ + `", "_timeout": null, "_unique_id": "` + testUniqueID + `"}`,
		},
		{
			name: "call with timeout, namespace, version and context",
			req: &Request{Method: "m", Namespace: "ns", Version: "1.3", MsgID: testMsgID, ReplyQ: testReplyQ,
				Timeout: seconds(30), UniqueID: testUniqueID,
				Context: map[string]json.RawMessage{"user": raw(`"u"`), "auth_token": nil, "a": raw(`{"n": null}`)}},
			want: `{"method": "m", "args": {}, "namespace": "ns", "version": "1.3", "_msg_id": "` + testMsgID + `", "_reply_q": "` + testReplyQ + `", "_timeout": 30, "_unique_id": "` + testUniqueID + `", "_context_a": {"n": null}, "_context_auth_token": null, "_context_user": "u"}`,
		},
		{
			name: "fractional timeout",
			req:  &Request{Method: "m", MsgID: testMsgID, ReplyQ: testReplyQ, Timeout: seconds(2.5), UniqueID: testUniqueID},
			want: `{"method": "m", "args": {}, "_msg_id": "` + testMsgID + `", "_reply_q": "` + testReplyQ + `", "_timeout": 2.5, "_unique_id": "` + testUniqueID + `"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EncodeRequest(tt.req)
			if err != nil || string(got) != tt.want {
				t.Fatalf("EncodeRequest =\n%s, %v\nwant\n%s", got, err, tt.want)
			}
			back, err := DecodeRequest(got)
			if err != nil {
				t.Fatal(err)
			}
			want := *tt.req
			if want.Args == nil {
				want.Args = raw(`{}`)
			}
			for k, v := range want.Context {
				if v == nil {
					want.Context[k] = raw(`null`)
				}
			}
			if !reflect.DeepEqual(back, &want) {
				t.Errorf("decoded back as %+v, want %+v", back, &want)
			}
		})
	}
}

func TestEncodeRequestErrors(t *testing.T) {
	ok := func() *Request {
		return &Request{Method: "m", MsgID: testMsgID, ReplyQ: testReplyQ, UniqueID: testUniqueID}
	}
	tests := []struct {
		name    string
		edit    func(r *Request) *Request
		wantErr error
		errText string
	}{
		{"nil", func(*Request) *Request { return nil }, ErrMalformed, "nil"},
		{"no method", func(r *Request) *Request { r.Method = ""; return r }, ErrMalformed, "no method"},
		{"no unique id", func(r *Request) *Request { r.UniqueID = ""; return r }, ErrMalformed, "UniqueID"},
		{"null args", func(r *Request) *Request { r.Args = raw(`null`); return r }, ErrArgsNotObject, "got null"},
		{"list args", func(r *Request) *Request { r.Args = raw(` [1]`); return r }, ErrArgsNotObject, "got an array"},
		{"args not JSON", func(r *Request) *Request { r.Args = raw(`{"a":}`); return r }, ErrMalformed, "request args"},
		{"args with NaN", func(r *Request) *Request { r.Args = raw(`{"a": NaN}`); return r }, ErrMalformed, "NaN"},
		{"two objects", func(r *Request) *Request { r.Args = raw(`{}{}`); return r }, ErrMalformed, "after top-level value"},
		{"call without reply queue", func(r *Request) *Request { r.ReplyQ = ""; return r }, ErrMalformed, "no ReplyQ"},
		{"cast with reply queue", func(r *Request) *Request { r.MsgID = ""; return r }, ErrMalformed, "cast"},
		{"cast with timeout", func(r *Request) *Request { r.MsgID, r.ReplyQ, r.Timeout = "", "", seconds(1); return r }, ErrMalformed, "cast"},
		{"NaN timeout", func(r *Request) *Request { r.Timeout = seconds(math.NaN()); return r }, ErrMalformed, "finite"},
		{"infinite timeout", func(r *Request) *Request { r.Timeout = seconds(math.Inf(1)); return r }, ErrMalformed, "finite"},
		{"context not JSON", func(r *Request) *Request { r.Context = ctx("k", `nope`); return r }, ErrMalformed, `context value "k"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := EncodeRequest(tt.edit(ok()))
			if !errors.Is(err, tt.wantErr) || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.errText) {
				t.Errorf("EncodeRequest err = %v, want %v containing %q", err, tt.wantErr, tt.errText)
			}
			if _, err2 := WrapRequest(tt.edit(ok())); err2 == nil {
				t.Error("WrapRequest accepted it")
			}
		})
	}
}

func TestDecodeRequestTolerance(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		want *Request
	}{
		{
			name: "missing args means {}",
			msg:  `{"method": "m", "_unique_id": "u"}`,
			want: &Request{Method: "m", Args: raw(`{}`), UniqueID: "u"},
		},
		{
			name: "cast ignores _reply_q and _timeout",
			msg:  `{"method": "m", "args": {}, "_reply_q": "reply_x", "_timeout": 5}`,
			want: &Request{Method: "m", Args: raw(`{}`)},
		},
		{
			name: "null _msg_id is a cast",
			msg:  `{"method": "m", "args": {}, "_msg_id": null, "_reply_q": "reply_x"}`,
			want: &Request{Method: "m", Args: raw(`{}`)},
		},
		{
			name: "call without _timeout (older clients)",
			msg:  `{"method": "m", "args": {}, "_msg_id": "i", "_reply_q": "q"}`,
			want: &Request{Method: "m", Args: raw(`{}`), MsgID: "i", ReplyQ: "q"},
		},
		{
			name: "null namespace and version read as unset",
			msg:  `{"method": "m", "args": {}, "namespace": null, "version": null}`,
			want: &Request{Method: "m", Args: raw(`{}`)},
		},
		{
			name: "unknown keys ignored, NaN in them too",
			msg:  `{"method": "m", "args": {}, "extra": [NaN], "_context": 1, "context_x": 2}`,
			want: &Request{Method: "m", Args: raw(`{}`)},
		},
		{
			name: "duplicate keys: last wins",
			msg:  `{"method": 1, "method": "m", "args": null, "args": {"a": 1}, "_context_k": NaN, "_context_k": 2}`,
			want: &Request{Method: "m", Args: raw(`{"a": 1}`), Context: ctx("k", `2`)},
		},
		{
			name: "escaped keys",
			msg:  `{"\u006dethod": "m", "args": {}, "_context_\u00e9": "v", "_\u0063ontext_x": 1}`,
			want: &Request{Method: "m", Args: raw(`{}`), Context: ctx("é", `"v"`, "x", `1`)},
		},
		{
			name: "null and nested context values",
			msg:  `{"method": "m", "args": {}, "_context_a": null, "_context_b": {"c": [null, {"d": 1.0}]}, "_context_": 0}`,
			want: &Request{Method: "m", Args: raw(`{}`), Context: ctx("a", `null`, "b", `{"c": [null, {"d": 1.0}]}`, "", `0`)},
		},
		{
			name: "white space everywhere",
			msg:  "\r\n{ \"method\" :\t\"m\" ,\n\"args\" : { \"a\" : 1 } }\n",
			want: &Request{Method: "m", Args: raw(`{ "a" : 1 }`)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeRequest([]byte(tt.msg))
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("DecodeRequest = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestDecodeRequestErrors(t *testing.T) {
	tests := []struct {
		name    string
		msg     string
		wantErr error
		errText string
		partial *Request // nil: no request returned
	}{
		{name: "not JSON", msg: `{"method"`, wantErr: ErrMalformed},
		{name: "array", msg: `[{"method": "m"}]`, wantErr: ErrMalformed, errText: "want a JSON object"},
		{name: "envelope not unwrapped", msg: refCallBody, wantErr: ErrMalformed, errText: "no method",
			partial: &Request{Args: raw(`{}`)}},
		{name: "_msg_id not a string", msg: `{"method": "m", "args": {}, "_msg_id": 5, "_reply_q": "q"}`, wantErr: ErrMalformed, errText: "_msg_id is a number"},
		{name: "_reply_q not a string", msg: `{"method": "m", "args": {}, "_msg_id": "i", "_reply_q": ["q"]}`, wantErr: ErrMalformed, errText: "_reply_q is an array"},

		{name: "null args", msg: `{"method": "m", "args": null, "_msg_id": "i", "_reply_q": "q", "_timeout": 4, "_unique_id": "u", "_context_a": 1}`,
			wantErr: ErrArgsNotObject, errText: "got null",
			partial: &Request{Method: "m", Args: raw(`null`), MsgID: "i", ReplyQ: "q", Timeout: seconds(4), UniqueID: "u", Context: ctx("a", `1`)}},
		{name: "string args", msg: `{"method": "m", "args": "a=1", "_msg_id": "i", "_reply_q": "q"}`,
			wantErr: ErrArgsNotObject, errText: "got a string",
			partial: &Request{Method: "m", Args: raw(`"a=1"`), MsgID: "i", ReplyQ: "q"}},
		{name: "missing method", msg: `{"args": {}, "_msg_id": "i", "_reply_q": "q"}`, wantErr: ErrMalformed, errText: "no method",
			partial: &Request{Args: raw(`{}`), MsgID: "i", ReplyQ: "q"}},
		{name: "method not a string", msg: `{"method": null, "args": {}, "_msg_id": "i", "_reply_q": "q"}`, wantErr: ErrMalformed, errText: "method is null",
			partial: &Request{Args: raw(`{}`), MsgID: "i", ReplyQ: "q"}},
		{name: "empty method", msg: `{"method": "", "args": {}}`, wantErr: ErrMalformed, errText: "method is empty",
			partial: &Request{Args: raw(`{}`)}},
		{name: "call without _reply_q", msg: `{"method": "m", "args": {}, "_msg_id": "i"}`, wantErr: ErrMalformed, errText: "no _reply_q",
			partial: &Request{Method: "m", Args: raw(`{}`), MsgID: "i"}},
		{name: "_timeout a string", msg: `{"method": "m", "args": {}, "_msg_id": "i", "_reply_q": "q", "_timeout": "5"}`, wantErr: ErrMalformed, errText: "_timeout is a string",
			partial: &Request{Method: "m", Args: raw(`{}`), MsgID: "i", ReplyQ: "q"}},
		{name: "_timeout too big", msg: `{"method": "m", "args": {}, "_msg_id": "i", "_reply_q": "q", "_timeout": 1e400}`, wantErr: ErrMalformed, errText: "out of range",
			partial: &Request{Method: "m", Args: raw(`{}`), MsgID: "i", ReplyQ: "q"}},
		{name: "_timeout Infinity", msg: `{"method": "m", "args": {}, "_msg_id": "i", "_reply_q": "q", "_timeout": Infinity}`, wantErr: ErrMalformed, errText: "_timeout holds NaN or Infinity",
			partial: &Request{Method: "m", Args: raw(`{}`), MsgID: "i", ReplyQ: "q"}},
		{name: "NaN in args", msg: `{"method": "m", "args": {"x": NaN}, "_msg_id": "i", "_reply_q": "q"}`, wantErr: ErrMalformed, errText: "args holds NaN",
			partial: &Request{Method: "m", MsgID: "i", ReplyQ: "q"}},
		{name: "NaN in context", msg: `{"method": "m", "args": {}, "_context_b": 1, "_context_a": [-Infinity]}`, wantErr: ErrMalformed, errText: `context value "a" holds`,
			partial: &Request{Method: "m", Args: raw(`{}`), Context: ctx("a", `[-Infinity]`, "b", `1`)}},
		{name: "_unique_id not a string", msg: `{"method": "m", "args": {}, "_unique_id": 7}`, wantErr: ErrMalformed, errText: "_unique_id is a number",
			partial: &Request{Method: "m", Args: raw(`{}`)}},
		{name: "namespace not a string", msg: `{"method": "m", "args": {}, "namespace": 1}`, wantErr: ErrMalformed, errText: "namespace is a number",
			partial: &Request{Method: "m", Args: raw(`{}`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeRequest([]byte(tt.msg))
			if !errors.Is(err, tt.wantErr) || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.errText) {
				t.Fatalf("DecodeRequest err = %v, want %v containing %q", err, tt.wantErr, tt.errText)
			}
			if !reflect.DeepEqual(got, tt.partial) {
				t.Errorf("DecodeRequest = %+v, want %+v", got, tt.partial)
			}
			if errors.Is(err, ErrArgsNotObject) != (tt.wantErr == ErrArgsNotObject) {
				t.Errorf("ErrArgsNotObject reported wrongly: %v", err)
			}
		})
	}
}

func TestArgsNullVersusMissing(t *testing.T) {
	missing, err := DecodeRequest([]byte(`{"method": "m", "_msg_id": "i", "_reply_q": "q"}`))
	if err != nil || string(missing.Args) != `{}` {
		t.Errorf("missing args: %+v, %v; want {} and no error", missing, err)
	}
	null, err := DecodeRequest([]byte(`{"method": "m", "args": null, "_msg_id": "i", "_reply_q": "q"}`))
	if !errors.Is(err, ErrArgsNotObject) || null == nil || !null.IsCall() {
		t.Fatalf("null args: %+v, %v; want the call and ErrArgsNotObject", null, err)
	}
	// What a server answers, as Python does.
	f := ArgsNotObject(null.Args)
	if f.Class != "AttributeError" || f.Module != "builtins" || f.Message != "'NoneType' object has no attribute 'items'" {
		t.Errorf("ArgsNotObject = %+v", f)
	}
}

func TestNumbersKeepTheirText(t *testing.T) {
	// Values that break naive codecs: an echo of each, and more.
	const values = `[9007199254740993, 9223372036854775807, -9223372036854775809, 18446744073709551616, 2.0, 1e-07, 1E+400, -0, 0.1, 1.5e300, 100000000000000000000000]`
	msg := []byte(`{"method": "echo", "args": {"v": ` + values + `}, "_unique_id": "u", "_context_n": ` + values + `}`)
	req, err := DecodeRequest(msg)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"v": ` + values + `}`; string(req.Args) != want {
		t.Errorf("Args = %s, want %s", req.Args, want)
	}
	if string(req.Context["n"]) != values {
		t.Errorf("context value = %s, want %s", req.Context["n"], values)
	}
	enc, err := EncodeRequest(req)
	if err != nil || !bytes.Equal(enc, msg) {
		t.Errorf("EncodeRequest = %s, %v; want %s", enc, err, msg)
	}
	body, _ := WrapRequest(req)
	back, err := UnwrapRequest(body)
	if err != nil || !reflect.DeepEqual(back, req) {
		t.Errorf("through a 2.0 body: %+v, %v", back, err)
	}

	reply := &Reply{Result: raw(values), Ending: true, MsgID: "i", UniqueID: "u"}
	body, _ = WrapReply(reply)
	gotReply, err := UnwrapReply(body)
	if err != nil || string(gotReply.Result) != values {
		t.Errorf("reply result = %s, %v; want %s", gotReply.Result, err, values)
	}
	f := &Failure{Class: "E", Module: "m", Args: []json.RawMessage{raw(`2.0`), raw(`9223372036854775807`)}, Kwargs: ctx("n", `1e-07`)}
	reply = &Reply{Failure: f, Ending: true, MsgID: "i", UniqueID: "u"}
	body, _ = WrapReply(reply)
	gotReply, err = UnwrapReply(body)
	if err != nil || !reflect.DeepEqual(gotReply.Failure, f) {
		t.Errorf("failure = %+v, %v; want %+v", gotReply.Failure, err, f)
	}
}

func TestUnicode(t *testing.T) {
	// Method and context key hold text that needs every kind of escape.
	const text = "mé😀\u2028\x00\x01\x1f\x7f\"\\/\b\f\n\r\t end"
	args := raw(`{"python": "\u00e9\ud83d\ude00\u0000\u001f", "raw": "é😀", "lone": "\ud83d", "nul": "\u0000"}`)
	req := &Request{Method: text, Args: args, UniqueID: "u", Context: map[string]json.RawMessage{text: raw(`"` + "é\\u00e9" + `"`)}}
	enc, err := EncodeRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.ContainsAny(enc, "\x00\x01\x1f\n") {
		t.Errorf("control characters left raw in %q", enc)
	}
	body, err := WrapRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]byte{enc, body} {
		got, err := UnwrapRequest(b)
		if err != nil || !reflect.DeepEqual(got, req) {
			t.Errorf("round trip = %+v, %v; want %+v", got, err, req)
		}
	}

	// Python escapes all non-ASCII, and sends surrogate pairs and lone
	// surrogates as escapes: they decode as encoding/json decodes them.
	py := []byte(`{"method": "m\u00e9\ud83d\ude00\u0000", "args": {}, "_context_\ud83d": "x"}`)
	got, err := DecodeRequest(py)
	if err != nil {
		t.Fatal(err)
	}
	if got.Method != "mé😀\x00" {
		t.Errorf("Method = %q", got.Method)
	}
	if _, ok := got.Context["\uFFFD"]; !ok {
		t.Errorf("lone surrogate key not read as U+FFFD: %q", got.Context)
	}

	// Invalid UTF-8 in a Go string is sent as U+FFFD, keeping the body valid.
	enc, err = EncodeRequest(&Request{Method: "a\xffb", UniqueID: "u"})
	if err != nil || !bytes.Contains(enc, []byte(`"a\ufffdb"`)) {
		t.Errorf("EncodeRequest = %s, %v", enc, err)
	}
}

func TestDecodedRequestDoesNotShareInput(t *testing.T) {
	msg := []byte(`{"method": "m", "args": {"a": 1}, "_context_k": [1]}`)
	req, err := DecodeRequest(msg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range msg {
		msg[i] = ' '
	}
	if string(req.Args) != `{"a": 1}` || string(req.Context["k"]) != `[1]` {
		t.Errorf("request changed with its input: %+v", req)
	}
}

func TestInvalidUTF8BecomesReplacementChar(t *testing.T) {
	// Python never sends invalid UTF-8 (kombu refuses such a body); a Go
	// decoder replaces each bad byte, in strings and raw values alike, so
	// that every decoded value is valid UTF-8 and survives a 2.0 body.
	msg := []byte("{\"method\": \"m\xff\", \"args\": {\"a\": \"\x84\xc3\"}, \"_context_k\xfe\": \"\xed\xa0\x80\"}")
	req, err := DecodeRequest(msg)
	if err != nil {
		t.Fatal(err)
	}
	want := &Request{Method: "m\uFFFD", Args: raw(`{"a": "` + "\uFFFD\uFFFD" + `"}`),
		Context: ctx("k\uFFFD", `"`+"\uFFFD\uFFFD\uFFFD"+`"`)}
	if !reflect.DeepEqual(req, want) {
		t.Fatalf("DecodeRequest = %+v, want %+v", req, want)
	}
	req.UniqueID = "u"
	want.UniqueID = "u"
	body, err := WrapRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	if back, err := UnwrapRequest(body); err != nil || !reflect.DeepEqual(back, want) {
		t.Errorf("through a 2.0 body: %+v, %v", back, err)
	}
}

func TestArgsNotObjectNamesPythonType(t *testing.T) {
	// json.loads makes these Python types; "'<type>' object has no
	// attribute 'items'" is what args.items() raises on them.
	for args, typ := range map[string]string{
		`null`: "NoneType", ``: "NoneType", `true`: "bool", `false`: "bool", `"a"`: "str",
		`[1]`: "list", ` []`: "list", `1`: "int", `-0`: "int", `12345678901234567890`: "int",
		`1.5`: "float", `1e5`: "float", `-2E-3`: "float", `NaN`: "float", `-Infinity`: "float", `{}`: "dict",
	} {
		f := ArgsNotObject(raw(args))
		if want := "'" + typ + "' object has no attribute 'items'"; f.Message != want || string(f.Args[0]) != strconv.Quote(want) {
			t.Errorf("ArgsNotObject(%s) = %+v, want message %q", args, f, want)
		}
	}
}
