package main

import (
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// startDemo serves the demo handler on an in-memory listener and returns a
// client that talks to it.
func startDemo(t *testing.T) *fasthttp.Client {
	t.Helper()
	ln := fasthttputil.NewInmemoryListener()
	srv := newServer("test")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	t.Cleanup(func() {
		if err := srv.Shutdown(); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-errc; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &fasthttp.Client{
		Dial: func(string) (net.Conn, error) { return ln.Dial() },
	}
}

func do(t *testing.T, c *fasthttp.Client, method, uri string, body []byte, hdr map[string]string) (int, string, *fasthttp.ResponseHeader) {
	t.Helper()
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if body != nil {
		req.SetBody(body)
	}
	if err := c.DoTimeout(req, resp, 5*time.Second); err != nil {
		t.Fatalf("%s %s: %v", method, uri, err)
	}
	h := &fasthttp.ResponseHeader{}
	resp.Header.CopyTo(h)
	return resp.StatusCode(), string(resp.Body()), h
}

func TestHandler(t *testing.T) {
	c := startDemo(t)
	tests := []struct {
		name       string
		method     string
		uri        string
		body       []byte
		wantStatus int
		wantBody   string // exact when set
	}{
		{name: "health", method: "GET", uri: "http://demo/health", wantStatus: 200, wantBody: "ok\n"},
		{name: "echo", method: "POST", uri: "http://demo/echo", body: []byte("hello, rampart"), wantStatus: 200, wantBody: "hello, rampart"},
		{name: "echo empty", method: "POST", uri: "http://demo/echo", wantStatus: 200, wantBody: ""},
		{name: "status 418", method: "GET", uri: "http://demo/status/418", wantStatus: 418, wantBody: "418 I'm a teapot\n"},
		{name: "status 503", method: "GET", uri: "http://demo/status/503", wantStatus: 503},
		{name: "status out of range", method: "GET", uri: "http://demo/status/99", wantStatus: 400},
		{name: "status not a number", method: "GET", uri: "http://demo/status/abc", wantStatus: 400},
		{name: "slow", method: "GET", uri: "http://demo/slow?ms=10", wantStatus: 200, wantBody: "test: slept 10ms\n"},
		{name: "slow bad ms", method: "GET", uri: "http://demo/slow?ms=x", wantStatus: 400},
		{name: "slow negative ms", method: "GET", uri: "http://demo/slow?ms=-1", wantStatus: 400},
		{name: "catch-all", method: "GET", uri: "http://demo/anything", wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, h := do(t, c, tt.method, tt.uri, tt.body, nil)
			if status != tt.wantStatus {
				t.Errorf("status = %d; want %d (body %q)", status, tt.wantStatus, body)
			}
			if tt.wantBody != "" && body != tt.wantBody {
				t.Errorf("body = %q; want %q", body, tt.wantBody)
			}
			if got := string(h.Peek("X-Upstream")); got != "test" {
				t.Errorf("X-Upstream = %q; want %q", got, "test")
			}
		})
	}
}

func TestEchoKeepsContentType(t *testing.T) {
	c := startDemo(t)
	_, _, h := do(t, c, "POST", "http://demo/echo", []byte(`{"a":1}`), map[string]string{"Content-Type": "application/json"})
	if got := string(h.ContentType()); got != "application/json" {
		t.Errorf("Content-Type = %q; want application/json", got)
	}
}

func TestInfoReportsProxyHeaders(t *testing.T) {
	c := startDemo(t)
	hdr := map[string]string{
		"X-Forwarded-For":   "192.0.2.1, 127.0.0.1",
		"X-Forwarded-Proto": "https",
		"X-Forwarded-Host":  "example.com",
		"X-Request-Id":      "abc-123",
	}
	status, body, h := do(t, c, "PUT", "http://backend.local/some/path?x=1&y=2", nil, hdr)
	if status != 200 {
		t.Fatalf("status = %d; want 200", status)
	}
	if got := string(h.ContentType()); got != "application/json" {
		t.Errorf("Content-Type = %q; want application/json", got)
	}
	var got received
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("decoding %q: %v", body, err)
	}
	want := received{
		Upstream:        "test",
		Method:          "PUT",
		Path:            "/some/path",
		Query:           "x=1&y=2",
		Host:            "backend.local",
		RemoteAddr:      got.RemoteAddr, // in-memory listener; not checked
		XForwardedFor:   "192.0.2.1, 127.0.0.1",
		XForwardedProto: "https",
		XForwardedHost:  "example.com",
		XRequestID:      "abc-123",
	}
	if got != want {
		t.Errorf("got %+v; want %+v", got, want)
	}
}

func TestSlowStopsOnShutdown(t *testing.T) {
	ln := fasthttputil.NewInmemoryListener()
	srv := newServer("test")
	entered := make(chan struct{})
	h := srv.Handler
	srv.Handler = func(ctx *fasthttp.RequestCtx) {
		close(entered) // one request only
		h(ctx)
	}
	go func() { _ = srv.Serve(ln) }()
	c := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}

	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		req := fasthttp.AcquireRequest()
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://demo/slow?ms=60000")
		err := c.DoTimeout(req, resp, 10*time.Second)
		done <- result{resp.StatusCode(), err}
	}()

	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("request never reached the handler")
	}
	start := time.Now()
	if err := srv.Shutdown(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("request: %v", r.err)
	}
	if r.status != fasthttp.StatusServiceUnavailable {
		t.Errorf("status = %d; want 503", r.status)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %s; want well under the 60s sleep", d)
	}
}
