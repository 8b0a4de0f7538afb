package proxy

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestE2EUpstreamErrors checks the answers to upstream failures: 502 when
// nothing listens or the answer is not valid HTTP (each with its own body),
// 504 when the target is slower than timeouts.read.
func TestE2EUpstreamErrors(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow := startHTTPUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		case <-time.After(e2eTimeout):
		}
		_, _ = io.WriteString(w, "late")
	}))
	dead := freeAddr(t)
	// Two Content-Length fields that disagree: the framing cannot be trusted.
	broken := startRawUpstream(t, func(*rawMessage) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!", true
	})
	zero := startRawUpstream(t, func(*rawMessage) (string, bool) {
		return "HTTP/1.1 000 OK\r\nContent-Length: 0\r\n\r\n", true // fasthttp alone reads 000 as 200
	})
	version := startRawUpstream(t, func(*rawMessage) (string, bool) {
		return "HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", true
	})
	cases := []struct {
		name       string
		target     string
		upstream   string
		wantStatus int
		wantBody   string
		maxTime    time.Duration
	}{
		{
			name:       "connect refused",
			target:     dead,
			upstream:   "timeouts: {connect: 1s}",
			wantStatus: 502,
			wantBody:   string(bodyBadGateway),
			maxTime:    2 * time.Second,
		},
		{
			name:       "invalid response",
			target:     broken.addr(),
			wantStatus: 502,
			wantBody:   string(bodyBadResponse),
			maxTime:    2 * time.Second,
		},
		{
			name:       "status 000",
			target:     zero.addr(),
			wantStatus: 502,
			wantBody:   string(bodyBadResponse),
			maxTime:    2 * time.Second,
		},
		{
			name:       "HTTP/2.0 in an HTTP/1 status line",
			target:     version.addr(),
			wantStatus: 502,
			wantBody:   string(bodyBadResponse),
			maxTime:    2 * time.Second,
		},
		{
			name:       "slow upstream",
			target:     slow.addr(),
			upstream:   "timeouts: {read: 200ms}",
			wantStatus: 504,
			wantBody:   string(bodyGatewayTimeout),
			maxTime:    3 * time.Second,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := startProxy(t, oneUpstreamConfig(tc.target, "", tc.upstream, ""))
			start := time.Now()
			resp := rawGet(t, p.addr, "app.test", "/")
			elapsed := time.Since(start)
			if got := resp.status(); got != tc.wantStatus {
				t.Errorf("status: got %d; want %d", got, tc.wantStatus)
			}
			if got := string(resp.body); got != tc.wantBody {
				t.Errorf("body: got %q; want %q", got, tc.wantBody)
			}
			if ct, _ := resp.get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type: got %q; want text/plain", ct)
			}
			if elapsed > tc.maxTime {
				t.Errorf("answered after %v; want within %v", elapsed, tc.maxTime)
			}
			// The downstream connection stays usable after an upstream error.
			resp2 := rawGet(t, p.addr, "app.test", "/again")
			if resp2.status() != tc.wantStatus {
				t.Errorf("second request: got %d; want %d", resp2.status(), tc.wantStatus)
			}
		})
	}
}

