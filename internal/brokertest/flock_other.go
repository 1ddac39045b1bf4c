//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package brokertest

import "os"

// tryLock does not lock where flock(2) is missing: tests that stop the
// broker then rely on not running beside others.
func tryLock(f *os.File, exclusive bool) (bool, error) { return true, nil }

// unlockFile closes f.
func unlockFile(f *os.File) { _ = f.Close() }
