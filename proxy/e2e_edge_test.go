package proxy

// End-to-end tests of issue 21's compression, rewrites, header edits and
// mirroring: a running proxy on loopback, net/http upstreams that record
// what reaches them, Go's net/http and curl as clients.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/rampart-proxy/rampart/config"
)

// edgeBody is a compressible body of n bytes.
func edgeBody(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "<p>line %d of the page, with words that repeat</p>\n", i%97)
	}
	return b.Bytes()[:n]
}

// contentUpstream serves the answers the compression tests need.
func contentUpstream(t *testing.T) *httpUpstream {
	page := edgeBody(20 << 10)
	big := edgeBody(1 << 20)
	return startHTTPUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		switch r.URL.Path {
		case "/page":
			h.Set("Content-Type", "text/html; charset=utf-8")
			h.Set("ETag", `"v1"`)
			h.Set("Vary", "Origin")
			h.Set("Accept-Ranges", "bytes")
			h.Set("Content-Length", strconv.Itoa(len(page))) // read whole by the proxy
			_, _ = w.Write(page)
		case "/chunked": // no length, sent in pieces: streamed, flushed as it comes
			h.Set("Content-Type", "text/plain")
			for i := 0; i < len(page); i += 4096 {
				_, _ = w.Write(page[i:min(i+4096, len(page))])
				w.(http.Flusher).Flush()
			}
		case "/weak":
			h.Set("Content-Type", "application/json")
			h.Set("ETag", `W/"v2"`)
			_, _ = w.Write(page)
		case "/big": // beyond http1.SmallBody: streams through the proxy
			h.Set("Content-Type", "text/plain")
			h.Set("Content-Length", strconv.Itoa(len(big)))
			_, _ = w.Write(big)
		case "/small":
			h.Set("Content-Type", "text/plain")
			_, _ = w.Write(page[:100])
		case "/encoded":
			h.Set("Content-Type", "text/plain")
			h.Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			_, _ = zw.Write(page)
			_ = zw.Close()
		case "/range":
			h.Set("Content-Type", "text/plain")
			h.Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", 8191, len(page)))
			w.WriteHeader(http.StatusPartialContent)
			_, _ = w.Write(page[:8192])
		case "/events":
			h.Set("Content-Type", "text/event-stream")
			_, _ = w.Write(page)
		case "/image":
			h.Set("Content-Type", "image/png")
			_, _ = w.Write(page)
		case "/notransform":
			h.Set("Content-Type", "text/plain")
			h.Set("Cache-Control", "public, no-transform")
			_, _ = w.Write(page)
		default:
			http.NotFound(w, r)
		}
	}))
}

// getEncoded sends a GET with accept as Accept-Encoding (Go's transport
// left out of the decoding) and returns the answer and its body as sent.
func getEncoded(t *testing.T, method, url, accept string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept-Encoding", accept)
	}
	c := &http.Client{Timeout: e2eTimeout, Transport: &http.Transport{DisableCompression: true}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", url, err)
	}
	return resp, body
}

// decodeBody decodes body by its content coding with the libraries' own
// readers.
func decodeBody(t *testing.T, coding string, body []byte) []byte {
	t.Helper()
	var r io.Reader
	switch coding {
	case "":
		return body
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("gzip: %v", err)
		}
		r = zr
	case "br":
		r = brotli.NewReader(bytes.NewReader(body))
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("zstd: %v", err)
		}
		defer zr.Close()
		r = zr
	default:
		t.Fatalf("unexpected coding %q", coding)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decoding %s: %v", coding, err)
	}
	return out
}

func compressConfig(up, extraTop string) string {
	return fmt.Sprintf(`
listeners:
  web: {address: 127.0.0.1:0}
admin: {address: 127.0.0.1:0}
upstreams:
  app:
    targets: [{url: "http://%s"}]
routes:
  - name: site
    upstream: app
    compress: true
access_log: {path: "off"}
%s`, up, extraTop)
}

