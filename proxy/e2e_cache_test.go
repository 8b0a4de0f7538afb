package proxy

// End-to-end tests of the response cache (cache.go) over real sockets: a
// proxy on loopback, an upstream that counts what reaches it, Go's
// net/http as the client, and a real redis-server for the Redis store.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/internal/testredis"
)

// cacheUpstream is an upstream whose answers a test scripts, counting the
// requests that reach it and keeping the last one's header.
type cacheUpstream struct {
	*httpUpstream
	n    atomic.Int64
	mu   sync.Mutex
	last http.Header
}

func startCacheUpstream(t *testing.T, h func(w http.ResponseWriter, r *http.Request, n int64)) *cacheUpstream {
	t.Helper()
	u := &cacheUpstream{}
	u.httpUpstream = startHTTPUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := u.n.Add(1)
		u.mu.Lock()
		u.last = r.Header.Clone()
		u.mu.Unlock()
		h(w, r, n)
	}))
	return u
}

func (u *cacheUpstream) lastHeader() http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last
}

// cacheConfig is oneUpstreamConfig with the catch-all route on the cache
// policy "pages" (extra YAML under it) and extraTop at the top level.
func cacheConfig(target, policy, extraTop string) string {
	cfg := oneUpstreamConfig(target, "", "", "caches:\n  pages:\n"+indent(policy, 4)+"\n"+extraTop)
	return strings.Replace(cfg, "    upstream: app\n", "    upstream: app\n    cache: pages\n", 1)
}

// cacheGet sends a GET (or another method) with the header fields given
// as "Name: value" and returns the status, header and body.
func cacheGet(t *testing.T, addr, method, path string, fields ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "site.test"
	for _, f := range fields {
		name, value, _ := strings.Cut(f, ": ")
		req.Header.Add(name, value)
	}
	c := &http.Client{Timeout: e2eTimeout, Transport: &http.Transport{DisableCompression: true}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp.StatusCode, resp.Header, string(body)
}

// TestE2ECacheMaxAge: an answer with max-age is fetched once and served
// from the cache after, with Age and Cache-Status; the client's own
// Cache-Status on the request changes nothing.
func TestE2ECacheMaxAge(t *testing.T) {
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "answer %d for %s", n, r.URL.RequestURI())
	})
	p := startProxy(t, cacheConfig(up.addr(), "max_size: 1MiB", ""))

	status, h, body := cacheGet(t, p.addr, "GET", "/a?x=1", "Cache-Status: Rampart; hit")
	if status != 200 || body != "answer 1 for /a?x=1" {
		t.Fatalf("first GET: got %d %q; want 200 %q", status, body, "answer 1 for /a?x=1")
	}
	if got := h.Get("Cache-Status"); got != "Rampart; fwd=miss; fwd-status=200; stored" {
		t.Errorf("first GET Cache-Status: got %q; want %q", got, "Rampart; fwd=miss; fwd-status=200; stored")
	}
	status, h, body = cacheGet(t, p.addr, "GET", "/a?x=1")
	if status != 200 || body != "answer 1 for /a?x=1" {
		t.Fatalf("second GET: got %d %q; want 200 %q (the stored answer)", status, body, "answer 1 for /a?x=1")
	}
	if got := h.Get("Cache-Status"); !strings.HasPrefix(got, "Rampart; hit; ttl=") {
		t.Errorf("second GET Cache-Status: got %q; want a hit with a ttl", got)
	}
	if h.Get("Age") == "" || h.Get("X-Request-Id") == "" || h.Get("Content-Type") != "text/plain" {
		t.Errorf("second GET header: Age %q, X-Request-Id %q, Content-Type %q; want all set",
			h.Get("Age"), h.Get("X-Request-Id"), h.Get("Content-Type"))
	}
	if got := up.n.Load(); got != 1 {
		t.Errorf("upstream requests: got %d; want 1", got)
	}
	if got := up.lastHeader().Get("Cache-Status"); got != "" {
		t.Errorf("the client's Cache-Status reached the upstream: %q", got)
	}
	if got := h.Values("Date"); len(got) != 1 {
		t.Errorf("Date fields on a hit: got %q; want one", got)
	}
	// Another query is another key.
	if _, _, body = cacheGet(t, p.addr, "GET", "/a?x=2"); body != "answer 2 for /a?x=2" {
		t.Errorf("GET /a?x=2: got %q; want %q", body, "answer 2 for /a?x=2")
	}
}

