package oslo

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// Captured examples of oslo.messaging 14's wire format (envelopes,
// requests, replies, failures and notifications), with the ids the capture
// shortened to "…" filled in. Bodies marked Python were
// written by Python's json.dumps, as oslo's jsonutils calls it.
const (
	// Section 5, captured exactly.
	refCallBody = `{"oslo.version": "2.0", "oslo.message": "{\"method\": \"echo\", \"args\": {\"x\": 1}, \"_msg_id\": \"dc46a6538381487a800a9b0aff194b4e\", \"_reply_q\": \"reply_7a9a39148cfd476685075ea820702408\", \"_timeout\": null, \"_unique_id\": \"3adc89fd071f43b7843f8b151c54753d\"}"}`

	// Section 6.
	refContextCall     = `{"method": "context", "args": {}, "_msg_id": "f3d1a2b3c4d5e6f708192a3b4c5d6e7f", "_reply_q": "reply_7a9a39148cfd476685075ea820702408", "_timeout": null, "_unique_id": "4a72b6e0c1d24f3a9b8c7d6e5f4a3b2c", "_context_user_id": "owref-user", "_context_project_id": "owref-project", "_context_request_id": "req-00000000-0000-0000-0000-000000000001", "_context_is_admin": false, "_context_roles": ["reader", "member"], "_context_owref_extra": {"nested": [1, "x", null]}}`
	refMonitorCall     = `{"method": "sleep", "args": {"seconds": 5}, "_msg_id": "5b1e0c2d3f4a4b5c8d9e0f1a2b3c4d5e", "_reply_q": "reply_7a9a39148cfd476685075ea820702408", "_timeout": 2, "_unique_id": "6c2f1d3e4a5b4c6d9e0f1a2b3c4d5e6f"}`
	refCast            = `{"method": "record", "args": {"token": "cast-955f0a1b2c3d4e5f"}, "_unique_id": "c0701a2b3c4d4e5f8a9b0c1d2e3f4a5b"}`
	refFanout          = `{"method": "record", "args": {"token": "fanout-e2da0a1b2c3d4e5f"}, "_unique_id": "c6ff1a2b3c4d4e5f8a9b0c1d2e3f4a5b"}`
	refReply           = `{"result": {"a": 1}, "failure": null, "ending": true, "_msg_id": "e3de5a4f8b2c4d1e9f0a1b2c3d4e5f60", "_unique_id": "7468a1b2c3d4e5f60718293a4b5c6d7e"}`
	refHeartbeat       = `{"result": null, "failure": null, "ending": false, "_msg_id": "1344a1b2c3d4e5f60718293a4b5c6d7e", "_unique_id": "790ca1b2c3d4e5f60718293a4b5c6d7e"}`
	refFailureReply    = `{"result": null, "failure": "{\"class\": \"ValueError\", \"module\": \"builtins\", \"message\": \"owref boom\", \"tb\": [\"Traceback (most recent call last):\\n\", \"  File \\\"/usr/lib/python3/dist-packages/oslo_messaging/rpc/server.py\\\", line 165, in _process_incoming\\n    res = self.dispatcher.dispatch(message)\\n\", \"ValueError: owref boom\\n\"], \"args\": [\"owref boom\"], \"kwargs\": {}}", "ending": true, "_msg_id": "e3de5a4f8b2c4d1e9f0a1b2c3d4e5f60", "_unique_id": "7468a1b2c3d4e5f60718293a4b5c6d7e"}`
	refFailureReplyBdy = `{"oslo.version": "2.0", "oslo.message": "{\"result\": null, \"failure\": \"{\\\"class\\\": \\\"ValueError\\\", \\\"module\\\": \\\"builtins\\\", \\\"message\\\": \\\"owref boom\\\", \\\"tb\\\": [\\\"Traceback (most recent call last):\\\\n\\\", \\\"  File \\\\\\\"/usr/lib/python3/dist-packages/oslo_messaging/rpc/server.py\\\\\\\", line 165, in _process_incoming\\\\n    res = self.dispatcher.dispatch(message)\\\\n\\\", \\\"ValueError: owref boom\\\\n\\\"], \\\"args\\\": [\\\"owref boom\\\"], \\\"kwargs\\\": {}}\", \"ending\": true, \"_msg_id\": \"e3de5a4f8b2c4d1e9f0a1b2c3d4e5f60\", \"_unique_id\": \"7468a1b2c3d4e5f60718293a4b5c6d7e\"}"}` // Python

	// Section 8.
	refOwrefFailure = `{"class": "OwrefError", "module": "owref_errors", "message": "owref custom", "tb": ["x\n"], "args": ["owref custom"], "kwargs": {"code": 42, "detail": "owref"}}` // Python

	// Section 9: v1 body captured exactly; v2 written by Python with the
	// context keys sorted, as EncodeNotification writes them.
	refNotificationV1 = `{"message_id": "fca2cd2a-3294-436d-8e5c-07eeed82aee6", "publisher_id": "owref.host1", "event_type": "owref.messaging.create", "priority": "INFO", "payload": {"id": 1, "name": "owref"}, "timestamp": "2026-11-27 00:13:30.106163", "_unique_id": "934bd3131bce45a282874d37e3ff5dd5", "_context_user_id": "owref-user", "_context_request_id": "req-n"}`
	refNotificationV2 = `{"oslo.version": "2.0", "oslo.message": "{\"message_id\": \"fca2cd2a-3294-436d-8e5c-07eeed82aee6\", \"publisher_id\": \"owref.host1\", \"event_type\": \"owref.messaging.create\", \"priority\": \"INFO\", \"payload\": {\"id\": 1, \"name\": \"owref\"}, \"timestamp\": \"2026-11-27 00:13:30.106163\", \"_unique_id\": \"934bd3131bce45a282874d37e3ff5dd5\", \"_context_request_id\": \"req-n\", \"_context_user_id\": \"owref-user\"}"}` // Python
)

