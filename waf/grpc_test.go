package waf

import (
	"io"
	"net/netip"
	"strings"
	"testing"

	"github.com/rampart-proxy/rampart/config"
)

// TestGRPCRequest: a gRPC call (Request.GRPC) is inspected by its request
// line and header fields only. Its body is neither read (a streamed one is
// left unread, for the proxy to stream on) nor given to the engine; its
// content type passes CRS rule 920420, which refuses it otherwise; an
// attack in its metadata is refused as in any header.
func TestGRPCRequest(t *testing.T) {
	p := policy(t, "grpc", config.WAFPolicy{Mode: config.WAFModeBlock,
		Rules: `SecRule REQUEST_BODY "@contains evil" "id:10101,phase:2,deny,status:403,log"`})
	const head = "POST /users.v1.Users/Get HTTP/1.1\nHost: api.example.com\nContent-Type: %s\nTe: trailers\nContent-Length: 9\n"
	tests := []struct {
		name        string
		contentType string
		header      string // one more field
		grpc        bool
		wantStatus  int
	}{
		{"gRPC call", "application/grpc", "", true, 0},
		{"gRPC call with +proto", "application/grpc+proto", "", true, 0},
		{"gRPC call with an attack in its metadata", "application/grpc", "Referer: <script>alert(1)</script>\n", true, 403},
		{"gRPC content type not marked gRPC: body inspected, type refused", "application/grpc", "", false, 403},
		{"same body, plain request", "text/plain", "", false, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := strings.Replace(head, "%s", tt.contentType, 1) + tt.header + "\n\x00\x00\x00\x00\x04evil"
			ctx := newCtx(t, raw)
			stream := &countingReader{r: strings.NewReader("\x00\x00\x00\x00\x04evil")}
			if tt.grpc {
				ctx.Request.SetBodyStream(stream, 9)
			}
			v := p.Inspect(ctx, Request{ID: []byte("grpc-1"), ClientIP: netip.MustParseAddr("192.0.2.7"), Route: "r1", GRPC: tt.grpc})
			t.Cleanup(v.Close)
			if v.Status != tt.wantStatus {
				t.Errorf("status: got %d; want %d", v.Status, tt.wantStatus)
			}
			if tt.grpc && (stream.n != 0 || v.Body != nil) {
				t.Errorf("gRPC body: %d bytes read, replay %v; want none read and no replay", stream.n, v.Body != nil)
			}
		})
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
