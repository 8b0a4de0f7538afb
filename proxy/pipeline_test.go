package proxy

// The in-memory seam: the pipeline driven through wire.Handler with a
// fasthttp.RequestCtx and a test wire.Stream, without a socket, as a wire
// layer drives it.

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/wire"
)

// testStream is a wire.Stream with fixed answers.
type testStream struct {
	peer    netip.Addr
	tls     bool
	subject []byte
	// proto is the protocol the request came by (zero: HTTP/1.1).
	proto wire.Protocol
	// hijack is what the pipeline asked to run on the connection.
	hijack func(c net.Conn, r io.Reader, w io.Writer)
}

func (s *testStream) Peer() netip.Addr { return s.peer }
func (s *testStream) Protocol() wire.Protocol {
	if s.proto == 0 {
		return wire.HTTP1
	}
	return s.proto
}
func (s *testStream) TLS() bool                { return s.tls }
func (s *testStream) ClientSubject() []byte    { return s.subject }
func (s *testStream) Context() context.Context { return context.Background() }
func (s *testStream) Hijack(fn func(c net.Conn, r io.Reader, w io.Writer)) bool {
	s.hijack = fn
	return true
}

// inMemoryPipeline builds the server yaml describes, without starting it,
// and returns listener name's pipeline.
func inMemoryPipeline(t *testing.T, yaml, name string) wire.Handler {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), "test.yaml")
	if err != nil {
		t.Fatalf("config.Parse: %v\n%s", err, yaml)
	}
	srv, err := New(cfg, e2eLogger())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return &listener{name: name, srv: srv}
}

// serveInMemory hands h the request raw (a header, and a body of its
// Content-Length) from st, and returns the response h left.
func serveInMemory(t *testing.T, h wire.Handler, st wire.Stream, raw string) *fasthttp.Response {
	t.Helper()
	ctx := new(fasthttp.RequestCtx)
	if err := ctx.Request.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatalf("reading %q: %v", raw, err)
	}
	h.ServeWire(ctx, st)
	return &ctx.Response
}

const pipelineConfig = `
listeners:
  web:
    address: 127.0.0.1:0
    limits: {max_body_size: 10}
rate_limits:
  once:
    key: client_ip
    rate: 1/m
    burst: 1
routes:
  - name: canned
    match: {host: app.test, path_prefix: /canned}
    respond: {status: 200, body: "canned"}
  - name: limited
    match: {host: app.test, path_prefix: /limited}
    respond: {status: 200, body: "limited"}
    rate_limit: once
access_log: {path: "off"}
`

// TestPipelineInMemory: what the pipeline answers by itself, seen through
// the seam.
func TestPipelineInMemory(t *testing.T) {
	h := inMemoryPipeline(t, pipelineConfig, "web")
	peer := netip.MustParseAddr("192.0.2.1")
	tests := []struct {
		name       string
		raw        string
		wantStatus int
		wantBody   string
	}{
		{"respond route", "GET /canned HTTP/1.1\r\nHost: app.test\r\n\r\n", 200, "canned"},
		{"no route for the host", "GET /canned HTTP/1.1\r\nHost: other.test\r\n\r\n", 404, string(bodyNotFound)},
		{"body over max_body_size", "POST /canned HTTP/1.1\r\nHost: app.test\r\nContent-Length: 11\r\n\r\n01234567890", 413, string(bodyTooLarge)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := serveInMemory(t, h, &testStream{peer: peer}, tt.raw)
			if got := resp.StatusCode(); got != tt.wantStatus {
				t.Errorf("status: got %d; want %d", got, tt.wantStatus)
			}
			if got := string(resp.Body()); got != tt.wantBody {
				t.Errorf("body: got %q; want %q", got, tt.wantBody)
			}
			if id := resp.Header.Peek(hdrXRequestID); len(id) == 0 {
				t.Error("no X-Request-Id in the answer; want one")
			}
		})
	}
}

// TestPipelineRateLimitByPeer: the pipeline takes the client's address from
// the stream's Peer: a second request from one peer is limited, the first
// from another is not.
func TestPipelineRateLimitByPeer(t *testing.T) {
	h := inMemoryPipeline(t, pipelineConfig, "web")
	const get = "GET /limited HTTP/1.1\r\nHost: app.test\r\n\r\n"
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	tests := []struct {
		name string
		peer netip.Addr
		want int
	}{
		{"first from a", a, 200},
		{"second from a", a, 429},
		{"first from b", b, 200},
	}
	for _, tt := range tests { // in order: each step counts
		if got := serveInMemory(t, h, &testStream{peer: tt.peer}, get).StatusCode(); got != tt.want {
			t.Errorf("%s: got %d; want %d", tt.name, got, tt.want)
		}
	}
}
