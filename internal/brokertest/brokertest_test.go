package brokertest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVHostURL(t *testing.T) {
	for _, tc := range []struct{ base, vhost, want string }{
		{"rabbit://guest:guest@127.0.0.1:5672/", "v1", "rabbit://guest:guest@127.0.0.1:5672/v1"},
		{"rabbit://127.0.0.1:5672", "v1", "rabbit://127.0.0.1:5672/v1"},
		{"rabbit://h/old?heartbeat_timeout_threshold=5", "new", "rabbit://h/new?heartbeat_timeout_threshold=5"},
		{"rabbit://h?confirms=false", "a b", "rabbit://h/a%20b?confirms=false"},
	} {
		if got := vhostURL(tc.base, tc.vhost); got != tc.want {
			t.Errorf("vhostURL(%q, %q) = %q, want %q", tc.base, tc.vhost, got, tc.want)
		}
	}
}

func TestVHostSafe(t *testing.T) {
	if got := vhostSafe("TestX/sub case:1"); got != "TestX_sub_case_1" {
		t.Errorf("got %q", got)
	}
	long := vhostSafe("TestAVeryLongNameThatGoesOnAndOnAndOnAndOnForeverAndEver")
	if len(long) != 40 {
		t.Errorf("length %d, want 40", len(long))
	}
}

func TestRabbitMQFollowsItsURL(t *testing.T) {
	for _, tc := range []struct {
		name, rabbitURL, rabbit4URL string
		wantMgmt                    string
		wantSidCtl                  bool
	}{
		{"defaults: the system's node", "", "", "", false},
		{"elsewhere", "rabbit://u:p@10.0.0.9:5672/", "", "", false},
		{"the 4.3 node's address", "rabbit://guest:guest@127.0.0.1:5682/", "", "15682", true},
		{"the 4.3 node moved", "rabbit://u:p@10.0.0.9:5682/", "rabbit://u:p@10.0.0.9:5682/v", "15682", true},
		{"same port, other host", "rabbit://u:p@10.0.0.9:5682/", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SWITCHYARD_RABBIT_URL", tc.rabbitURL)
			t.Setenv("SWITCHYARD_RABBIT4_URL", tc.rabbit4URL)
			b := RabbitMQ()
			if b.ManagementPort != tc.wantMgmt {
				t.Errorf("management port %q, want %q", b.ManagementPort, tc.wantMgmt)
			}
			ctl := b.ctlCommand()
			if sid := strings.HasSuffix(ctl[0], "/.ci/sid-rabbitmqctl"); sid != tc.wantSidCtl {
				t.Errorf("rabbitmqctl %v, want the 4.3 node's: %v", ctl, tc.wantSidCtl)
			}
		})
	}
}

func TestStackURL(t *testing.T) {
	for _, tc := range []struct{ query, vhostURL, want string }{
		{"", "rabbit://h/v", "rabbit://h/v"},
		{"a=1&b=2", "rabbit://h/v", "rabbit://h/v?a=1&b=2"},
		{"a=1", "rabbit://h/v?c=3", "rabbit://h/v?c=3&a=1"},
	} {
		if got := (Stack{Query: tc.query}).URL(&RabbitVHost{URL: tc.vhostURL}); got != tc.want {
			t.Errorf("Stack{Query: %q}.URL(%q) = %q, want %q", tc.query, tc.vhostURL, got, tc.want)
		}
	}
}

func TestStackFilesExist(t *testing.T) {
	for _, s := range Stacks() {
		for _, file := range append(append([]string(nil), s.Python[0]), s.Broker.ctlCommand()[0]) {
			if !filepath.IsAbs(file) {
				continue // found on PATH
			}
			if _, err := os.Stat(file); err != nil {
				t.Errorf("%s: %v", s.Name, err)
			}
		}
	}
}

// TestStackBrokers checks each stack's broker as the tests use it: a
// virtual host made through its management API, its version, its
// rabbitmqctl and a policy.
func TestStackBrokers(t *testing.T) {
	wantVersion := map[string]string{"rabbitmq-3.10+oslo-14": "3.10.", "rabbitmq-4.3+oslo-18": "4.3."}
	ForEachStack(t, func(t *testing.T, s Stack) {
		v := s.NewVHost(t)
		if got := v.Version(t); !strings.HasPrefix(got, wantVersion[s.Name]) {
			t.Errorf("RabbitMQ %s, want %s*", got, wantVersion[s.Name])
		}
		if out := s.Broker.Rabbitmqctl(t, "list_vhosts", "--quiet"); !strings.Contains(out, v.Name) {
			t.Errorf("rabbitmqctl list_vhosts does not show %s:\n%s", v.Name, out)
		}
		v.SetPolicy(t, "expiry", "^never$", "queues", map[string]any{"expires": 60000})
		if out := s.Broker.Rabbitmqctl(t, "list_policies", "-p", v.Name, "--quiet"); !strings.Contains(out, "expiry") {
			t.Errorf("rabbitmqctl list_policies does not show the policy:\n%s", out)
		}
		if q := v.Queue(t, "absent"); q != nil {
			t.Errorf("a queue that does not exist: %v", q)
		}
	})
}
