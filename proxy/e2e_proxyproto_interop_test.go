package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestE2EProxyProtocolHAProxy: HAProxy in TCP mode in front of Rampart,
// sending the PROXY protocol v1 (send-proxy) and v2 (send-proxy-v2), the
// client connecting to HAProxy from 127.0.0.2: Rampart's peer is HAProxy
// (127.0.0.1), and the upstream sees the client, 127.0.0.2.
func TestE2EProxyProtocolHAProxy(t *testing.T) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Skip("haproxy is not installed (make deps installs it)")
	}
	up := accessUpstream(t)
	p := startProxy(t, oneUpstreamConfig(up.addr(), "proxy_protocol: {trusted: [127.0.0.1]}", "", ""))
	v1, v2 := freeAddr(t), freeAddr(t)
	cfg := fmt.Sprintf(`
global
  log stderr format raw local0 err
defaults
  mode tcp
  timeout connect 5s
  timeout client 10s
  timeout server 10s
frontend v1
  bind %s
  default_backend v1
frontend v2
  bind %s
  default_backend v2
backend v1
  server rampart %s send-proxy source 127.0.0.1
backend v2
  server rampart %s send-proxy-v2 source 127.0.0.1
`, v1, v2, p.addr, p.addr)
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-f", path, "-db")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	for _, addr := range []string{v1, v2} {
		if !waitFor(e2eTimeout, func() bool {
			c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
			if err == nil {
				_ = c.Close()
			}
			return err == nil
		}) {
			t.Fatalf("haproxy does not listen on %s: %s", addr, stderr.String())
		}
	}
	client := &http.Client{Timeout: e2eTimeout, Transport: &http.Transport{
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext}}
	for _, tc := range []struct{ name, addr string }{{"send-proxy (v1)", v1}, {"send-proxy-v2", v2}} {
		resp, err := client.Get("http://" + tc.addr + "/via-haproxy")
		if err != nil {
			t.Fatalf("%s: %v (haproxy: %s)", tc.name, err, stderr.String())
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: got %d; want 200", tc.name, resp.StatusCode)
		}
		if got, _ := up.last().get("X-Forwarded-For"); got != "127.0.0.2" {
			t.Errorf("%s: X-Forwarded-For upstream: got %q; want 127.0.0.2 (the client, not HAProxy)", tc.name, got)
		}
	}
}

// TestE2EProxyProtocolCurl: curl's --haproxy-protocol (v1) to a listener
// that trusts the address curl connects from.
func TestE2EProxyProtocolCurl(t *testing.T) {
	bin, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed (make deps installs it)")
	}
	up := accessUpstream(t)
	p := startProxy(t, oneUpstreamConfig(up.addr(), "proxy_protocol: {trusted: [127.0.0.3]}", "", ""))
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	for _, tc := range []struct {
		name, from string
		header     bool
		want       string // the status curl prints; "000": no answer
	}{
		{"trusted, with the header", "127.0.0.3", true, "200"},
		{"trusted, without it", "127.0.0.3", false, "000"},
		{"untrusted, with the header", "127.0.0.4", true, "000"},
	} {
		args := []string{"-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "--interface", tc.from}
		if tc.header {
			args = append(args, "--haproxy-protocol")
		}
		out, _ := exec.CommandContext(ctx, bin, append(args, "http://"+p.addr+"/via-curl")...).Output()
		if got := string(out); got != tc.want {
			t.Errorf("%s: curl got %q; want %q", tc.name, got, tc.want)
		}
	}
	if got, _ := up.last().get("X-Forwarded-For"); got != "127.0.0.3" {
		t.Errorf("X-Forwarded-For upstream: got %q; want 127.0.0.3", got)
	}
}