func TestE2ECompressionEncodings(t *testing.T) {
	up := contentUpstream(t)
	p := startProxy(t, compressConfig(up.addr(), ""))
	page := edgeBody(20 << 10)
	big := edgeBody(1 << 20)
	for _, tc := range []struct {
		name, path, accept, want string
		body                     []byte
	}{
		{"gzip whole", "/page", "gzip", "gzip", page},
		{"br whole", "/page", "br", "br", page},
		{"zstd whole", "/page", "zstd", "zstd", page},
		{"browser picks zstd", "/page", "gzip, deflate, br, zstd", "zstd", page},
		{"q-values pick br", "/page", "gzip;q=0.5, br;q=0.9, zstd;q=0.1", "br", page},
		{"gzip chunked", "/chunked", "gzip", "gzip", page},
		{"br chunked", "/chunked", "br", "br", page},
		{"zstd chunked", "/chunked", "zstd", "zstd", page},
		{"gzip streamed", "/big", "gzip", "gzip", big},
		{"br streamed", "/big", "br", "br", big},
		{"zstd streamed", "/big", "zstd", "zstd", big},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := getEncoded(t, "GET", "http://"+p.addr+tc.path, tc.accept)
			if got := resp.Header.Get("Content-Encoding"); got != tc.want {
				t.Fatalf("Content-Encoding %q; want %q", got, tc.want)
			}
			if got := decodeBody(t, tc.want, body); !bytes.Equal(got, tc.body) {
				t.Errorf("decoded %d bytes; want the %d the upstream sent", len(got), len(tc.body))
			}
			if len(body) >= len(tc.body)/2 {
				t.Errorf("sent %d bytes for %d; want under half", len(body), len(tc.body))
			}
			if vary := strings.Join(resp.Header.Values("Vary"), ", "); !strings.Contains(vary, "Accept-Encoding") {
				t.Errorf("Vary %q; want Accept-Encoding in it", vary)
			}
			if tc.path == "/big" && resp.ContentLength != -1 {
				t.Errorf("streamed answer with Content-Length %d; want none (chunked)", resp.ContentLength)
			}
		})
	}
	if n := counted(t, p, "rampart_compressed_responses_total", "encoding", "zstd"); n < 3 {
		t.Errorf("rampart_compressed_responses_total{encoding=zstd} = %v; want at least 3", n)
	}
}

func TestE2ECompressionHeaders(t *testing.T) {
	up := contentUpstream(t)
	p := startProxy(t, compressConfig(up.addr(), ""))
	resp, _ := getEncoded(t, "GET", "http://"+p.addr+"/page", "gzip")
	if got := resp.Header.Get("ETag"); got != `W/"v1"` {
		t.Errorf(`ETag %q; want W/"v1" (weakened)`, got)
	}
	if got := strings.Join(resp.Header.Values("Vary"), ", "); got != "Origin, Accept-Encoding" {
		t.Errorf("Vary %q; want %q (merged)", got, "Origin, Accept-Encoding")
	}
	if got := resp.Header.Get("Accept-Ranges"); got != "" {
		t.Errorf("Accept-Ranges %q on an encoded answer; want none", got)
	}
	resp, _ = getEncoded(t, "GET", "http://"+p.addr+"/weak", "gzip")
	if got := resp.Header.Get("ETag"); got != `W/"v2"` {
		t.Errorf(`weak ETag %q; want W/"v2" unchanged`, got)
	}
	// A client that does not ask gets the identity, still with Vary.
	resp, body := getEncoded(t, "GET", "http://"+p.addr+"/page", "")
	if resp.Header.Get("Content-Encoding") != "" || !bytes.Equal(body, edgeBody(20<<10)) {
		t.Errorf("no Accept-Encoding: got Content-Encoding %q, %d bytes; want identity", resp.Header.Get("Content-Encoding"), len(body))
	}
	if got := resp.Header.Get("ETag"); got != `"v1"` {
		t.Errorf(`identity ETag %q; want "v1" unchanged`, got)
	}
	if got := strings.Join(resp.Header.Values("Vary"), ", "); !strings.Contains(got, "Accept-Encoding") {
		t.Errorf("identity answer Vary %q; want Accept-Encoding (a cache must key it)", got)
	}
}

