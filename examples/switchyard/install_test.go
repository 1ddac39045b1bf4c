package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestInstall does what the README says: go install puts a switchyard
// command in GOBIN, and with GOBIN on the PATH it runs, tour on memory://
// and -h.
func TestInstall(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	gobin := t.TempDir()
	install := exec.CommandContext(ctx, "go", "install", ".")
	install.Env = append(os.Environ(), "GOBIN="+gobin)
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("go install: %v\n%s", err, out)
	}
	t.Setenv("PATH", gobin+string(os.PathListSeparator)+os.Getenv("PATH"))
	path, err := exec.LookPath("switchyard")
	if err != nil || filepath.Dir(path) != gobin {
		t.Fatalf("switchyard on the PATH: %q, %v; want it in GOBIN %s", path, err, gobin)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"tour"}, "\n7. Notifications"},
		{[]string{"-h"}, "Usage: switchyard <command>"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			cmd := exec.CommandContext(ctx, "switchyard", tt.args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("switchyard %s: %v\nstderr:\n%s", strings.Join(tt.args, " "), err, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.want) {
				t.Errorf("switchyard %s printed no %q:\n%s", strings.Join(tt.args, " "), tt.want, stdout.String())
			}
		})
	}
}
