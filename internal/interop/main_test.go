package interop

import (
	"fmt"
	"os"
	"testing"
)

// TestMain makes the test process lead its process group when the
// group's leader has gone (LeadProcessGroup), before any peer starts.
func TestMain(m *testing.M) {
	if err := LeadProcessGroup(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}
