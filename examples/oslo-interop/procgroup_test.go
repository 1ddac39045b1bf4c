package main

import (
	"fmt"
	"os"
	"testing"

	"github.com/switchyard-mq/switchyard/internal/interop"
)

// TestMain makes the test process lead its process group when the
// group's leader has gone, as oslo.messaging 18's queue manager in the
// Python programs needs (interop.LeadProcessGroup).
func TestMain(m *testing.M) {
	if err := interop.LeadProcessGroup(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}