var (
	callKeys  = []string{"method", "args", "_msg_id", "_reply_q", "_timeout", "_unique_id"}
	castKeys  = []string{"method", "args", "_unique_id"}
	replyKeys = []string{"result", "failure", "ending", "_msg_id", "_unique_id"}
	notifKeys = []string{"message_id", "publisher_id", "event_type", "priority", "payload", "timestamp", "_unique_id"}
)

func TestGoldenEnvelope(t *testing.T) {
	req, err := UnwrapRequest([]byte(refCallBody))
	if err != nil {
		t.Fatal(err)
	}
	want := &Request{
		Method:   "echo",
		Args:     raw(`{"x": 1}`),
		MsgID:    "dc46a6538381487a800a9b0aff194b4e",
		ReplyQ:   "reply_7a9a39148cfd476685075ea820702408",
		UniqueID: "3adc89fd071f43b7843f8b151c54753d",
	}
	if !reflect.DeepEqual(req, want) {
		t.Fatalf("UnwrapRequest = %+v, want %+v", req, want)
	}
	body, err := WrapRequest(want)
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != refCallBody {
		t.Errorf("WrapRequest =\n%s\nwant (captured)\n%s", body, refCallBody)
	}
	if got := keysOf(t, body); !reflect.DeepEqual(got, []string{"oslo.version", "oslo.message"}) {
		t.Errorf("envelope keys %q", got)
	}
	// oslo.message is a string holding the request's JSON text.
	inner, err := Unwrap(body)
	if err != nil {
		t.Fatal(err)
	}
	if got := keysOf(t, inner); !reflect.DeepEqual(got, callKeys) {
		t.Errorf("message keys %q, want %q", got, callKeys)
	}
}

func TestGoldenRequests(t *testing.T) {
	tests := []struct {
		name  string
		msg   string
		want  *Request
		keys  []string // top-level keys besides _context_*, in order
		exact bool     // re-encoding gives msg byte for byte
	}{
		{
			name: "call with context",
			msg:  refContextCall,
			want: &Request{
				Method:   "context",
				Args:     raw(`{}`),
				MsgID:    "f3d1a2b3c4d5e6f708192a3b4c5d6e7f",
				ReplyQ:   "reply_7a9a39148cfd476685075ea820702408",
				UniqueID: "4a72b6e0c1d24f3a9b8c7d6e5f4a3b2c",
				Context: ctx(
					"user_id", `"owref-user"`,
					"project_id", `"owref-project"`,
					"request_id", `"req-00000000-0000-0000-0000-000000000001"`,
					"is_admin", `false`,
					"roles", `["reader", "member"]`,
					"owref_extra", `{"nested": [1, "x", null]}`,
				),
			},
			keys: callKeys,
		},
		{
			name: "call with call monitor",
			msg:  refMonitorCall,
			want: &Request{
				Method:   "sleep",
				Args:     raw(`{"seconds": 5}`),
				MsgID:    "5b1e0c2d3f4a4b5c8d9e0f1a2b3c4d5e",
				ReplyQ:   "reply_7a9a39148cfd476685075ea820702408",
				Timeout:  seconds(2),
				UniqueID: "6c2f1d3e4a5b4c6d9e0f1a2b3c4d5e6f",
			},
			keys:  callKeys,
			exact: true,
		},
		{
			name: "cast",
			msg:  refCast,
			want: &Request{
				Method:   "record",
				Args:     raw(`{"token": "cast-955f0a1b2c3d4e5f"}`),
				UniqueID: "c0701a2b3c4d4e5f8a9b0c1d2e3f4a5b",
			},
			keys:  castKeys,
			exact: true,
		},
		{
			name: "fanout cast",
			msg:  refFanout,
			want: &Request{
				Method:   "record",
				Args:     raw(`{"token": "fanout-e2da0a1b2c3d4e5f"}`),
				UniqueID: "c6ff1a2b3c4d4e5f8a9b0c1d2e3f4a5b",
			},
			keys:  castKeys,
			exact: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeRequest([]byte(tt.msg))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("DecodeRequest =\n%+v\nwant\n%+v", got, tt.want)
			}
			if got.IsCall() != (tt.want.MsgID != "") {
				t.Errorf("IsCall = %v", got.IsCall())
			}
			enc, err := EncodeRequest(got)
			if err != nil {
				t.Fatal(err)
			}
			if tt.exact && string(enc) != tt.msg {
				t.Errorf("EncodeRequest =\n%s\nwant (captured)\n%s", enc, tt.msg)
			}
			assertJSONEqual(t, enc, []byte(tt.msg))
			wantKeys := append([]string(nil), tt.keys...)
			for k := range tt.want.Context {
				wantKeys = append(wantKeys, "_context_"+k)
			}
			keys := keysOf(t, enc)
			if !sameKeys(keys, wantKeys) || !reflect.DeepEqual(keys[:len(tt.keys)], tt.keys) {
				t.Errorf("keys %q, want %q then the context", keys, tt.keys)
			}
			// Through a 2.0 body and back.
			body, err := WrapRequest(got)
			if err != nil {
				t.Fatal(err)
			}
			inner, err := Unwrap(body)
			if err != nil || !bytes.Equal(inner, enc) {
				t.Errorf("Unwrap(WrapRequest) = %s, %v; want %s", inner, err, enc)
			}
			again, err := UnwrapRequest(body)
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Errorf("UnwrapRequest(WrapRequest) = %+v, %v", again, err)
			}
		})
	}
}

