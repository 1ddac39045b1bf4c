//go:build unix

package interop

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// LeadProcessGroup makes the calling process the leader of a process
// group of its own when the leader of its present group has exited. Call
// it from TestMain, before any peer starts.
//
// oslo.messaging 18's queue manager (use_queue_manager) tells one run of
// a host's services from the next by the process group and its leader's
// start time, read from /proc/<pgid>/stat, and fails with
// FileNotFoundError when the leader is gone: a test binary started in the
// background by a shell that has since ended. Peers started afterwards
// share the test process's group, as the processes of one service do, so
// they number their reply queues from one counter.
func LeadProcessGroup() error {
	group := syscall.Getpgrp()
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", group)); !errors.Is(err, os.ErrNotExist) {
		return nil // the leader lives, or there is no /proc to read
	}
	if _, err := os.Stat("/proc/self"); err != nil {
		return nil
	}
	if err := syscall.Setpgid(0, 0); err != nil {
		return fmt.Errorf("interop: lead a process group of our own (the leader of group %d has exited): %w", group, err)
	}
	return nil
}