// TestE2ECacheNotShared: what a shared cache must not keep goes upstream
// every time.
func TestE2ECacheNotShared(t *testing.T) {
	tests := []struct {
		name   string
		cc     string   // the answer's Cache-Control
		cookie bool     // the answer sets a cookie
		req    []string // the request's fields
		want   int64    // upstream requests for two GETs
	}{
		{name: "no-store", cc: "no-store", want: 2},
		{name: "private", cc: "private, max-age=60", want: 2},
		{name: "no freshness, no validator", cc: "", want: 2},
		{name: "authorization", cc: "max-age=60", req: []string{"Authorization: Bearer x"}, want: 2},
		{name: "authorization, public", cc: "public, max-age=60", req: []string{"Authorization: Bearer x"}, want: 1},
		{name: "authorization, s-maxage", cc: "s-maxage=60", req: []string{"Authorization: Bearer x"}, want: 1},
		{name: "set-cookie", cc: "max-age=60", cookie: true, want: 2},
		{name: "request no-store", cc: "max-age=60", req: []string{"Cache-Control: no-store"}, want: 2},
		{name: "request range", cc: "max-age=60", req: []string{"Range: bytes=0-1"}, want: 2},
		{name: "shared", cc: "max-age=60", want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
				if tt.cc != "" {
					w.Header().Set("Cache-Control", tt.cc)
				}
				if tt.cookie {
					w.Header().Set("Set-Cookie", "sid=secret")
				}
				fmt.Fprintf(w, "answer %d", n)
			})
			p := startProxy(t, cacheConfig(up.addr(), "store: memory", ""))
			for i := range 2 {
				if status, _, _ := cacheGet(t, p.addr, "GET", "/x", tt.req...); status != 200 {
					t.Fatalf("GET %d: got %d; want 200", i+1, status)
				}
			}
			if got := up.n.Load(); got != tt.want {
				t.Errorf("upstream requests: got %d; want %d", got, tt.want)
			}
		})
	}
}

// TestE2ECacheRevalidate: a no-cache answer with an ETag is revalidated
// on each use: the upstream sees If-None-Match, answers 304, and the
// client gets the stored body; a client's own matching If-None-Match gets
// a 304 from the cache.
func TestE2ECacheRevalidate(t *testing.T) {
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, "the body")
	})
	p := startProxy(t, cacheConfig(up.addr(), "store: memory", ""))
	if status, _, body := cacheGet(t, p.addr, "GET", "/r"); status != 200 || body != "the body" {
		t.Fatalf("first GET: got %d %q; want 200 %q", status, body, "the body")
	}
	status, h, body := cacheGet(t, p.addr, "GET", "/r")
	if status != 200 || body != "the body" {
		t.Fatalf("second GET: got %d %q; want 200 %q (the stored body)", status, body, "the body")
	}
	if got := up.lastHeader().Get("If-None-Match"); got != `"v1"` {
		t.Errorf("upstream's If-None-Match: got %q; want %q", got, `"v1"`)
	}
	if got := h.Get("Cache-Status"); got != "Rampart; fwd=stale; fwd-status=304; stored" {
		t.Errorf("Cache-Status: got %q; want %q", got, "Rampart; fwd=stale; fwd-status=304; stored")
	}
	status, _, body = cacheGet(t, p.addr, "GET", "/r", `If-None-Match: "v1"`)
	if status != 304 || body != "" {
		t.Errorf("GET with the client's If-None-Match: got %d %q; want 304 and no body", status, body)
	}
	if got := up.n.Load(); got != 3 {
		t.Errorf("upstream requests: got %d; want 3 (one fetch, two revalidations)", got)
	}
}

// TestE2ECacheCoalescing: 20 concurrent misses for one URL make one
// upstream request (two at most), and all get its answer.
func TestE2ECacheCoalescing(t *testing.T) {
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		time.Sleep(200 * time.Millisecond)
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "slow answer")
	})
	p := startProxy(t, cacheConfig(up.addr(), "coalesce_timeout: 5s", ""))
	var wg sync.WaitGroup
	errs := make(chan string, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, _, body := cacheGet(t, p.addr, "GET", "/c")
			if status != 200 || body != "slow answer" {
				errs <- fmt.Sprintf("got %d %q; want 200 %q", status, body, "slow answer")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if got := up.n.Load(); got > 2 {
		t.Errorf("upstream requests for 20 concurrent misses: got %d; want at most 2", got)
	}
}

// TestE2ECacheCoalescingUncacheable: when the leader's answer turns out
// uncacheable, the waiters go upstream themselves, at once.
func TestE2ECacheCoalescingUncacheable(t *testing.T) {
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		time.Sleep(100 * time.Millisecond)
		w.Header().Set("Cache-Control", "private")
		fmt.Fprintf(w, "private %d", n)
	})
	p := startProxy(t, cacheConfig(up.addr(), "coalesce_timeout: 10s", ""))
	var wg sync.WaitGroup
	start := time.Now()
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cacheGet(t, p.addr, "GET", "/u")
		}()
	}
	wg.Wait()
	if got := up.n.Load(); got != 5 {
		t.Errorf("upstream requests: got %d; want 5 (each its own)", got)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("5 uncacheable requests took %v; want the waiters released, not timed out", d)
	}
}