func TestE2ECompressionSkipped(t *testing.T) {
	up := contentUpstream(t)
	p := startProxy(t, compressConfig(up.addr(), ""))
	page := edgeBody(20 << 10)
	for _, tc := range []struct {
		name, method, path, accept string
		wantCoding                 string // the answer's Content-Encoding as the upstream set it
	}{
		{"below min_size", "GET", "/small", "gzip, br, zstd", ""},
		{"already encoded", "GET", "/encoded", "br, zstd", "gzip"},
		{"range answer", "GET", "/range", "gzip", ""},
		{"event stream", "GET", "/events", "gzip", ""},
		{"not a compressible type", "GET", "/image", "gzip", ""},
		{"no-transform", "GET", "/notransform", "gzip", ""},
		{"HEAD", "HEAD", "/page", "gzip", ""},
		{"every coding refused", "GET", "/page", "gzip;q=0, br;q=0, zstd;q=0", ""},
		{"identity preferred", "GET", "/page", "gzip;q=0.2, identity", ""},
		{"unknown coding", "GET", "/page", "deflate", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := getEncoded(t, tc.method, "http://"+p.addr+tc.path, tc.accept)
			if got := resp.Header.Get("Content-Encoding"); got != tc.wantCoding {
				t.Fatalf("Content-Encoding %q; want %q", got, tc.wantCoding)
			}
			switch tc.path {
			case "/encoded":
				if got := decodeBody(t, "gzip", body); !bytes.Equal(got, page) {
					t.Errorf("the upstream's gzip body changed on its way")
				}
			case "/small":
				if !bytes.Equal(body, page[:100]) {
					t.Errorf("body %q; want the upstream's", body)
				}
			case "/range":
				if resp.StatusCode != 206 || !bytes.Equal(body, page[:8192]) {
					t.Errorf("status %d, %d bytes; want 206 and the 8192 sent", resp.StatusCode, len(body))
				}
			default:
				if tc.method == "GET" && !bytes.Equal(body, page) {
					t.Errorf("got %d bytes; want the upstream's %d untouched", len(body), len(page))
				}
			}
		})
	}
}

// TestE2ECompressionCurl decodes with curl --compressed, a real client
// that offers gzip, br and zstd.
func TestE2ECompressionCurl(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	up := contentUpstream(t)
	p := startProxy(t, compressConfig(up.addr(), ""))
	for _, tc := range []struct{ coding, path string }{
		{"gzip", "/page"}, {"br", "/page"}, {"zstd", "/page"}, {"gzip", "/big"}, {"br", "/big"}, {"zstd", "/big"},
	} {
		t.Run(tc.coding+tc.path, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
			defer cancel()
			out, err := exec.CommandContext(ctx, "curl", "-sS", "--compressed", "-H", "Accept-Encoding: "+tc.coding,
				"-D", "/dev/stderr", "http://"+p.addr+tc.path).Output()
			if err != nil {
				t.Fatalf("curl: %v", err)
			}
			want := edgeBody(20 << 10)
			if tc.path == "/big" {
				want = edgeBody(1 << 20)
			}
			if !bytes.Equal(out, want) {
				t.Errorf("curl decoded %d bytes; want the %d sent", len(out), len(want))
			}
		})
	}
}

// recorded is what an upstream saw of one request.
type recorded struct {
	target string
	header http.Header
	body   []byte
}

// edgeUpstream answers 200 "ok" and records each request.
type edgeUpstream struct {
	*httpUpstream
	mu   sync.Mutex
	reqs []recorded
	hold chan struct{} // when not nil, each request waits for it
}

func startEdgeUpstream(t *testing.T, hold chan struct{}) *edgeUpstream {
	u := &edgeUpstream{hold: hold}
	u.httpUpstream = startHTTPUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.reqs = append(u.reqs, recorded{target: r.RequestURI, header: r.Header.Clone(), body: body})
		u.mu.Unlock()
		if u.hold != nil {
			select {
			case <-u.hold:
			case <-r.Context().Done():
			}
		}
		w.Header().Set("Server", "upstream/1")
		w.Header().Set("X-Upstream", "yes")
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok")
	}))
	return u
}

func (u *edgeUpstream) all() []recorded {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]recorded(nil), u.reqs...)
}

func (u *edgeUpstream) last(t *testing.T) recorded {
	t.Helper()
	all := u.all()
	if len(all) == 0 {
		t.Fatal("the upstream received nothing")
	}
	return all[len(all)-1]
}

