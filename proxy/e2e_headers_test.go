package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// requestHopHeaders are the hop-by-hop request headers that must never
// reach an upstream.
var requestHopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Upgrade", "Proxy-Authorization"}

// TestE2EProxyHeaders checks what the upstream receives: Host kept, the
// X-Forwarded-* headers, and the request id.
func TestE2EProxyHeaders(t *testing.T) {
	up := startRawUpstream(t, func(req *rawMessage) (string, bool) {
		return okResponse("ok"), false
	})
	p := startProxy(t, oneUpstreamConfig(up.addr(), "", "", ""))

	long128 := strings.Repeat("a", 128)
	cases := []struct {
		name    string
		host    string
		headers []string
		want    map[string][]string // field -> every value at the upstream, in order
		// reqID: "" = must be a fresh UUID v4; else the id expected.
		reqID string
	}{
		{
			name: "plain request",
			host: "app.test",
			want: map[string][]string{
				"Host": {"app.test"}, "X-Forwarded-For": {"127.0.0.1"},
				"X-Forwarded-Proto": {"http"}, "X-Forwarded-Host": {"app.test"},
			},
		},
		{
			name: "host with port kept",
			host: "App.Test:8080",
			// Host names are case-insensitive: fasthttp writes the
			// host in lower case, which is equivalent.
			want: map[string][]string{
				"Host": {"app.test:8080"}, "X-Forwarded-Host": {"App.Test:8080"},
			},
		},
		{
			name:    "xff from an untrusted client replaced",
			host:    "app.test",
			headers: []string{"X-Forwarded-For: 203.0.113.7"},
			want:    map[string][]string{"X-Forwarded-For": {"127.0.0.1"}},
		},
		{
			name:    "several xff lines from an untrusted client replaced by one",
			host:    "app.test",
			headers: []string{"X-Forwarded-For: 198.51.100.1", "X-Forwarded-For: 203.0.113.7, 192.0.2.9"},
			want:    map[string][]string{"X-Forwarded-For": {"127.0.0.1"}},
		},
		{
			name:    "xff lower case name replaced",
			host:    "app.test",
			headers: []string{"x-forwarded-for: 203.0.113.7"},
			want:    map[string][]string{"X-Forwarded-For": {"127.0.0.1"}},
		},
		{
			name:    "forwarded proto and host from an untrusted client replaced",
			host:    "app.test",
			headers: []string{"X-Forwarded-Proto: https", "X-Forwarded-Host: evil.test"},
			want: map[string][]string{
				"X-Forwarded-Proto": {"http"}, "X-Forwarded-Host": {"app.test"},
			},
		},
		{
			name:    "valid request id kept",
			host:    "app.test",
			headers: []string{"X-Request-Id: abc-123_x.y:z"},
			reqID:   "abc-123_x.y:z",
		},
		{
			name:    "request id of 128 characters kept",
			host:    "app.test",
			headers: []string{"X-Request-Id: " + long128},
			reqID:   long128,
		},
		{
			name: "request id generated when absent",
			host: "app.test",
		},
		{
			name:    "request id with spaces replaced",
			host:    "app.test",
			headers: []string{"X-Request-Id: a b c"},
		},
		{
			name:    "request id of 300 characters replaced",
			host:    "app.test",
			headers: []string{"X-Request-Id: " + strings.Repeat("b", 300)},
		},
		{
			name:    "request id with a quote replaced",
			host:    "app.test",
			headers: []string{`X-Request-Id: a"b`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := rawGet(t, p.addr, tc.host, "/h", tc.headers...)
			if resp.status() != 200 || string(resp.body) != "ok" {
				t.Fatalf("response: got %d %q; want 200 \"ok\"", resp.status(), resp.body)
			}
			got := up.last()
			for name, want := range tc.want {
				if vs := got.values(name); !slices.Equal(vs, want) {
					t.Errorf("upstream %s: got %q; want %q", name, vs, want)
				}
			}
			ids := got.values("X-Request-Id")
			if len(ids) != 1 {
				t.Fatalf("upstream X-Request-Id: got %q; want exactly one", ids)
			}
			if tc.reqID != "" {
				if ids[0] != tc.reqID {
					t.Errorf("upstream X-Request-Id: got %q; want %q", ids[0], tc.reqID)
				}
			} else if !uuidV4.MatchString(ids[0]) {
				t.Errorf("upstream X-Request-Id: got %q; want a UUID v4", ids[0])
			}
			if echoed, n := resp.get("X-Request-Id"); n != 1 || echoed != ids[0] {
				t.Errorf("response X-Request-Id: got %q (%d fields); want %q once", echoed, n, ids[0])
			}
		})
	}

	t.Run("generated ids differ", func(t *testing.T) {
		a, _ := rawGet(t, p.addr, "app.test", "/").get("X-Request-Id")
		b, _ := rawGet(t, p.addr, "app.test", "/").get("X-Request-Id")
		if a == b {
			t.Errorf("two generated ids: got %q twice; want different ids", a)
		}
	})
}

