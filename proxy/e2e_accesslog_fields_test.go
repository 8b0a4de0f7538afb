package proxy

// The access log's fields, one by one, through a running proxy: each case
// sends one request with its own X-Request-Id and reads its line.

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/internal/testcert"
)

// readLogLines parses every line of a JSON access log file into a map of
// its fields, failing t on a line that is not one JSON object.
func readLogLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("access log line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	return lines
}

// lineByID returns the line whose request_id is id.
func lineByID(lines []map[string]any, id string) map[string]any {
	for _, l := range lines {
		if l["request_id"] == id {
			return l
		}
	}
	return nil
}

// TestE2EAccessLogFields: every field of a JSON line holds what
// docs/logs.md says, for plain and TLS, HTTP/1.0, 1.1 and 2 clients, WAF
// verdicts, failed and retried upstream tries.
func TestE2EAccessLogFields(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access.jsonl")
	up := startRawUpstream(t, func(req *rawMessage) (string, bool) {
		if strings.Contains(req.first, "/fail") {
			return "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy", false
		}
		return okResponse("ok"), false
	})
	dead := freeAddr(t)
	ca := testcert.NewCA(t, "Log CA")
	cf, kf := ca.Issue(t, "log", time.Time{}, false, "log.example.com").Write(t, dir, "log")
	p := startProxy(t, fmt.Sprintf(`
listeners:
  web: {address: "127.0.0.1:0"}
  secure:
    address: 127.0.0.1:0
    tls:
      certificates: [{cert_file: %q, key_file: %q}]
upstreams:
  app: {targets: [{url: "http://%s"}]}
  flaky: {targets: [{url: "http://%s"}, {url: "http://%s"}]}
waf:
  blocker:
    mode: block
    rules: |
      SecRule REQUEST_URI "@beginsWith /blocked" "id:10001,phase:1,deny,status:403,log,msg:'blocked'"
  watch:
    mode: detect
    rules: |
      SecRule REQUEST_URI "@beginsWith /detect" "id:10002,phase:1,deny,status:403,log,msg:'watched'"
      SecRule REQUEST_URI "@contains watched" "id:10003,phase:1,pass,log,msg:'also watched'"
routes:
  - {name: blocked, match: {host: app.test, path_prefix: /blocked}, upstream: app, waf: blocker}
  - {name: detect, match: {host: app.test, path_prefix: /detect}, upstream: app, waf: watch}
  - {name: clean, match: {host: app.test, path_prefix: /clean}, upstream: app, waf: watch}
  - {name: flaky, match: {host: app.test, path_prefix: /flaky}, upstream: flaky}
  - {name: tls, match: {host: log.example.com}, upstream: app}
  - {name: all, match: {host: app.test}, upstream: app}
access_log: {path: %q}
`, cf, kf, up.addr(), dead, up.addr(), logPath))
	secure := p.srv.Addr("secure")
	roots := testcert.Pool(ca.PEM)

	raw := func(t *testing.T, req string) {
		c := dialRaw(t, p.addr)
		c.roundTrip(req)
	}
	h2get := func(t *testing.T, id string) {
		tr := &http2.Transport{TLSClientConfig: &tls.Config{ServerName: "log.example.com", RootCAs: roots}}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest(http.MethodGet, "https://"+secure+"/h2", nil)
		req.Header.Set("X-Request-Id", id)
		req.Host = "log.example.com"
		resp, err := (&http.Client{Transport: tr, Timeout: e2eTimeout}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	tls11get := func(t *testing.T, id string) {
		if _, _, err := tlsGet(secure, &tls.Config{ServerName: "log.example.com", RootCAs: roots, NextProtos: []string{"http/1.1"}},
			"log.example.com", "/tls", "X-Request-Id: "+id); err != nil {
			t.Fatal(err)
		}
	}
	null := any(nil)
	number := "number" // any JSON number
	cases := []struct {
		name string
		send func(t *testing.T, id string)
		want map[string]any
	}{
		{"GET with query, agent, referer", func(t *testing.T, id string) {
			raw(t, "GET /a/b?x=1&token=s3cret HTTP/1.1\r\nHost: app.test\r\nUser-Agent: curl/8.0 \"q\"\r\nReferer: https://ref.test/p\r\nX-Request-Id: "+id+"\r\n\r\n")
		}, map[string]any{
			"listener": "web", "protocol": "HTTP/1.1", "tls_version": null, "method": "GET", "host": "app.test",
			"path": "/a/b", "request_uri": "/a/b?x=1&token=[redacted]", "query": "x=1&token=[redacted]",
			"user_agent": `curl/8.0 "q"`, "referer": "https://ref.test/p", "status": 200.0, "route": "all",
			"upstream": "app", "target": "http://" + up.addr(), "upstream_status": 200.0, "upstream_tries": 1.0,
			"upstream_connect_ms": number, "upstream_response_ms": number, "waf": null, "waf_rules": []any{},
			"cache": null, "bytes_in": 0.0, "bytes_out": 2.0, "duration_ms": number, "client_ip": "127.0.0.1",
		}},
		{"POST with a body, HTTP/1.0", func(t *testing.T, id string) {
			raw(t, "POST /post HTTP/1.0\r\nHost: app.test\r\nContent-Length: 5\r\nX-Request-Id: "+id+"\r\n\r\nhello")
		}, map[string]any{"protocol": "HTTP/1.0", "method": "POST", "bytes_in": 5.0, "user_agent": "", "referer": "", "query": ""}},
		{"chunked body read whole", func(t *testing.T, id string) {
			raw(t, "POST /chunked HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nX-Request-Id: "+id+"\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")
		}, map[string]any{"bytes_in": 7.0, "status": 200.0}},
		{"upstream 503", func(t *testing.T, id string) {
			raw(t, "GET /fail HTTP/1.1\r\nHost: app.test\r\nX-Request-Id: "+id+"\r\n\r\n")
		}, map[string]any{"status": 503.0, "upstream_status": 503.0, "upstream_tries": 1.0, "bytes_out": 4.0}},
		{"WAF detect", func(t *testing.T, id string) {
			raw(t, "GET /detect/watched HTTP/1.1\r\nHost: app.test\r\nX-Request-Id: "+id+"\r\n\r\n")
		}, map[string]any{"status": 200.0, "route": "detect", "waf": "detected", "waf_rules": []any{10002.0, 10003.0}, "upstream_status": 200.0}},
		{"WAF pass", func(t *testing.T, id string) {
			raw(t, "GET /clean HTTP/1.1\r\nHost: app.test\r\nX-Request-Id: "+id+"\r\n\r\n")
		}, map[string]any{"status": 200.0, "waf": "pass", "waf_rules": []any{}}},
		{"WAF block", func(t *testing.T, id string) {
			raw(t, "GET /blocked HTTP/1.1\r\nHost: app.test\r\nX-Request-Id: "+id+"\r\n\r\n")
		}, map[string]any{"status": 403.0, "route": "blocked", "waf": "blocked", "waf_rules": []any{10001.0},
			"upstream": "", "target": "", "upstream_status": null, "upstream_tries": 0.0, "upstream_connect_ms": null,
			"upstream_response_ms": null}},
		{"no route", func(t *testing.T, id string) {
			raw(t, "GET /x HTTP/1.1\r\nHost: other.test\r\nX-Request-Id: "+id+"\r\n\r\n")
		}, map[string]any{"status": 404.0, "route": null, "upstream": "", "upstream_tries": 0.0, "upstream_status": null}},
		{"connect failure retried", func(t *testing.T, id string) {
			for i := range 2 { // round robin: one of the two meets the dead target first
				raw(t, fmt.Sprintf("GET /flaky HTTP/1.1\r\nHost: app.test\r\nX-Request-Id: %s-%d\r\n\r\n", id, i))
			}
		}, nil},
		{"TLS, HTTP/1.1", tls11get, map[string]any{"listener": "secure", "protocol": "HTTP/1.1", "tls_version": "TLSv1.3", "host": "log.example.com"}},
		{"TLS, HTTP/2", h2get, map[string]any{"listener": "secure", "protocol": "HTTP/2.0", "tls_version": "TLSv1.3", "status": 200.0, "upstream_status": 200.0}},
	}
	for i, tc := range cases {
		tc.send(t, fmt.Sprintf("case-%d", i))
	}
	p.stop(t) // flushes the log
	lines := readLogLines(t, logPath)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("case-%d", i)
			if tc.want == nil { // connect failure retried
				retried := false
				for j := range 2 {
					l := lineByID(lines, fmt.Sprintf("%s-%d", id, j))
					if l == nil {
						t.Fatalf("no line for %s-%d", id, j)
					}
					if l["status"] != 200.0 || l["target"] != "http://"+up.addr() {
						t.Errorf("line %d: status %v target %v; want 200 from the live target", j, l["status"], l["target"])
					}
					switch n := l["upstream_tries"]; n {
					case 2.0:
						retried = true
					case 1.0:
					default:
						t.Errorf("line %d: upstream_tries %v; want 1 or 2", j, n)
					}
				}
				if !retried {
					t.Error("no line with upstream_tries 2; want the dead target tried first at least once")
				}
				return
			}
			l := lineByID(lines, id)
			if l == nil {
				t.Fatalf("no line with request_id %s among %d", id, len(lines))
			}
			for k, want := range tc.want {
				got, ok := l[k]
				switch {
				case !ok:
					t.Errorf("%s: missing", k)
				case want == number:
					if f, isNum := got.(float64); !isNum || f < 0 {
						t.Errorf("%s: got %#v; want a number of milliseconds >= 0", k, got)
					}
				case fmt.Sprint(got) != fmt.Sprint(want):
					t.Errorf("%s: got %#v; want %#v", k, got, want)
				}
			}
			if len(l) != len(config.AccessLogFields) {
				t.Errorf("got %d fields; want all %d", len(l), len(config.AccessLogFields))
			}
			ts, _ := l["time"].(string)
			if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || !strings.HasSuffix(ts, "Z") {
				t.Errorf("time %q: %v; want RFC 3339 in UTC", ts, err)
			}
		})
	}
}

