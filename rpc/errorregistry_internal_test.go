package rpc

import (
	"errors"
	"fmt"
	"testing"

	"github.com/switchyard-mq/switchyard/internal/oslo"
)

type wireShipped struct {
	Order string `json:"order"`
	Late  bool   `json:"late,omitempty"`
}

func (e *wireShipped) Error() string { return "order " + e.Order + " shipped" }

// TestRegisteredFailureWire: a registered error goes out as a Python
// exception of its module and class would (args [message], a type's
// fields as kwargs), its traceback naming that class.
func TestRegisteredFailureWire(t *testing.T) {
	const frame = "  File \"/src/svc.go\", line 7, in svc.(*S).M\n"
	errNotFound := errors.New("not found")
	reg, err := NewErrorRegistry(ErrorValue("orders", "NotFound", errNotFound), ErrorType[*wireShipped]("orders.errors", "Shipped"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		raise error
		want  string
	}{
		{"value",
			fmt.Errorf("find o-1: %w", errNotFound),
			`{"class": "NotFound", "module": "orders", "message": "find o-1: not found", "tb": ["orders.NotFound: not found\n", "\nThe above exception was the direct cause of the following exception:\n\n", "Traceback (most recent call last):\n", "  File \"/src/svc.go\", line 7, in svc.(*S).M\n", "orders.NotFound: find o-1: not found\n"], "args": ["find o-1: not found"], "kwargs": {}}`},
		{"type",
			&wireShipped{Order: "o-2", Late: true},
			`{"class": "Shipped", "module": "orders.errors", "message": "order o-2 shipped", "tb": ["Traceback (most recent call last):\n", "  File \"/src/svc.go\", line 7, in svc.(*S).M\n", "orders.errors.Shipped: order o-2 shipped\n"], "args": ["order o-2 shipped"], "kwargs": {"late": true, "order": "o-2"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := oslo.EncodeFailure(failureFromError(tt.raise, frame, reg))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("failure\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}