// TestE2ERequestIDOnProxyAnswers checks the id on answers Rampart makes
// itself (404 and direct answers).
func TestE2ERequestIDOnProxyAnswers(t *testing.T) {
	p := startProxy(t, `
listeners:
  web:
    address: 127.0.0.1:0
routes:
  - match: {host: r.test}
    respond: {body: direct}
access_log:
  path: "off"
`)
	cases := []struct {
		name, host string
		headers    []string
		want       string // "" = a UUID v4
	}{
		{"404 keeps a valid id", "none.test", []string{"X-Request-Id: id-1"}, "id-1"},
		{"404 generates", "none.test", nil, ""},
		{"respond keeps a valid id", "r.test", []string{"X-Request-Id: id-2"}, "id-2"},
		{"respond generates", "r.test", nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := rawGet(t, p.addr, tc.host, "/", tc.headers...)
			got, n := resp.get("X-Request-Id")
			switch {
			case n != 1:
				t.Errorf("X-Request-Id fields: got %d; want 1", n)
			case tc.want != "" && got != tc.want:
				t.Errorf("X-Request-Id: got %q; want %q", got, tc.want)
			case tc.want == "" && !uuidV4.MatchString(got):
				t.Errorf("X-Request-Id: got %q; want a UUID v4", got)
			}
		})
	}
}

// TestE2EHopByHopRequest checks that hop-by-hop request headers, and those
// named by Connection, never reach the upstream, while end-to-end ones do.
func TestE2EHopByHopRequest(t *testing.T) {
	up := startRawUpstream(t, func(req *rawMessage) (string, bool) {
		return okResponse("ok"), false
	})
	p := startProxy(t, oneUpstreamConfig(up.addr(), "", "", ""))

	cases := []struct {
		name    string
		headers []string
		body    string
		gone    []string          // must not reach the upstream
		kept    map[string]string // must reach it with this value
	}{
		{
			name: "every hop-by-hop header",
			headers: []string{
				"Connection: keep-alive, X-Secret", "Keep-Alive: timeout=5", "Proxy-Connection: keep-alive",
				"TE: trailers", "Trailer: X-Checksum", "Proxy-Authorization: Basic dTpw",
				"X-Secret: s3cret", "X-Keep: k",
			},
			gone: append([]string{"X-Secret"}, requestHopHeaders...),
			kept: map[string]string{"X-Keep": "k"},
		},
		{
			name:    "upgrade that is not websocket",
			headers: []string{"Connection: Upgrade", "Upgrade: h2c", "HTTP2-Settings: AAMAAABkAAQAAP__", "X-Keep: k"},
			gone:    requestHopHeaders,
			kept:    map[string]string{"X-Keep": "k", "HTTP2-Settings": "AAMAAABkAAQAAP__"},
		},
		{
			name:    "several Connection lines",
			headers: []string{"Connection: X-A", "Connection: X-B, X-C", "X-A: 1", "X-B: 2", "X-C: 3", "X-D: 4"},
			gone:    []string{"Connection", "X-A", "X-B", "X-C"},
			kept:    map[string]string{"X-D": "4"},
		},
		{
			name:    "Connection naming lower case fields",
			headers: []string{"connection: x-secret", "X-Secret: s", "x-keep: k"},
			gone:    []string{"Connection", "X-Secret"},
			kept:    map[string]string{"X-Keep": "k"},
		},
		{
			name:    "Connection cannot remove framing or host",
			headers: []string{"Connection: Host, Content-Length, X-Request-Id", "X-Request-Id: keep-me", "Content-Length: 5"},
			body:    "hello",
			gone:    []string{"Connection"},
			kept:    map[string]string{"Host": "app.test", "Content-Length": "5", "X-Request-Id": "keep-me"},
		},
		{
			name:    "client Connection close is not forwarded",
			headers: []string{"Connection: close"},
			gone:    []string{"Connection"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := "POST /hop HTTP/1.1\r\nHost: app.test\r\n" + strings.Join(tc.headers, "\r\n") + "\r\n"
			if !strings.Contains(strings.ToLower(req), "content-length") {
				req += "Content-Length: 0\r\n"
			}
			req += "\r\n" + tc.body
			resp := dialRaw(t, p.addr).roundTrip(req)
			if resp.status() != 200 {
				t.Fatalf("status: got %d; want 200 (body %q)", resp.status(), resp.body)
			}
			got := up.last()
			for _, name := range tc.gone {
				if vs := got.values(name); len(vs) > 0 {
					t.Errorf("upstream got %s: %q; want it removed", name, vs)
				}
			}
			for name, want := range tc.kept {
				if vs := got.values(name); len(vs) != 1 || vs[0] != want {
					t.Errorf("upstream %s: got %q; want [%q]", name, vs, want)
				}
			}
			if string(got.body) != tc.body {
				t.Errorf("upstream body: got %q; want %q", got.body, tc.body)
			}
		})
	}
}

