// Package interop runs third-party HTTP/2 and gRPC conformance tools for
// tests: grpc-go's interop server and client (v1.85.0) and h2spec, which
// make deps builds into build/tools/ (docs/testing-http2.md).
//
// An end-to-end test starts the interop server (StartServer), a proxy in
// front of it, and runs the client's cases through the proxy (RunCases),
// one subtest per case; or runs h2spec against a TLS+h2 listener (H2spec).
// The shell scripts beside this file do the same from make
// (interop.sh, h2spec.sh). Tests skip when the tools are not built, as
// internal/testredis skips without redis-server; make test runs make deps
// first.
package interop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/internal/testport"
)

// Cases are the interop client's test cases that a proxy must pass (issue
// 18): those that need no cloud credentials, no compression and no
// ORCA/xDS.
var Cases = []string{
	"empty_unary", "large_unary", "client_streaming", "server_streaming",
	"ping_pong", "empty_stream", "timeout_on_sleeping_server",
	"cancel_after_begin", "cancel_after_first_response",
	"status_code_and_message", "special_status_message", "custom_metadata",
	"unimplemented_method", "unimplemented_service",
}

// DefaultCaseTimeout bounds one case (one client process); the slowest
// case takes well under a second on loopback.
const DefaultCaseTimeout = 20 * time.Second

// ToolsDir returns the directory make deps builds the tools into:
// $RAMPART_TOOLS, or build/tools under the module's root (the nearest
// directory above the working directory that holds go.mod).
func ToolsDir() (string, error) {
	if d := os.Getenv("RAMPART_TOOLS"); d != "" {
		return d, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for range 20 {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "build", "tools"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", errors.New("interop: no go.mod above the working directory; set RAMPART_TOOLS")
}

// tool returns the path of one tool under ToolsDir, skipping t when it has
// not been built.
func tool(t testing.TB, rel string) string {
	t.Helper()
	dir, err := ToolsDir()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, rel)
	if fi, err := os.Stat(p); err != nil || fi.IsDir() {
		t.Skipf("%s not built (make deps builds it; make test runs make deps)", p)
	}
	return p
}

// ServerOptions are the interop server's: plaintext when CertFile is empty.
type ServerOptions struct {
	CertFile, KeyFile string
}

// StartServer starts grpc-go's interop server on a free loopback port, waits
// until it accepts connections, and stops it when t ends. It returns the
// server's address.
func StartServer(t testing.TB, o ServerOptions) string {
	t.Helper()
	bin := tool(t, "grpc-interop-server/server")
	addr := testport.Addr(t)
	_, port, _ := net.SplitHostPort(addr)
	args := []string{"--port=" + port}
	if o.CertFile != "" {
		args = append(args, "--use_tls", "--tls_cert_file="+o.CertFile, "--tls_key_file="+o.KeyFile)
	}
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("interop server: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	if err := waitListening(addr, exited, 10*time.Second); err != nil {
		t.Fatalf("interop server on %s: %v; output:\n%s", addr, err, out.String())
	}
	return addr
}

// waitListening polls addr until it accepts a connection, the process
// exits, or d passes.
func waitListening(addr string, exited <-chan struct{}, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("the process exited")
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("nothing listening after %v", d)
}

// Options say how the interop client reaches the proxy.
type Options struct {
	// TLS makes the client use TLS (with ALPN h2); otherwise h2c with
	// prior knowledge.
	TLS bool
	// CAFile is the PEM root the client trusts, required with TLS.
	CAFile string
	// ServerName is the name checked in the server's certificate (and sent
	// by SNI); empty: the host of the address.
	ServerName string
	// Cases to run; nil: Cases.
	Cases []string
	// CaseTimeout bounds each case; zero: DefaultCaseTimeout.
	CaseTimeout time.Duration
}

// RunCases runs each case of o against addr as a subtest named after it,
// one client process per case, and fails the subtest with the client's
// output when the case fails or times out.
func RunCases(t *testing.T, addr string, o Options) {
	t.Helper()
	bin := tool(t, "grpc-interop-client/client")
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("interop: address %q: %v", addr, err)
	}
	args := []string{"--server_host=" + host, "--server_port=" + port}
	if o.TLS {
		if o.CAFile == "" {
			t.Fatal("interop: Options.TLS needs a CAFile")
		}
		args = append(args, "--use_tls", "--use_test_ca", "--ca_file="+o.CAFile)
		if o.ServerName != "" {
			args = append(args, "--server_host_override="+o.ServerName)
		}
	}
	timeout := o.CaseTimeout
	if timeout <= 0 {
		timeout = DefaultCaseTimeout
	}
	cases := o.Cases
	if cases == nil {
		cases = Cases
	}
	for _, c := range cases {
		t.Run(c, func(t *testing.T) {
			out, err := runCase(bin, append(args, "--test_case="+c), timeout)
			if err != nil {
				t.Errorf("%s against %s (tls %v): %v; client output:\n%s", c, addr, o.TLS, err, tail(out, 20))
			}
		})
	}
}

// runCase runs the client once, bounded by timeout.
func runCase(bin string, args []string, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return out, fmt.Errorf("timed out after %v", timeout)
	}
	return out, err
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"... (" + strconv.Itoa(len(lines)-n) + " lines before)"}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