func TestE2ERewrite(t *testing.T) {
	up := startEdgeUpstream(t, nil)
	p := startProxy(t, fmt.Sprintf(`
listeners:
  web: {address: 127.0.0.1:0}
upstreams:
  app:
    targets: [{url: "http://%s"}]
waf:
  guard:
    mode: block
    anomaly_threshold: 100000
    rules: |
      SecRule REQUEST_FILENAME "@beginsWith /internal/" "id:10001,phase:1,deny,status:403,log"
      SecRule REQUEST_FILENAME "@beginsWith /static/secret" "id:10002,phase:1,deny,status:403,log"
routes:
  - name: strip
    match: {path_prefix: /static}
    upstream: app
    waf: guard
    rewrite: {strip_prefix: /static}
  - name: replace
    match: {path_prefix: /old/}
    upstream: app
    waf: guard
    rewrite: {replace_prefix: {from: /old, to: /internal/new}}
  - name: regex
    match: {path_prefix: /u/}
    upstream: app
    rewrite: {regex: {pattern: "^/u/([0-9]+)$", replacement: "/users/$1"}}
  - name: join
    match: {path_prefix: /j/}
    upstream: app
    rewrite: {regex: {pattern: "^/j/(.*)$", replacement: "/base/$1"}}
access_log: {path: "off"}
`, up.addr()))
	for _, tc := range []struct {
		name, target string
		status       int
		upstream     string // the request target the upstream got; "" none
	}{
		{"strip", "/static/css/a.css?v=3", 200, "/css/a.css?v=3"},
		{"strip, absolute-form", "http://example.com/static/css/b.css?v=4", 200, "/css/b.css?v=4"},
		{"strip to root", "/static", 200, "/"},
		{"strip keeps other prefixes", "/staticfile", 200, "/staticfile"},
		{"replace, WAF sees the original", "/old/x?q=1", 200, "/internal/new/x?q=1"},
		{"WAF inspects the original path", "/static/secret.txt", 403, ""},
		{"regex", "/u/42?tab=posts", 200, "/users/42?tab=posts"},
		{"regex no match goes as is", "/u/abc", 200, "/u/abc"},
		{"regex keeps escapes", "/j/a%20b", 200, "/base/a%20b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(up.all())
			m := rawGet(t, p.addr, "example.com", tc.target)
			if m.status() != tc.status {
				t.Fatalf("status %d; want %d", m.status(), tc.status)
			}
			if tc.upstream == "" {
				if n := len(up.all()); n != before {
					t.Errorf("the upstream got a request; want none")
				}
				return
			}
			if got := up.last(t).target; got != tc.upstream {
				t.Errorf("upstream got %q; want %q", got, tc.upstream)
			}
		})
	}
}

func TestE2EHeaderEdits(t *testing.T) {
	up := startEdgeUpstream(t, nil)
	dead := freeAddr(t)
	p := startProxy(t, fmt.Sprintf(`
listeners:
  web: {address: 127.0.0.1:0}
upstreams:
  app:
    targets: [{url: "http://%s"}]
  gone:
    targets: [{url: "http://%s"}]
routes:
  - name: gone
    match: {path_prefix: /gone}
    upstream: gone
    response_headers: {set: {X-Frame-Options: DENY}}
  - name: site
    upstream: app
    request_headers:
      set: {X-Env: prod}
      add: {X-Tag: edge}
      remove: [X-Debug]
    response_headers:
      set: {X-Frame-Options: DENY, X-Upstream: replaced}
      add: {X-Served-By: rampart}
      remove: [Server]
access_log: {path: "off"}
`, up.addr(), dead))
	m := rawGet(t, p.addr, "example.com", "/a", "X-Env: dev", "X-Debug: 1", "X-Tag: client", "Connection: X-Env")
	if m.status() != 200 {
		t.Fatalf("status %d; want 200", m.status())
	}
	got := up.last(t).header
	for _, tc := range []struct {
		name string
		want []string
	}{
		{"X-Env", []string{"prod"}},
		{"X-Debug", nil},
		{"X-Tag", []string{"client", "edge"}},
		{"X-Forwarded-For", []string{"127.0.0.1"}},
	} {
		if v := got.Values(tc.name); strings.Join(v, "|") != strings.Join(tc.want, "|") {
			t.Errorf("upstream %s = %q; want %q", tc.name, v, tc.want)
		}
	}
	for _, tc := range []struct{ name, want string }{
		{"X-Frame-Options", "DENY"}, {"X-Upstream", "replaced"}, {"X-Served-By", "rampart"}, {"Server", ""},
	} {
		if v, _ := m.get(tc.name); v != tc.want {
			t.Errorf("response %s = %q; want %q", tc.name, v, tc.want)
		}
	}
	if v, _ := m.get("X-Request-Id"); v == "" {
		t.Errorf("response X-Request-Id missing; the proxy's own field must stay")
	}
	// The proxy's own answer for the route (502) is edited too.
	m = rawGet(t, p.addr, "example.com", "/gone")
	if m.status() != 502 {
		t.Fatalf("dead upstream: status %d; want 502", m.status())
	}
	if v, _ := m.get("X-Frame-Options"); v != "DENY" {
		t.Errorf("502 X-Frame-Options = %q; want DENY", v)
	}
}