// TestE2EAccessLogFieldsChosen: fields picks the fields of a line, which
// come in the reference's order whatever the list's; a reload changes them
// (and the format) without reopening the file.
func TestE2EAccessLogFieldsChosen(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access.log")
	up := okUpstream(t)
	yaml := func(accessLog string) string {
		return fmt.Sprintf(`
listeners:
  web: {address: "127.0.0.1:0"}
upstreams:
  app: {targets: [{url: "http://%s"}]}
routes:
  - upstream: app
access_log: {path: %q, %s}
`, up.addr(), logPath, accessLog)
	}
	p := startProxy(t, yaml("fields: [duration_ms, status, request_id, upstream_response_ms]"))
	rawGet(t, p.addr, "app.test", "/one", "X-Request-Id: one")
	reload := func(accessLog string) {
		t.Helper()
		cfg, err := config.Parse([]byte(yaml(accessLog)), "test.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.srv.Reload(cfg); err != nil {
			t.Fatal(err)
		}
	}
	reload("format: combined")
	rawGet(t, p.addr, "app.test", "/two?token=x&a=\"b\"", "X-Request-Id: two", "User-Agent: ua \"1\"", "Referer: r")
	reload("fields: [bytes_out]")
	rawGet(t, p.addr, "app.test", "/three", "X-Request-Id: three")
	p.stop(t)

	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines; want 3:\n%s", len(lines), b)
	}
	keys := regexp.MustCompile(`"([a-z_]+)":`)
	var got []string
	for _, m := range keys.FindAllStringSubmatch(lines[0], -1) {
		got = append(got, m[1])
	}
	if want := "request_id status upstream_response_ms duration_ms"; strings.Join(got, " ") != want {
		t.Errorf("fields of the first line: %v; want %s (the reference's order)\n%s", got, want, lines[0])
	}
	clf := regexp.MustCompile(`^127\.0\.0\.1 - - \[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000\] "GET /two\?token=\[redacted\]&a=\\x22b\\x22 HTTP/1\.1" 200 2 "r" "ua \\x221\\x22"$`)
	if !clf.MatchString(lines[1]) {
		t.Errorf("combined line after a reload:\n%s\nwant it to match %s", lines[1], clf)
	}
	if lines[2] != `{"bytes_out":2}` {
		t.Errorf("third line %s; want {\"bytes_out\":2}", lines[2])
	}
}

// TestCombinedSuffix: the bytes sent land before the Referer and
// User-Agent whatever they hold (escaped quotes included).
func TestCombinedSuffix(t *testing.T) {
	tests := []struct {
		name, prefix string
		n            int64
		want         string
	}{
		{"empty tail", `c - - [t] "GET / HTTP/1.1" 200 "" ""`, 0, `c - - [t] "GET / HTTP/1.1" 200 0 "" ""` + "\n"},
		{"escaped quotes", `c - - [t] "GET /\x22 HTTP/1.1" 404 "r\x22" "u a"`, 12345, `c - - [t] "GET /\x22 HTTP/1.1" 404 12345 "r\x22" "u a"` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(appendCombinedSuffix([]byte(tt.prefix), tt.n)); got != tt.want {
				t.Errorf("got %q; want %q", got, tt.want)
			}
		})
	}
}
