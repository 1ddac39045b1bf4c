package rawoslo

import (
	"encoding/json"
	"testing"

	"github.com/switchyard-mq/switchyard/internal/oslo"
)

type echoArgs struct {
	N     int    `json:"n"`
	Value string `json:"value"`
}

// TestSpeaksOslo checks that the hand-written codec is oslo's: oslo's
// codec reads its request, and it reads oslo's reply, so that the
// benchmarks' floor is a client oslo peers could serve.
func TestSpeaksOslo(t *testing.T) {
	args := echoArgs{N: 7, Value: "ping \"quoted\" é"}
	body, err := Wrap(Request[echoArgs]{Method: "echo", Args: args, MsgID: NewID(), ReplyQ: "reply_x", UniqueID: NewID()})
	if err != nil {
		t.Fatal(err)
	}
	req, err := oslo.UnwrapRequest(body)
	if err != nil {
		t.Fatalf("oslo cannot read the request %s: %v", body, err)
	}
	var gotArgs echoArgs
	if err := json.Unmarshal(req.Args, &gotArgs); err != nil || gotArgs != args || req.Method != "echo" ||
		len(req.MsgID) != 32 || len(req.UniqueID) != 32 || req.ReplyQ != "reply_x" {
		t.Errorf("oslo reads %+v (args %+v, %v)", req, gotArgs, err)
	}

	result, _ := json.Marshal(args)
	body, err = oslo.WrapReply(&oslo.Reply{Result: result, Ending: true, MsgID: req.MsgID, UniqueID: oslo.NewID()})
	if err != nil {
		t.Fatal(err)
	}
	var reply Reply[echoArgs]
	if err := Unwrap(body, &reply); err != nil {
		t.Fatalf("cannot read oslo's reply %s: %v", body, err)
	}
	if reply.Result == nil || *reply.Result != args || !reply.Ending || reply.Failure != nil || reply.MsgID != req.MsgID {
		t.Errorf("reads oslo's reply as %+v", reply)
	}
}

func TestServer(t *testing.T) {
	request := func(uniqueID string) []byte {
		body, err := Wrap(Request[echoArgs]{Method: "echo", Args: echoArgs{N: 1}, MsgID: "m1", ReplyQ: "reply_q", UniqueID: uniqueID})
		if err != nil {
			t.Fatal(err)
		}
		return body
	}
	s := Server[echoArgs, int]{Method: "echo", Handle: func(a echoArgs) int { return a.N + 1 }}
	reply, replyQ, ok := s.Answer(request("u1"))
	if !ok || replyQ != "reply_q" {
		t.Fatalf("Answer = %s, %q, %v", reply, replyQ, ok)
	}
	var r Reply[int]
	if err := Unwrap(reply, &r); err != nil || r.MsgID != "m1" || r.Result == nil || *r.Result != 2 || !r.Ending {
		t.Errorf("reply %+v (%v)", r, err)
	}
	if _, _, ok := s.Answer(request("u1")); ok {
		t.Error("a repeated _unique_id was answered")
	}
	for range 2 * DuplicateWindow {
		s.Answer(request(NewID()))
	}
	if _, _, ok := s.Answer(request("u1")); !ok {
		t.Error("an id older than two windows is still dropped")
	}
	for _, bad := range []string{`{}`, `{"oslo.version": "1.0", "oslo.message": "{}"}`, `not json`,
		`{"oslo.version": "2.0", "oslo.message": "{\"method\": \"other\", \"_reply_q\": \"q\"}"}`} {
		if _, _, ok := s.Answer([]byte(bad)); ok {
			t.Errorf("answered %s", bad)
		}
	}
}