func mirrorConfig(app, shadow, extraRoute string) string {
	return fmt.Sprintf(`
listeners:
  web: {address: 127.0.0.1:0}
admin: {address: 127.0.0.1:0}
upstreams:
  app:
    targets: [{url: "http://%s"}]
  shadow:
    targets: [{url: "http://%s"}]
routes:
  - name: site
    upstream: app
    rewrite: {strip_prefix: /api}
    request_headers: {set: {X-Env: prod}}
    mirror: {upstream: shadow, percent: 100%s}
access_log: {path: "off"}
`, app, shadow, extraRoute)
}

func TestE2EMirror(t *testing.T) {
	app := startEdgeUpstream(t, nil)
	shadow := startEdgeUpstream(t, nil)
	p := startProxy(t, mirrorConfig(app.addr(), shadow.addr(), ", max_body_size: 1KiB"))
	c := dialRaw(t, p.addr)
	body := strings.Repeat("b", 500)
	m := c.roundTrip("POST /api/items?x=1 HTTP/1.1\r\nHost: example.com\r\nContent-Type: text/plain\r\nContent-Length: 500\r\n\r\n" + body)
	if m.status() != 200 {
		t.Fatalf("status %d; want 200", m.status())
	}
	if !waitFor(e2eTimeout, func() bool { return len(shadow.all()) == 1 }) {
		t.Fatalf("the mirror got %d copies; want 1", len(shadow.all()))
	}
	got, orig := shadow.last(t), app.last(t)
	if got.target != "/items?x=1" || string(got.body) != body {
		t.Errorf("mirror got %q with %d bytes; want /items?x=1 with the 500 sent", got.target, len(got.body))
	}
	for _, name := range []string{"X-Env", "X-Forwarded-For", "X-Request-Id", "Content-Type"} {
		if g, w := got.header.Get(name), orig.header.Get(name); g != w || g == "" {
			t.Errorf("mirror %s = %q; want %q as the upstream got", name, g, w)
		}
	}
	// A body over max_body_size: the client's request goes through, no copy.
	big := strings.Repeat("c", 2000)
	m = c.roundTrip("POST /api/big HTTP/1.1\r\nHost: example.com\r\nContent-Length: 2000\r\n\r\n" + big)
	if m.status() != 200 || string(app.last(t).body) != big {
		t.Fatalf("large body: status %d; want 200 and the body upstream", m.status())
	}
	if n := counted(t, p, "rampart_mirror_requests_total", "result", "skipped"); n != 1 {
		t.Errorf("skipped copies %v; want 1", n)
	}
	if !waitFor(e2eTimeout, func() bool { return counted(t, p, "rampart_mirror_requests_total", "result", "sent") == 1 }) {
		t.Errorf("sent copies %v; want 1", counted(t, p, "rampart_mirror_requests_total", "result", "sent"))
	}
	if n := len(shadow.all()); n != 1 {
		t.Errorf("the mirror got %d copies; want 1", n)
	}
}

