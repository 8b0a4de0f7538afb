package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/waf"
)

// wafConfig has one route per policy flavour. The tuned policy excludes
// the libinjection SQLi rule (942100) under /search and the XSS rules for the
// argument comment only.
const wafConfig = `listeners:
  web:
    address: 127.0.0.1:0
upstreams:
  app:
    targets:
      - url: http://127.0.0.1:9000
routes:
  - name: api
    match: {host: api.example.com}
    upstream: app
    waf: strict
  - name: search
    match: {path_prefix: /search}
    upstream: app
    waf: tuned
  - name: watch
    match: {path_prefix: /watch}
    upstream: app
    waf: watch
  - name: lenient
    match: {path_prefix: /lenient}
    upstream: app
    waf: lenient
  - name: off
    match: {path_prefix: /off}
    upstream: app
    waf: off
  - name: plain
    match: {path_prefix: /plain}
    upstream: app
waf:
  strict:
    mode: block
    rules: |
      SecRule REQUEST_URI "@beginsWith /admin" "id:10001,phase:1,deny,status:401,log,msg:'admin area'"
    audit_log: never-written.jsonl
  tuned:
    mode: block
    exclusions:
      - rule_ids: [942100, 9500300]
        path_prefix: /search
      - rule_ids: [941100, 941110, 941160, 941390]
        targets: ["ARGS:comment"]
  watch:
    mode: detect
  lenient:
    mode: block
    anomaly_threshold: 100
  off:
    mode: "off"
access_log: {path: "off"}
`

const sqli = "?id=1' OR '1'='1"

