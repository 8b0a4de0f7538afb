package proxy

// The pipeline's own answers to gRPC requests, seen through the in-memory
// seam: every failure Rampart answers itself becomes a gRPC Trailers-Only
// response (HTTP 200, application/grpc, grpc-status, grpc-message).

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/rampart-proxy/rampart/wire"
)

// grpcAnswerConfig has routes for each proxy-side failure: no route, rate
// limit, WAF (the CRS and a rule on a metadata key), a dead HTTP/2 target,
// and no target at all (every target down). deadAddr is a loopback
// address nothing listens on.
func grpcAnswerConfig(deadAddr string) string {
	return fmt.Sprintf(`
listeners:
  web:
    address: 127.0.0.1:0
    limits: {max_body_size: 100}
rate_limits:
  once:
    key: client_ip
    rate: 1/m
    burst: 1
waf:
  crs:
    mode: block
    rules: |
      SecRule REQUEST_HEADERS:x-tenant "@streq evil" "id:10001,phase:1,deny,status:403,log"
      SecRule REQUEST_BODY "@contains evil" "id:10002,phase:2,deny,status:403,log"
upstreams:
  dead:
    protocol: http2
    targets:
      - url: http://%s
routes:
  - name: limited
    match: {path_prefix: /limited.v1.}
    upstream: dead
    rate_limit: once
  - name: guarded
    match: {path_prefix: /guarded.v1.}
    upstream: dead
    waf: crs
  - name: dead
    match: {path_prefix: /dead.v1.}
    upstream: dead
access_log: {path: "off"}
`, deadAddr)
}

// grpcRequest is a unary gRPC call's request as the in-memory seam takes
// it: one empty message (5 bytes of framing).
func grpcRequest(path string, headers ...string) string {
	var b strings.Builder
	b.WriteString("POST " + path + " HTTP/1.1\r\nHost: grpc.test\r\nContent-Type: application/grpc\r\nTe: trailers\r\n")
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Content-Length: 5\r\n\r\n\x00\x00\x00\x00\x00")
	return b.String()
}

// TestGRPCProxyAnswers: each failure Rampart answers itself reaches a gRPC
// client in gRPC terms, with the status gRPC clients act on.
func TestGRPCProxyAnswers(t *testing.T) {
	h := inMemoryPipeline(t, grpcAnswerConfig(freeAddr(t)), "web")
	peer := netip.MustParseAddr("192.0.2.7")
	tests := []struct {
		name     string
		raw      string
		wantCode string
		wantMsg  string // a part of grpc-message
	}{
		{"no route", grpcRequest("/nothing.v1.S/M"), "12", "no route"},
		{"connect failure", grpcRequest("/dead.v1.S/M"), "14", "could not be reached"},
		{"rate limit: first call passes to the dead target", grpcRequest("/limited.v1.S/M"), "14", ""},
		{"rate limit: second call", grpcRequest("/limited.v1.S/M"), "8", "Too Many Requests"},
		{"WAF: clean metadata passes to the dead target", grpcRequest("/guarded.v1.S/M", "X-Tenant: acme"), "14", ""},
		{"WAF: custom rule on a metadata key", grpcRequest("/guarded.v1.S/M", "X-Tenant: evil"), "7", "web application firewall"},
		{"WAF: the message body is not inspected", strings.Replace(grpcRequest("/guarded.v1.S/M"),
			"Content-Length: 5\r\n\r\n\x00\x00\x00\x00\x00", "Content-Length: 9\r\n\r\n\x00\x00\x00\x00\x04evil", 1), "14", ""},
		{"WAF: CRS finds XSS in metadata", grpcRequest("/guarded.v1.S/M", "Referer: <script>alert(1)</script>"), "7", "web application firewall"},
		{"body over max_body_size", strings.Replace(grpcRequest("/dead.v1.S/M"), "Content-Length: 5\r\n\r\n\x00\x00\x00\x00\x00",
			"Content-Length: 200\r\n\r\n"+strings.Repeat("x", 200), 1), "8", "Too Large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := serveInMemory(t, h, &testStream{peer: peer, proto: wire.HTTP2}, tt.raw)
			if got := resp.StatusCode(); got != 200 {
				t.Errorf("HTTP status: got %d; want 200", got)
			}
			if got := string(resp.Header.ContentType()); got != "application/grpc" {
				t.Errorf("content-type: got %q; want application/grpc", got)
			}
			if got := string(resp.Header.Peek("Grpc-Status")); got != tt.wantCode {
				t.Errorf("grpc-status: got %q; want %q (grpc-message %q)", got, tt.wantCode, resp.Header.Peek("Grpc-Message"))
			}
			if msg := string(resp.Header.Peek("Grpc-Message")); !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("grpc-message: got %q; want it to contain %q", msg, tt.wantMsg)
			}
			if n := len(resp.Body()); n != 0 {
				t.Errorf("body: got %d bytes; want none (Trailers-Only)", n)
			}
			if id := resp.Header.Peek(hdrXRequestID); len(id) == 0 {
				t.Error("no X-Request-Id in the answer; want one")
			}
		})
	}

	// A gRPC content type alone does not take a body past the WAF: the
	// same call over HTTP/1.1 (which gRPC never uses) has its body
	// inspected. (Another method than POST is refused by the CRS anyway.)
	evil := strings.Replace(grpcRequest("/guarded.v1.S/M"), "Content-Length: 5\r\n\r\n\x00\x00\x00\x00\x00", "Content-Length: 9\r\n\r\n\x00\x00\x00\x00\x04evil", 1)
	for _, tc := range []struct {
		name  string
		proto wire.Protocol
		raw   string
	}{
		{"over HTTP/1.1", wire.HTTP1, evil},
	} {
		resp := serveInMemory(t, h, &testStream{peer: peer, proto: tc.proto}, tc.raw)
		if got := string(resp.Header.Peek("Grpc-Status")); got != "7" {
			t.Errorf("gRPC content type %s with the body rule's word: grpc-status %q; want 7 (the body inspected and refused)", tc.name, got)
		}
	}

	// The same body in a request that is not gRPC is inspected.
	resp := serveInMemory(t, h, &testStream{peer: peer}, "POST /guarded.v1.S/M HTTP/1.1\r\nHost: grpc.test\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nevil")
	if got := resp.StatusCode(); got != 403 {
		t.Errorf("plain request with the body rule's word: got %d; want 403", got)
	}

	// A request that is not gRPC keeps the HTTP answer.
	resp = serveInMemory(t, h, &testStream{peer: peer}, "GET /nothing HTTP/1.1\r\nHost: grpc.test\r\n\r\n")
	if got, gs := resp.StatusCode(), resp.Header.Peek("Grpc-Status"); got != 404 || gs != nil {
		t.Errorf("plain request without a route: got %d, grpc-status %q; want 404 and none", got, gs)
	}
}