// TestE2EMirrorDeadOrSlow proves that a dead or stuck mirror neither fails
// nor holds up the client's requests: copies fail or are dropped, counted.
func TestE2EMirrorDeadOrSlow(t *testing.T) {
	t.Run("dead", func(t *testing.T) {
		app := startEdgeUpstream(t, nil)
		p := startProxy(t, mirrorConfig(app.addr(), freeAddr(t), ""))
		c := dialRaw(t, p.addr)
		for i := range 20 {
			if m := c.roundTrip("GET /api/x HTTP/1.1\r\nHost: example.com\r\n\r\n"); m.status() != 200 {
				t.Fatalf("request %d: status %d; want 200", i, m.status())
			}
		}
		if !waitFor(e2eTimeout, func() bool {
			return counted(t, p, "rampart_mirror_requests_total", "result", "failed")+
				counted(t, p, "rampart_mirror_requests_total", "result", "dropped") == 20
		}) {
			t.Errorf("failed+dropped copies: %v+%v; want 20", counted(t, p, "rampart_mirror_requests_total", "result", "failed"),
				counted(t, p, "rampart_mirror_requests_total", "result", "dropped"))
		}
	})
	t.Run("stuck", func(t *testing.T) {
		hold := make(chan struct{})
		defer close(hold)
		app := startEdgeUpstream(t, nil)
		shadow := startEdgeUpstream(t, hold)
		p := startProxy(t, mirrorConfig(app.addr(), shadow.addr(), ""))
		c := dialRaw(t, p.addr)
		n := config.MirrorQueue + config.MirrorWorkers + 40
		for i := range n {
			if m := c.roundTrip("GET /api/x HTTP/1.1\r\nHost: example.com\r\n\r\n"); m.status() != 200 {
				t.Fatalf("request %d: status %d; want 200", i, m.status())
			}
		}
		if got := len(app.all()); got != n {
			t.Errorf("the upstream got %d requests; want %d", got, n)
		}
		if d := counted(t, p, "rampart_mirror_requests_total", "result", "dropped"); d < 40 {
			t.Errorf("dropped copies %v; want at least 40 (queue %d, workers %d, %d requests)", d, config.MirrorQueue, config.MirrorWorkers, n)
		}
	})
}

// TestE2EEdgeReload changes every setting of the four features by reloads
// and sees each take effect on the next request.
func TestE2EEdgeReload(t *testing.T) {
	app := startEdgeUpstream(t, nil)
	shadowA := startEdgeUpstream(t, nil)
	shadowB := startEdgeUpstream(t, nil)
	content := contentUpstream(t)
	yaml := func(v int) string {
		routes := map[int]string{
			1: `
  - name: page
    match: {path_prefix: /page}
    upstream: content
    compress: true
  - name: site
    upstream: app
    rewrite: {strip_prefix: /v1}
    request_headers: {set: {X-Version: one}}
    response_headers: {set: {X-Version: one}}
    mirror: {upstream: shadowA, percent: 100}`,
			2: `
  - name: page
    match: {path_prefix: /page}
    upstream: content
    compress: true
  - name: site
    upstream: app
    rewrite: {replace_prefix: {from: /v1, to: /v2}}
    request_headers: {set: {X-Version: two}}
    response_headers: {set: {X-Version: two}}
    mirror: {upstream: shadowB, percent: 100}`,
			3: `
  - name: page
    match: {path_prefix: /page}
    upstream: content
  - name: site
    upstream: app`,
		}[v]
		compression := ""
		if v == 2 {
			compression = "compression: {encodings: [gzip], gzip_level: 9}\n"
		}
		return fmt.Sprintf(`
listeners:
  web: {address: 127.0.0.1:0}
upstreams:
  app: {targets: [{url: "http://%s"}]}
  shadowA: {targets: [{url: "http://%s"}]}
  shadowB: {targets: [{url: "http://%s"}]}
  content: {targets: [{url: "http://%s"}]}
routes:%s
access_log: {path: "off"}
%s`, app.addr(), shadowA.addr(), shadowB.addr(), content.addr(), routes, compression)
	}
	p := startProxy(t, yaml(1))
	reload := func(v int) {
		t.Helper()
		cfg, err := config.Parse([]byte(yaml(v)), "test.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.srv.Reload(cfg); err != nil {
			t.Fatalf("reload %d: %v", v, err)
		}
	}
	check := func(v int, wantTarget, wantVersion, coding string, shadow *edgeUpstream, shadowCount int) {
		t.Helper()
		m := rawGet(t, p.addr, "example.com", "/v1/x")
		rec := app.last(t)
		if rec.target != wantTarget || rec.header.Get("X-Version") != wantVersion {
			t.Errorf("v%d: upstream got %q with X-Version %q; want %q, %q", v, rec.target, rec.header.Get("X-Version"), wantTarget, wantVersion)
		}
		if got, _ := m.get("X-Version"); got != wantVersion {
			t.Errorf("v%d: response X-Version %q; want %q", v, got, wantVersion)
		}
		resp, _ := getEncoded(t, "GET", "http://"+p.addr+"/page", "zstd, gzip")
		if got := resp.Header.Get("Content-Encoding"); got != coding {
			t.Errorf("v%d: Content-Encoding %q; want %q", v, got, coding)
		}
		if shadow != nil && !waitFor(e2eTimeout, func() bool { return len(shadow.all()) == shadowCount }) {
			t.Errorf("v%d: mirror got %d copies; want %d", v, len(shadow.all()), shadowCount)
		}
	}
	check(1, "/x", "one", "zstd", shadowA, 1)
	reload(2)
	// encodings [gzip]: zstd is no longer offered.
	check(2, "/v2/x", "two", "gzip", shadowB, 1)
	reload(3)
	check(3, "/v1/x", "", "", nil, 0)
	if n := len(shadowA.all()) + len(shadowB.all()); n != 2 {
		t.Errorf("mirrors got %d copies in all; want 2 (none after mirror was removed)", n)
	}
}