func TestWAFTestCommand(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "rampart.yaml")
	if err := os.WriteFile(cfgPath, []byte(wafConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	jsonBody := filepath.Join(dir, "body.json")
	if err := os.WriteFile(jsonBody, []byte(`{"user": {"name": "1' OR '1'='1"}}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := func(route string, rest ...string) []string {
		return append([]string{"waf", "test", "--config", cfgPath, "--route", route}, rest...)
	}
	cases := []cliCase{
		{
			name: "sqli query blocked", args: cmd("api", "http://api.example.com/"+sqli), wantCode: 1,
			wantStdout: []string{"GET /?id=1'%20OR%20'1'='1 HTTP/1.1", "Host: api.example.com", "verdict:   blocked: answered 403 Forbidden",
				"942100  CRITICAL  SQL Injection Attack Detected via libinjection", "target: ARGS:id", "949110"},
		},
		{
			name: "benign request passes", args: cmd("api", "-H", "Accept-Language: en-GB", "https://api.example.com/products?page=2&sort=name"),
			wantCode: 0, wantStdout: []string{"verdict:   pass: forwarded (no rule matched)", "score:     0", "matched:   0 rule(s)"},
		},
		{
			name: "exclusion suppresses the rule", args: cmd("search", "/search"+sqli), wantCode: 0,
			wantStdout: []string{"verdict:   pass"}, notStdout: []string{"942100"},
		},
		{
			name: "the excluded rule still fires elsewhere", args: cmd("search", "/other"+sqli), wantCode: 1,
			wantStdout: []string{"942100", "blocked"},
		},
		{
			name: "exclusion of one target", args: cmd("search", "-d", "comment=<script>alert(1)</script>", "/comments"), wantCode: 0,
			wantStdout: []string{"POST /comments HTTP/1.1", "Content-Type: application/x-www-form-urlencoded", "verdict:   pass"},
			notStdout:  []string{"941100"},
		},
		{
			name: "another target still checked", args: cmd("search", "-d", "title=<script>alert(1)</script>", "/comments"), wantCode: 1,
			wantStdout: []string{"941100", "target: ARGS:title", "blocked"},
		},
		{
			name: "json body inspected", args: cmd("api", "-H", "Content-Type: application/json", "--data-binary", "@"+jsonBody, "http://api.example.com/v1/users"),
			wantCode: 1, wantStdout: []string{"POST /v1/users", "(body: 35 bytes)", "942100", "ARGS:json.user.name", "blocked"},
		},
		{
			name: "custom rule with its status", args: cmd("api", "-X", "DELETE", "/admin/users/1"), wantCode: 1,
			wantStdout: []string{"DELETE /admin/users/1 HTTP/1.1", "Host: api.example.com", "answered 401 Unauthorized", "10001", "admin area"},
		},
		{
			name: "detect mode forwards", args: cmd("watch", "/watch"+sqli), wantCode: 0,
			wantStdout: []string{"mode detect", "detected: forwarded (mode detect; mode block would answer 403)", "942100"},
		},
		{
			name: "below the threshold", args: cmd("lenient", "/lenient"+sqli), wantCode: 0,
			wantStdout: []string{"detected: forwarded (the score is below the threshold 100)", "942100"},
		},
		{
			name: "mode off", args: cmd("off", "/off"+sqli), wantCode: 0,
			wantStdout: []string{"mode off", "nothing is inspected"},
		},
		{name: "help", args: []string{"waf", "--help"}, wantCode: 0, wantStdout: []string{"Exit status: 0 when the request would be forwarded"}},
		{name: "test help", args: []string{"waf", "test", "-h"}, wantCode: 0, wantStdout: []string{"--data-binary"}},
		{name: "no subcommand", args: []string{"waf"}, wantCode: 2, wantStderr: []string{"usage: rampart waf test"}},
		{name: "unknown subcommand", args: []string{"waf", "check"}, wantCode: 2, wantStderr: []string{"usage: rampart waf test"}},
		{name: "without --route", args: []string{"waf", "test", "--config", cfgPath}, wantCode: 2, wantStderr: []string{"--route NAME are required"}},
		{name: "unknown route", args: cmd("nope"), wantCode: 2, wantStderr: []string{`no route "nope"`, "api, lenient, off, plain, search, watch"}},
		{name: "route without waf", args: cmd("plain"), wantCode: 2, wantStderr: []string{`route "plain" has no waf policy`}},
		{name: "missing config", args: []string{"waf", "test", "--config", filepath.Join(dir, "nope.yaml"), "--route", "api"}, wantCode: 2, wantStderr: []string{"nope.yaml"}},
		{name: "bad header", args: cmd("api", "-H", "NoColon"), wantCode: 2, wantStderr: []string{`-H "NoColon"`}},
		{name: "unknown option", args: cmd("api", "--compressed"), wantCode: 2, wantStderr: []string{"unknown option --compressed"}},
		{name: "two URLs", args: cmd("api", "/a", "/b"), wantCode: 2, wantStderr: []string{"one URL only"}},
		{name: "no Host", args: cmd("api", "-H", "Host:", "/"), wantCode: 2, wantStderr: []string{"refuse it before the WAF", "missing required host header"}},
		{name: "missing data file", args: cmd("api", "-d", "@"+filepath.Join(dir, "nope.txt")), wantCode: 2, wantStderr: []string{"nope.txt"}},
	}
	runCLICases(t, cases)
	if _, err := os.Stat(filepath.Join(dir, "never-written.jsonl")); !os.IsNotExist(err) {
		t.Errorf("the policy's audit_log was opened (stat: %v); want the event captured in memory only", err)
	}
}

func TestWAFTestJSON(t *testing.T) {
	cfgPath := writeFile(t, "rampart.yaml", wafConfig)
	cases := []struct {
		name       string
		args       []string
		wantCode   int
		wantAction string
		wantStatus int
		wantRule   int // 0: no rule
	}{
		{"blocked", []string{"-H", "X-Request-Id: abc-123", "--client-ip", "192.0.2.7", "/" + sqli}, 1, "blocked", 403, 942100},
		{"pass", []string{"-H", "X-Request-Id: abc-123", "--client-ip", "192.0.2.7", "/?page=2"}, 0, "pass", 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"waf", "test", "--json", "--config=" + cfgPath, "--route=api"}, tc.args...)
			if code := run(args, &stdout, &stderr); code != tc.wantCode {
				t.Fatalf("exit code: got %d; want %d (stderr %q)", code, tc.wantCode, stderr.String())
			}
			var e waf.Event
			if err := json.Unmarshal(stdout.Bytes(), &e); err != nil {
				t.Fatalf("stdout %q: %v", stdout.String(), err)
			}
			if e.Action != tc.wantAction || e.Status != tc.wantStatus || e.RequestID != "abc-123" || e.ClientIP != "192.0.2.7" || e.Route != "api" || e.Policy != "strict" {
				t.Errorf("got %+v; want action %s status %d, request id abc-123, client 192.0.2.7, route api, policy strict", e, tc.wantAction, tc.wantStatus)
			}
			found := false
			for _, r := range e.Rules {
				found = found || r.ID == tc.wantRule
			}
			if tc.wantRule != 0 && !found {
				t.Errorf("got rules %+v; want %d among them", e.Rules, tc.wantRule)
			}
			if tc.wantRule == 0 && len(e.Rules) != 0 {
				t.Errorf("got rules %+v; want none", e.Rules)
			}
		})
	}
}

func TestBuildRawRequest(t *testing.T) {
	dir := t.TempDir()
	form := filepath.Join(dir, "form.txt")
	if err := os.WriteFile(form, []byte("a=1\r\n&b=2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	route := &config.Route{Name: "r", Match: config.Match{Host: "shop.example.com"}}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"default", nil, "GET / HTTP/1.1\r\nHost: shop.example.com\r\nUser-Agent: rampart-waf-test\r\nAccept: */*\r\n\r\n"},
		{"url host and port", []string{"http://user:pw@a.example:8080?x=1#frag"}, "GET /?x=1 HTTP/1.1\r\nHost: a.example:8080\r\nUser-Agent: rampart-waf-test\r\nAccept: */*\r\n\r\n"},
		{"host without scheme", []string{"b.example/p q"}, "GET /p%20q HTTP/1.1\r\nHost: b.example\r\nUser-Agent: rampart-waf-test\r\nAccept: */*\r\n\r\n"},
		{
			"header replaces a default in place, removes one, sends one empty",
			[]string{"-H", "user-agent: Mozilla/5.0", "-H", "Accept:", "-H", "X-Empty;", "-H", "X-A: 1", "-H", "X-A: 2", "-H", "Host: c.example", "/p"},
			"GET /p HTTP/1.1\r\nHost: c.example\r\nuser-agent: Mozilla/5.0\r\nX-Empty: \r\nX-A: 1\r\nX-A: 2\r\n\r\n",
		},
		{
			"form data joined, file newlines dropped",
			[]string{"-d", "x=1", "-d", "@" + form, "/f"},
			"POST /f HTTP/1.1\r\nHost: shop.example.com\r\nUser-Agent: rampart-waf-test\r\nAccept: */*\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 11\r\n\r\nx=1&a=1&b=2",
		},
		{
			"binary data, method, content length overridden",
			[]string{"-XPUT", "--data-binary", "@" + form, "-H", "Content-Length: 1", "/f"},
			"PUT /f HTTP/1.1\r\nHost: shop.example.com\r\nUser-Agent: rampart-waf-test\r\nAccept: */*\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10\r\n\r\na=1\r\n&b=2\n",
		},
		{
			"chunked",
			[]string{"--data-raw", "@hello", "-H", "Content-Type: text/plain", "-H", "Transfer-Encoding: chunked", "/c"},
			"POST /c HTTP/1.1\r\nHost: shop.example.com\r\nUser-Agent: rampart-waf-test\r\nAccept: */*\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n@hello\r\n0\r\n\r\n",
		},
		{
			"data joined in order",
			[]string{"--data-raw", "a=1", "-d", "b=2", "--data-binary", "c=3", "/o"},
			"POST /o HTTP/1.1\r\nHost: shop.example.com\r\nUser-Agent: rampart-waf-test\r\nAccept: */*\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 11\r\n\r\na=1&b=2&c=3",
		},
		{"no Host", []string{"-H", "Host:", "/n"}, "GET /n HTTP/1.1\r\nUser-Agent: rampart-waf-test\r\nAccept: */*\r\n\r\n"},
		{"empty POST", []string{"-X", "POST", "/e"}, "POST /e HTTP/1.1\r\nHost: shop.example.com\r\nUser-Agent: rampart-waf-test\r\nAccept: */*\r\nContent-Length: 0\r\n\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, err := parseWAFTestArgs(tc.args)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := buildRawRequest(a, route)
			if err != nil {
				t.Fatal(err)
			}
			if string(raw) != tc.want {
				t.Errorf("got\n%q\nwant\n%q", raw, tc.want)
			}
		})
	}
}

func TestBuildRawRequestErrors(t *testing.T) {
	route := &config.Route{Name: "r"}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"header injection", []string{"-H", "X-A: 1\r\nX-B: 2"}, "not a header"},
		{"name with a space", []string{"-H", "X A: 1"}, "not a header"},
		{"method with a space", []string{"-X", "GET /x"}, "not a method"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, err := parseWAFTestArgs(tc.args)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := buildRawRequest(a, route); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %v; want one containing %q", err, tc.want)
			}
		})
	}
}

func TestPrintable(t *testing.T) {
	cases := []struct{ in, want string }{
		{"1' OR '1'='1", "1' OR '1'='1"},
		{"héllo", "héllo"},
		{"a\x1b[31mred", `a\x1b[31mred`},
		{"line\nbreak", `line\nbreak`},
	}
	for _, tc := range cases {
		if got := printable(tc.in); got != tc.want {
			t.Errorf("printable(%q): got %q; want %q", tc.in, got, tc.want)
		}
	}
}
