package oslo

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestEncodeReplyKeys(t *testing.T) {
	tests := []struct {
		name string
		r    *Reply
		want string
	}{
		{"nil result is null", &Reply{Ending: true, MsgID: "i", UniqueID: "u"},
			`{"result": null, "failure": null, "ending": true, "_msg_id": "i", "_unique_id": "u"}`},
		{"heartbeat", &Reply{MsgID: "i", UniqueID: "u"},
			`{"result": null, "failure": null, "ending": false, "_msg_id": "i", "_unique_id": "u"}`},
		{"result", &Reply{Result: raw(`"x"`), Ending: true, MsgID: "i", UniqueID: "u"},
			`{"result": "x", "failure": null, "ending": true, "_msg_id": "i", "_unique_id": "u"}`},
		{"empty failure: tb [], args [], kwargs {}", &Reply{Failure: &Failure{Class: "E", Module: "m"}, Ending: true, MsgID: "i", UniqueID: "u"},
			`{"result": null, "failure": "{\"class\": \"E\", \"module\": \"m\", \"message\": \"\", \"tb\": [], \"args\": [], \"kwargs\": {}}", "ending": true, "_msg_id": "i", "_unique_id": "u"}`},
		{"nil arg is null, kwargs sorted", &Reply{Failure: &Failure{Class: "E", Module: "m",
			Args: []json.RawMessage{nil, raw(`1`)}, Kwargs: ctx("b", `2`, "a", `{"x": "y"}`)}, Ending: true, MsgID: "i", UniqueID: "u"},
			`{"result": null, "failure": "{\"class\": \"E\", \"module\": \"m\", \"message\": \"\", \"tb\": [], \"args\": [null, 1], \"kwargs\": {\"a\": {\"x\": \"y\"}, \"b\": 2}}", "ending": true, "_msg_id": "i", "_unique_id": "u"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EncodeReply(tt.r)
			if err != nil || string(got) != tt.want {
				t.Fatalf("EncodeReply =\n%s, %v\nwant\n%s", got, err, tt.want)
			}
			if keys := keysOf(t, got); !reflect.DeepEqual(keys, replyKeys) {
				t.Errorf("keys %q", keys)
			}
			// The failure is a string holding a JSON object.
			var m map[string]json.RawMessage
			if err := json.Unmarshal(got, &m); err != nil {
				t.Fatal(err)
			}
			if tt.r.Failure != nil {
				var s string
				if err := json.Unmarshal(m["failure"], &s); err != nil {
					t.Fatalf("failure is not a string: %s", m["failure"])
				}
				if keys := keysOf(t, []byte(s)); !reflect.DeepEqual(keys, []string{"class", "module", "message", "tb", "args", "kwargs"}) {
					t.Errorf("failure keys %q", keys)
				}
			}
		})
	}
}

func TestEncodeReplyErrors(t *testing.T) {
	tests := []struct {
		name    string
		r       *Reply
		errText string
	}{
		{"nil", nil, "nil"},
		{"no msg id", &Reply{UniqueID: "u"}, "no MsgID"},
		{"no unique id", &Reply{MsgID: "i"}, "no UniqueID"},
		{"result not JSON", &Reply{Result: raw(`{`), MsgID: "i", UniqueID: "u"}, "reply result"},
		{"result NaN", &Reply{Result: raw(`NaN`), MsgID: "i", UniqueID: "u"}, "NaN"},
		{"failure arg not JSON", &Reply{Failure: &Failure{Args: []json.RawMessage{raw(`x`)}}, MsgID: "i", UniqueID: "u"}, "failure arg 0"},
		{"failure kwarg not JSON", &Reply{Failure: &Failure{Kwargs: ctx("k", `[`)}, MsgID: "i", UniqueID: "u"}, `failure kwarg "k"`},
	}
	for _, tt := range tests {
		if _, err := EncodeReply(tt.r); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.errText) {
			t.Errorf("%s: EncodeReply err = %v, want ErrMalformed containing %q", tt.name, err, tt.errText)
		}
		if _, err := WrapReply(tt.r); err == nil {
			t.Errorf("%s: WrapReply accepted it", tt.name)
		}
	}
	if _, err := EncodeFailure(nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("EncodeFailure(nil) err = %v", err)
	}
}

func TestDecodeReplyTolerance(t *testing.T) {
	boom := &Failure{Class: "ValueError", Module: "builtins", Message: "boom"}
	tests := []struct {
		name      string
		msg       string
		want      *Reply
		heartbeat bool
	}{
		{"failure as an object", `{"result": null, "failure": {"class": "ValueError", "module": "builtins", "message": "boom"}, "ending": true, "_msg_id": "i"}`,
			&Reply{Failure: boom, Ending: true, MsgID: "i"}, false},
		{"failure string, missing keys", `{"failure": "{\"class\": \"ValueError\", \"module\": \"builtins\", \"message\": \"boom\"}", "ending": true}`,
			&Reply{Failure: boom, Ending: true}, false},
		{"failure with _Remote suffixes", `{"failure": "{\"class\": \"ValueError_Remote\", \"module\": \"builtins_Remote\", \"message\": \"boom\", \"tb\": null, \"args\": null, \"kwargs\": null}", "ending": true}`,
			&Reply{Failure: boom, Ending: true}, false},
		{"_Remote on the class only is kept", `{"failure": "{\"class\": \"E_Remote\", \"module\": \"m\"}", "ending": true}`,
			&Reply{Failure: &Failure{Class: "E_Remote", Module: "m"}, Ending: true}, false},
		{"tb as one string", `{"failure": "{\"class\": \"E\", \"tb\": \"line\\n\"}", "ending": true}`,
			&Reply{Failure: &Failure{Class: "E", Traceback: []string{"line\n"}}, Ending: true}, false},
		{"missing ending (legacy)", `{"result": 1, "failure": null, "_msg_id": "i"}`,
			&Reply{Result: raw(`1`), EndingAbsent: true, MsgID: "i"}, false},
		{"missing ending, null result", `{"result": null, "failure": null, "_msg_id": "i"}`,
			&Reply{EndingAbsent: true, MsgID: "i"}, true},
		{"null ending", `{"result": 1, "failure": null, "ending": null}`,
			&Reply{Result: raw(`1`), EndingAbsent: true}, false},
		{"legacy final message", `{"result": null, "failure": null, "ending": true, "_msg_id": "i"}`,
			&Reply{Ending: true, MsgID: "i"}, false},
		{"missing failure and result", `{"ending": true, "_msg_id": "i"}`,
			&Reply{Ending: true, MsgID: "i"}, false},
		{"falsy failures", `{"failure": "", "ending": false, "_msg_id": "i"}`, &Reply{MsgID: "i"}, true},
		{"failure false", `{"failure": false, "ending": true}`, &Reply{Ending: true}, false},
		{"failure 0", `{"failure": 0.0, "ending": true}`, &Reply{Ending: true}, false},
		{"failure {}", `{"failure": { }, "ending": true}`, &Reply{Ending: true}, false},
		{"failure []", `{"failure": [], "ending": true}`, &Reply{Ending: true}, false},
		{"NaN in unknown key", `{"ending": true, "x": NaN}`, &Reply{Ending: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeReply([]byte(tt.msg))
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("DecodeReply = %+v, %v; want %+v", got, err, tt.want)
			}
			if got.IsHeartbeat() != tt.heartbeat {
				t.Errorf("IsHeartbeat = %v", got.IsHeartbeat())
			}
		})
	}
}

func TestDecodeReplyErrors(t *testing.T) {
	tests := []struct {
		name    string
		msg     string
		errText string
		partial *Reply
	}{
		{"not JSON", `{"result": }`, "reply:", nil},
		{"not an object", `null`, "want a JSON object", nil},
		{"_msg_id not a string", `{"result": 1, "ending": true, "_msg_id": 5}`, "_msg_id is a number", nil},
		{"NaN result", `{"result": [NaN], "failure": null, "ending": true, "_msg_id": "i", "_unique_id": "u"}`, "result holds NaN",
			&Reply{Ending: true, MsgID: "i", UniqueID: "u"}},
		{"failure string not JSON", `{"result": null, "failure": "boom", "ending": true, "_msg_id": "i"}`, "failure: invalid character 'b'",
			&Reply{Ending: true, MsgID: "i"}},
		{"failure string holds null", `{"failure": "null", "ending": true, "_msg_id": "i"}`, "want a JSON object",
			&Reply{Ending: true, MsgID: "i"}},
		{"failure true", `{"failure": true, "ending": true, "_msg_id": "i"}`, "failure is a boolean",
			&Reply{Ending: true, MsgID: "i"}},
		{"failure class a number", `{"failure": "{\"class\": 1}", "ending": true, "_msg_id": "i"}`, "failure class is a number",
			&Reply{Ending: true, MsgID: "i"}},
		{"failure tb of numbers", `{"failure": {"tb": [1]}, "ending": true, "_msg_id": "i"}`, "tb holds a number",
			&Reply{Ending: true, MsgID: "i"}},
		{"failure args NaN", `{"failure": "{\"args\": [NaN]}", "ending": true, "_msg_id": "i"}`, "failure args holds NaN",
			&Reply{Ending: true, MsgID: "i"}},
		{"failure kwargs a list", `{"failure": "{\"kwargs\": []}", "ending": true, "_msg_id": "i"}`, "kwargs is an array",
			&Reply{Ending: true, MsgID: "i"}},
		{"ending a string", `{"result": 1, "failure": null, "ending": "yes", "_msg_id": "i"}`, "ending is a string",
			&Reply{Result: raw(`1`), MsgID: "i"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeReply([]byte(tt.msg))
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.errText) {
				t.Fatalf("DecodeReply err = %v, want ErrMalformed containing %q", err, tt.errText)
			}
			if !reflect.DeepEqual(got, tt.partial) {
				t.Errorf("DecodeReply = %+v, want %+v", got, tt.partial)
			}
		})
	}
}

func TestIsHeartbeat(t *testing.T) {
	for _, tt := range []struct {
		r    Reply
		want bool
	}{
		{Reply{}, true},
		{Reply{Result: raw(` null `)}, true},
		{Reply{Result: raw(`0`)}, false},
		{Reply{Ending: true}, false},
		{Reply{Failure: &Failure{}}, false},
	} {
		if got := tt.r.IsHeartbeat(); got != tt.want {
			t.Errorf("%+v.IsHeartbeat() = %v", tt.r, got)
		}
	}
}
