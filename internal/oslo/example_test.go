package oslo_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/switchyard-mq/switchyard/internal/oslo"
)

// A client builds a call; a server decodes it and answers.
func Example() {
	timeout := 60.0
	body, err := oslo.WrapRequest(&oslo.Request{
		Method:   "echo",
		Args:     json.RawMessage(`{"x": 1}`),
		MsgID:    "dc46a6538381487a800a9b0aff194b4e", // oslo.NewID() in real code
		ReplyQ:   "reply_7a9a39148cfd476685075ea820702408",
		Timeout:  &timeout,
		UniqueID: "3adc89fd071f43b7843f8b151c54753d",
		Context:  map[string]json.RawMessage{"request_id": json.RawMessage(`"req-1"`)},
	})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s\n", body)

	req, err := oslo.UnwrapRequest(body)
	if err != nil {
		panic(err)
	}
	reply, err := oslo.WrapReply(&oslo.Reply{
		Result:   req.Args,
		Ending:   true,
		MsgID:    req.MsgID,
		UniqueID: "7468a1b2c3d4e5f60718293a4b5c6d7e",
	})
	if err != nil {
		panic(err)
	}
	fmt.Printf("to %s: %s\n", req.ReplyQ, reply)
	// Output:
	// {"oslo.version": "2.0", "oslo.message": "{\"method\": \"echo\", \"args\": {\"x\": 1}, \"_msg_id\": \"dc46a6538381487a800a9b0aff194b4e\", \"_reply_q\": \"reply_7a9a39148cfd476685075ea820702408\", \"_timeout\": 60, \"_unique_id\": \"3adc89fd071f43b7843f8b151c54753d\", \"_context_request_id\": \"req-1\"}"}
	// to reply_7a9a39148cfd476685075ea820702408: {"oslo.version": "2.0", "oslo.message": "{\"result\": {\"x\": 1}, \"failure\": null, \"ending\": true, \"_msg_id\": \"dc46a6538381487a800a9b0aff194b4e\", \"_unique_id\": \"7468a1b2c3d4e5f60718293a4b5c6d7e\"}"}
}

// A server answers a request whose args is null with the failure a Python
// server sends.
func ExampleArgsNotObject() {
	req, err := oslo.DecodeRequest([]byte(`{"method": "echo", "args": null, "_msg_id": "i", "_reply_q": "reply_q", "_unique_id": "u"}`))
	if errors.Is(err, oslo.ErrArgsNotObject) && req.IsCall() {
		failure := oslo.ArgsNotObject(req.Args)
		fmt.Println(failure.Module+"."+failure.Class+":", failure.Message)
	}
	// Output: builtins.AttributeError: 'NoneType' object has no attribute 'items'
}

// The failure of a reply is a JSON string inside the message.
func ExampleEncodeReply() {
	msg, err := oslo.EncodeReply(&oslo.Reply{
		Failure:  oslo.NoSuchMethod("reboot"),
		Ending:   true,
		MsgID:    "i",
		UniqueID: "u",
	})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s\n", msg)
	// Output:
	// {"result": null, "failure": "{\"class\": \"NoSuchMethod\", \"module\": \"oslo_messaging.rpc.dispatcher\", \"message\": \"Endpoint does not support RPC method reboot\", \"tb\": [], \"args\": [\"Endpoint does not support RPC method reboot\"], \"kwargs\": {}}", "ending": true, "_msg_id": "i", "_unique_id": "u"}
}

func ExampleUnwrap() {
	for _, body := range []string{
		`{"oslo.version": "2.0", "oslo.message": "{\"priority\": \"INFO\"}"}`,
		`{"priority": "INFO"}`, // format 1.0: the message itself
		`{"oslo.version": "2.1", "oslo.message": "{}"}`,
		`{"oslo.version": "2.0", "oslo.message": {"priority": "INFO"}}`,
	} {
		msg, err := oslo.Unwrap([]byte(body))
		fmt.Printf("%s %v\n", msg, err)
	}
	// Output:
	// {"priority": "INFO"} <nil>
	// {"priority": "INFO"} <nil>
	//  oslo: unsupported envelope version: oslo.version "2.1" is not compatible with "2.0"
	//  oslo: malformed message: oslo.message is an object, want a string holding the message's JSON text
}

func ExampleFormatTimestamp() {
	fmt.Println(oslo.FormatTimestamp(time.Date(2026, 11, 27, 0, 13, 30, 106163000, time.UTC)))
	fmt.Println(oslo.FormatTimestamp(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)))
	// Output:
	// 2026-11-27 00:13:30.106163
	// 2024-01-02 03:04:05
}

func ExampleNotificationKey() {
	fmt.Println(oslo.NotificationKey(oslo.DefaultNotificationTopic, oslo.PriorityWarn))
	fmt.Println(oslo.ServerQueue("compute", "host1"), oslo.FanoutExchange("compute"))
	// Output:
	// notifications.warn
	// compute.host1 compute_fanout
}
