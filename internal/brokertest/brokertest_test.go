package brokertest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// testBroker has a lock file of its own, so that the test does not wait
// for (or hold up) the tests using the real broker.
func testBroker(t *testing.T) (Broker, string) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := "switchyard-locktest-" + hex.EncodeToString(b[:]) + ".lock"
	path := filepath.Join(os.TempDir(), name)
	t.Cleanup(func() {
		_ = os.Remove(path)
		_ = os.Remove(path + ".turnstile")
	})
	return Broker{Name: "test broker", LockFile: name}, path
}

// otherProcess tries the lock as another process would: flock(2) locks
// belong to open files, so another open file conflicts like one.
func otherProcess(t *testing.T, path string, exclusive bool) (locked bool, release func()) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	ok, err := tryLock(f, exclusive)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		_ = f.Close()
		return false, func() {}
	}
	return true, func() { unlockFile(f) }
}

func TestLockShared(t *testing.T) {
	b, path := testBroker(t)
	t.Run("held", func(t *testing.T) {
		b.LockShared(t)
		b.LockShared(t) // again in the same test: counted, no wait
		if ok, release := otherProcess(t, path, true); ok {
			release()
			t.Fatal("another process got the exclusive lock while a test holds the shared one")
		}
		ok, release := otherProcess(t, path, false)
		if !ok {
			t.Fatal("another process could not share the lock")
		}
		release()
	})
	ok, release := otherProcess(t, path, true)
	if !ok {
		t.Fatal("the shared lock outlived the test that took it")
	}
	release()
}

func TestLockExclusive(t *testing.T) {
	b, path := testBroker(t)
	t.Run("held", func(t *testing.T) {
		b.LockExclusive(t)
		b.LockShared(t) // within the exclusive test: passes through
		if ok, release := otherProcess(t, path, false); ok {
			release()
			t.Fatal("another process shared the lock while a test holds it exclusively")
		}
	})
	ok, release := otherProcess(t, path, false)
	if !ok {
		t.Fatal("the exclusive lock outlived the test that took it")
	}
	release()
}

func TestLockExclusiveWaits(t *testing.T) {
	b, path := testBroker(t)
	ok, release := otherProcess(t, path, false)
	if !ok {
		t.Fatal("could not take the shared lock")
	}
	t.Run("waiter", func(t *testing.T) {
		acquired := make(chan struct{})
		go func() {
			b.LockExclusive(t)
			close(acquired)
		}()
		// Absence has no signal: wait a fixed, short time.
		select {
		case <-acquired:
			t.Fatal("took the exclusive lock while another process shares it")
		case <-time.After(100 * time.Millisecond):
		}
		release()
		select {
		case <-acquired:
		case <-time.After(10 * time.Second):
			t.Fatal("did not take the exclusive lock once it was free")
		}
	})
}

func TestRabbitMQFollowsItsURL(t *testing.T) {
	for _, tc := range []struct {
		name, rabbitURL, rabbit4URL string
		wantLock, wantMgmt          string
		wantSidCtl                  bool
	}{
		{"defaults: the system's node", "", "", "switchyard-rabbitmq.lock", "", false},
		{"elsewhere", "rabbit://u:p@10.0.0.9:5672/", "", "switchyard-rabbitmq.lock", "", false},
		{"the 4.3 node's address", "rabbit://guest:guest@127.0.0.1:5682/", "", "switchyard-rabbitmq4.lock", "15682", true},
		{"the 4.3 node moved", "rabbit://u:p@10.0.0.9:5682/", "rabbit://u:p@10.0.0.9:5682/v", "switchyard-rabbitmq4.lock", "15682", true},
		{"same port, other host", "rabbit://u:p@10.0.0.9:5682/", "", "switchyard-rabbitmq.lock", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SWITCHYARD_RABBIT_URL", tc.rabbitURL)
			t.Setenv("SWITCHYARD_RABBIT4_URL", tc.rabbit4URL)
			b := RabbitMQ()
			if b.LockFile != tc.wantLock || b.ManagementPort != tc.wantMgmt {
				t.Errorf("lock %q, management port %q; want %q, %q", b.LockFile, b.ManagementPort, tc.wantLock, tc.wantMgmt)
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
