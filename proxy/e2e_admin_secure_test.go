package proxy

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/config"
)

// The admin API secure by default (issue 17, finding 5): an empty token is
// an error, a non-loopback address needs a token, Host is checked against
// DNS rebinding, state-changing requests refuse what a cross-site page can
// send, and the config dump hides every secret by its class.

// fileProxy is a proxy built from a config file as `rampart run` builds
// one, so that a reload reads the file again.
type fileProxy struct {
	srv   *Server
	file  string
	web   string
	admin string
}

// adminSecureConfig is a file with the admin section admin (YAML lines
// under "admin:"), a listener "web" and a route that answers "v<version>",
// so a client can tell which config serves. extra is more top-level YAML.
func adminSecureConfig(admin string, version int, extra string) string {
	return fmt.Sprintf(`admin:
%s
listeners:
  web: {address: "127.0.0.1:0"}
routes:
  - name: version
    respond: {status: 200, body: "v%d"}
access_log: {path: "off"}
%s`, indent(admin, 2), version, extra)
}

// startFileProxy writes content to a file, starts a proxy from it and stops
// it when the test ends.
func startFileProxy(t *testing.T, content string) *fileProxy {
	t.Helper()
	file := filepath.Join(t.TempDir(), "rampart.yaml")
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatalf("config.Load: %v\n%s", err, content)
	}
	srv, err := New(cfg, e2eLogger())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return &fileProxy{srv: srv, file: file, web: srv.Addr("web"), admin: srv.AdminAddr()}
}

// rewrite replaces the config file's content.
func (p *fileProxy) rewrite(t *testing.T, content string) {
	t.Helper()
	if err := os.WriteFile(p.file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// version returns the body the web listener answers: which config serves.
func (p *fileProxy) version(t *testing.T) string {
	t.Helper()
	return string(rawGet(t, p.web, "x", "/").body)
}

// adminRaw sends one request to the admin listener as written: request
// line, header lines, and an empty body. host is the Host header.
func adminRaw(t *testing.T, addr, method, path, host string, headers ...string) *rawMessage {
	t.Helper()
	var b strings.Builder
	b.WriteString(method + " " + path + " HTTP/1.1\r\nHost: " + host + "\r\n")
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	if method == "POST" {
		b.WriteString("Content-Length: 0\r\n")
	}
	b.WriteString("Connection: close\r\n\r\n")
	return dialRaw(t, addr).roundTrip(b.String())
}

// lineOf returns the 1-based line of the first line of content holding s.
func lineOf(content, s string) int {
	for i, l := range strings.Split(content, "\n") {
		if strings.Contains(l, s) {
			return i + 1
		}
	}
	return 0
}

// TestE2EAdminEmptyTokenRefused: a reload whose admin.token is written but
// empty (an empty ${NAME}, "", null, or only white space) is refused with
// the field and its line, by POST /api/v1/reload and by ReloadFromFile
// (SIGHUP, the file watcher); the running config, its token included,
// keeps serving. On the code before the fix the reload applied and
// switched authentication off.
func TestE2EAdminEmptyTokenRefused(t *testing.T) {
	t.Setenv("RAMPART_E2E_EMPTY", "")
	t.Setenv("RAMPART_E2E_NEWLINE", "\n")
	t.Setenv("RAMPART_E2E_SPACES", "   ")
	const token = "first-token"
	tests := []struct {
		name, admin string
	}{
		{"empty variable", "address: 127.0.0.1:0\ntoken: ${RAMPART_E2E_EMPTY}"},
		{"two empty variables", "address: 127.0.0.1:0\ntoken: \"${RAMPART_E2E_EMPTY}${RAMPART_E2E_EMPTY}\""},
		{"empty string", "address: 127.0.0.1:0\ntoken: \"\""},
		{"null", "address: 127.0.0.1:0\ntoken:"},
		{"newline only", "address: 127.0.0.1:0\ntoken: ${RAMPART_E2E_NEWLINE}"},
		{"spaces only", "address: 127.0.0.1:0\ntoken: \"${RAMPART_E2E_SPACES}\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startFileProxy(t, adminSecureConfig("address: 127.0.0.1:0\ntoken: "+token, 1, ""))
			next := adminSecureConfig(tt.admin, 2, "")
			p.rewrite(t, next)
			want := fmt.Sprintf("%s:%d: admin.token", p.file, lineOf(next, "token:"))

			r := adminRaw(t, p.admin, "POST", "/api/v1/reload", "127.0.0.1", "Authorization: Bearer "+token, "Content-Type: application/json")
			if r.status() != 422 || !strings.Contains(string(r.body), want) {
				t.Errorf("POST /api/v1/reload: got %d %s; want 422 naming %q", r.status(), r.body, want)
			}
			if _, err := p.srv.ReloadFromFile(); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("ReloadFromFile: got %v; want an error naming %q", err, want)
			}
			if got := p.version(t); got != "v1" {
				t.Errorf("served after the refused reloads: got %q; want v1 (the old config)", got)
			}
			if r := adminRaw(t, p.admin, "GET", "/api/v1/config", "127.0.0.1"); r.status() != 401 {
				t.Errorf("GET /api/v1/config without the token after the refused reloads: got %d; want 401", r.status())
			}
			if r := adminRaw(t, p.admin, "GET", "/api/v1/config", "127.0.0.1", "Authorization: Bearer "+token); r.status() != 200 {
				t.Errorf("GET /api/v1/config with the old token: got %d; want 200", r.status())
			}
		})
	}
}

