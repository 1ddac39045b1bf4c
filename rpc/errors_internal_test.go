package rpc

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/switchyard-mq/switchyard/internal/oslo"
)

// TestFailureWire: what a Go endpoint raises is the failure a Python
// server would send for the same exception (serialize_remote_exception):
// args and kwargs as given, or [message] and {}.
func TestFailureWire(t *testing.T) {
	const frame = "  File \"/src/svc.go\", line 7, in svc.(*S).M\n"
	tests := []struct {
		name  string
		raise error
		want  string
	}{
		{"message_only",
			&RemoteError{Module: "peer_errors", Class: "QuotaExceeded", Message: "over quota"},
			`{"class": "QuotaExceeded", "module": "peer_errors", "message": "over quota", "tb": ["Traceback (most recent call last):\n", "  File \"/src/svc.go\", line 7, in svc.(*S).M\n", "peer_errors.QuotaExceeded: over quota\n"], "args": ["over quota"], "kwargs": {}}`},
		{"kwargs",
			&RemoteError{Module: "peer_errors", Class: "QuotaExceeded", Message: "over quota",
				Kwargs: map[string]any{"code": 42, "limits": map[string]any{"ram": json.Number("2.0")}}},
			`{"class": "QuotaExceeded", "module": "peer_errors", "message": "over quota", "tb": ["Traceback (most recent call last):\n", "  File \"/src/svc.go\", line 7, in svc.(*S).M\n", "peer_errors.QuotaExceeded: over quota\n"], "args": ["over quota"], "kwargs": {"code": 42, "limits": {"ram":2.0}}}`},
		{"no_args",
			&RemoteError{Module: "peer_errors", Class: "InstanceNotFound", Message: "Instance i-1 could not be found.",
				Args: []any{}, Kwargs: map[string]any{"instance_id": "i-1"}},
			`{"class": "InstanceNotFound", "module": "peer_errors", "message": "Instance i-1 could not be found.", "tb": ["Traceback (most recent call last):\n", "  File \"/src/svc.go\", line 7, in svc.(*S).M\n", "peer_errors.InstanceNotFound: Instance i-1 could not be found.\n"], "args": [], "kwargs": {"instance_id": "i-1"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := oslo.EncodeFailure(failureFromError(tt.raise, frame, nil))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("failure\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

// TestMethodFrame: a method's frame names where it is written, through
// the wrappers the compiler generates.
func TestMethodFrame(t *testing.T) {
	tests := []struct {
		name string
		recv any
		want string // the function the frame names
	}{
		{"pointer_method", &frameRecv{}, "github.com/switchyard-mq/switchyard/rpc.(*frameRecv).P"},
		{"value_method_through_pointer", &frameRecv{}, "github.com/switchyard-mq/switchyard/rpc.frameRecv.V"},
		{"promoted", &frameOuter{&frameRecv{}}, "github.com/switchyard-mq/switchyard/rpc.(*frameRecv).P"},
		{"promoted_value", frameOuter{&frameRecv{}}, "github.com/switchyard-mq/switchyard/rpc.frameRecv.V"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.want[len(tt.want)-1:]
			got := methodFrame(reflect.TypeOf(tt.recv), method)
			if !strings.HasSuffix(got, " in "+tt.want+"\n") {
				t.Fatalf("frame %q, want one in %s", got, tt.want)
			}
			if !strings.Contains(got, "/rpc/errors_internal_test.go\", line ") {
				t.Fatalf("frame %q is not in errors_internal_test.go", got)
			}
		})
	}
}

type frameRecv struct{}

func (*frameRecv) P() {}

func (frameRecv) V() {}

type frameOuter struct{ *frameRecv }
