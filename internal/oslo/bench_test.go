package oslo

import (
	"encoding/json"
	"testing"
)

// benchRequest is a typical call: small args, a Keystone-like context.
func benchRequest() *Request {
	return &Request{
		Method:   "get_instance",
		Args:     raw(`{"instance_id": "6f0c2f50-2d6a-4bb1-8c8a-2f9b5a1e7c11", "expected_attrs": ["metadata", "flavor"], "want_objects": true}`),
		Version:  "1.3",
		MsgID:    "f3d1a2b3c4d5e6f708192a3b4c5d6e7f",
		ReplyQ:   "reply_7a9a39148cfd476685075ea820702408",
		Timeout:  seconds(60),
		UniqueID: "4a72b6e0c1d24f3a9b8c7d6e5f4a3b2c",
		Context: ctx(
			"user_id", `"owref-user"`,
			"project_id", `"owref-project"`,
			"request_id", `"req-00000000-0000-0000-0000-000000000001"`,
			"global_request_id", `null`,
			"is_admin", `false`,
			"roles", `["reader", "member"]`,
		),
	}
}

func benchReply() *Reply {
	return &Reply{
		Result:   raw(`{"id": 1, "name": "owref", "status": "ACTIVE", "flavor": {"vcpus": 2, "ram": 4096}}`),
		Ending:   true,
		MsgID:    "e3de5a4f8b2c4d1e9f0a1b2c3d4e5f60",
		UniqueID: "7468a1b2c3d4e5f60718293a4b5c6d7e",
	}
}

func BenchmarkEncodeRequest(b *testing.B) {
	req := benchRequest()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeRequest(req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeRequest(b *testing.B) {
	msg, _ := EncodeRequest(benchRequest())
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeRequest(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeReply(b *testing.B) {
	r := benchReply()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeReply(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeReply(b *testing.B) {
	msg, _ := EncodeReply(benchReply())
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeReply(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// The whole path a body takes, envelope included.

func BenchmarkWrapRequest(b *testing.B) {
	req := benchRequest()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := WrapRequest(req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnwrapRequest(b *testing.B) {
	body, _ := WrapRequest(benchRequest())
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := UnwrapRequest(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWrapReplyFailure(b *testing.B) {
	r := &Reply{Failure: NoSuchMethod("get_instance"), Ending: true, MsgID: "e3de5a4f8b2c4d1e9f0a1b2c3d4e5f60", UniqueID: "7468a1b2c3d4e5f60718293a4b5c6d7e"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := WrapReply(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnwrapReply(b *testing.B) {
	body, _ := WrapReply(benchReply())
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := UnwrapReply(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeRequestEncodingJSON is the baseline the hand-written
// decoder replaces: encoding/json into a map of raw values, then fields.
func BenchmarkDecodeRequestEncodingJSON(b *testing.B) {
	msg, _ := EncodeRequest(benchRequest())
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(msg, &m); err != nil {
			b.Fatal(err)
		}
		var r Request
		_ = json.Unmarshal(m["method"], &r.Method)
		_ = json.Unmarshal(m["_msg_id"], &r.MsgID)
		_ = json.Unmarshal(m["_reply_q"], &r.ReplyQ)
		_ = json.Unmarshal(m["_unique_id"], &r.UniqueID)
		r.Args = m["args"]
	}
}

// BenchmarkEncodeRequestEncodingJSON is the baseline for encoding: a map
// through encoding/json (which also sorts the keys).
func BenchmarkEncodeRequestEncodingJSON(b *testing.B) {
	req := benchRequest()
	b.ReportAllocs()
	for b.Loop() {
		m := map[string]any{
			"method": req.Method, "args": req.Args, "version": req.Version, "_msg_id": req.MsgID,
			"_reply_q": req.ReplyQ, "_timeout": req.Timeout, "_unique_id": req.UniqueID,
		}
		for k, v := range req.Context {
			m["_context_"+k] = v
		}
		if _, err := json.Marshal(m); err != nil {
			b.Fatal(err)
		}
	}
}