// TestE2ECacheVary: answers that vary on Accept-Language are kept per
// language.
func TestE2ECacheVary(t *testing.T) {
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprintf(w, "lang=%s", r.Header.Get("Accept-Language"))
	})
	p := startProxy(t, cacheConfig(up.addr(), "store: memory", ""))
	for _, lang := range []string{"en", "fr", "en", "fr", "de"} {
		if _, _, body := cacheGet(t, p.addr, "GET", "/v", "Accept-Language: "+lang); body != "lang="+lang {
			t.Errorf("Accept-Language %s: got %q; want %q", lang, body, "lang="+lang)
		}
	}
	if got := up.n.Load(); got != 3 {
		t.Errorf("upstream requests: got %d; want 3 (en, fr, de)", got)
	}
	// Vary: * is never stored.
	star := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "*")
		io.WriteString(w, "star")
	})
	p2 := startProxy(t, cacheConfig(star.addr(), "store: memory", ""))
	cacheGet(t, p2.addr, "GET", "/s")
	cacheGet(t, p2.addr, "GET", "/s")
	if got := star.n.Load(); got != 2 {
		t.Errorf("Vary: * upstream requests: got %d; want 2", got)
	}
}

// TestE2ECacheHeadFromGet: a HEAD is answered from a stored GET, with the
// GET's Content-Length and no body.
func TestE2ECacheHeadFromGet(t *testing.T) {
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "0123456789")
	})
	p := startProxy(t, cacheConfig(up.addr(), "store: memory", ""))
	cacheGet(t, p.addr, "GET", "/h")
	resp := rawGetMethod(t, p.addr, "HEAD", "/h")
	if resp.status() != 200 {
		t.Fatalf("HEAD: got %d; want 200", resp.status())
	}
	if cl, _ := resp.get("Content-Length"); cl != "10" {
		t.Errorf("HEAD Content-Length: got %q; want 10", cl)
	}
	if len(resp.body) != 0 {
		t.Errorf("HEAD body: got %q; want none", resp.body)
	}
	if cs, _ := resp.get("Cache-Status"); !strings.Contains(cs, "hit") {
		t.Errorf("HEAD Cache-Status: got %q; want a hit", cs)
	}
	if got := up.n.Load(); got != 1 {
		t.Errorf("upstream requests: got %d; want 1", got)
	}
}

// TestE2ECacheHeadMiss: a HEAD that misses goes upstream as a GET, whose
// answer is stored: the HEAD gets the header without the body, and the
// next GET is a hit. A HEAD for an answer beyond max_object_size gets the
// header all the same.
func TestE2ECacheHeadMiss(t *testing.T) {
	big := strings.Repeat("x", 200<<10)
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("X-Method", r.Method)
		if r.URL.Path == "/big" {
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
			io.WriteString(w, big)
			return
		}
		io.WriteString(w, strings.Repeat("y", 100<<10)) // streamed, not read whole by the client
	})
	p := startProxy(t, cacheConfig(up.addr(), "max_object_size: 150KiB", ""))
	resp := rawGetMethod(t, p.addr, "HEAD", "/h")
	if resp.status() != 200 || len(resp.body) != 0 {
		t.Fatalf("HEAD miss: got %d with %d body bytes; want 200 and none", resp.status(), len(resp.body))
	}
	if cl, _ := resp.get("Content-Length"); cl != strconv.Itoa(100<<10) {
		t.Errorf("HEAD miss Content-Length: got %q; want %d", cl, 100<<10)
	}
	if m := up.lastHeader(); m == nil || up.n.Load() != 1 {
		t.Fatalf("upstream requests: got %d; want 1", up.n.Load())
	}
	status, h, body := cacheGet(t, p.addr, "GET", "/h")
	if status != 200 || len(body) != 100<<10 || !strings.Contains(h.Get("Cache-Status"), "hit") || h.Get("X-Method") != "GET" {
		t.Errorf("GET after the HEAD: got %d, %d bytes, %q, X-Method %q; want a hit of the stored GET",
			status, len(body), h.Get("Cache-Status"), h.Get("X-Method"))
	}
	resp = rawGetMethod(t, p.addr, "HEAD", "/big")
	if resp.status() != 200 || len(resp.body) != 0 {
		t.Errorf("HEAD of a large answer: got %d with %d body bytes; want 200 and none", resp.status(), len(resp.body))
	}
	if cl, _ := resp.get("Content-Length"); cl != strconv.Itoa(len(big)) {
		t.Errorf("HEAD of a large answer, Content-Length: got %q; want %d", cl, len(big))
	}
	// The connection is still usable after the HEAD (nothing stray on it).
	c := dialRaw(t, p.addr)
	for range 2 {
		if _, err := io.WriteString(c.conn, "HEAD /h HTTP/1.1\r\nHost: site.test\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		m, err := readRawResponse(c.br, "HEAD")
		if err != nil || m.status() != 200 {
			t.Fatalf("HEAD on a kept-alive connection: %v", err)
		}
	}
}

