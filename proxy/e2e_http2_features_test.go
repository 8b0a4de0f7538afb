package proxy

// Every route feature over HTTP/2, end to end: x/net's HTTP/2 client over
// TLS (ALPN h2) and h2c through Rampart to HTTP/1.1 upstreams, each
// feature checked on both, as the HTTP/1.1 tests check it.

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/internal/testcert"
)

// headerUpstream answers 200 with the request's header fields as a JSON
// object (name: values), and sets a few response fields of its own,
// hop-by-hop ones included.
func headerUpstream(t *testing.T, name string) *httpUpstream {
	return startHTTPUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		h := r.Header.Clone()
		h.Set("Host", r.Host)
		h.Set(":method", r.Method)
		h.Set(":proto", r.Proto)
		w.Header().Set("X-Served-By", name)
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(h)
	}))
}

// fields decodes a headerUpstream body.
func fields(t *testing.T, body string) http.Header {
	t.Helper()
	var h http.Header
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatalf("upstream body %q: %v", body, err)
	}
	return h
}

// featureEnv is a proxy with one route per feature on both listeners.
type featureEnv struct {
	*h2Env
	access  string // the access log file
	dead    string // an address nothing listens on
	up      *httpUpstream
	clients []*h2Client
}

func startFeatureProxy(t *testing.T) *featureEnv {
	t.Helper()
	dir := t.TempDir()
	ca, _ := h2Certificate(t, dir)
	cf, kf := ca.Issue(t, "h2", time.Time{}, false, "example.com", "*.example.com", "127.0.0.1").Write(t, dir, "srv")
	clientCA := testcert.NewCA(t, "Client CA")
	clientCAFile := clientCA.WriteCA(t, dir, "client-ca")
	fe := &featureEnv{access: filepath.Join(dir, "access.log"), dead: freeAddr(t)}
	fe.up = headerUpstream(t, "app")
	a, b := headerUpstream(t, "a"), headerUpstream(t, "b")
	rest := fmt.Sprintf(`
admin: {address: 127.0.0.1:0}
upstreams:
  app: {targets: [{url: "http://%[1]s"}]}
  flaky:
    retries: 1
    balancer: round_robin
    targets: [{url: "http://%[2]s"}, {url: "http://%[1]s"}]
  a: {targets: [{url: "http://%[3]s"}]}
  b: {targets: [{url: "http://%[4]s"}]}
waf:
  block: {mode: block}
rate_limits:
  tight: {key: "header:X-RL-Key", rate: 2/m, burst: 2}
routes:
  - {name: host, match: {host: api.example.com}, respond: {body: "api host"}}
  - {name: post-only, match: {path_prefix: /only-post, methods: [POST]}, respond: {status: 201, body: "posted"}}
  - {name: by-header, match: {path_prefix: /hdr, headers: {X-Route: "yes"}}, respond: {body: "header matched"}}
  - {name: waf, match: {path_prefix: /waf}, upstream: app, waf: block}
  - {name: limited, match: {path_prefix: /rl}, respond: {body: "allowed"}, rate_limit: tight}
  - {name: secure, match: {path_prefix: /secure}, upstream: app, redirect_https: true, hsts: true}
  - {name: teapot, match: {path_prefix: /respond}, respond: {status: 418, body: "short and stout", content_type: text/x-tea}}
  - {name: retry, match: {path_prefix: /retry}, upstream: flaky}
  - {name: split, match: {path_prefix: /split}, split: [{upstream: a, weight: 1}, {upstream: b, weight: 1}]}
  - {name: all, upstream: app}
access_log: {path: %[5]q}
`, fe.up.addr(), fe.dead, a.addr(), b.addr(), fe.access)
	block := staticTLSYAML("client_ca_file: "+clientCAFile+"\nclient_auth: verify_if_given", [2]string{cf, kf})
	limits := "limits: {max_body_size: 1KiB}"
	p := startProxy(t, h2YAML(block, limits, limits, rest))
	fe.h2Env = &h2Env{p: p, ca: ca, roots: testcert.Pool(ca.PEM), dir: dir, tlsAddr: p.addr, h2cAddr: p.srv.Addr("plain")}
	fe.clients = fe.h2Env.clients(t)
	// A client with a certificate of the client CA, for the subject.
	leaf := clientCA.Issue(t, "alice", time.Time{}, true)
	cert := leaf.TLSCert(t)
	mtls := &h2Client{name: "h2+mtls", scheme: "https", addr: fe.tlsAddr, tr: tlsTransport(fe.tlsAddr, fe.roots, func(c *tls.Config) {
		c.Certificates = []tls.Certificate{cert}
	})}
	t.Cleanup(mtls.tr.CloseIdleConnections)
	fe.clients = append(fe.clients, mtls)
	return fe
}

