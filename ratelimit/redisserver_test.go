package ratelimit

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rampart-proxy/rampart/config"
)

// redisServer is a redis-server process of one test, on a loopback port of
// its own with its own directory.
type redisServer struct {
	t    testing.TB
	addr string
	dir  string
	args []string // extra redis-server arguments
	cmd  *exec.Cmd
}

// startRedis starts a redis-server for t and stops it when t ends. It skips
// t only when the redis-server binary is missing (make test installs it).
func startRedis(t testing.TB, args ...string) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed (apt-get install redis-server; make test installs it)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := &redisServer{t: t, addr: addr, dir: t.TempDir(), args: args}
	s.start()
	t.Cleanup(s.kill)
	return s
}

// start runs the server and waits until it answers PING.
func (s *redisServer) start() {
	s.t.Helper()
	_, port, _ := net.SplitHostPort(s.addr)
	s.cmd = exec.Command("redis-server", append([]string{"--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir}, s.args...)...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("redis-server: %v", err)
	}
	for i := 0; ; i++ { // a raw PING: go-redis would log each refused dial
		err := ping(s.addr)
		if err == nil {
			return
		}
		if i == 200 {
			s.t.Fatalf("redis-server on %s did not answer PING: %v", s.addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ping sends PING over a new connection and waits for PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	// A server with a password answers NOAUTH: it is up all the same.
	if line != "+PONG\r\n" && !strings.HasPrefix(line, "-NOAUTH") {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// kill stops the server at once (SIGKILL), like a crash.
func (s *redisServer) kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT)
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// signal sends sig to the server (SIGSTOP: hung, SIGCONT: running again).
func (s *redisServer) signal(sig syscall.Signal) {
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatal(err)
	}
}

// client returns a client built by NewRedisClient, closed when t ends.
func (s *redisServer) client(t testing.TB, timeout time.Duration) redis.UniversalClient {
	t.Helper()
	c, err := NewRedisClient(&config.Redis{Address: s.addr, Timeout: config.Duration(timeout)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (s *redisServer) String() string { return fmt.Sprintf("redis-server %s", s.addr) }