func TestGoldenReplies(t *testing.T) {
	failure := &Failure{
		Class:   "ValueError",
		Module:  "builtins",
		Message: "owref boom",
		Traceback: []string{
			"Traceback (most recent call last):\n",
			"  File \"/usr/lib/python3/dist-packages/oslo_messaging/rpc/server.py\", line 165, in _process_incoming\n    res = self.dispatcher.dispatch(message)\n",
			"ValueError: owref boom\n",
		},
		Args: []json.RawMessage{raw(`"owref boom"`)},
	}
	tests := []struct {
		name      string
		msg       string
		want      *Reply
		heartbeat bool
	}{
		{
			name: "reply",
			msg:  refReply,
			want: &Reply{Result: raw(`{"a": 1}`), Ending: true,
				MsgID: "e3de5a4f8b2c4d1e9f0a1b2c3d4e5f60", UniqueID: "7468a1b2c3d4e5f60718293a4b5c6d7e"},
		},
		{
			name:      "heartbeat",
			msg:       refHeartbeat,
			want:      &Reply{MsgID: "1344a1b2c3d4e5f60718293a4b5c6d7e", UniqueID: "790ca1b2c3d4e5f60718293a4b5c6d7e"},
			heartbeat: true,
		},
		{
			name: "failure",
			msg:  refFailureReply,
			want: &Reply{Failure: failure, Ending: true,
				MsgID: "e3de5a4f8b2c4d1e9f0a1b2c3d4e5f60", UniqueID: "7468a1b2c3d4e5f60718293a4b5c6d7e"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeReply([]byte(tt.msg))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("DecodeReply =\n%+v\nwant\n%+v", got, tt.want)
			}
			if got.IsHeartbeat() != tt.heartbeat {
				t.Errorf("IsHeartbeat = %v", got.IsHeartbeat())
			}
			enc, err := EncodeReply(got)
			if err != nil {
				t.Fatal(err)
			}
			if string(enc) != tt.msg {
				t.Errorf("EncodeReply =\n%s\nwant (captured)\n%s", enc, tt.msg)
			}
			if keys := keysOf(t, enc); !reflect.DeepEqual(keys, replyKeys) {
				t.Errorf("keys %q, want %q", keys, replyKeys)
			}
		})
	}

	// The failure is a string inside oslo.message, itself a string inside
	// the body: three levels of encoding, byte for byte as Python.
	r := &Reply{Failure: failure, Ending: true, MsgID: "e3de5a4f8b2c4d1e9f0a1b2c3d4e5f60", UniqueID: "7468a1b2c3d4e5f60718293a4b5c6d7e"}
	body, err := WrapReply(r)
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != refFailureReplyBdy {
		t.Errorf("WrapReply =\n%s\nwant (Python)\n%s", body, refFailureReplyBdy)
	}
	got, err := UnwrapReply(body)
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Errorf("UnwrapReply = %+v, %v", got, err)
	}
}