// TestE2EHTTP2Features runs each route feature over h2, h2c and h2 with a
// client certificate.
func TestE2EHTTP2Features(t *testing.T) {
	fe := startFeatureProxy(t)
	for _, c := range fe.clients {
		t.Run(c.name, func(t *testing.T) {
			t.Run("routing", func(t *testing.T) { h2Routing(t, c) })
			t.Run("waf", func(t *testing.T) { h2WAF(t, c) })
			t.Run("rate limit", func(t *testing.T) { h2RateLimit(t, c) })
			t.Run("redirect and hsts", func(t *testing.T) { h2Redirect(t, c) })
			t.Run("respond", func(t *testing.T) { h2Respond(t, c) })
			t.Run("retries", func(t *testing.T) { h2Retries(t, c) })
			t.Run("split", func(t *testing.T) { h2Split(t, c) })
			t.Run("headers", func(t *testing.T) { h2Headers(t, c) })
			t.Run("max_body_size", func(t *testing.T) { h2MaxBody(t, c) })
		})
	}
	t.Run("access log", func(t *testing.T) { h2AccessLog(t, fe) })
	t.Run("metrics", func(t *testing.T) { h2Metrics(t, fe) })
}

func h2Routing(t *testing.T, c *h2Client) {
	tests := []struct {
		name, method, host, path string
		headers                  []string
		status                   int
		body                     string // "" for the catch-all: not checked
	}{
		{"by host", "GET", "api.example.com", "/x", nil, 200, "api host"},
		{"by host, another", "GET", "www.example.com", "/x", nil, 200, ""},
		{"by method", "POST", "example.com", "/only-post", nil, 201, "posted"},
		{"by method, not matched", "GET", "example.com", "/only-post", nil, 200, ""},
		{"by header", "GET", "example.com", "/hdr", []string{"X-Route: yes"}, 200, "header matched"},
		{"by header, other value", "GET", "example.com", "/hdr", []string{"X-Route: no"}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := c.send(t, tt.method, tt.host, tt.path, "", tt.headers...)
			if resp.StatusCode != tt.status {
				t.Errorf("got %d; want %d", resp.StatusCode, tt.status)
			}
			if tt.body != "" && body != tt.body {
				t.Errorf("got body %q; want %q", body, tt.body)
			}
			if tt.body == "" && resp.Header.Get("X-Served-By") != "app" {
				t.Errorf("got X-Served-By %q; want app (the catch-all)", resp.Header.Get("X-Served-By"))
			}
		})
	}
}

func h2WAF(t *testing.T, c *h2Client) {
	tests := []struct {
		name, method, path, body string
		headers                  []string
		status                   int
	}{
		{"clean", "GET", "/waf/page?q=hello", "", nil, 200},
		{"header attack", "GET", "/waf/page", "", []string{"User-Agent: sqlmap/1.7"}, 403},
		{"query attack", "GET", "/waf/page?id=1%27%20OR%20%271%27%3D%271", "", nil, 403},
		{"body attack", "POST", "/waf/form", "q=<script>alert(1)</script>", []string{"Content-Type: application/x-www-form-urlencoded"}, 403},
		{"clean body", "POST", "/waf/form", "q=hello+world", []string{"Content-Type: application/x-www-form-urlencoded"}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := c.send(t, tt.method, "example.com", tt.path, tt.body, tt.headers...)
			if resp.StatusCode != tt.status {
				t.Errorf("got %d; want %d", resp.StatusCode, tt.status)
			}
		})
	}
	// A blocked request leaves the connection usable.
	if resp, _ := c.get(t, "example.com", "/waf/again"); resp.StatusCode != 200 {
		t.Errorf("after the blocks: got %d; want 200", resp.StatusCode)
	}
}

func h2RateLimit(t *testing.T, c *h2Client) {
	key := "X-RL-Key: " + c.name
	for i, want := range []int{200, 200, 429, 429} {
		resp, _ := c.get(t, "example.com", "/rl", key)
		if resp.StatusCode != want {
			t.Errorf("request %d: got %d; want %d", i+1, resp.StatusCode, want)
		}
		if want == 429 && resp.Header.Get("Retry-After") == "" {
			t.Errorf("request %d: 429 without Retry-After", i+1)
		}
	}
}

