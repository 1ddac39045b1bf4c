package rabbitnode

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// process is a child process of the harness (a node's Erlang VM, or
// epmd), leader of a process group of its own. It is reaped by polling,
// not by a goroutine blocked in wait: a node outlives the tests that use
// it, and a goroutine of its would count as theirs in their leak checks.
type process struct {
	proc *os.Process

	mu     sync.Mutex
	reaped bool
	status syscall.WaitStatus
}

// spawnProcess starts cmd as a process of the harness (ownProcess). Its
// standard output and error must be files or nil, so that exec starts no
// goroutine to copy them.
func spawnProcess(cmd *exec.Cmd) (*process, error) {
	ownProcess(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &process{proc: cmd.Process}, nil
}

// pid is the process's id.
func (p *process) pid() int { return p.proc.Pid }

// exited reports whether the process has exited, reaping it if so,
// without waiting.
func (p *process) exited() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitedLocked()
}

func (p *process) exitedLocked() bool {
	if !p.reaped {
		if done, status := reap(p.proc.Pid); done {
			p.reaped, p.status = true, status
			_ = p.proc.Release()
		}
	}
	return p.reaped
}

// String describes how the process ended, or that it runs.
func (p *process) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case !p.exitedLocked():
		return fmt.Sprintf("pid %d, running", p.proc.Pid)
	case p.status.Signaled():
		return fmt.Sprintf("pid %d, killed by %v", p.proc.Pid, p.status.Signal())
	default:
		return fmt.Sprintf("pid %d, exit status %d", p.proc.Pid, p.status.ExitStatus())
	}
}

// signal sends sig to the process's group unless the process has exited
// (its pid may be another's by then): ErrNotRunning.
func (p *process) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exitedLocked() {
		return ErrNotRunning
	}
	return signalGroup(p.proc.Pid, sig)
}

// kill kills the process's group with SIGKILL and waits until the process
// has exited and been reaped, or ctx ends.
func (p *process) kill(ctx context.Context) error {
	if err := p.signal(sigKill); err != nil && err != ErrNotRunning {
		return err
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !p.exited() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("pid %d still there after SIGKILL: %w", p.proc.Pid, ctx.Err())
		}
	}
	return nil
}
