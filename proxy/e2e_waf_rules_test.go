package proxy

// End-to-end tests of Rampart's own WAF rules (issue 20) through a running
// proxy, with Go's HTTP client: decoded payloads, custom headers, XXE and
// GraphQL are blocked with rampart_rules on (the default) and passed with
// it off; a disabled group stays off; benign lookalikes pass; a reload
// switches the rules.

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-proxy/rampart/config"
)

func wafRulesYAML(upstream, audit, onRules string) string {
	return fmt.Sprintf(`
listeners:
  web: {address: "127.0.0.1:0"}
upstreams:
  app: {targets: [{url: "http://%s"}]}
waf:
  on: {mode: block, audit_log: %[2]q%[3]s}
  off: {mode: block, rampart_rules: off, audit_log: %[2]q}
  noxxe: {mode: block, rampart_rules_disabled: [xxe], audit_log: %[2]q}
routes:
  - {name: on, match: {path_prefix: /on/}, upstream: app, waf: on}
  - {name: off, match: {path_prefix: /off/}, upstream: app, waf: off}
  - {name: noxxe, match: {path_prefix: /noxxe/}, upstream: app, waf: noxxe}
access_log: {path: "off"}
`, upstream, audit, onRules)
}

func TestE2EWAFRampartRules(t *testing.T) {
	up := startRawUpstream(t, func(*rawMessage) (string, bool) { return okResponse("ok"), false })
	audit := filepath.Join(t.TempDir(), "waf.jsonl")
	p := startProxy(t, wafRulesYAML(up.addr(), audit, ""))
	client := &http.Client{Timeout: e2eTimeout}

	b64 := base64.StdEncoding.EncodeToString([]byte("1' UNION SELECT username, password FROM users--"))
	xxe := `<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>`
	type req struct {
		method, path, ctype, body string
		header                    [2]string
	}
	tests := []struct {
		name    string
		req     req
		on, off int // status on the on and off routes
		noxxe   int // status on the route with the xxe group disabled
		rule    int // a rule the on route's audit event names; 0: any
	}{
		{"base64 SQLi in a query argument", req{method: "GET", path: "search?q=" + url.QueryEscape(b64)}, 403, 200, 403, 0},
		{"SQLi in X-Api-Key", req{method: "GET", path: "items", header: [2]string{"X-Api-Key", "1' UNION SELECT password FROM users--"}}, 403, 200, 403, 0},
		{"external entity", req{method: "POST", path: "orders", ctype: "application/xml", body: xxe}, 403, 200, 200, 9500300},
		{"SQLi in a GraphQL argument", req{method: "POST", path: "graphql", ctype: "application/json",
			body: `{"query":"query { products(filter: \"x' or name()='admin' or 'x'='y\") { id } }"}`}, 403, 200, 403, 9500300},
		{"template injection", req{method: "GET", path: "search?q=" + url.QueryEscape("{{7*'7'}}")}, 403, 200, 403, 9500300},
		{"benign JQL", req{method: "GET", path: "search?jql=" + url.QueryEscape(`project = WEB AND status = "In Progress" ORDER BY created DESC`)}, 200, 403, 200, 0},
		{"benign JWT in JSON", req{method: "POST", path: "token", ctype: "application/json",
			body: `{"token":"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"}`}, 200, 200, 200, 0},
	}
	send := func(t *testing.T, route string, r req, id string) int {
		t.Helper()
		hr, err := http.NewRequest(r.method, "http://"+p.addr+"/"+route+"/"+r.path, strings.NewReader(r.body))
		if err != nil {
			t.Fatal(err)
		}
		hr.Host = "app.test"
		hr.Header.Set("X-Request-Id", id)
		if r.ctype != "" {
			hr.Header.Set("Content-Type", r.ctype)
		}
		if r.header[0] != "" {
			hr.Header.Set(r.header[0], r.header[1])
		}
		resp, err := client.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("rr-%d", i)
			if got := send(t, "on", tt.req, id); got != tt.on {
				t.Errorf("rampart_rules on: got status %d; want %d", got, tt.on)
			}
			if got := send(t, "off", tt.req, id+"-off"); got != tt.off {
				t.Errorf("rampart_rules off: got status %d; want %d", got, tt.off)
			}
			if got := send(t, "noxxe", tt.req, id+"-noxxe"); got != tt.noxxe {
				t.Errorf("xxe disabled: got status %d; want %d", got, tt.noxxe)
			}
			if tt.rule != 0 {
				if m := ruleMatch(auditEvent(t, audit, id, e2eTimeout), tt.rule); m == nil || !strings.HasPrefix(m.Msg, "Rampart: ") {
					t.Errorf("audit event of %s: match %+v; want rule %d with a Rampart message", id, m, tt.rule)
				}
			}
		})
	}

	// A reload switches the rules: the on policy written off passes what
	// it blocked.
	cfg, err := config.Parse([]byte(wafRulesYAML(up.addr(), audit, ", rampart_rules: off")), "reload.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := p.srv.Reload(cfg); err != nil || !changed {
		t.Fatalf("reload: got changed=%v err=%v; want a change", changed, err)
	}
	if got := send(t, "on", tests[0].req, "rr-reloaded"); got != 200 {
		t.Errorf("after a reload with rampart_rules off: got status %d; want 200", got)
	}
}