// rawGetMethod sends a bodyless request with the method over a fresh
// connection and reads the answer as that method's.
func rawGetMethod(t *testing.T, addr, method, path string) *rawMessage {
	t.Helper()
	c := dialRaw(t, addr)
	if _, err := io.WriteString(c.conn, method+" "+path+" HTTP/1.1\r\nHost: site.test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	m, err := readRawResponse(c.br, method)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestE2ECacheStaleWhileRevalidate: a stale answer within its
// stale-while-revalidate window is served at once while one background
// request refreshes it. The upstream's Age makes its answers stale on
// arrival, so nothing waits for a clock.
func TestE2ECacheStaleWhileRevalidate(t *testing.T) {
	release := make(chan struct{})
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		if n == 2 {
			<-release // the refresh hangs until the test has seen it stay single
		}
		w.Header().Set("Cache-Control", "max-age=10, stale-while-revalidate=600")
		w.Header().Set("Age", "20")
		fmt.Fprintf(w, "version %d", n)
	})
	p := startProxy(t, cacheConfig(up.addr(), "max_stale: 1h", ""))
	if _, _, body := cacheGet(t, p.addr, "GET", "/swr"); body != "version 1" {
		t.Fatalf("first GET: got %q; want %q", body, "version 1")
	}
	for i := range 5 {
		status, h, body := cacheGet(t, p.addr, "GET", "/swr")
		if status != 200 || body != "version 1" {
			t.Fatalf("stale GET %d: got %d %q; want 200 %q (served stale at once)", i, status, body, "version 1")
		}
		if cs := h.Get("Cache-Status"); !strings.Contains(cs, "hit") || !strings.Contains(cs, "detail=stale-while-revalidate") {
			t.Errorf("stale GET %d Cache-Status: got %q; want a stale-while-revalidate hit", i, cs)
		}
	}
	if !waitFor(e2eTimeout, func() bool { return up.n.Load() == 2 }) {
		t.Fatalf("upstream requests: got %d; want 2 (one background refresh)", up.n.Load())
	}
	close(release)
	if !waitFor(e2eTimeout, func() bool {
		_, _, body := cacheGet(t, p.addr, "GET", "/swr")
		return body == "version 2"
	}) {
		t.Fatal("the refreshed answer was never served")
	}
	if got := up.n.Load(); got > 3 {
		t.Errorf("upstream requests: got %d; want at most 3", got)
	}
}

// TestE2ECacheStaleIfError: a stale answer within stale-if-error is
// served when the upstream answers 5xx or cannot be reached; without the
// directive the error goes through.
func TestE2ECacheStaleIfError(t *testing.T) {
	tests := []struct {
		name      string
		cc        string
		fail      string // "500" or "down"
		wantCode  int
		wantBody  string
		wantCache string
	}{
		{"500 within stale-if-error", "max-age=10, stale-if-error=600", "500", 200, "good", "fwd=stale; fwd-status=500"},
		{"down within stale-if-error", "max-age=10, stale-if-error=600", "down", 200, "good", "fwd=stale; fwd-status=502"},
		{"500 without stale-if-error", "max-age=10", "500", 500, "bad", "fwd=stale; fwd-status=500"},
		{"500 with must-revalidate", "max-age=10, stale-if-error=600, must-revalidate", "500", 500, "bad", "fwd=stale; fwd-status=500"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var failing atomic.Bool
			up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
				if failing.Load() {
					w.WriteHeader(500)
					io.WriteString(w, "bad")
					return
				}
				w.Header().Set("Cache-Control", tt.cc)
				w.Header().Set("Age", "20")
				io.WriteString(w, "good")
			})
			p := startProxy(t, cacheConfig(up.addr(), "store: memory", ""))
			if _, _, body := cacheGet(t, p.addr, "GET", "/sie"); body != "good" {
				t.Fatalf("first GET: got %q; want good", body)
			}
			failing.Store(true)
			if tt.fail == "down" {
				up.Close()
			}
			status, h, body := cacheGet(t, p.addr, "GET", "/sie")
			if tt.fail == "down" && tt.wantCode != 200 {
				body = tt.wantBody
			}
			if status != tt.wantCode || body != tt.wantBody {
				t.Errorf("GET while failing: got %d %q; want %d %q", status, body, tt.wantCode, tt.wantBody)
			}
			if cs := h.Get("Cache-Status"); !strings.Contains(cs, tt.wantCache) {
				t.Errorf("Cache-Status: got %q; want it to hold %q", cs, tt.wantCache)
			}
		})
	}
}

