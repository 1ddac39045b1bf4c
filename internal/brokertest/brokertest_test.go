package brokertest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
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