func h2Redirect(t *testing.T, c *h2Client) {
	resp, _ := c.get(t, "example.com", "/secure/page?a=1")
	if c.scheme == "http" {
		if resp.StatusCode != 308 {
			t.Fatalf("got %d; want 308", resp.StatusCode)
		}
		if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "https://example.com:") || !strings.HasSuffix(loc, "/secure/page?a=1") {
			t.Errorf("got Location %q; want https://example.com:PORT/secure/page?a=1", loc)
		}
		if resp.Header.Get("Strict-Transport-Security") != "" {
			t.Error("HSTS on a cleartext answer")
		}
		return
	}
	if resp.StatusCode != 200 {
		t.Fatalf("got %d; want 200", resp.StatusCode)
	}
	if got := resp.Header.Get("Strict-Transport-Security"); !strings.HasPrefix(got, "max-age=") {
		t.Errorf("got Strict-Transport-Security %q; want max-age=...", got)
	}
}

func h2Respond(t *testing.T, c *h2Client) {
	resp, body := c.get(t, "example.com", "/respond")
	if resp.StatusCode != 418 || body != "short and stout" || resp.Header.Get("Content-Type") != "text/x-tea" {
		t.Errorf("got %d %q %q; want 418 %q text/x-tea", resp.StatusCode, body, resp.Header.Get("Content-Type"), "short and stout")
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id on a direct answer")
	}
}

func h2Retries(t *testing.T, c *h2Client) {
	// The first target refuses connections: each request that goes to
	// it first is retried on the second.
	for i := range 4 {
		resp, _ := c.get(t, "example.com", "/retry")
		if resp.StatusCode != 200 || resp.Header.Get("X-Served-By") != "app" {
			t.Errorf("request %d: got %d from %q; want 200 from app", i+1, resp.StatusCode, resp.Header.Get("X-Served-By"))
		}
	}
}

func h2Split(t *testing.T, c *h2Client) {
	seen := map[string]int{}
	for i := 0; i < 200 && (seen["a"] == 0 || seen["b"] == 0); i++ {
		resp, _ := c.get(t, "example.com", "/split")
		seen[resp.Header.Get("X-Served-By")]++
	}
	if seen["a"] == 0 || seen["b"] == 0 || len(seen) != 2 {
		t.Errorf("got sides %v; want both a and b", seen)
	}
}

func h2Headers(t *testing.T, c *h2Client) {
	resp, body := c.get(t, "example.com", "/echo",
		"X-Forwarded-For: 203.0.113.9", "X-Forwarded-Host: evil.test", "X-Client-Cert-Subject: CN=mallory",
		"X-Request-Id: req-h2-test-1", "X_Underscored: 1", "Cookie: a=1", "Cookie: b=2",
		"X-Real-Ip: 198.51.100.1", "True-Client-Ip: 198.51.100.2", "Forwarded: for=198.51.100.3", "X-Original-Url: /admin",
		"X-Multi: 1", "X-Multi: 2", "X-Multi: 3", "X-Keep: yes")
	if resp.StatusCode != 200 {
		t.Fatalf("got %d; want 200", resp.StatusCode)
	}
	h := fields(t, body)
	wantProto := map[string]string{"https": "https", "http": "http"}[c.scheme]
	for _, tt := range []struct{ name, got, want string }{
		{"upstream protocol", h.Get(":proto"), "HTTP/1.1"},
		{"X-Forwarded-For (untrusted peer: the list starts at it)", strings.Join(h.Values("X-Forwarded-For"), ","), "127.0.0.1"},
		{"X-Forwarded-Proto", h.Get("X-Forwarded-Proto"), wantProto},
		{"X-Forwarded-Host", h.Get("X-Forwarded-Host"), "example.com"},
		{"Host", h.Get("Host"), "example.com"},
		{"X-Request-Id", h.Get("X-Request-Id"), "req-h2-test-1"},
		{"underscored field dropped", h.Get("X_Underscored"), ""},
		{"cookies joined", h.Get("Cookie"), "a=1; b=2"},
		{"X-Real-Ip dropped", h.Get("X-Real-Ip"), ""},
		{"True-Client-Ip dropped", h.Get("True-Client-Ip"), ""},
		{"Forwarded dropped", h.Get("Forwarded"), ""},
		{"X-Original-Url dropped", h.Get("X-Original-Url"), ""},
		{"a repeated field in order", strings.Join(h.Values("X-Multi"), ","), "1,2,3"},
		{"another field kept", h.Get("X-Keep"), "yes"},
	} {
		if tt.got != tt.want {
			t.Errorf("%s: got %q; want %q", tt.name, tt.got, tt.want)
		}
	}
	subject := h.Get("X-Client-Cert-Subject")
	switch c.name {
	case "h2+mtls":
		if !strings.Contains(subject, "CN=alice") {
			t.Errorf("X-Client-Cert-Subject: got %q; want the certificate's subject (CN=alice)", subject)
		}
	case "h2":
		if subject != "" {
			t.Errorf("X-Client-Cert-Subject without a certificate: got %q; want none (the client's word dropped)", subject)
		}
	}
	if got := resp.Header.Get("X-Request-Id"); got != "req-h2-test-1" {
		t.Errorf("response X-Request-Id: got %q; want req-h2-test-1", got)
	}
	if got := resp.Header.Get("Keep-Alive"); got != "" {
		t.Errorf("the upstream's Keep-Alive reached the HTTP/2 client: %q", got)
	}
}

