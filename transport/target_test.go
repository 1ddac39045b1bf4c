package transport_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/switchyard-mq/switchyard/transport"
)

func TestTargetValidate(t *testing.T) {
	tests := []struct {
		name   string
		target transport.Target
		// wantText is empty for a valid target, else a fragment of the
		// error naming the bad field.
		wantText string
	}{
		{"topic only", transport.Target{Topic: "compute"}, ""},
		{"every field", transport.Target{Exchange: "nova", Topic: "compute", Namespace: "baseapi", Version: "1.3", Server: "host-1", Fanout: true}, ""},
		{"major version only", transport.Target{Topic: "compute", Version: "2"}, `version "2"`},
		{"version with a revision", transport.Target{Topic: "compute", Version: "2.1.3"}, ""},
		{"dotted topic", transport.Target{Topic: "notifications.info"}, ""},
		{"empty topic", transport.Target{Server: "host-1"}, "topic is empty"},
		{"space in topic", transport.Target{Topic: "my topic"}, `topic "my topic" contains a space`},
		{"tab in server", transport.Target{Topic: "t", Server: "host\t1"}, "server"},
		{"newline in namespace", transport.Target{Topic: "t", Namespace: "ns\n"}, "namespace"},
		{"control character in exchange", transport.Target{Topic: "t", Exchange: "ex\x00"}, "exchange"},
		{"invalid UTF-8 in server", transport.Target{Topic: "t", Server: "\xff"}, "not valid UTF-8"},
		{"256-byte topic", transport.Target{Topic: strings.Repeat("t", 256)}, "256 bytes long"},
		{"version not a number", transport.Target{Topic: "t", Version: "one.two"}, `version "one.two"`},
		{"version with four parts", transport.Target{Topic: "t", Version: "1.2.3.4"}, `version "1.2.3.4"`},
		{"version with an empty part", transport.Target{Topic: "t", Version: "1..2"}, `version "1..2"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.target.Validate()
			if tt.wantText == "" {
				if err != nil {
					t.Fatalf("%+v.Validate(): %v, want nil", tt.target, err)
				}
				return
			}
			if !errors.Is(err, transport.ErrInvalid) {
				t.Fatalf("%+v.Validate(): %v, want ErrInvalid", tt.target, err)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("%+v.Validate(): %q does not name the bad field (%q)", tt.target, err, tt.wantText)
			}
		})
	}
}

func TestTargetString(t *testing.T) {
	tests := []struct {
		target transport.Target
		want   string
	}{
		{transport.Target{Topic: "compute"}, "compute"},
		{transport.Target{Exchange: "nova", Topic: "compute", Server: "host1", Version: "1.3"}, "nova/compute.host1 v1.3"},
		{transport.Target{Topic: "compute", Fanout: true, Namespace: "ns"}, "compute (fanout) ns=ns"},
	}
	for _, tt := range tests {
		if got := tt.target.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.target, got, tt.want)
		}
	}
}

func TestParseVersion(t *testing.T) {
	tests := []struct {
		version      string
		major, minor int
		ok           bool
	}{
		{"1.0", 1, 0, true},
		{"1.3", 1, 3, true},
		{"2", 2, 0, true},
		{"0.1", 0, 1, true},
		{"1.10", 1, 10, true},
		{"10.20", 10, 20, true},
		{"", 0, 0, false},
		{"1.", 0, 0, false},
		{".1", 0, 0, false},
		{"a.b", 0, 0, false},
		{"1.x", 0, 0, false},
		{"1.2.3", 0, 0, false},
		{"-1.0", 0, 0, false},
		{"1.-2", 0, 0, false},
		{"+1.0", 0, 0, false},
		{"1.+2", 0, 0, false},
		{" 1.0", 0, 0, false},
		{"1.0 ", 0, 0, false},
		{"v1.0", 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			major, minor, err := transport.ParseVersion(tt.version)
			if !tt.ok {
				if !errors.Is(err, transport.ErrInvalid) || !strings.Contains(err.Error(), `"`+tt.version+`"`) {
					t.Errorf("ParseVersion(%q) = %d, %d, %v; want ErrInvalid naming the version", tt.version, major, minor, err)
				}
				return
			}
			if err != nil || major != tt.major || minor != tt.minor {
				t.Errorf("ParseVersion(%q) = %d, %d, %v; want %d, %d", tt.version, major, minor, err, tt.major, tt.minor)
			}
		})
	}
}