// TestE2EHopByHopResponse checks that hop-by-hop headers of an upstream
// response, and those its Connection names, never reach the client, in
// whatever case the upstream writes their names (the response's names are
// relayed as sent, not normalized); that the upstream's X-Request-Id, in
// any case, is kept rather than joined by a second one; and that the client
// gets one Date.
func TestE2EHopByHopResponse(t *testing.T) {
	for _, tc := range []struct {
		name string
		fix  func(string) string
	}{
		{"canonical names", func(s string) string { return s }},
		{"lower-case names", strings.ToLower},
		{"upper-case names", strings.ToUpper},
	} {
		t.Run(tc.name, func(t *testing.T) {
			field := func(name, value string) string { return tc.fix(name) + ": " + value + "\r\n" }
			up := startRawUpstream(t, func(req *rawMessage) (string, bool) {
				return "HTTP/1.1 200 OK\r\n" +
					field("Connection", "keep-alive, X-Internal") +
					field("Keep-Alive", "timeout=5, max=100") +
					field("Proxy-Connection", "keep-alive") +
					field("Proxy-Authenticate", "Basic realm=x") +
					field("Trailer", "X-Checksum") +
					field("Upgrade", "h2c") +
					field("Te", "trailers") +
					field("X-Internal", "secret") +
					field("X-Public", "ok") +
					field("X-Request-Id", "from-upstream") +
					field("Date", "Mon, 01 Jan 2024 00:00:00 GMT") +
					field("Content-Length", "4") + "\r\nbody", false
			})
			p := startProxy(t, oneUpstreamConfig(up.addr(), "", "", ""))
			resp := rawGet(t, p.addr, "app.test", "/")
			if resp.status() != 200 || string(resp.body) != "body" {
				t.Fatalf("response: got %d %q; want 200 \"body\"", resp.status(), resp.body)
			}
			for _, name := range []string{"Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Trailer", "Upgrade", "Te", "X-Internal"} {
				if vs := resp.values(name); len(vs) > 0 {
					t.Errorf("client got %s: %q; want it removed", name, vs)
				}
			}
			// A Connection header the proxy writes itself may only carry its own
			// options, never the upstream's list.
			for _, v := range resp.values("Connection") {
				if strings.Contains(strings.ToLower(v), "x-internal") {
					t.Errorf("client got Connection: %q; want the upstream's list removed", v)
				}
			}
			if v, _ := resp.get("X-Public"); v != "ok" {
				t.Errorf("X-Public: got %q; want \"ok\"", v)
			}
			if vs := resp.values("X-Request-Id"); len(vs) != 1 || vs[0] != "from-upstream" {
				t.Errorf("X-Request-Id: got %q; want the upstream's alone", vs)
			}
			// One Date, the proxy's (as nginx does), never two.
			if vs := resp.values("Date"); len(vs) != 1 || vs[0] == "Mon, 01 Jan 2024 00:00:00 GMT" {
				t.Errorf("Date: got %q; want one, the proxy's", vs)
			}
		})
	}
}

