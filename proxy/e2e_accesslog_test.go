package proxy

// The access log's request_uri and query: the request target as received,
// its named parameters hidden, escaped so that a hostile target cannot
// break the JSON line.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// uriLine is the part of an access log line these tests read.
type uriLine struct {
	Path       string `json:"path"`
	RequestURI string `json:"request_uri"`
	Query      string `json:"query"`
	Status     int    `json:"status"`
	// has says which fields the line had at all.
	has map[string]json.RawMessage
}

// readURILines parses every line of an access log file, failing t on a
// line that is not valid JSON.
func readURILines(t *testing.T, path string) []uriLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []uriLine
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l uriLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("access log line %q: %v", sc.Text(), err)
		}
		if err := json.Unmarshal(sc.Bytes(), &l.has); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, l)
	}
	return lines
}

// TestE2EAccessLogRequestURI sends requests whose targets have queries,
// credentials in them, encoded paths and hostile bytes, and reads each
// line of the access log: request_uri is the target as sent and query its
// query, each with the values of the parameters to hide replaced, and the
// line is valid JSON whatever the target holds.
func TestE2EAccessLogRequestURI(t *testing.T) {
	up := okUpstream(t)
	tests := []struct {
		name      string
		redact    string // the access_log redact_query line; "" for the default
		target    string // as sent
		wantURI   string // as logged, once decoded from JSON
		wantQuery string
	}{
		{"no query", "", "/plain/path", "/plain/path", ""},
		{"query kept", "", "/search?q=hello%20world&page=2", "/search?q=hello%20world&page=2", "q=hello%20world&page=2"},
		{"empty query", "", "/e?", "/e?", ""},
		{"default names hidden", "", "/cb?code=abc&state=xyz&access_token=t0k&API_KEY=k3y",
			"/cb?code=[redacted]&state=xyz&access_token=[redacted]&API_KEY=[redacted]",
			"code=[redacted]&state=xyz&access_token=[redacted]&API_KEY=[redacted]"},
		{"encoded name hidden", "", "/x?%74oken=a&to%6Ben=b&pass+word=c&password=d",
			"/x?%74oken=[redacted]&to%6Ben=[redacted]&pass+word=c&password=[redacted]",
			"%74oken=[redacted]&to%6Ben=[redacted]&pass+word=c&password=[redacted]"},
		{"value with = and empty parts", "", "/x?token=a=b&&token&x=1&",
			"/x?token=[redacted]&&token&x=1&", "token=[redacted]&&token&x=1&"},
		{"S3 pre-signed", "", "/bucket/obj?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=sig9zz&X-Amz-Expires=60",
			"/bucket/obj?X-Amz-Credential=[redacted]&X-Amz-Signature=[redacted]&X-Amz-Expires=60",
			"X-Amz-Credential=[redacted]&X-Amz-Signature=[redacted]&X-Amz-Expires=60"},
		{"configured names only", "redact_query: [session, Ticket]", "/x?session=s1&TICKET=t1&token=kept",
			"/x?session=[redacted]&TICKET=[redacted]&token=kept", "session=[redacted]&TICKET=[redacted]&token=kept"},
		{"empty list hides nothing", "redact_query: []", "/x?token=kept&password=kept",
			"/x?token=kept&password=kept", "token=kept&password=kept"},
		{"encoded path as sent", "", "/api/%2e%2e/users?id=1", "/api/%2e%2e/users?id=1", "id=1"},
		{"absolute form", "", "http://app.test/abs?api_key=k&v=1", "http://app.test/abs?api_key=[redacted]&v=1", "api_key=[redacted]&v=1"},
		{"quotes and backslashes", "", `/q"uo\te?a="b\"&token="x"`, `/q"uo\te?a="b\"&token=[redacted]`, `a="b\"&token=[redacted]`},
		{"invalid UTF-8", "", "/bad\xff\xfe?v=\xc3(&token=\xff", "/bad\ufffd\ufffd?v=\ufffd(&token=[redacted]", "v=\ufffd(&token=[redacted]"},
		{"valid UTF-8 kept", "", "/caf\xc3\xa9?name=\xe2\x9c\x93", "/caf\u00e9?name=\u2713", "name=\u2713"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logPath := filepath.Join(t.TempDir(), "access.log")
			p := startProxy(t, fmt.Sprintf(`
listeners:
  web: {address: "127.0.0.1:0"}
upstreams:
  app: {targets: [{url: "http://%s"}]}
routes:
  - name: all
    upstream: app
access_log:
  path: %q
  %s
`, up.addr(), logPath, tt.redact))
			c := dialRaw(t, p.addr)
			if _, err := io.WriteString(c.conn, "GET "+tt.target+" HTTP/1.1\r\nHost: app.test\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			resp, err := readRawResponse(c.br, "GET")
			if err != nil {
				t.Fatalf("response: %v", err)
			}
			p.stop(t) // flushes the access log
			lines := readURILines(t, logPath)
			if len(lines) != 1 {
				t.Fatalf("access log: got %d lines; want 1", len(lines))
			}
			l := lines[0]
			if l.Status != resp.status() {
				t.Errorf("status: got %d; want %d (the answer's)", l.Status, resp.status())
			}
			for _, f := range []string{"request_uri", "query", "path"} {
				if _, ok := l.has[f]; !ok {
					t.Errorf("access log line: no %q field; want it", f)
				}
			}
			if l.RequestURI != tt.wantURI {
				t.Errorf("request_uri: got %q; want %q", l.RequestURI, tt.wantURI)
			}
			if l.Query != tt.wantQuery {
				t.Errorf("query: got %q; want %q", l.Query, tt.wantQuery)
			}
			b, _ := os.ReadFile(logPath)
			for _, secret := range []string{"t0k", "k3y", "AKIA", "sig9zz", `"x"`} {
				if strings.Contains(string(b), secret) {
					t.Errorf("access log holds %q: %s", secret, b)
				}
			}
		})
	}
}

// TestE2EAccessLogStreamedRequestURI: the line of a streamed response,
// written by its relay when the body has been sent, has the same fields.
func TestE2EAccessLogStreamedRequestURI(t *testing.T) {
	up := startRawUpstream(t, func(*rawMessage) (string, bool) {
		body := strings.Repeat("b", 200<<10) // beyond smallBody: streamed
		return okResponse(body), false
	})
	logPath := filepath.Join(t.TempDir(), "access.log")
	p := startProxy(t, fmt.Sprintf(`
listeners:
  web: {address: "127.0.0.1:0"}
upstreams:
  app: {targets: [{url: "http://%s"}]}
routes:
  - upstream: app
access_log: {path: %q}
`, up.addr(), logPath))
	c := dialRaw(t, p.addr)
	_ = c.conn.SetDeadline(time.Now().Add(e2eTimeout))
	if resp := c.roundTrip("GET /big?password=hunter2&n=1 HTTP/1.1\r\nHost: x\r\n\r\n"); resp.status() != 200 {
		t.Fatalf("got %d; want 200", resp.status())
	}
	p.stop(t)
	lines := readURILines(t, logPath)
	if len(lines) != 1 {
		t.Fatalf("access log: got %d lines; want 1", len(lines))
	}
	if got, want := lines[0].RequestURI, "/big?password=[redacted]&n=1"; got != want {
		t.Errorf("request_uri: got %q; want %q", got, want)
	}
	if got, want := lines[0].Query, "password=[redacted]&n=1"; got != want {
		t.Errorf("query: got %q; want %q", got, want)
	}
}