// TestE2ECachePurge: the admin API's purge removes one URL (with its
// variants), a prefix, or everything; the next request is a miss.
func TestE2ECachePurge(t *testing.T) {
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "max-age=600")
		fmt.Fprintf(w, "%s %d", r.URL.Path, n)
	})
	admin := freeAddr(t)
	p := startProxy(t, cacheConfig(up.addr(), "store: memory", "admin: {address: \""+admin+"\"}\n"))
	fill := func() {
		for _, path := range []string{"/a/1", "/a/2", "/b/1"} {
			cacheGet(t, p.addr, "GET", path)
		}
	}
	fill()
	base := up.n.Load()
	tests := []struct {
		name      string
		body      string
		wantCode  int
		wantMiss  []string // paths that go upstream after
		wantHit   []string
		wantCount string
	}{
		{"url", `{"url": "http://SITE.test/a/1"}`, 200, []string{"/a/1"}, []string{"/a/2", "/b/1"}, `"purged": 1`},
		{"prefix", `{"cache": "pages", "prefix": "http://site.test/a/"}`, 200, []string{"/a/1", "/a/2"}, []string{"/b/1"}, `"purged": 2`},
		{"all", `{"all": true}`, 200, []string{"/a/1", "/a/2", "/b/1"}, nil, `"purged": 3`},
		{"unknown cache", `{"cache": "nope", "all": true}`, 404, nil, []string{"/a/1"}, "no such cache"},
		{"nothing named", `{}`, 400, nil, []string{"/a/1"}, "exactly one"},
		{"not a url", `{"url": "ftp://x/"}`, 400, nil, []string{"/a/1"}, "not an http"},
		{"unknown field", `{"uri": "http://site.test/"}`, 400, nil, []string{"/a/1"}, "unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fill()
			resp, err := http.Post("http://"+admin+"/api/v1/cache/purge", "application/json", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantCode || !strings.Contains(string(got), tt.wantCount) {
				t.Fatalf("purge %s: got %d %s; want %d holding %q", tt.body, resp.StatusCode, got, tt.wantCode, tt.wantCount)
			}
			for _, path := range tt.wantMiss {
				before := up.n.Load()
				cacheGet(t, p.addr, "GET", path)
				if up.n.Load() != before+1 {
					t.Errorf("GET %s after the purge: not a miss", path)
				}
			}
			for _, path := range tt.wantHit {
				before := up.n.Load()
				cacheGet(t, p.addr, "GET", path)
				if up.n.Load() != before {
					t.Errorf("GET %s after the purge: a miss; want a hit", path)
				}
			}
		})
	}
	_ = base
	// The admin config view shows the policy with its defaults.
	resp, err := http.Get("http://" + admin + "/api/v1/config")
	if err != nil {
		t.Fatal(err)
	}
	view, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`"caches"`, `"pages"`, `"max_object_size": "8MiB"`, `"coalesce_timeout"`, `"cache": "pages"`} {
		if !strings.Contains(string(view), want) {
			t.Errorf("GET /api/v1/config: no %s in\n%s", want, view)
		}
	}
	// The outcomes are counted.
	resp, err = http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metricsText, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`rampart_cache_requests_total{cache="pages",result="hit"}`,
		`rampart_cache_requests_total{cache="pages",result="miss"}`, `rampart_cache_stores_total{cache="pages"}`,
		`rampart_cache_bytes{cache="pages"}`} {
		if !strings.Contains(string(metricsText), want) {
			t.Errorf("GET /metrics: no %s", want)
		}
	}
	// Without the token the purge is refused like every admin call.
	secured := startProxy(t, cacheConfig(up.addr(), "store: memory",
		"admin: {address: \""+freeAddr(t)+"\", token: sekrit}\n"))
	resp, err = http.Post("http://"+secured.srv.admin.Addr()+"/api/v1/cache/purge", "application/json", strings.NewReader(`{"all": true}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("purge without the token: got %d; want 401", resp.StatusCode)
	}
}

// TestE2ECacheUnsafeInvalidates: a successful POST to a URL removes its
// stored answer (RFC 9111 section 4.4).
func TestE2ECacheUnsafeInvalidates(t *testing.T) {
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "max-age=600")
		fmt.Fprintf(w, "%s %d", r.Method, n)
	})
	p := startProxy(t, cacheConfig(up.addr(), "store: memory", ""))
	cacheGet(t, p.addr, "GET", "/p")
	if _, _, body := cacheGet(t, p.addr, "GET", "/p"); body != "GET 1" {
		t.Fatalf("second GET: got %q; want the stored %q", body, "GET 1")
	}
	cacheGet(t, p.addr, "POST", "/p")
	if _, _, body := cacheGet(t, p.addr, "GET", "/p"); body != "GET 3" {
		t.Errorf("GET after the POST: got %q; want a fresh %q", body, "GET 3")
	}

	// A URL that varies loses every variant.
	vary := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprintf(w, "%s %d", r.Header.Get("Accept-Language"), n)
	})
	pv := startProxy(t, cacheConfig(vary.addr(), "store: memory", ""))
	for _, lang := range []string{"en", "fr", "en", "fr"} {
		cacheGet(t, pv.addr, "GET", "/v", "Accept-Language: "+lang)
	}
	if got := vary.n.Load(); got != 2 {
		t.Fatalf("upstream requests before the DELETE: got %d; want 2", got)
	}
	cacheGet(t, pv.addr, "DELETE", "/v")
	for _, lang := range []string{"en", "fr"} {
		before := vary.n.Load()
		cacheGet(t, pv.addr, "GET", "/v", "Accept-Language: "+lang)
		if vary.n.Load() != before+1 {
			t.Errorf("GET %s after the DELETE: a hit; want a miss", lang)
		}
	}
}

// TestE2ECacheLargeBody: a body beyond max_object_size streams to the
// client whole and is not stored; one within it, streamed from the
// upstream, is.
func TestE2ECacheLargeBody(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "max-age=600")
		size := len(big)
		if r.URL.Path == "/medium" {
			size = 256 << 10
		}
		if r.URL.Path == "/chunked" {
			w.(http.Flusher).Flush() // no Content-Length
		}
		w.Write(big[:size])
	})
	p := startProxy(t, cacheConfig(up.addr(), "max_object_size: 512KiB", ""))
	tests := []struct {
		path      string
		size      int
		wantCalls int64
	}{
		{"/big", len(big), 2},
		{"/medium", 256 << 10, 1},
		{"/chunked", len(big), 2},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			before := up.n.Load()
			for i := range 2 {
				status, _, body := cacheGet(t, p.addr, "GET", tt.path)
				if status != 200 || body != string(big[:tt.size]) {
					t.Fatalf("GET %d: got %d and %d bytes; want 200 and %d bytes", i, status, len(body), tt.size)
				}
			}
			if got := up.n.Load() - before; got != tt.wantCalls {
				t.Errorf("upstream requests: got %d; want %d", got, tt.wantCalls)
			}
		})
	}
}

// TestE2ECacheReload: a reload that keeps the policy keeps its entries;
// one that changes only its sizes keeps them too; removing the cache from
// the route stops caching.
func TestE2ECacheReload(t *testing.T) {
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "max-age=600")
		fmt.Fprintf(w, "answer %d", n)
	})
	yaml := cacheConfig(up.addr(), "max_size: 1MiB", "")
	p := startProxy(t, yaml)
	cacheGet(t, p.addr, "GET", "/k")
	reload := func(y string) {
		t.Helper()
		cfg, err := config.Parse([]byte(y), "test.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.srv.Reload(cfg); err != nil {
			t.Fatal(err)
		}
	}
	reload(strings.Replace(yaml, "access_log:", "trusted_proxies: [10.0.0.0/8]\naccess_log:", 1))
	if _, _, body := cacheGet(t, p.addr, "GET", "/k"); body != "answer 1" {
		t.Errorf("after a reload that keeps the policy: got %q; want the stored %q", body, "answer 1")
	}
	reload(cacheConfig(up.addr(), "max_size: 2MiB", ""))
	if _, _, body := cacheGet(t, p.addr, "GET", "/k"); body != "answer 1" {
		t.Errorf("after a reload that grows max_size: got %q; want the stored %q", body, "answer 1")
	}
	reload(oneUpstreamConfig(up.addr(), "", "", ""))
	if _, _, body := cacheGet(t, p.addr, "GET", "/k"); body != "answer 2" {
		t.Errorf("after a reload without the cache: got %q; want %q from the upstream", body, "answer 2")
	}
}

// TestE2ECacheRedis: two proxies share answers through a real
// redis-server; killed, it turns lookups into misses and requests are
// still served, without waiting on it.
func TestE2ECacheRedis(t *testing.T) {
	rs := testredis.Start(t)
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "max-age=600")
		fmt.Fprintf(w, "answer %d", n)
	})
	redisTop := fmt.Sprintf("redis: {address: %q, timeout: 100ms}\n", rs.Addr)
	a := startProxy(t, cacheConfig(up.addr(), "store: redis\nmax_object_size: 1MiB", redisTop))
	b := startProxy(t, cacheConfig(up.addr(), "store: redis\nmax_object_size: 1MiB", redisTop))

	if _, _, body := cacheGet(t, a.addr, "GET", "/shared"); body != "answer 1" {
		t.Fatalf("GET via a: got %q; want %q", body, "answer 1")
	}
	// The write is in the background: wait for it to land.
	if !waitFor(e2eTimeout, func() bool {
		got, _ := rs.Do("EXISTS", "rampart:cache:pages:GET http://site.test/shared")
		return got == ":1"
	}) {
		t.Fatal("the answer never reached Redis")
	}
	if got, _ := rs.Do("PTTL", "rampart:cache:pages:GET http://site.test/shared"); !strings.HasPrefix(got, ":") || got == ":-1" {
		t.Errorf("PTTL of the entry: got %q; want a TTL", got)
	}
	status, h, body := cacheGet(t, b.addr, "GET", "/shared")
	if status != 200 || body != "answer 1" || !strings.Contains(h.Get("Cache-Status"), "hit") {
		t.Errorf("GET via b: got %d %q %q; want 200, the answer a stored, a hit", status, body, h.Get("Cache-Status"))
	}

	rs.Kill()
	for i := range 3 {
		start := time.Now()
		status, _, body := cacheGet(t, b.addr, "GET", "/other")
		if status != 200 || !strings.HasPrefix(body, "answer ") {
			t.Errorf("GET %d with Redis down: got %d %q; want 200 from the upstream", i, status, body)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("GET %d with Redis down took %v; want no wait on Redis", i, d)
		}
	}
	if got := up.n.Load(); got != 4 {
		t.Errorf("upstream requests: got %d; want 4 (one fill, three misses with Redis down)", got)
	}
	rs.Restart()
	// Back (after the pause): answers are stored again.
	if !waitFor(e2eTimeout, func() bool {
		cacheGet(t, a.addr, "GET", "/again")
		got, _ := rs.Do("EXISTS", "rampart:cache:pages:GET http://site.test/again")
		return got == ":1"
	}) {
		t.Error("answers were never stored again after Redis came back")
	}
	_ = context.Background
}

// TestE2ECacheHTTP2: a client over h2c gets hits as an HTTP/1.1 client
// does, HEAD included.
func TestE2ECacheHTTP2(t *testing.T) {
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "answer %d", n)
	})
	yaml := strings.Replace(cacheConfig(up.addr(), "store: memory", ""),
		"    address: 127.0.0.1:0\n", "    address: 127.0.0.1:0\n    protocols: [h2c, http1]\n", 1)
	p := startProxy(t, yaml)
	c := &http.Client{Transport: h2cTransport(p.addr), Timeout: e2eTimeout}
	for i, method := range []string{"GET", "GET", "HEAD"} {
		req, _ := http.NewRequest(method, "http://site.test/h2", nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wantBody := "answer 1"
		if method == "HEAD" {
			wantBody = ""
		}
		if resp.StatusCode != 200 || string(body) != wantBody || resp.ProtoMajor != 2 {
			t.Errorf("%s %d: got %s %d %q; want HTTP/2 200 %q", method, i, resp.Proto, resp.StatusCode, body, wantBody)
		}
		if cs := resp.Header.Get("Cache-Status"); i > 0 && !strings.Contains(cs, "hit") {
			t.Errorf("%s %d Cache-Status: got %q; want a hit", method, i, cs)
		}
	}
	if got := up.n.Load(); got != 1 {
		t.Errorf("upstream requests: got %d; want 1", got)
	}
}

// TestE2ECacheStaleWhileRevalidateH2Upstream: the background refresh also
// goes to an HTTP/2 (h2c) upstream.
func TestE2ECacheStaleWhileRevalidateH2Upstream(t *testing.T) {
	var n atomic.Int64
	up := startH2CUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := n.Add(1)
		w.Header().Set("Cache-Control", "max-age=10, stale-while-revalidate=600")
		w.Header().Set("Age", "20")
		fmt.Fprintf(w, "version %d over %s", v, r.Proto)
	}))
	yaml := strings.Replace(cacheConfig(up.Listener.Addr().String(), "store: memory", ""),
		"      - url: http://", "    protocol: http2\n    targets:\n      - url: http://", 1)
	yaml = strings.Replace(yaml, "    targets:\n    protocol: http2\n", "    protocol: http2\n", 1)
	p := startProxy(t, yaml)
	if _, _, body := cacheGet(t, p.addr, "GET", "/swr2"); body != "version 1 over HTTP/2.0" {
		t.Fatalf("first GET: got %q; want %q", body, "version 1 over HTTP/2.0")
	}
	if _, h, body := cacheGet(t, p.addr, "GET", "/swr2"); body != "version 1 over HTTP/2.0" ||
		!strings.Contains(h.Get("Cache-Status"), "stale-while-revalidate") {
		t.Fatalf("stale GET: got %q (%s); want the stale answer", body, h.Get("Cache-Status"))
	}
	if !waitFor(e2eTimeout, func() bool {
		_, _, body := cacheGet(t, p.addr, "GET", "/swr2")
		return body == "version 2 over HTTP/2.0"
	}) {
		t.Fatalf("the background refresh never landed (upstream requests: %d)", n.Load())
	}
}

// TestE2ECacheUpgradeBypass: a WebSocket upgrade to a URL whose GET is
// stored goes upstream (a tunnel is never answered from the cache).
func TestE2ECacheUpgradeBypass(t *testing.T) {
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		if r.Header.Get("Upgrade") != "" {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, "upgrade seen")
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "plain")
	})
	p := startProxy(t, cacheConfig(up.addr(), "store: memory", ""))
	cacheGet(t, p.addr, "GET", "/ws")
	c := dialRaw(t, p.addr)
	resp := c.roundTrip("GET /ws HTTP/1.1\r\nHost: site.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	if resp.status() != 400 || string(resp.body) != "upgrade seen" {
		t.Errorf("upgrade: got %d %q; want the upstream's 400 %q", resp.status(), resp.body, "upgrade seen")
	}
	if got := up.n.Load(); got != 2 {
		t.Errorf("upstream requests: got %d; want 2", got)
	}
}

// TestE2ECacheRequestDirectives: the request's Cache-Control, honoured as
// RFC 9111 lets a shared cache. The stored answer is 20 s old on arrival
// (Age: 20) with max-age=60.
func TestE2ECacheRequestDirectives(t *testing.T) {
	tests := []struct {
		name      string
		cc        string
		wantCalls int64 // upstream requests for the fill and the request
		wantCode  int
	}{
		{"none", "", 1, 200},
		{"no-cache", "no-cache", 2, 200},
		{"max-age=0", "max-age=0", 2, 200},
		{"max-age=10 (older)", "max-age=10", 2, 200},
		{"max-age=100", "max-age=100", 1, 200},
		{"min-fresh=50 (40 s left)", "min-fresh=50", 2, 200},
		{"min-fresh=10", "min-fresh=10", 1, 200},
		{"only-if-cached, stored", "only-if-cached", 1, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
				w.Header().Set("Cache-Control", "max-age=60")
				w.Header().Set("Age", "20")
				io.WriteString(w, "ok")
			})
			p := startProxy(t, cacheConfig(up.addr(), "store: memory", ""))
			cacheGet(t, p.addr, "GET", "/d")
			var fields []string
			if tt.cc != "" {
				fields = append(fields, "Cache-Control: "+tt.cc)
			}
			if status, _, _ := cacheGet(t, p.addr, "GET", "/d", fields...); status != tt.wantCode {
				t.Errorf("status: got %d; want %d", status, tt.wantCode)
			}
			if got := up.n.Load(); got != tt.wantCalls {
				t.Errorf("upstream requests: got %d; want %d", got, tt.wantCalls)
			}
		})
	}
	// only-if-cached with nothing stored: 504, and nothing goes upstream.
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) { io.WriteString(w, "x") })
	p := startProxy(t, cacheConfig(up.addr(), "store: memory", ""))
	if status, _, _ := cacheGet(t, p.addr, "GET", "/none", "Cache-Control: only-if-cached"); status != 504 || up.n.Load() != 0 {
		t.Errorf("only-if-cached miss: got %d with %d upstream requests; want 504 and none", status, up.n.Load())
	}
}

// TestE2ECacheRedisReload: a Redis policy keeps its store across a reload
// that keeps the redis section, and gets a new one when the section
// changes (the old store talks to the old client).
func TestE2ECacheRedisReload(t *testing.T) {
	rs := testredis.Start(t)
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "x")
	})
	yaml := func(timeout string) string {
		return cacheConfig(up.addr(), "store: redis", fmt.Sprintf("redis: {address: %q, timeout: %s}\n", rs.Addr, timeout))
	}
	p := startProxy(t, yaml("100ms"))
	store := func() any { return p.srv.snap.Load().caches["pages"].store }
	first := store()
	reload := func(y string) {
		t.Helper()
		cfg, err := config.Parse([]byte(y), "test.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.srv.Reload(cfg); err != nil {
			t.Fatal(err)
		}
	}
	reload(strings.Replace(yaml("100ms"), "access_log:", "trusted_proxies: [10.0.0.0/8]\naccess_log:", 1))
	if store() != first {
		t.Error("a reload that keeps the redis section replaced the store")
	}
	reload(yaml("200ms"))
	if store() == first {
		t.Error("a reload that changes the redis section kept the store of the old client")
	}
	if status, _, _ := cacheGet(t, p.addr, "GET", "/r"); status != 200 {
		t.Errorf("GET after the reloads: got %d; want 200", status)
	}
}