// TestE2EAdminOpenAddressRefused: a reload that moves the admin listener
// to a non-loopback address without a token is refused with the field and
// its line; the listener stays where it was. The addresses cannot be bound
// here (documentation ranges, an unresolvable name), so that the code
// before the fix, which accepted them, bound nothing either: it reported
// the reload applied and logged the failed bind.
func TestE2EAdminOpenAddressRefused(t *testing.T) {
	tests := []struct{ name, address string }{
		{"IPv4 not on this host", "192.0.2.1:0"},
		{"IPv6 not on this host", "\"[2001:db8::1]:0\""},
		{"host name", "rampart-admin.invalid:0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startFileProxy(t, adminSecureConfig("address: 127.0.0.1:0", 1, ""))
			next := adminSecureConfig("address: "+tt.address, 2, "")
			p.rewrite(t, next)
			want := fmt.Sprintf("%s:%d: admin.address", p.file, lineOf(next, "address: "+tt.address))
			r := adminRaw(t, p.admin, "POST", "/api/v1/reload", "127.0.0.1", "Content-Type: application/json")
			if body := string(r.body); r.status() != 422 || !strings.Contains(body, want) || !strings.Contains(body, "not a loopback address") {
				t.Errorf("POST /api/v1/reload: got %d %s; want 422 naming %q", r.status(), body, want)
			}
			if got := p.version(t); got != "v1" {
				t.Errorf("served after the refused reload: got %q; want v1", got)
			}
			if got := p.srv.AdminAddr(); got != p.admin {
				t.Errorf("admin listener: got %s; want it still on %s", got, p.admin)
			}
		})
	}
}

