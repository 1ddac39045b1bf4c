package messaging

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// queueManager names reply and fanout queues as oslo.messaging's QManager
// does with use_queue_manager: "<hostname>:<processname>:<n>", n counting
// from 1 in each run of the service, so that a restarted service declares
// again the names it declared before (its queues are reused, not left to
// expire), and no two processes of one service share a name. Like oslo's,
// the counter lives in a file under /dev/shm, keyed by the host and
// process names, and holds the process group and its start time: a
// process of the same run goes on counting, a new run starts again at 1.
type queueManager struct {
	hostname, processname string
	file                  string
	run                   string // "<process group>:<its start time>"
}

// newQueueManager returns the queue manager of hostname and processname,
// defaulting them to the machine's host name and the program's file name,
// as oslo does.
func newQueueManager(hostname, processname string) (*queueManager, error) {
	if hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("queue manager: the host name: %w", err)
		}
		hostname = h
	}
	if processname == "" {
		processname = filepath.Base(os.Args[0])
	}
	run, err := currentRun()
	if err != nil {
		return nil, fmt.Errorf("queue manager: %w", err)
	}
	dir := "/dev/shm"
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		dir = os.TempDir()
	}
	return &queueManager{
		hostname: hostname, processname: processname, run: run,
		file: filepath.Join(dir, strings.NewReplacer("/", "_", ":", "_").Replace(hostname+"_"+processname)+"_qmanager"),
	}, nil
}

// next returns the next name, "<hostname>:<processname>:<n>".
func (m *queueManager) next() (string, error) {
	f, err := os.OpenFile(m.file, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return "", fmt.Errorf("queue manager: %w", err)
	}
	defer f.Close()
	if err := lockFile(f); err != nil {
		return "", fmt.Errorf("queue manager: lock %s: %w", m.file, err)
	}
	defer unlockFile(f)
	content, err := io.ReadAll(f)
	if err != nil {
		return "", fmt.Errorf("queue manager: read %s: %w", m.file, err)
	}
	n := 1
	// "<process group>:<counter>:<start time>", as oslo writes it.
	if fields := strings.Split(string(bytes.TrimSpace(content)), ":"); len(fields) == 3 && fields[0]+":"+fields[2] == m.run {
		if counted, err := strconv.Atoi(fields[1]); err == nil {
			n = counted + 1
		}
	}
	group, start, _ := strings.Cut(m.run, ":")
	line := group + ":" + strconv.Itoa(n) + ":" + start
	if err := f.Truncate(0); err != nil {
		return "", fmt.Errorf("queue manager: truncate %s: %w", m.file, err)
	}
	if _, err := f.WriteAt([]byte(line), 0); err != nil {
		return "", fmt.Errorf("queue manager: write %s: %w", m.file, err)
	}
	return m.hostname + ":" + m.processname + ":" + strconv.Itoa(n), nil
}

// currentRun identifies this run of the service as oslo does: the
// process group and its start time since boot (in clock ticks, from
// /proc), or the process's own where there is no group.
func currentRun() (string, error) {
	id := processGroup()
	if id == 0 {
		id = os.Getpid()
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", id))
	if errors.Is(err, os.ErrNotExist) {
		// No /proc (not Linux): the process alone is the run.
		return strconv.Itoa(id) + ":0", nil
	}
	if err != nil {
		return "", err
	}
	// The command name, in parentheses, may hold spaces: count fields
	// after its closing parenthesis (start time is field 22 of the whole).
	after := stat[bytes.LastIndexByte(stat, ')')+1:]
	fields := strings.Fields(string(after))
	if len(fields) < 20 {
		return "", fmt.Errorf("/proc/%d/stat has %d fields after the command", id, len(fields))
	}
	return strconv.Itoa(id) + ":" + fields[19], nil
}
