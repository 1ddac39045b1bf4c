//go:build !linux

package rabbitnode

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
)

// supported reports whether this system can run nodes: only Linux has the
// parent-death signal that kills a node whose test process died.
func supported() error {
	return fmt.Errorf("rabbitnode runs RabbitMQ nodes on Linux only, not %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

func ownProcess(*exec.Cmd) {}

func signalGroup(int, syscall.Signal) error { return errors.ErrUnsupported }

var (
	sigKill = syscall.Signal(9)
	sigStop = syscall.Signal(19)
	sigCont = syscall.Signal(18)
)

func tryLock(*os.File) (bool, error) { return false, errors.ErrUnsupported }

func reap(int) (bool, syscall.WaitStatus) {
	var status syscall.WaitStatus
	return true, status
}

func gone(int) bool { return true }