// TestE2EAdminHostCheck: against DNS rebinding, the admin API answers only
// requests whose Host is localhost, an IP literal (a pod IP from a kubelet
// or a Prometheus with pod discovery), the admin address's host or a name
// of admin.hosts. /healthz and /readyz answer any Host: they say "ok" or
// "ready" and nothing more, and health checkers send what they like.
func TestE2EAdminHostCheck(t *testing.T) {
	p := startFileProxy(t, adminSecureConfig("address: 127.0.0.1:0", 1, ""))
	_, port, _ := net.SplitHostPort(p.admin)
	refused := []string{
		"evil.example", "evil.example:" + port, "attacker.example.", "127.0.0.1.nip.io:" + port,
		"localhost.evil.example", "evil.localhost:" + port, "rampart.internal", "rampart.internal.evil.example",
		"xn--rampart-internal.example", "rampart-internal", "0x7f000001:" + port,
	}
	allowed := []string{
		"127.0.0.1:" + port, "127.0.0.1", "localhost:" + port, "LOCALHOST", "localhost.:" + port,
		"[::1]:" + port, "10.1.2.3:9901", "[fd00::1]:9901",
	}
	check := func(t *testing.T, refused, allowed []string) {
		t.Helper()
		for _, host := range refused {
			for _, req := range []struct{ method, path string }{
				{"GET", "/api/v1/config"}, {"GET", "/api/v1/upstreams"}, {"GET", "/metrics"}, {"POST", "/api/v1/reload"}, {"GET", "/nope"},
			} {
				r := adminRaw(t, p.admin, req.method, req.path, host, "Content-Type: application/json")
				if r.status() != 403 || len(r.body) > 64 || strings.Contains(string(r.body), "listeners") {
					t.Errorf("%s %s Host %q: got %d %.60q; want 403 and a short body", req.method, req.path, host, r.status(), r.body)
				}
			}
			for _, path := range []string{"/healthz", "/readyz"} {
				if r := adminRaw(t, p.admin, "GET", path, host); r.status() != 200 {
					t.Errorf("GET %s Host %q: got %d; want 200 (probes answer any Host)", path, host, r.status())
				}
			}
		}
		for _, host := range allowed {
			if r := adminRaw(t, p.admin, "GET", "/api/v1/config", host); r.status() != 200 || !strings.Contains(string(r.body), `"listeners"`) {
				t.Errorf("GET /api/v1/config Host %q: got %d %.60q; want 200 and the config", host, r.status(), r.body)
			}
		}
	}
	check(t, refused, allowed)
	if got := p.version(t); got != "v1" {
		t.Errorf("served after the refused reloads: got %q; want v1", got)
	}

	// admin.hosts adds names, at once on a reload.
	p.rewrite(t, adminSecureConfig("address: 127.0.0.1:0\nhosts: [rampart.internal, Scrape.Example.]", 2, ""))
	if r := adminRaw(t, p.admin, "POST", "/api/v1/reload", "127.0.0.1", "Content-Type: application/json"); r.status() != 200 {
		t.Fatalf("reload: got %d %s", r.status(), r.body)
	}
	check(t, []string{"evil.example", "rampart.internal.evil.example", "scrape.example.evil"},
		append(allowed, "rampart.internal", "RAMPART.INTERNAL:9901", "scrape.example", "scrape.example.:"+port))
}

// TestE2EAdminCSRF: POST /api/v1/reload refuses what a cross-site page can
// make a browser send: a form (text/plain, urlencoded, multipart) or a
// no-cors fetch (no Content-Type), and anything marked cross-site by
// Sec-Fetch-Site or a foreign Origin. Without a token, a reload needs
// Content-Type: application/json, which needs a CORS preflight that the
// admin API never grants; with a token, the Authorization header is that
// proof. On the code before the fix a text/plain form post reloaded.
func TestE2EAdminCSRF(t *testing.T) {
	const token = "csrf-token"
	tests := []struct {
		name    string
		token   string // admin.token; "" for none (loopback)
		headers []string
		want    int // 200: the reload applied
	}{
		{"form text/plain", "", []string{"Content-Type: text/plain"}, 415},
		{"form urlencoded", "", []string{"Content-Type: application/x-www-form-urlencoded"}, 415},
		{"form multipart", "", []string{"Content-Type: multipart/form-data; boundary=x"}, 415},
		{"no-cors fetch without a type", "", nil, 415},
		{"json inside text/plain", "", []string{"Content-Type: text/plain; a=application/json"}, 415},
		{"form with a foreign Origin", "", []string{"Content-Type: text/plain", "Origin: http://evil.example"}, 403},
		{"json with a foreign Origin", "", []string{"Content-Type: application/json", "Origin: http://evil.example"}, 403},
		{"json with Origin null", "", []string{"Content-Type: application/json", "Origin: null"}, 403},
		{"json from another port", "", []string{"Content-Type: application/json", "Origin: http://127.0.0.1:1"}, 403},
		{"json cross-site", "", []string{"Content-Type: application/json", "Sec-Fetch-Site: cross-site"}, 403},
		{"json same-site", "", []string{"Content-Type: application/json", "Sec-Fetch-Site: same-site"}, 403},
		{"form cross-site", "", []string{"Content-Type: text/plain", "Sec-Fetch-Site: cross-site", "Origin: http://evil.example"}, 403},
		{"api client json", "", []string{"Content-Type: application/json"}, 200},
		{"api client json charset", "", []string{"Content-Type: Application/JSON; charset=utf-8"}, 200},
		{"same origin", "", []string{"Content-Type: application/json", "Origin: http://ADMIN", "Sec-Fetch-Site: same-origin"}, 200},
		{"token: form without it", token, []string{"Content-Type: text/plain"}, 401},
		{"token: form cross-site with it", token, []string{"Content-Type: text/plain", "Sec-Fetch-Site: cross-site", "Authorization: Bearer " + token}, 403},
		{"token: foreign Origin with it", token, []string{"Origin: https://evil.example", "Authorization: Bearer " + token}, 403},
		{"token: api client", token, []string{"Authorization: Bearer " + token}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			admin := "address: 127.0.0.1:0"
			if tt.token != "" {
				admin += "\ntoken: " + tt.token
			}
			p := startFileProxy(t, adminSecureConfig(admin, 1, ""))
			p.rewrite(t, adminSecureConfig(admin, 2, ""))
			headers := make([]string, len(tt.headers))
			for i, h := range tt.headers {
				headers[i] = strings.ReplaceAll(h, "ADMIN", p.admin)
			}
			r := adminRaw(t, p.admin, "POST", "/api/v1/reload", p.admin, headers...)
			if r.status() != tt.want {
				t.Errorf("got %d %s; want %d", r.status(), r.body, tt.want)
			}
			want := "v1"
			if tt.want == 200 {
				want = "v2"
			}
			if got := p.version(t); got != want {
				t.Errorf("served after the request: got %q; want %q", got, want)
			}
		})
	}
}