// TestE2ECompressionHTTP2 fetches compressed answers over h2c: the same
// codings, whole and streamed, decode to the upstream's bytes.
func TestE2ECompressionHTTP2(t *testing.T) {
	up := contentUpstream(t)
	p := startProxy(t, fmt.Sprintf(`
listeners:
  web:
    address: 127.0.0.1:0
    protocols: [h2c, http1]
upstreams:
  app:
    targets: [{url: "http://%s"}]
routes:
  - name: site
    upstream: app
    compress: true
access_log: {path: "off"}
`, up.addr()))
	tr := h2cTransport(p.addr)
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr, Timeout: e2eTimeout}
	for _, tc := range []struct{ path, coding string }{
		{"/page", "gzip"}, {"/page", "br"}, {"/page", "zstd"}, {"/big", "zstd"}, {"/chunked", "br"},
	} {
		t.Run(tc.coding+tc.path, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "http://"+p.addr+tc.path, nil)
			req.Header.Set("Accept-Encoding", tc.coding)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.ProtoMajor != 2 || resp.Header.Get("Content-Encoding") != tc.coding {
				t.Fatalf("HTTP/%d, Content-Encoding %q; want HTTP/2, %q", resp.ProtoMajor, resp.Header.Get("Content-Encoding"), tc.coding)
			}
			want := edgeBody(20 << 10)
			if tc.path == "/big" {
				want = edgeBody(1 << 20)
			}
			if got := decodeBody(t, tc.coding, body); !bytes.Equal(got, want) {
				t.Errorf("decoded %d bytes; want the %d sent", len(got), len(want))
			}
		})
	}
}

// TestE2EEdgeAdminView shows the edge settings, defaults filled, in the
// admin API's config view.
func TestE2EEdgeAdminView(t *testing.T) {
	up := startEdgeUpstream(t, nil)
	p := startProxy(t, mirrorConfig(up.addr(), up.addr(), "")+"compression: {gzip_level: 7}\n")
	r := adminDo(t, "GET", "http://"+p.srv.AdminAddr()+"/api/v1/config", "")
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	for _, want := range []string{`"strip_prefix": "/api"`, `"X-Env": "prod"`, `"upstream": "shadow"`,
		`"percent": 100`, `"max_body_size": "64KiB"`, `"gzip_level": 7`, `"zstd_level": 3`, `"min_size": "1KiB"`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("config view lacks %s:\n%s", want, r.body)
		}
	}
}