// TestE2EUpstreamConnectionClose checks that an upstream closing its
// connection does not close the client's keep-alive connection.
func TestE2EUpstreamConnectionClose(t *testing.T) {
	up := startRawUpstream(t, func(req *rawMessage) (string, bool) {
		return "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", true
	})
	p := startProxy(t, oneUpstreamConfig(up.addr(), "", "", ""))
	c := dialRaw(t, p.addr)
	for i := 0; i < 2; i++ {
		resp := c.roundTrip("GET /" + fmt.Sprint(i) + " HTTP/1.1\r\nHost: app.test\r\n\r\n")
		if resp.status() != 200 || string(resp.body) != "ok" {
			t.Fatalf("request %d: got %d %q; want 200 \"ok\"", i, resp.status(), resp.body)
		}
		for _, v := range resp.values("Connection") {
			if strings.EqualFold(v, "close") {
				t.Errorf("request %d: client got Connection: close; want the client connection kept", i)
			}
		}
	}
	if got := up.conns.Load(); got != 2 {
		t.Errorf("upstream connections: got %d; want 2 (one per closed exchange)", got)
	}
	if got := up.count(); got != 2 {
		t.Errorf("upstream requests: got %d; want 2", got)
	}
}

// TestE2EClientConnectionClose checks that a client's Connection: close is
// honoured on the downstream connection.
func TestE2EClientConnectionClose(t *testing.T) {
	up := startRawUpstream(t, func(req *rawMessage) (string, bool) { return okResponse("ok"), false })
	p := startProxy(t, oneUpstreamConfig(up.addr(), "", "", ""))
	c := dialRaw(t, p.addr)
	resp := c.roundTrip("GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
	if resp.status() != 200 {
		t.Fatalf("status: got %d; want 200", resp.status())
	}
	if !c.closedByPeer(2 * time.Second) {
		t.Errorf("client connection after Connection: close: got open; want closed by the proxy")
	}
}

// accessLine is the part of an access log line these tests read.
type accessLine struct {
	RequestID string `json:"request_id"`
	ClientIP  string `json:"client_ip"`
	Listener  string `json:"listener"`
	Method    string `json:"method"`
	Host      string `json:"host"`
	Path      string `json:"path"`
	Status    int    `json:"status"`
	Route     string `json:"route"`
	Upstream  string `json:"upstream"`
	BytesOut  int64  `json:"bytes_out"`
}

// readAccessLog parses every line of an access log file.
func readAccessLog(t *testing.T, path string) []accessLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []accessLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l accessLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("access log line %q: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	return lines
}

// TestE2ETrustedProxies checks client_ip in the access log and the
// forwarded headers with and without a trusted peer.
func TestE2ETrustedProxies(t *testing.T) {
	up := startRawUpstream(t, func(req *rawMessage) (string, bool) { return okResponse("hello"), false })
	cases := []struct {
		name      string
		trusted   string
		headers   []string
		wantIP    string
		wantXFF   string
		wantProto string
		wantHost  string
	}{
		{
			name:    "trusted peer: client is the XFF hop",
			trusted: "trusted_proxies: [127.0.0.1]",
			headers: []string{"X-Forwarded-For: 203.0.113.7", "X-Forwarded-Proto: https", "X-Forwarded-Host: public.test"},
			wantIP:  "203.0.113.7", wantXFF: "203.0.113.7, 127.0.0.1", wantProto: "https", wantHost: "public.test",
		},
		{
			name:    "trusted peer: right-most untrusted hop",
			trusted: "trusted_proxies: [127.0.0.0/8, 10.0.0.0/8]",
			headers: []string{"X-Forwarded-For: 198.51.100.1, 203.0.113.7, 10.1.2.3"},
			wantIP:  "203.0.113.7", wantXFF: "198.51.100.1, 203.0.113.7, 10.1.2.3, 127.0.0.1", wantProto: "http", wantHost: "app.test",
		},
		{
			name:    "untrusted peer: client is the peer",
			trusted: "trusted_proxies: [10.0.0.0/8]",
			headers: []string{"X-Forwarded-For: 203.0.113.7", "X-Forwarded-Proto: https", "X-Forwarded-Host: public.test"},
			wantIP:  "127.0.0.1", wantXFF: "127.0.0.1", wantProto: "http", wantHost: "app.test",
		},
		{
			name:   "no trusted proxies",
			wantIP: "127.0.0.1", wantXFF: "127.0.0.1", wantProto: "http", wantHost: "app.test",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			logPath := filepath.Join(t.TempDir(), "access.jsonl")
			yaml := strings.Replace(oneUpstreamConfig(up.addr(), "", "", tc.trusted),
				`path: "off"`, fmt.Sprintf("path: %q", logPath), 1)
			p := startProxy(t, yaml)
			resp := rawGet(t, p.addr, "app.test", "/log?q=1", append(tc.headers, "X-Request-Id: log-1")...)
			if resp.status() != 200 {
				t.Fatalf("status: got %d; want 200", resp.status())
			}
			got := up.last()
			if v, _ := got.get("X-Forwarded-For"); v != tc.wantXFF {
				t.Errorf("upstream X-Forwarded-For: got %q; want %q", v, tc.wantXFF)
			}
			if v, _ := got.get("X-Forwarded-Proto"); v != tc.wantProto {
				t.Errorf("upstream X-Forwarded-Proto: got %q; want %q", v, tc.wantProto)
			}
			if v, _ := got.get("X-Forwarded-Host"); v != tc.wantHost {
				t.Errorf("upstream X-Forwarded-Host: got %q; want %q", v, tc.wantHost)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := p.shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			lines := readAccessLog(t, logPath)
			if len(lines) != 1 {
				t.Fatalf("access log lines: got %d; want 1", len(lines))
			}
			l := lines[0]
			want := accessLine{RequestID: "log-1", ClientIP: tc.wantIP, Listener: "web", Method: "GET",
				Host: "app.test", Path: "/log", Status: 200, Route: "all", Upstream: "app", BytesOut: 5}
			if l != want {
				t.Errorf("access log line: got %+v; want %+v", l, want)
			}
		})
	}
}

// TestE2EAbsoluteFormTarget checks a request whose target is in absolute
// form: the authority in the target is the host (RFC 9112 section 3.2.2),
// for routing, for Host and for X-Forwarded-Host alike.
func TestE2EAbsoluteFormTarget(t *testing.T) {
	up := startRawUpstream(t, func(req *rawMessage) (string, bool) { return okResponse("upstream"), false })
	p := startProxy(t, fmt.Sprintf(`
listeners:
  web:
    address: 127.0.0.1:0
upstreams:
  app:
    targets:
      - url: http://%s
routes:
  - name: other
    match: {host: other.test}
    upstream: app
  - name: header-host
    match: {host: app.test}
    respond: {body: header-host}
access_log:
  path: "off"
`, up.addr()))
	resp := rawGet(t, p.addr, "app.test", "http://other.test/abs?q=1")
	if resp.status() != 200 || string(resp.body) != "upstream" {
		t.Fatalf("response: got %d %q; want 200 \"upstream\" (routed by the target's authority)", resp.status(), resp.body)
	}
	got := up.last()
	if !strings.HasPrefix(got.first, "GET /abs?q=1 ") {
		t.Errorf("upstream request line: got %q; want origin form GET /abs?q=1", got.first)
	}
	host, _ := got.get("Host")
	xfh, _ := got.get("X-Forwarded-Host")
	if host != "other.test" || xfh != "other.test" {
		t.Errorf("upstream Host and X-Forwarded-Host: got %q and %q; want both \"other.test\"", host, xfh)
	}
}
