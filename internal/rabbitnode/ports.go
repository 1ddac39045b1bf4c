package rabbitnode

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Nodes' ports are picked from [portLow, portHigh): below Linux's
// ephemeral range (32768–60999), so that no outgoing connection takes one
// between the pick and the node's listen, and clear of RabbitMQ's usual
// ports (5672, 15672, 25672) by the check that the port is free.
const (
	portLow  = 20000
	portHigh = 32000
)

// portLockDir holds one lock file per port that a process's nodes hold,
// so that test packages running at once (go test ./... runs them in
// parallel processes) never pick the same port. The kernel drops the
// locks of a process that dies.
var portLockDir = filepath.Join(os.TempDir(), "switchyard-rabbitnode-ports")

// portLease holds the lock files of reserved ports.
type portLease struct{ files []*os.File }

// release gives the ports back.
func (l *portLease) release() {
	for _, f := range l.files {
		_ = f.Close() // closing drops the lock; the file stays for reuse
	}
	l.files = nil
}

// reservePorts finds n ports free on the loopback interface and locks them
// for this process until the lease is released.
func reservePorts(n int) ([]int, *portLease, error) {
	if err := os.MkdirAll(portLockDir, 0o777); err != nil {
		return nil, nil, fmt.Errorf("port locks: %w", err)
	}
	lease := &portLease{}
	var ports []int
	taken := map[int]bool{}
	for attempt := 0; len(ports) < n; attempt++ {
		if attempt == 1000 {
			lease.release()
			return nil, nil, fmt.Errorf("no %d free ports in [%d, %d) after %d attempts", n, portLow, portHigh, attempt)
		}
		p := portLow + rand.IntN(portHigh-portLow)
		if taken[p] {
			continue
		}
		f, err := os.OpenFile(filepath.Join(portLockDir, strconv.Itoa(p)+".lock"), os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			lease.release()
			return nil, nil, fmt.Errorf("port lock: %w", err)
		}
		if ok, err := tryLock(f); err != nil || !ok {
			_ = f.Close()
			if err != nil {
				lease.release()
				return nil, nil, fmt.Errorf("port lock: %w", err)
			}
			continue
		}
		if !portFree(p) {
			_ = f.Close()
			continue
		}
		taken[p] = true
		ports = append(ports, p)
		lease.files = append(lease.files, f)
	}
	return ports, lease, nil
}

// epmdAnswers asks port p of 127.0.0.1 for its node names, as epmd's
// NAMES_REQ does, and fails unless an epmd answers with p as its port: a
// listener that is not epmd, or another port's epmd, does not count.
func epmdAnswers(ctx context.Context, p int) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		return err
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	const namesReq = 110 // 'n', after a two-byte length of 1
	if _, err := conn.Write([]byte{0, 1, namesReq}); err != nil {
		return fmt.Errorf("names request: %w", err)
	}
	var reply [4]byte
	if _, err := io.ReadFull(conn, reply[:]); err != nil {
		return fmt.Errorf("names reply: %w", err)
	}
	if got := binary.BigEndian.Uint32(reply[:]); got != uint32(p) {
		return fmt.Errorf("names reply: port %d, not an epmd of port %d", got, p)
	}
	return nil
}

// portFree reports whether nothing listens on port p of the loopback
// interface, IPv4 or IPv6 (epmd listens on both).
func portFree(p int) bool {
	l, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		return false
	}
	_ = l.Close()
	l, err = net.Listen("tcp6", net.JoinHostPort("::1", strconv.Itoa(p)))
	if errors.Is(err, syscall.EADDRINUSE) {
		return false
	}
	if err == nil {
		_ = l.Close()
	}
	return true
}
