package oslo

import "testing"

// TestTracebackLines: the lines are Python's, as Python 3.11's traceback
// module wrote them for the same exceptions and frames.
func TestTracebackLines(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string // Python's
	}{
		{"frame", TracebackFrame("/nonexistent.go", 1, "<module>"), "  File \"/nonexistent.go\", line 1, in <module>\n"},
		{"frame_go_function", TracebackFrame("/src/app/service.go", 42, "example.com/app.(*Service).Start"),
			"  File \"/src/app/service.go\", line 42, in example.com/app.(*Service).Start\n"},
		{"builtins", ExceptionLine("builtins", "ValueError", "bad"), "ValueError: bad\n"},
		{"main", ExceptionLine("__main__", "Oops", "x"), "Oops: x\n"},
		{"module", ExceptionLine("peer_errors", "QuotaExceeded", "over quota"), "peer_errors.QuotaExceeded: over quota\n"},
		{"go_package", ExceptionLine("github.com/x/y", "X", "y"), "github.com/x/y.X: y\n"},
		{"empty_message", ExceptionLine("github.com/x/y", "X", ""), "github.com/x/y.X\n"},
		{"several_lines", ExceptionLine("builtins", "ValueError", "a\nb"), "ValueError: a\nb\n"},
		{"header", TracebackHeader, "Traceback (most recent call last):\n"},
		{"cause", CauseSeparator, "\nThe above exception was the direct cause of the following exception:\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}
