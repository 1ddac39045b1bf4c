package interop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/switchyard-mq/switchyard/rpc"
)

// The Go side of the peer's exceptions (testdata/peer_errors.py), as a
// Go service and its Go callers register them.
var errInstanceNotFound = errors.New("instance not found")

// quotaExceeded is peer_errors.QuotaExceeded: its kwargs are its fields.
type quotaExceeded struct {
	Message string                 `json:"-"`
	Code    int                    `json:"code"`
	Limits  map[string]json.Number `json:"limits"`
}

func (e *quotaExceeded) Error() string { return e.Message }

func peerErrors(t testing.TB) *rpc.ErrorRegistry {
	t.Helper()
	reg, err := rpc.NewErrorRegistry(
		rpc.ErrorValue("peer_errors", "InstanceNotFound", errInstanceNotFound),
		rpc.ErrorType[*quotaExceeded]("peer_errors", "QuotaExceeded"),
	)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// FailRegistered returns a registered Go error, wrapped.
func (s *service) FailRegistered(ctx context.Context, args messageArgs) (any, error) {
	return nil, fmt.Errorf("handling: %w", &quotaExceeded{Message: args.Message, Code: 42,
		Limits: map[string]json.Number{"cores": "8", "ram_gb": "2.5"}})
}
