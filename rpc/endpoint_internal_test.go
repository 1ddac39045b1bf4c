package rpc

import (
	"errors"
	"testing"

	"github.com/switchyard-mq/switchyard/transport"
)

// TestParseVersion covers what peers may put in a request's version: any
// string, since Python's clients do not check it.
func TestParseVersion(t *testing.T) {
	tests := []struct {
		in                string
		major, minor, rev int
		ok                bool
	}{
		{"1", 1, 0, 0, true},
		{"1.2", 1, 2, 0, true},
		{"1.2.3", 1, 2, 3, true},
		{"10.20.30", 10, 20, 30, true},
		// oslo reads three parts and ignores the rest.
		{"1.2.3.4", 1, 2, 3, true},
		{"1.0.0.0.0", 1, 0, 0, true},
		{"1.2.3.x", 1, 2, 3, true},
		{"1.2.x.4", 0, 0, 0, false},
		{"", 0, 0, 0, false},
		{".", 0, 0, 0, false},
		{"1.", 0, 0, 0, false},
		{".1", 0, 0, 0, false},
		{"1..2", 0, 0, 0, false},
		{"1.x", 0, 0, 0, false},
		{"-1.0", 0, 0, 0, false},
		{"99999999999.0", 0, 0, 0, false},
	}
	for _, tt := range tests {
		major, minor, rev, err := parseVersion(tt.in)
		if tt.ok {
			if err != nil || major != tt.major || minor != tt.minor || rev != tt.rev {
				t.Errorf("parseVersion(%q) = %d, %d, %d, %v; want %d, %d, %d", tt.in, major, minor, rev, err, tt.major, tt.minor, tt.rev)
			}
			continue
		}
		if !errors.Is(err, transport.ErrInvalid) {
			t.Errorf("parseVersion(%q) = %d, %d, %d, %v; want an ErrInvalid", tt.in, major, minor, rev, err)
		}
	}
}

// FuzzParseVersion: no input panics, and every failure is an ErrInvalid.
func FuzzParseVersion(f *testing.F) {
	for _, s := range []string{"1.0", "1.2.3.4", "", "..", "1.99999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if _, _, _, err := parseVersion(v); err != nil && !errors.Is(err, transport.ErrInvalid) {
			t.Errorf("parseVersion(%q): %v is not an ErrInvalid", v, err)
		}
	})
}
