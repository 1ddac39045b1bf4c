package oslo

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestPriorities(t *testing.T) {
	all := map[Priority]string{
		PriorityAudit: "AUDIT", PriorityDebug: "DEBUG", PriorityInfo: "INFO", PriorityWarn: "WARN",
		PriorityError: "ERROR", PriorityCritical: "CRITICAL", PrioritySample: "SAMPLE",
	}
	for p, wire := range all {
		if !p.Valid() || p.Wire() != wire || p.String() != strings.ToLower(wire) {
			t.Errorf("%q: Valid %v, Wire %q, String %q", p, p.Valid(), p.Wire(), p.String())
		}
		for _, s := range []string{string(p), wire, strings.ToUpper(string(p[:1])) + string(p[1:])} {
			if got, err := ParsePriority(s); err != nil || got != p {
				t.Errorf("ParsePriority(%q) = %q, %v", s, got, err)
			}
		}
	}
	// "warning" is not oslo's word; ſ and K (Kelvin) fold to s and k in
	// Unicode but not in Python's lower().
	for _, s := range []string{"", "warning", "WARNING", "notice", "info ", "ſample", "ınfo", "inf"} {
		if got, err := ParsePriority(s); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParsePriority(%q) = %q, %v; want ErrMalformed", s, got, err)
		}
	}
	if Priority("INFO").Valid() || Priority("INFO").Wire() != "INFO" {
		t.Error("Priority(\"INFO\") is not a constant but has the wire form INFO")
	}
}

func TestEncodeNotification(t *testing.T) {
	n := &Notification{MessageID: "m-1", PublisherID: "p", EventType: "e", Priority: Priority("Warn"), UniqueID: "u",
		Context: ctx("user_id", `"u1"`)}
	got, err := EncodeNotification(n)
	want := `{"message_id": "m-1", "publisher_id": "p", "event_type": "e", "priority": "WARN", "payload": null, "timestamp": "", "_unique_id": "u", "_context_user_id": "u1"}`
	if err != nil || string(got) != want {
		t.Fatalf("EncodeNotification =\n%s, %v\nwant\n%s", got, err, want)
	}
	for _, bad := range []struct {
		name    string
		n       *Notification
		errText string
	}{
		{"nil", nil, "nil"},
		{"no message id", &Notification{Priority: PriorityInfo, UniqueID: "u"}, "MessageID"},
		{"no unique id", &Notification{MessageID: "m", Priority: PriorityInfo}, "UniqueID"},
		{"no priority", &Notification{MessageID: "m", UniqueID: "u"}, "priority"},
		{"warning", &Notification{MessageID: "m", UniqueID: "u", Priority: "warning"}, `"warning"`},
		{"payload NaN", &Notification{MessageID: "m", UniqueID: "u", Priority: PriorityInfo, Payload: raw(`NaN`)}, "payload"},
		{"context not JSON", &Notification{MessageID: "m", UniqueID: "u", Priority: PriorityInfo, Context: ctx("k", `'x'`)}, "context"},
	} {
		if _, err := EncodeNotification(bad.n); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), bad.errText) {
			t.Errorf("%s: err = %v, want ErrMalformed containing %q", bad.name, err, bad.errText)
		}
		if _, err := WrapNotification(bad.n); err == nil {
			t.Errorf("%s: WrapNotification accepted it", bad.name)
		}
	}
}