func TestGoldenFailures(t *testing.T) {
	f, err := DecodeFailure([]byte(refOwrefFailure))
	if err != nil {
		t.Fatal(err)
	}
	want := &Failure{Class: "OwrefError", Module: "owref_errors", Message: "owref custom",
		Traceback: []string{"x\n"}, Args: []json.RawMessage{raw(`"owref custom"`)},
		Kwargs: ctx("code", `42`, "detail", `"owref"`)}
	if !reflect.DeepEqual(f, want) {
		t.Fatalf("DecodeFailure = %+v, want %+v", f, want)
	}
	enc, err := EncodeFailure(f)
	if err != nil || string(enc) != refOwrefFailure {
		t.Errorf("EncodeFailure = %s, %v; want (Python)\n%s", enc, err, refOwrefFailure)
	}

	// The framework errors, as a Python server sends them.
	helpers := []struct {
		got  *Failure
		want string
	}{
		{NoSuchMethod("owref_no_such_method"), `{"class": "NoSuchMethod", "module": "oslo_messaging.rpc.dispatcher", "message": "Endpoint does not support RPC method owref_no_such_method", "tb": [], "args": ["Endpoint does not support RPC method owref_no_such_method"], "kwargs": {}}`},
		{UnsupportedVersion("1.99", "echo"), `{"class": "UnsupportedVersion", "module": "oslo_messaging.rpc.dispatcher", "message": "Endpoint does not support RPC version 1.99. Attempted method: echo", "tb": [], "args": ["Endpoint does not support RPC version 1.99. Attempted method: echo"], "kwargs": {}}`},
		{UnsupportedVersion("2.0", ""), `{"class": "UnsupportedVersion", "module": "oslo_messaging.rpc.dispatcher", "message": "Endpoint does not support RPC version 2.0", "tb": [], "args": ["Endpoint does not support RPC version 2.0"], "kwargs": {}}`},
		{ArgsNotObject(raw(`null`)), `{"class": "AttributeError", "module": "builtins", "message": "'NoneType' object has no attribute 'items'", "tb": [], "args": ["'NoneType' object has no attribute 'items'"], "kwargs": {}}`},
		{ArgsNotObject(raw(`[1]`)), `{"class": "AttributeError", "module": "builtins", "message": "'list' object has no attribute 'items'", "tb": [], "args": ["'list' object has no attribute 'items'"], "kwargs": {}}`},
		{NewFailure("builtins", "ValueError", "bad \"size\""), `{"class": "ValueError", "module": "builtins", "message": "bad \"size\"", "tb": [], "args": ["bad \"size\""], "kwargs": {}}`},
	}
	for _, h := range helpers {
		enc, err := EncodeFailure(h.got)
		if err != nil || string(enc) != h.want {
			t.Errorf("EncodeFailure =\n%s, %v\nwant\n%s", enc, err, h.want)
		}
		if keys := keysOf(t, enc); !reflect.DeepEqual(keys, []string{"class", "module", "message", "tb", "args", "kwargs"}) {
			t.Errorf("failure keys %q", keys)
		}
	}
}

func TestGoldenNotifications(t *testing.T) {
	want := &Notification{
		MessageID:   "fca2cd2a-3294-436d-8e5c-07eeed82aee6",
		PublisherID: "owref.host1",
		EventType:   "owref.messaging.create",
		Priority:    PriorityInfo,
		Payload:     raw(`{"id": 1, "name": "owref"}`),
		Timestamp:   "2026-11-27 00:13:30.106163",
		UniqueID:    "934bd3131bce45a282874d37e3ff5dd5",
		Context:     ctx("user_id", `"owref-user"`, "request_id", `"req-n"`),
	}
	for _, body := range []string{refNotificationV1, refNotificationV2} {
		got, err := UnwrapNotification([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("UnwrapNotification =\n%+v\nwant\n%+v", got, want)
		}
	}
	v1, err := EncodeNotification(want)
	if err != nil {
		t.Fatal(err)
	}
	assertJSONEqual(t, v1, []byte(refNotificationV1))
	wantKeys := append(append([]string(nil), notifKeys...), "_context_request_id", "_context_user_id")
	if keys := keysOf(t, v1); !reflect.DeepEqual(keys, wantKeys) {
		t.Errorf("keys %q, want %q", keys, wantKeys)
	}
	v2, err := WrapNotification(want)
	if err != nil || string(v2) != refNotificationV2 {
		t.Errorf("WrapNotification =\n%s, %v\nwant (Python)\n%s", v2, err, refNotificationV2)
	}
	// v1 is the message itself: Unwrap hands it back unchanged.
	if inner, err := Unwrap([]byte(refNotificationV1)); err != nil || string(inner) != refNotificationV1 {
		t.Errorf("Unwrap(v1) = %s, %v", inner, err)
	}
}
