// Package testredis runs redis-server processes for tests (Debian package
// redis-server; make test installs it), each on a free loopback port with
// a directory of its own, that a test may kill, restart and pause.
package testredis

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/internal/testport"
)

// Server is a redis-server of one test.
type Server struct {
	Addr string // host:port on loopback

	t    testing.TB
	dir  string
	args []string // extra redis-server arguments
	cmd  *exec.Cmd
}

// Start starts a redis-server with the extra arguments args for t and stops
// it when t ends. It skips t only when redis-server is not installed.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed (apt-get install redis-server; make test installs it)")
	}
	s := &Server{t: t, Addr: testport.Addr(t), dir: t.TempDir(), args: args}
	s.Restart()
	t.Cleanup(s.Kill)
	return s
}

// Restart runs the server (again, after Kill) on its address and waits
// until it answers PING.
func (s *Server) Restart() {
	s.t.Helper()
	_, port, _ := net.SplitHostPort(s.Addr)
	s.cmd = exec.Command("redis-server", append([]string{"--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir}, s.args...)...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("redis-server: %v", err)
	}
	for i := 0; ; i++ {
		got, err := s.Do("PING")
		// A server with a password answers NOAUTH: it is up all the same.
		if err == nil && (got == "+PONG" || strings.HasPrefix(got, "-NOAUTH")) {
			return
		}
		if i == 200 {
			s.t.Fatalf("redis-server on %s did not answer PING: %q %v", s.Addr, got, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Kill stops the server at once (SIGKILL), like a crash.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT)
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Signal sends sig to the server (SIGSTOP: hung, SIGCONT: running again).
func (s *Server) Signal(sig syscall.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatal(err)
	}
}

// Do sends one command over a new connection and returns the first line of
// the reply ("+PONG", ":1", ...). A raw client: go-redis would log each
// refused dial.
func (s *Server) Do(args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	cmd := fmt.Sprintf("*%d\r\n", len(args))
	for _, a := range args {
		cmd += fmt.Sprintf("$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(c, cmd); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimRight(line, "\r\n"), err
}

func (s *Server) String() string { return "redis-server " + s.Addr }