// TestE2EMaxBodySize checks limits.max_body_size for declared and chunked
// bodies.
func TestE2EMaxBodySize(t *testing.T) {
	up := startRawUpstream(t, func(req *rawMessage) (string, bool) {
		return okResponse(fmt.Sprintf("got %d", len(req.body))), false
	})
	p := startProxy(t, oneUpstreamConfig(up.addr(), "limits: {max_body_size: 1KiB}", "", ""))

	chunked := func(sizes ...int) string {
		var b strings.Builder
		for _, n := range sizes {
			fmt.Fprintf(&b, "%x\r\n%s\r\n", n, strings.Repeat("c", n))
		}
		b.WriteString("0\r\n\r\n")
		return b.String()
	}
	cases := []struct {
		name       string
		framing    string // header line giving the body's framing
		body       string
		wantStatus int
		wantBody   string
		// wantUpstream is how many requests reach the upstream.
		wantUpstream int
	}{
		{"content-length under", "Content-Length: 1000", strings.Repeat("a", 1000), 200, "got 1000", 1},
		{"content-length at the limit", "Content-Length: 1024", strings.Repeat("a", 1024), 200, "got 1024", 1},
		{"content-length over", "Content-Length: 1025", strings.Repeat("a", 1025), 413, string(bodyTooLarge), 0},
		{"content-length far over", "Content-Length: 100000", strings.Repeat("a", 100000), 413, string(bodyTooLarge), 0},
		{"chunked under", "Transfer-Encoding: chunked", chunked(500, 500), 200, "got 1000", 1},
		{"chunked at the limit", "Transfer-Encoding: chunked", chunked(1000, 24), 200, "got 1024", 1},
		{"chunked over", "Transfer-Encoding: chunked", chunked(1000, 1000), 413, string(bodyTooLarge), 0},
		{"chunked far over", "Transfer-Encoding: chunked", chunked(60000, 60000, 60000), 413, string(bodyTooLarge), 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := up.count()
			c := dialRaw(t, p.addr)
			resp := c.roundTrip("POST /upload HTTP/1.1\r\nHost: app.test\r\n" + tc.framing + "\r\n\r\n" + tc.body)
			if got := resp.status(); got != tc.wantStatus {
				t.Errorf("status: got %d; want %d", got, tc.wantStatus)
			}
			if got := string(resp.body); got != tc.wantBody {
				t.Errorf("body: got %q; want %q", got, tc.wantBody)
			}
			if got := up.count() - before; got > tc.wantUpstream {
				t.Errorf("complete requests at the upstream: got %d; want %d", got, tc.wantUpstream)
			}
			if tc.wantStatus == 413 && !c.closedByPeer(2*time.Second) {
				t.Errorf("connection after 413: got open; want closed (the rest of the body is unread)")
			}
		})
	}
}

// TestE2EMalformedRequests checks the answers to requests fasthttp cannot
// read, and that the proxy keeps serving afterwards.
func TestE2EMalformedRequests(t *testing.T) {
	up := startRawUpstream(t, func(req *rawMessage) (string, bool) { return okResponse("ok"), false })
	p := startProxy(t, oneUpstreamConfig(up.addr(), "limits: {max_header_bytes: 4KiB}", "", ""))

	cases := []struct {
		name       string
		req        string
		wantStatus int
	}{
		{"header block over max_header_bytes", "GET / HTTP/1.1\r\nHost: app.test\r\nX-Big: " + strings.Repeat("x", 8<<10) + "\r\n\r\n", 431},
		{"many headers over max_header_bytes", "GET / HTTP/1.1\r\nHost: app.test\r\n" + strings.Repeat("X-Many: 0123456789abcdef0123456789\r\n", 300) + "\r\n", 431},
		{"garbage request line", "HELLO\r\n\r\n", 400},
		{"request line without version", "GET /\r\nHost: app.test\r\n\r\n", 400},
		{"header line without colon", "GET / HTTP/1.1\r\nHost: app.test\r\nBroken header\r\n\r\n", 400},
		{"bad content length", "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: abc\r\n\r\n", 400},
		{"bad chunk size", "POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, p.addr)
			resp := c.roundTrip(tc.req)
			if got := resp.status(); got != tc.wantStatus {
				t.Errorf("status: got %d; want %d (body %q)", got, tc.wantStatus, resp.body)
			}
			if len(resp.body) > 200 {
				t.Errorf("body: got %d bytes; want a short message", len(resp.body))
			}
			if !c.closedByPeer(2 * time.Second) {
				t.Errorf("connection after %d: got open; want closed", tc.wantStatus)
			}
			// The proxy still serves.
			if r := rawGet(t, p.addr, "app.test", "/"); r.status() != 200 || string(r.body) != "ok" {
				t.Errorf("next request: got %d %q; want 200 \"ok\"", r.status(), r.body)
			}
		})
	}
}
