package oslo

import (
	"regexp"
	"testing"
	"time"
)

var (
	hexID    = regexp.MustCompile(`^[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}$`)
	dashedID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
)

func TestIDs(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		id, dashed := NewID(), NewDashedID()
		if !hexID.MatchString(id) {
			t.Fatalf("NewID() = %q, want a uuid4 as 32 lower-case hex digits", id)
		}
		if !dashedID.MatchString(dashed) {
			t.Fatalf("NewDashedID() = %q, want a dashed uuid4", dashed)
		}
		if seen[id] || seen[dashed] {
			t.Fatalf("repeated id %q", id)
		}
		seen[id], seen[dashed] = true, true
	}
}

func TestNames(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{DefaultControlExchange, "openstack"},
		{TopicQueue("compute"), "compute"},
		{ServerQueue("compute", "host1"), "compute.host1"},
		{FanoutExchange("owref_topic"), "owref_topic_fanout"},
		{NotificationKey("notifications", PriorityInfo), "notifications.info"},
		{NotificationKey("notifications", Priority("WARN")), "notifications.warn"},
		{NotificationKey(DefaultNotificationTopic, PrioritySample), "notifications.sample"},
		{CallExpiration(DefaultCallTimeout), "60000"},
		{CallExpiration(1500 * time.Millisecond), "1500"},
		{CallExpiration(0), ""},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
	if DefaultTransientQueueTTL.Milliseconds() != 1800000 {
		t.Errorf("x-expires = %d ms, want 1800000", DefaultTransientQueueTTL.Milliseconds())
	}
	if q := FanoutQueue("compute"); !regexp.MustCompile(`^compute_fanout_[0-9a-f]{32}$`).MatchString(q) {
		t.Errorf("FanoutQueue = %q", q)
	}
	if q := ReplyQueue(); !regexp.MustCompile(`^reply_[0-9a-f]{32}$`).MatchString(q) {
		t.Errorf("ReplyQueue = %q", q)
	}
	first, second := ReplyQueue(), ReplyQueue()
	firstFanout, secondFanout := FanoutQueue("t"), FanoutQueue("t")
	if first == second || firstFanout == secondFanout {
		t.Error("queue names repeat")
	}
}

func TestFilterNotificationContext(t *testing.T) {
	in := ctx(
		"user_id", `"u"`, "project_id", `"p"`, "is_admin", `false`, "roles", `["reader"]`,
		"request_id", `"req-1"`, "global_request_id", `null`, "service_roles", `[]`,
		"system_scope", `"all"`, "user_domain", `"d"`, "service_project_domain_name", `"x"`,
		"auth_token", `"secret"`, "owref_extra", `{}`, "service_user_name", `"s"`, "client_timeout", `60`,
		"USER_ID", `"upper"`,
	)
	got := FilterNotificationContext(in)
	want := []string{"user_id", "project_id", "is_admin", "roles", "request_id", "global_request_id",
		"service_roles", "system_scope", "user_domain", "service_project_domain_name"}
	if len(got) != len(want) {
		t.Errorf("kept %d keys, want %d: %v", len(got), len(want), got)
	}
	for _, k := range want {
		if string(got[k]) != string(in[k]) {
			t.Errorf("key %q: %s, want %s", k, got[k], in[k])
		}
	}
	if FilterNotificationContext(ctx("auth_token", `"x"`)) != nil || FilterNotificationContext(nil) != nil {
		t.Error("an empty result is not nil")
	}
	// The full list of oslo 14's _sanitize_context.
	for _, k := range []string{"user_id", "project_id", "domain_id", "user_domain_id", "project_domain_id",
		"is_admin", "request_id", "roles", "user_name", "project_name", "domain_name", "user_domain_name",
		"project_domain_name", "service_user_id", "service_user_domain_id", "service_user_domain_name",
		"service_project_id", "service_project_name", "service_project_domain_id",
		"service_project_domain_name", "service_roles", "global_request_id", "system_scope", "user",
		"domain", "user_domain", "project_domain"} {
		if !IsNotificationContextKey(k) {
			t.Errorf("%q is not kept", k)
		}
	}
}