// TestE2EAdminConfigDumpHidesSecrets: GET /api/v1/config shows no secret,
// whatever its field's name: every header-matcher value, the admin token,
// the Redis user name and password, the WAF's own rules, and user info in
// any URL-like value. On the code before the fix, header values under
// names without a "secret" word and the Redis user name showed.
func TestE2EAdminConfigDumpHidesSecrets(t *testing.T) {
	t.Setenv("RAMPART_E2E_HDR", "env-s3cret-0")
	extra := `upstreams:
  app:
    targets: [{url: "http://127.0.0.1:9"}]
  other:
    targets: [{url: "http://127.0.0.1:10"}]
waf:
  strict:
    mode: detect
    rules: |
      SecRule REQUEST_HEADERS:X-Internal-Key "!@streq rule-s3cret-1" "id:10001,phase:1,deny,status:403"
redis:
  address: 127.0.0.1:6379
  username: user-s3cret-2
  password: pw-s3cret-3
`
	routes := `
  - name: internal
    match:
      path_prefix: /internal/
      headers:
        X-Internal-Auth: hdr-s3cret-4
        X-Canary: canary-s3cret-5
        Authorization: "Bearer hdr-s3cret-6"
        X-From-Env: ${RAMPART_E2E_HDR}
    upstream: app
    waf: strict
  - name: key
    match: {path_prefix: /k/, headers: {X-Api-Version: "v2-s3cret-7"}}
    upstream: other
`
	cfg := adminSecureConfig("address: 127.0.0.1:0\ntoken: tok-s3cret-8", 1, extra)
	cfg = strings.Replace(cfg, "routes:\n", "routes:"+routes, 1)
	p := startFileProxy(t, cfg)
	r := adminRaw(t, p.admin, "GET", "/api/v1/config", "127.0.0.1", "Authorization: Bearer tok-s3cret-8")
	body := string(r.body)
	if r.status() != 200 {
		t.Fatalf("GET /api/v1/config: got %d %s", r.status(), body)
	}
	for i := range 9 {
		if s := "s3cret-" + strconv.Itoa(i); strings.Contains(body, s) {
			t.Errorf("the dump shows a secret (%s):\n%s", s, body)
		}
	}
	// What is no secret still shows: names, addresses, the structure.
	for _, want := range []string{`"X-Internal-Auth": "[redacted]"`, `"X-Canary": "[redacted]"`, `"X-Api-Version": "[redacted]"`,
		`"address": "127.0.0.1:6379"`, `"path_prefix": "/internal/"`, `"rules": "[redacted]"`, `"token": "[redacted]"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the dump lacks %s:\n%s", want, body)
		}
	}
}
