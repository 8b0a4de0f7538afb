package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rampart-proxy/rampart/internal/testport"
)

// numUpstreams is the size of the pool the soak balances over.
const numUpstreams = 3

// Bounds of the waits for a process to come up or go away.
const (
	upstreamReadyTimeout = 5 * time.Second
	redisReadyTimeout    = 5 * time.Second
	rampartReadyTimeout  = 60 * time.Second // the CRS compiles at start
	stopGrace            = 5 * time.Second
	pollEvery            = 50 * time.Millisecond
)

// proc is one child process that can be killed and started again with the
// same arguments. Its output goes to a log file in the soak's directory.
type proc struct {
	name string
	path string
	args []string
	log  string // file that receives stdout and stderr

	mu   sync.Mutex // guards the fields below
	cmd  *exec.Cmd
	done chan struct{} // closed when the current process has exited
	runs int
}

// start runs the process. Each child gets its own process group, so that a
// Ctrl-C at the terminal reaches only the soak, which then stops them in
// order; Pdeathsig kills a child if the soak itself dies abruptly.
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !isClosed(p.done) {
		return fmt.Errorf("%s: already running", p.name)
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	p.runs++
	fmt.Fprintf(f, "--- soak: start #%d at %s\n", p.runs, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.path, p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return fmt.Errorf("%s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = f.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	return nil
}

// pid returns the running process's id, 0 when none runs.
func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || isClosed(p.done) {
		return 0
	}
	return p.cmd.Process.Pid
}

// exited reports that the process was started and is not running now.
func (p *proc) exited() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && isClosed(p.done)
}

// signal sends sig to the running process.
func (p *proc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || isClosed(p.done) {
		return fmt.Errorf("%s: not running", p.name)
	}
	return p.cmd.Process.Signal(sig)
}

// kill sends SIGKILL and waits until the process is gone.
func (p *proc) kill() error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil || isClosed(done) {
		return fmt.Errorf("%s: not running", p.name)
	}
	if err := cmd.Process.Kill(); err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-time.After(stopGrace):
		return fmt.Errorf("%s: still running %s after SIGKILL", p.name, stopGrace)
	}
}

// stop asks the process to end with SIGTERM and kills it after stopGrace.
// It reports whether the process ended by itself in time.
func (p *proc) stop() bool {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil || isClosed(done) {
		return true
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return true
	case <-time.After(stopGrace):
	}
	_ = cmd.Process.Kill()
	select {
	case <-done:
	case <-time.After(stopGrace):
	}
	return false
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// freePorts returns n distinct loopback ports that were free a moment ago,
// below the ephemeral range (internal/testport): the upstreams are killed
// and started again on theirs, and meanwhile one of the proxy's outgoing
// connections could take a port from that range as its source port.
func freePorts(n int) ([]int, error) {
	out := make([]int, 0, n)
	for range n {
		addr, err := testport.Pick()
		if err != nil {
			return nil, err
		}
		_, port, _ := net.SplitHostPort(addr)
		p, _ := strconv.Atoi(port)
		out = append(out, p)
	}
	return out, nil
}

// goTool returns the go command: the one of the toolchain running the test
// or go run, else the first on PATH.
func goTool() string {
	if root := os.Getenv("GOROOT"); root != "" {
		if p := filepath.Join(root, "bin", "go"); fileExists(p) {
			return p
		}
	}
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// repoRoot finds the module root (the directory of go.mod) from the
// working directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if fileExists(filepath.Join(dir, "go.mod")) && fileExists(filepath.Join(dir, "cmd", "rampart")) {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("soak: not inside the rampart module")
		}
		dir = up
	}
}

// build compiles pkg (relative to root) to dst.
func build(ctx context.Context, root, pkg, dst string) error {
	cmd := exec.CommandContext(ctx, goTool(), "build", "-o", dst, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	return nil
}

// waitHTTP polls url until it answers 200, or timeout passes.
func waitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		if !sleepCtx(ctx, pollEvery) {
			return ctx.Err()
		}
	}
	return fmt.Errorf("%s not ready after %s: %v", url, timeout, last)
}

// waitRedis polls Redis with PING until it answers PONG.
func waitRedis(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		last = pingRedis(addr)
		if last == nil {
			return nil
		}
		if !sleepCtx(ctx, pollEvery) {
			return ctx.Err()
		}
	}
	return fmt.Errorf("redis at %s not ready after %s: %v", addr, timeout, last)
}

func pingRedis(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("answered %q", strings.TrimSpace(line))
	}
	return nil
}

// sleepCtx sleeps d, or less when ctx ends; it reports whether it slept
// the whole time.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if ctx.Err() != nil {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// rssKiB returns VmRSS of pid from /proc, in KiB.
func rssKiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}