func TestDecodeNotification(t *testing.T) {
	tests := []struct {
		name    string
		msg     string
		want    *Notification
		errText string // "" for no error
	}{
		{"lower-case priority, null publisher", `{"message_id": "m", "publisher_id": null, "priority": "sample", "payload": [1]}`,
			&Notification{MessageID: "m", Priority: PrioritySample, Payload: raw(`[1]`)}, ""},
		{"null payload", `{"priority": "INFO", "payload": null}`, &Notification{Priority: PriorityInfo}, ""},
		{"unknown priority kept", `{"message_id": "m", "priority": "WARNING", "payload": {}}`,
			&Notification{MessageID: "m", Priority: "WARNING", Payload: raw(`{}`)}, `priority "WARNING"`},
		{"missing priority", `{"message_id": "m"}`, &Notification{MessageID: "m"}, "no priority"},
		{"priority a number", `{"priority": 3}`, &Notification{}, "priority is a number"},
		{"NaN payload", `{"priority": "INFO", "payload": {"v": NaN}, "_unique_id": "u"}`,
			&Notification{Priority: PriorityInfo, UniqueID: "u"}, "payload holds NaN"},
		{"timestamp a number", `{"priority": "INFO", "timestamp": 1700000000}`, &Notification{Priority: PriorityInfo}, "timestamp is a number"},
		{"not an object", `"INFO"`, nil, "want a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeNotification([]byte(tt.msg))
			if tt.errText == "" && err != nil || tt.errText != "" && (!errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.errText)) {
				t.Fatalf("DecodeNotification err = %v, want %q", err, tt.errText)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("DecodeNotification = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestFormatTimestamp(t *testing.T) {
	tests := []struct {
		t    time.Time
		want string
	}{
		{time.Date(2026, 11, 27, 0, 13, 30, 106163000, time.UTC), "2026-11-27 00:13:30.106163"},
		{time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), "2024-01-02 03:04:05"},
		{time.Date(2024, 1, 2, 3, 4, 5, 999, time.UTC), "2024-01-02 03:04:05"}, // below a microsecond
		{time.Date(2024, 1, 2, 3, 4, 5, 1000, time.UTC), "2024-01-02 03:04:05.000001"},
		{time.Date(2024, 1, 2, 3, 4, 5, 120000999, time.UTC), "2024-01-02 03:04:05.120000"},
		{time.Date(2024, 1, 2, 4, 4, 5, 0, time.FixedZone("CET", 3600)), "2024-01-02 03:04:05"},
		{time.Date(999, 1, 2, 3, 4, 5, 0, time.UTC), "0999-01-02 03:04:05"},
	}
	for _, tt := range tests {
		if got := FormatTimestamp(tt.t); got != tt.want {
			t.Errorf("FormatTimestamp(%v) = %q, want %q", tt.t, got, tt.want)
		}
	}
}

func TestParseTimestamp(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
	}{
		{"2026-11-27 00:13:30.106163", time.Date(2026, 11, 27, 0, 13, 30, 106163000, time.UTC)},
		{"2024-01-02 03:04:05", time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)},
		{"2024-01-02T03:04:05", time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)},
		{"2024-01-02T03:04:05Z", time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)},
		{"2024-01-02T03:04:05.5Z", time.Date(2024, 1, 2, 3, 4, 5, 500000000, time.UTC)},
		{"2024-01-02T03:04:05.123456789", time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC)},
		{"2024-01-02T04:04:05+01:00", time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)},
		{"2024-01-02T00:04:05.000001-03:30", time.Date(2024, 1, 2, 3, 34, 5, 1000, time.UTC)},
	}
	for _, tt := range tests {
		got, err := ParseTimestamp(tt.in)
		if err != nil || !got.Equal(tt.want) || got.Location() != time.UTC {
			t.Errorf("ParseTimestamp(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{
		"", "2024-01-02", "2024-01-02 03:04", "2024/01/02 03:04:05", "2024-01-02 03:04:05.", "2024-01-02 03:04:05.1234567890",
		"2024-13-02 03:04:05", "2024-02-30 03:04:05", "2024-01-02 24:00:00", "2024-01-02 03:04:60", "2024-01-02 03:04:05 ",
		"2024-01-02 03:04:05+0100", "2024-01-02 03:04:05+24:00", "2024-0a-02 03:04:05", "+024-01-02 03:04:05", "2024-01-02x03:04:05",
	} {
		if got, err := ParseTimestamp(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseTimestamp(%q) = %v, %v; want ErrMalformed", bad, got, err)
		}
	}
	// Every formatted timestamp parses back, to the microsecond.
	now := time.Now()
	got, err := ParseTimestamp(FormatTimestamp(now))
	if err != nil || !got.Equal(now.UTC().Truncate(time.Microsecond)) {
		t.Errorf("round trip of %v = %v, %v", now, got, err)
	}
}
