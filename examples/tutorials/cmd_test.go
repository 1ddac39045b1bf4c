package tutorials_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCommands builds the tutorial commands and runs them as programs: the
// receivers that need binding keys fail with their usage without them, a
// producer runs on memory://, and a receiver exits 0 on SIGINT.
func TestCommands(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := buildCommands(ctx, t)
	command := func(name string, args ...string) *exec.Cmd {
		return exec.CommandContext(ctx, filepath.Join(bin, name), args...)
	}

	t.Run("usage errors", func(t *testing.T) {
		for _, name := range []string{"receive_logs_direct", "receive_logs_topic"} {
			cmd := command(name)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Errorf("%s without arguments: %v, want exit status 1", name, err)
			}
			if !strings.Contains(stderr.String(), "Usage: "+name+" [-url URL] ") || stdout.Len() > 0 {
				t.Errorf("%s without arguments printed stdout %q, stderr %q; want the usage on stderr", name, stdout.String(), stderr.String())
			}
		}
	})

	t.Run("producer", func(t *testing.T) {
		out, err := command("emit_log_topic", "kern.critical", "A critical kernel error").Output()
		if err != nil || string(out) != " [x] Sent kern.critical:A critical kernel error\n" {
			t.Errorf("emit_log_topic: %v, printed %q", err, out)
		}
	})

	t.Run("receiver stops on SIGINT", func(t *testing.T) {
		cmd := command("receive_logs_topic", "#")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(stdout)
		if !lines.Scan() || !strings.HasPrefix(lines.Text(), " [*] Waiting for logs.") {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("receive_logs_topic printed %q, want the waiting line; stderr: %s", lines.Text(), stderr.String())
		}
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		for lines.Scan() {
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("receive_logs_topic after SIGINT: %v, want exit status 0; stderr: %s", err, stderr.String())
		}
	})

	t.Run("receiver stops on SIGTERM", func(t *testing.T) {
		cmd := command("worker")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(stdout)
		if !lines.Scan() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatal("worker printed nothing")
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		for lines.Scan() {
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("worker after SIGTERM: %v, want exit status 0", err)
		}
	})
}
