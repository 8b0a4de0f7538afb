package proxy

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestE2EResponseRelay checks responses with and without bodies, repeated
// headers, and that the connection stays usable after each.
func TestE2EResponseRelay(t *testing.T) {
	up := startRawUpstream(t, func(req *rawMessage) (string, bool) {
		switch {
		case strings.HasPrefix(req.first, "HEAD /head "):
			return "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1234\r\n\r\n", false
		case strings.HasPrefix(req.first, "GET /204 "):
			return "HTTP/1.1 204 No Content\r\nX-Done: yes\r\n\r\n", false
		case strings.HasPrefix(req.first, "GET /304 "):
			return "HTTP/1.1 304 Not Modified\r\nEtag: \"v1\"\r\n\r\n", false
		case strings.HasPrefix(req.first, "GET /cookies "):
			return "HTTP/1.1 200 OK\r\nSet-Cookie: a=1; Path=/\r\nSet-Cookie: b=2; HttpOnly\r\nContent-Length: 2\r\n\r\nok", false
		case strings.HasPrefix(req.first, "GET /chunked "):
			return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n", false
		case strings.HasPrefix(req.first, "GET /500 "):
			return "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops", false
		}
		return okResponse("default"), false
	})
	p := startProxy(t, oneUpstreamConfig(up.addr(), "", "", ""))
	c := dialRaw(t, p.addr)

	cases := []struct {
		name       string
		method     string
		path       string
		wantStatus int
		wantBody   string
		wantFields map[string][]string
	}{
		{name: "HEAD keeps Content-Length", method: "HEAD", path: "/head", wantStatus: 200,
			wantFields: map[string][]string{"Content-Length": {"1234"}, "Content-Type": {"text/html"}}},
		{name: "204", method: "GET", path: "/204", wantStatus: 204, wantFields: map[string][]string{"X-Done": {"yes"}}},
		{name: "304", method: "GET", path: "/304", wantStatus: 304, wantFields: map[string][]string{"Etag": {`"v1"`}}},
		{name: "repeated Set-Cookie", method: "GET", path: "/cookies", wantStatus: 200, wantBody: "ok",
			wantFields: map[string][]string{"Set-Cookie": {"a=1; Path=/", "b=2; HttpOnly"}}},
		{name: "chunked response", method: "GET", path: "/chunked", wantStatus: 200, wantBody: "abcdefg"},
		{name: "upstream 500 relayed", method: "GET", path: "/500", wantStatus: 500, wantBody: "oops"},
		{name: "after all of them", method: "GET", path: "/x", wantStatus: 200, wantBody: "default"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := c.with(t).roundTrip(fmt.Sprintf("%s %s HTTP/1.1\r\nHost: app.test\r\n\r\n", tc.method, tc.path))
			if resp.status() != tc.wantStatus {
				t.Errorf("status: got %d; want %d", resp.status(), tc.wantStatus)
			}
			if string(resp.body) != tc.wantBody {
				t.Errorf("body: got %q; want %q", resp.body, tc.wantBody)
			}
			for name, want := range tc.wantFields {
				if got := resp.values(name); !slices.Equal(got, want) {
					t.Errorf("%s: got %q; want %q", name, got, want)
				}
			}
			// However the upstream delimited its answer, the client's
			// keep-alive connection stays open (the body is re-framed).
			for _, v := range resp.values("Connection") {
				if strings.EqualFold(v, "close") {
					t.Fatalf("Connection: got %q; want the client connection kept open", v)
				}
			}
		})
	}
}

// TestE2EUpstreamCloseDelimitedBody checks a response whose body the
// upstream ends by closing its connection (no Content-Length, not chunked):
// the proxy must re-frame it for the client and keep the client's
// keep-alive connection open.
func TestE2EUpstreamCloseDelimitedBody(t *testing.T) {
	up := startRawUpstream(t, func(req *rawMessage) (string, bool) {
		if strings.HasPrefix(req.first, "GET /eof ") {
			return "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", true
		}
		return okResponse("next"), false
	})
	p := startProxy(t, oneUpstreamConfig(up.addr(), "", "", ""))
	c := dialRaw(t, p.addr)
	resp := c.roundTrip("GET /eof HTTP/1.1\r\nHost: app.test\r\n\r\n")
	if resp.status() != 200 || string(resp.body) != "until the end" {
		t.Fatalf("response: got %d %q; want 200 \"until the end\"", resp.status(), resp.body)
	}
	for _, v := range resp.values("Connection") {
		if strings.EqualFold(v, "close") {
			t.Errorf("Connection: got %q; want the client connection kept open", v)
		}
	}
	if c.closedByPeer(200 * time.Millisecond) {
		t.Fatalf("client connection: got closed by the proxy; want kept open")
	}
	if r := c.roundTrip("GET /x HTTP/1.1\r\nHost: app.test\r\n\r\n"); r.status() != 200 || string(r.body) != "next" {
		t.Errorf("next request: got %d %q; want 200 \"next\"", r.status(), r.body)
	}
}

// TestE2EExpectContinue sends a body the way curl does for large uploads:
// headers with Expect: 100-continue, then the body once told to go on.
func TestE2EExpectContinue(t *testing.T) {
	up := startHTTPUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "got %d bytes", len(b))
	}))
	p := startProxy(t, oneUpstreamConfig(up.addr(), "", "", ""))
	c := dialRaw(t, p.addr)
	body := strings.Repeat("z", 100<<10)
	if _, err := io.WriteString(c.conn, fmt.Sprintf("POST /up HTTP/1.1\r\nHost: app.test\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", len(body))); err != nil {
		t.Fatal(err)
	}
	interim, err := readRawHeader(c.br)
	if err != nil {
		t.Fatalf("reading the interim response: %v", err)
	}
	if interim.status() != 100 {
		t.Fatalf("interim status: got %q; want 100 Continue", interim.first)
	}
	if _, err := io.WriteString(c.conn, body); err != nil {
		t.Fatal(err)
	}
	resp, err := readRawResponse(c.br, "POST")
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	if want := fmt.Sprintf("got %d bytes", len(body)); resp.status() != 200 || string(resp.body) != want {
		t.Errorf("response: got %d %q; want 200 %q", resp.status(), resp.body, want)
	}
	// Nothing else (such as a second interim answer) follows on the
	// connection: the next exchange works.
	if r := c.roundTrip("GET / HTTP/1.1\r\nHost: app.test\r\n\r\n"); r.status() != 200 || string(r.body) != "got 0 bytes" {
		t.Errorf("next request: got %q %q; want 200 \"got 0 bytes\"", r.first, r.body)
	}
}
