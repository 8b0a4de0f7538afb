// Package proc holds what the tools that hold thousands of idle
// connections (bench/idleconns, bench/h2idle) need of the system: a
// process's resident memory from /proc, their own open-file limit raised,
// and whether the peer has closed a connection.
package proc

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// RSS returns the summed VmRSS, in KiB, of the comma-separated PIDs.
func RSS(pids string) (int64, error) {
	var total int64
	for p := range strings.SplitSeq(pids, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		kib, err := statusKiB(p, "VmRSS:")
		if err != nil {
			return 0, err
		}
		total += kib
	}
	return total, nil
}

// statusKiB reads one "Field: N kB" line of /proc/PID/status.
func statusKiB(pid, field string) (int64, error) {
	data, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%s/status: no %s line", pid, field)
}

// RaiseNoFile raises RLIMIT_NOFILE to at least want, up to the hard limit.
func RaiseNoFile(want uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	if lim.Cur >= want {
		return nil
	}
	if lim.Max < want {
		lim.Max = want // needs privilege; fall back to the hard limit below
	}
	lim.Cur = want
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("setrlimit: %w", err)
		}
		if lim.Cur < want {
			return fmt.Errorf("RLIMIT_NOFILE hard limit %d is below the %d needed", lim.Max, want)
		}
	}
	return nil
}

// PeerClosed reports whether the peer has closed the TCP connection c: a
// non-blocking peek finds EOF (or an error) on a closed connection, and
// nothing, or bytes the peer sent (a PING, say), on an open one.
func PeerClosed(c syscall.Conn) bool {
	raw, err := c.SyscallConn()
	if err != nil {
		return true
	}
	var b [1]byte
	closed := false
	err = raw.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		closed = n == 0 && err == nil || err != nil && err != syscall.EAGAIN
		return true
	})
	return err != nil || closed
}