func h2MaxBody(t *testing.T, c *h2Client) {
	big := strings.Repeat("x", 2048)
	for _, tt := range []struct {
		name   string
		body   string
		status int
	}{
		{"within", "small", 200},
		{"over, with content-length", big, 413},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := c.send(t, "POST", "example.com", "/upload", tt.body)
			if resp.StatusCode != tt.status {
				t.Errorf("got %d; want %d", resp.StatusCode, tt.status)
			}
		})
	}
	t.Run("over, without content-length", func(t *testing.T) {
		req, _ := http.NewRequest("POST", c.url("example.com", "/upload"), io.NopCloser(strings.NewReader(big)))
		req.ContentLength = -1
		resp, _ := c.do(t, req)
		if resp.StatusCode != 413 {
			t.Errorf("got %d; want 413", resp.StatusCode)
		}
	})
	// The 413 asked the wire to close the connection (HTTP/1.1's way);
	// over HTTP/2 the connection goes on serving streams.
	if resp, _ := c.get(t, "example.com", "/after"); resp.StatusCode != 200 {
		t.Errorf("after the 413s: got %d; want 200", resp.StatusCode)
	}
}

// h2AccessLog: each line names the protocol the request came by.
func h2AccessLog(t *testing.T, fe *featureEnv) {
	if resp := rawGet(t, fe.h2cAddr, "example.com", "/logged-http1"); resp.status() != 200 {
		t.Fatalf("HTTP/1.1: got %d; want 200", resp.status())
	}
	c := fe.clients[1] // h2c
	if resp, _ := c.get(t, "example.com", "/logged-h2c"); resp.StatusCode != 200 {
		t.Fatalf("h2c: got %d; want 200", resp.StatusCode)
	}
	type line struct {
		Protocol, Listener, Path string
	}
	want := map[string]line{
		"/logged-http1": {"HTTP/1.1", "plain", "/logged-http1"},
		"/logged-h2c":   {"HTTP/2.0", "plain", "/logged-h2c"},
		"/echo":         {"HTTP/2.0", "web", "/echo"}, // h2 and h2+mtls
	}
	got := map[string]line{}
	ok := waitFor(e2eTimeout, func() bool {
		b, err := os.ReadFile(fe.access)
		if err != nil {
			return false
		}
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var ln line
			if json.Unmarshal([]byte(l), &ln) == nil {
				if _, ok := want[ln.Path]; ok && (ln.Path != "/echo" || ln.Listener == "web") {
					got[ln.Path] = ln
				}
			}
		}
		return len(got) == len(want)
	})
	if !ok {
		t.Fatalf("access log lines found %v; want %v", got, want)
	}
	for path, w := range want {
		if got[path] != w {
			t.Errorf("%s: got %+v; want %+v", path, got[path], w)
		}
	}
}

// h2Metrics: rampart_requests_by_protocol_total counts by listener and
// protocol.
func h2Metrics(t *testing.T, fe *featureEnv) {
	admin := fe.p.srv.AdminAddr()
	for _, tt := range []struct{ listener, protocol string }{
		{"web", "HTTP/2.0"},
		{"plain", "HTTP/2.0"},
		{"plain", "HTTP/1.1"},
	} {
		prefix := fmt.Sprintf("rampart_requests_by_protocol_total{listener=%q,protocol=%q} ", tt.listener, tt.protocol)
		line := metricLine(t, admin, prefix)
		if line == "" || strings.HasSuffix(line, " 0") {
			t.Errorf("%s: got %q; want a count above 0", prefix, line)
		}
	}
	prefix := `rampart_requests_by_protocol_total{listener="web",protocol="HTTP/1.1"} `
	if line := metricLine(t, admin, prefix); line != prefix+"0" {
		t.Errorf("got %q; want %q (no HTTP/1.1 request on web)", line, prefix+"0")
	}
}
