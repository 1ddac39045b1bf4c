//go:build unix

package messaging

import (
	"os"
	"syscall"
)

// processGroup is this process's group, which oslo's QManager keys on.
func processGroup() int { return syscall.Getpgrp() }

// lockFile takes f's exclusive lock, waiting for another process's.
func lockFile(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_EX) }

func unlockFile(f *os.File) { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }
