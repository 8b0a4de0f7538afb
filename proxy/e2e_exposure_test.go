package proxy

// Secrets and exposure: the admin API is never reachable through a proxy
// listener, and credentials never reach the access log or the WAF audit log.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestE2EAdminNotReachableThroughProxy sends admin API requests to a proxy
// listener, by path, with Host set to the admin address and in absolute
// form: each is routed like any other request (to the upstream, or 404 when
// no route matches), never answered by the admin API, and no reload
// happens.
func TestE2EAdminNotReachableThroughProxy(t *testing.T) {
	up := startRawUpstream(t, func(*rawMessage) (string, bool) { return okResponse("from-upstream"), false })
	tests := []struct {
		name   string
		routes string
		want   int // 200: the upstream's answer; 404: no route
	}{
		{"catch-all route", "  - name: all\n    upstream: app\n", 200},
		{"no matching route", "  - name: only\n    match: {host: only.example}\n    upstream: app\n", 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startProxy(t, fmt.Sprintf(`
admin:
  address: 127.0.0.1:0
listeners:
  web: {address: "127.0.0.1:0"}
upstreams:
  app: {targets: [{url: "http://%s"}]}
routes:
%saccess_log: {path: "off"}
`, up.addr(), tt.routes))
			admin := p.srv.AdminAddr()
			reloadsBefore, _ := metricSum(scrapeMetrics(t, p), "rampart_config_reloads_total", nil)
			_, adminPort, _ := net.SplitHostPort(admin)
			hosts := []string{"x", admin, "127.0.0.1", "localhost:" + adminPort}
			paths := []string{"/metrics", "/healthz", "/readyz", "/api/v1/config", "/api/v1/upstreams", "/api/v1/reload"}
			for _, host := range hosts {
				for _, path := range paths {
					method := "GET"
					if path == "/api/v1/reload" {
						method = "POST"
					}
					for _, target := range []string{path, "http://" + admin + path} {
						c := dialRaw(t, p.addr)
						resp := c.roundTrip(method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 0\r\n\r\n")
						body := string(resp.body)
						got := resp.status()
						switch {
						case tt.want == 200 && (got != 200 || body != "from-upstream"):
							t.Errorf("%s %s Host %s: got %d %q; want the upstream's answer", method, target, host, got, firstLine(body))
						case tt.want == 404 && got != 404:
							t.Errorf("%s %s Host %s: got %d %q; want 404", method, target, host, got, firstLine(body))
						}
						if strings.Contains(body, "rampart_") || strings.Contains(body, `"listeners"`) || strings.Contains(body, `"targets"`) {
							t.Errorf("%s %s Host %s: the admin API answered through the proxy listener: %q", method, target, host, body)
						}
					}
				}
			}
			reloadsAfter, _ := metricSum(scrapeMetrics(t, p), "rampart_config_reloads_total", nil)
			if reloadsAfter != reloadsBefore {
				t.Errorf("rampart_config_reloads_total: got %v after requests to the proxy listener; want %v (no reload)", reloadsAfter, reloadsBefore)
			}
		})
	}
}

// Credentials sent by the tests below; none may show in a log.
const (
	secretAuth      = "Bearer s3cr3t-authorization-7f3a"
	secretBasic     = "Basic c2VjcmV0LXVzZXI6c2VjcmV0LXBhc3M=" // secret-user:secret-pass
	secretCookie    = "s3cr3t-cookie-91bd"
	secretSetCookie = "s3cr3t-set-cookie-4c2e"
)

var secrets = []string{"s3cr3t-authorization-7f3a", "c2VjcmV0LXVzZXI6c2VjcmV0LXBhc3M", secretCookie, secretSetCookie}

// grepSecrets reports each secret found in the file at path, and fails when
// the file holds fewer than minLines lines (the log must not be empty for
// the check to mean anything).
func grepSecrets(t *testing.T, path string, minLines int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		for _, s := range secrets {
			if strings.Contains(line, s) {
				t.Errorf("%s line %d holds the secret %q: %s", filepath.Base(path), n, s, line)
			}
		}
	}
	if n < minLines {
		t.Errorf("%s: got %d lines; want at least %d", filepath.Base(path), n, minLines)
	}
}

// TestE2ESecretsNotInAccessLog sends Authorization and Cookie, and has the
// upstream answer with Set-Cookie: the access log has a line per request and
// none of their values.
func TestE2ESecretsNotInAccessLog(t *testing.T) {
	up := startRawUpstream(t, func(*rawMessage) (string, bool) {
		return "HTTP/1.1 200 OK\r\nSet-Cookie: sid=" + secretSetCookie + "; HttpOnly\r\nContent-Length: 2\r\n\r\nok", false
	})
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access.log")
	p := startProxy(t, fmt.Sprintf(`
listeners:
  web: {address: "127.0.0.1:0"}
upstreams:
  app: {targets: [{url: "http://%s"}]}
routes:
  - name: all
    upstream: app
access_log: {path: %q}
`, up.addr(), logPath))
	reqs := []string{
		"GET /a HTTP/1.1\r\nHost: x\r\nAuthorization: " + secretAuth + "\r\n\r\n",
		"GET /b?x=1 HTTP/1.1\r\nHost: x\r\nAuthorization: " + secretBasic + "\r\nCookie: session=" + secretCookie + "\r\n\r\n",
		"POST /c HTTP/1.1\r\nHost: x\r\nCookie: a=1; session=" + secretCookie + "\r\nContent-Length: 0\r\n\r\n",
		// Answered by the proxy itself (no route for the method is not a
		// thing here, so a malformed Content-Length): logged or not, no
		// secret.
		"GET /d HTTP/1.1\r\nHost: x\r\nAuthorization: " + secretAuth + "\r\nX-A : b\r\n\r\n",
	}
	for _, r := range reqs {
		c := dialRaw(t, p.addr)
		_, _ = io.WriteString(c.conn, r)
		if _, err := readRawResponse(c.br, "GET"); err != nil {
			t.Fatalf("%q: %v", firstLine(r), err)
		}
	}
	p.stop(t) // flushes the access log
	grepSecrets(t, logPath, 3)
}

// TestE2ESecretsNotInWAFAudit triggers WAF rules on requests that carry
// Authorization and Cookie values, one of them matched by the rule itself:
// the audit log has the events and none of the values.
func TestE2ESecretsNotInWAFAudit(t *testing.T) {
	up := startRawUpstream(t, func(*rawMessage) (string, bool) { return okResponse("ok"), false })
	dir := t.TempDir()
	audit := filepath.Join(dir, "waf.jsonl")
	p := startProxy(t, fmt.Sprintf(`
listeners:
  web: {address: "127.0.0.1:0"}
upstreams:
  app: {targets: [{url: "http://%s"}]}
waf:
  strict:
    mode: block
    audit_log: %q
    rules: |
      SecRule REQUEST_URI "@beginsWith /admin" "id:10001,phase:1,deny,status:403,log,msg:'admin area'"
      SecRule REQUEST_HEADERS:Authorization "@beginsWith Basic" "id:10002,phase:1,deny,status:403,log,msg:'basic auth refused'"
routes:
  - name: all
    upstream: app
    waf: strict
access_log: {path: "off"}
`, up.addr(), audit))
	tests := []struct {
		name string
		raw  string
	}{
		{"rule on the path, Authorization carried", "GET /admin/users HTTP/1.1\r\nHost: x\r\nAuthorization: " + secretAuth + "\r\nCookie: session=" + secretCookie + "\r\n\r\n"},
		{"rule on the Authorization value", "GET /ok HTTP/1.1\r\nHost: x\r\nAuthorization: " + secretBasic + "\r\n\r\n"},
		{"CRS rule on a cookie", "GET /ok HTTP/1.1\r\nHost: x\r\nCookie: session=' or 1=1 union select " + secretCookie + " --\r\n\r\n"},
	}
	for _, tt := range tests {
		c := dialRaw(t, p.addr)
		if got := c.roundTrip(tt.raw).status(); got != 403 {
			t.Errorf("%s: got %d; want 403 (a rule must fire for the check to mean anything)", tt.name, got)
		}
	}
	p.stop(t) // flushes the audit log
	grepSecrets(t, audit, len(tests))
}
