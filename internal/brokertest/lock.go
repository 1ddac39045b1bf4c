package brokertest

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockWait bounds how long a test waits for a broker lock before failing.
const lockWait = 5 * time.Minute

// processLocks is this process's hold on the broker lock files, by path.
// It is package state because a file lock is a per-process resource: the
// tests of one process share one shared-mode lock, counted per top-level
// test, so that a test (or its subtests) asking again never waits behind
// a test of another process that is waiting for the exclusive lock.
var processLocks = struct {
	sync.Mutex
	byPath map[string]*fileLock
}{byPath: map[string]*fileLock{}}

// fileLock is the process's state for one lock file.
type fileLock struct {
	shared    *os.File       // locked in shared mode while holders is not empty
	holders   map[string]int // top-level test name → shared holds
	exclusive string         // top-level test holding the exclusive lock, if any
}

func lockFor(path string) *fileLock {
	l := processLocks.byPath[path]
	if l == nil {
		l = &fileLock{holders: map[string]int{}}
		processLocks.byPath[path] = l
	}
	return l
}

// topLevel is the name of the top-level test of t, which its subtests share.
func topLevel(t testing.TB) string {
	name, _, _ := strings.Cut(t.Name(), "/")
	return name
}

// LockShared holds the broker's lock in shared mode until t ends: any
// number of tests, in any processes, hold it together, and none of them
// runs while a test holds it exclusively. URL calls it; a test that uses
// the broker without URL calls it itself. It does nothing for a broker
// without a LockFile, or within a test holding the exclusive lock.
func (b Broker) LockShared(t testing.TB) {
	t.Helper()
	if b.LockFile == "" {
		return
	}
	path := filepath.Join(os.TempDir(), b.LockFile)
	top := topLevel(t)
	release := func() {
		processLocks.Lock()
		defer processLocks.Unlock()
		l := lockFor(path)
		if l.holders[top]--; l.holders[top] <= 0 {
			delete(l.holders, top)
		}
		if len(l.holders) == 0 && l.shared != nil {
			unlockFile(l.shared)
			l.shared = nil
		}
	}

	processLocks.Lock()
	l := lockFor(path)
	if l.exclusive == top {
		processLocks.Unlock()
		return
	}
	if l.holders[top] > 0 {
		l.holders[top]++
		processLocks.Unlock()
		t.Cleanup(release)
		return
	}
	processLocks.Unlock()

	// A new test passes the turnstile first, which a test waiting for the
	// exclusive lock holds: so waiting writers are not starved by a stream
	// of new readers.
	turnstile := acquire(t, path+".turnstile", true)
	defer unlockFile(turnstile)
	processLocks.Lock()
	defer processLocks.Unlock()
	if l.shared == nil {
		l.shared = acquire(t, path, false)
	}
	l.holders[top]++
	t.Cleanup(release)
}

// LockExclusive holds the broker's lock exclusively until t ends, waiting
// until no test in any process holds it: for tests that stop or restart
// the broker. Call it before anything that takes the shared lock (URL);
// later shared requests of the same test pass through.
func (b Broker) LockExclusive(t testing.TB) {
	t.Helper()
	if b.LockFile == "" {
		return
	}
	path := filepath.Join(os.TempDir(), b.LockFile)
	top := topLevel(t)
	processLocks.Lock()
	held := lockFor(path).holders[top] > 0
	processLocks.Unlock()
	if held {
		t.Fatalf("brokertest: %s calls LockExclusive after taking the shared lock of %s (URL): call LockExclusive (or ExclusiveURL) first", t.Name(), b.Name)
	}
	turnstile := acquire(t, path+".turnstile", true)
	main := acquire(t, path, true)
	processLocks.Lock()
	lockFor(path).exclusive = top
	processLocks.Unlock()
	t.Cleanup(func() {
		processLocks.Lock()
		lockFor(path).exclusive = ""
		processLocks.Unlock()
		unlockFile(main)
		unlockFile(turnstile)
	})
}

// acquire opens path and locks it, polling until lockWait has passed.
func acquire(t testing.TB, path string, exclusive bool) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("brokertest: open lock file: %v", err)
	}
	deadline := time.NewTimer(lockWait)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := tryLock(f, exclusive)
		if err != nil {
			_ = f.Close()
			t.Fatalf("brokertest: lock %s: %v", path, err)
		}
		if ok {
			return f
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			_ = f.Close()
			t.Fatalf("brokertest: %s still locked by another test after %v", path, lockWait)
		}
	}
}
