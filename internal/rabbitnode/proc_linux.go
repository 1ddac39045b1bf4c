package rabbitnode

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// supported reports whether this system can run nodes: Linux, for the
// parent-death signal that kills a node whose test process died.
func supported() error { return nil }

// ownProcess makes cmd the leader of a process group of its own (so that
// its whole tree is signalled at once, and a terminal's signals miss it)
// and has the kernel kill it if the test process dies before its cleanup
// runs. The setting survives the exec chain from rabbitmq-server to
// beam.smp, which replaces the script's process.
func ownProcess(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// signalGroup sends sig to the process group that ownProcess made for the
// process pid; a group already gone is no error.
func signalGroup(pid int, sig syscall.Signal) error {
	if err := syscall.Kill(-pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

var (
	sigKill = syscall.SIGKILL
	sigStop = syscall.SIGSTOP
	sigCont = syscall.SIGCONT
)

// tryLock takes an exclusive advisory lock on f without waiting: false if
// another process holds it. The kernel drops it when the process dies.
func tryLock(f *os.File) (bool, error) {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}

// reap reaps the child process pid if it has exited, without waiting.
func reap(pid int) (bool, syscall.WaitStatus) {
	var status syscall.WaitStatus
	for {
		got, err := syscall.Wait4(pid, &status, syscall.WNOHANG, nil)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.ECHILD): // not a child, or reaped already
			return true, status
		}
		return err == nil && got == pid, status
	}
}

// gone reports whether no process has the id pid.
func gone(pid int) bool { return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) }
