package oslo

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// FuzzUnwrapDecode feeds arbitrary bodies to Unwrap and the decoders. None
// may panic; every error must wrap a sentinel; and every message decoded
// without error must encode, and decode again, to the same value.
func FuzzUnwrapDecode(f *testing.F) {
	for _, seed := range []string{
		refCallBody, refContextCall, refMonitorCall, refCast, refFanout, refReply, refHeartbeat,
		refFailureReply, refFailureReplyBdy, refOwrefFailure, refNotificationV1, refNotificationV2,
		`{"oslo.version": "2.1", "oslo.message": "{}"}`,
		`{"oslo.version": "2.0", "oslo.message": {"method": "m"}}`,
		`{"method": "m", "args": null, "_msg_id": "i", "_reply_q": "q", "_timeout": 2.5}`,
		`{"method": "m\u00e9\ud83d\ude00\ud83d\u0000", "args": {"n": [9007199254740993, 2.0, 1e-07, NaN]}}`,
		`{"result": {"a": 1}, "failure": {"class": "E_Remote", "module": "m_Remote", "tb": "x"}}`,
		`{"priority": "warn", "payload": -0, "_context_a": [null]}`,
		`not json`, `[]`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if msg, err := Unwrap(body); err == nil {
			if !json.Valid(msg) {
				t.Fatalf("Unwrap(%q) = %q, not JSON", body, msg)
			}
			wrapped, err := Wrap(msg)
			if err != nil {
				t.Fatalf("Wrap(Unwrap(%q)): %v", body, err)
			}
			// Wrap writes invalid UTF-8 as U+FFFD, byte by byte.
			if again, err := Unwrap(wrapped); err != nil || string(again) != string([]rune(string(msg))) {
				t.Fatalf("Unwrap(Wrap(%q)) = %q, %v", msg, again, err)
			}
		} else {
			checkSentinel(t, err)
		}

		for _, decode := range []func([]byte) (*Request, error){UnwrapRequest, DecodeRequest} {
			req, err := decode(body)
			if err != nil {
				checkSentinel(t, err)
				continue
			}
			checkRequestRoundTrip(t, req)
		}
		if reply, err := UnwrapReply(body); err != nil {
			checkSentinel(t, err)
		} else {
			checkReplyRoundTrip(t, reply)
		}
		if n, err := UnwrapNotification(body); err != nil {
			checkSentinel(t, err)
		} else {
			checkNotificationRoundTrip(t, n)
		}
	})
}

func checkSentinel(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrVersion) {
		t.Fatalf("error %v wraps no sentinel", err)
	}
}

func checkRequestRoundTrip(t *testing.T, req *Request) {
	t.Helper()
	if req.UniqueID == "" {
		// Decoding tolerates a missing _unique_id; encoding requires one.
		if _, err := EncodeRequest(req); !errors.Is(err, ErrMalformed) {
			t.Fatalf("EncodeRequest without UniqueID: %v", err)
		}
		req.UniqueID = "u"
	}
	enc, err := EncodeRequest(req)
	if err != nil {
		t.Fatalf("EncodeRequest(%+v): %v", req, err)
	}
	if !json.Valid(enc) {
		t.Fatalf("EncodeRequest(%+v) = %q, not JSON", req, enc)
	}
	back, err := DecodeRequest(enc)
	if err != nil || !reflect.DeepEqual(back, req) {
		t.Fatalf("DecodeRequest(EncodeRequest(%+v)) = %+v, %v\nencoded %q", req, back, err, enc)
	}
	body, err := WrapRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	if back, err := UnwrapRequest(body); err != nil || !reflect.DeepEqual(back, req) {
		t.Fatalf("UnwrapRequest(WrapRequest(%+v)) = %+v, %v", req, back, err)
	}
}

func checkReplyRoundTrip(t *testing.T, r *Reply) {
	t.Helper()
	r.EndingAbsent = false // encoders always write ending
	if r.MsgID == "" {
		r.MsgID = "i"
	}
	if r.UniqueID == "" {
		r.UniqueID = "u"
	}
	body, err := WrapReply(r)
	if err != nil {
		t.Fatalf("WrapReply(%+v): %v", r, err)
	}
	if !json.Valid(body) {
		t.Fatalf("WrapReply(%+v) = %q, not JSON", r, body)
	}
	back, err := UnwrapReply(body)
	if err != nil || !reflect.DeepEqual(back, r) {
		t.Fatalf("UnwrapReply(WrapReply(%+v)) = %+v, %v\nencoded %q", r, back, err, body)
	}
}

func checkNotificationRoundTrip(t *testing.T, n *Notification) {
	t.Helper()
	if !n.Priority.Valid() {
		t.Fatalf("decoded priority %q is not a constant", n.Priority)
	}
	if n.MessageID == "" {
		n.MessageID = "m"
	}
	if n.UniqueID == "" {
		n.UniqueID = "u"
	}
	body, err := WrapNotification(n)
	if err != nil {
		t.Fatalf("WrapNotification(%+v): %v", n, err)
	}
	back, err := UnwrapNotification(body)
	if err != nil || !reflect.DeepEqual(back, n) {
		t.Fatalf("UnwrapNotification(WrapNotification(%+v)) = %+v, %v\nencoded %q", n, back, err, body)
	}
}
