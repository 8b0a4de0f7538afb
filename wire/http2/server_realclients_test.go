package http2

import (
	"bytes"
	"context"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/rampart-proxy/rampart/wire"
)

// grpcBody is a gRPC response body: messages, then trailers.
type grpcBody struct {
	r        *bytes.Reader
	trailers []wire.Field
}

func (b *grpcBody) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b *grpcBody) FlushEach() bool            { return true }
func (b *grpcBody) Trailers() []wire.Field     { return b.trailers }

// healthHandler stands in for a gRPC service behind the pipeline: it
// answers grpc.health.v1.Health/Check with SERVING, as a message and
// trailers, and every other method with a trailers-only UNIMPLEMENTED.
func healthHandler(ctx *fasthttp.RequestCtx, s wire.Stream) {
	h := &ctx.Response.Header
	h.Set("Content-Type", "application/grpc")
	if string(ctx.Request.Header.Peek("Te")) != "trailers" {
		h.Set("Grpc-Status", "13")
		h.Set("Grpc-Message", "te: trailers did not reach the pipeline")
		return
	}
	if string(ctx.Path()) != "/grpc.health.v1.Health/Check" {
		h.Set("Grpc-Status", "12")
		h.Set("Grpc-Message", "unknown method")
		return
	}
	if r := ctx.Request.BodyStream(); r != nil {
		_, _ = io.Copy(io.Discard, r)
	}
	// One length-prefixed HealthCheckResponse{status: SERVING}.
	msg := []byte{0, 0, 0, 0, 2, 0x08, 0x01}
	ctx.Response.SetBodyStream(&grpcBody{
		r:        bytes.NewReader(msg),
		trailers: []wire.Field{{Name: []byte("grpc-status"), Value: []byte("0")}},
	}, -1)
}

// TestGRPCClient calls through the server with grpc-go's own client over
// h2c: a unary call answered with a message and trailers, and one
// answered trailers-only.
func TestGRPCClient(t *testing.T) {
	ts := startServer(t, Config{}, wire.HandlerFunc(healthHandler), nil)
	cc, err := grpc.NewClient("passthrough:///"+ts.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hc := healthpb.NewHealthClient(cc)
	resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "x"})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("got %v; want SERVING", resp.GetStatus())
	}
	_, err = hc.List(ctx, &healthpb.HealthListRequest{})
	if got := status.Code(err); got != codes.Unimplemented {
		t.Errorf("List: got %v (%v); want Unimplemented", got, err)
	}
}

// TestCurl fetches with curl, over h2c with prior knowledge and over TLS
// with ALPN; skipped without curl.
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	tests := []struct {
		name string
		tls  bool
		args []string
	}{
		{"h2c prior knowledge", false, []string{"--http2-prior-knowledge"}},
		{"TLS ALPN h2", true, []string{"--http2", "-k"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ts *testServer
			if tc.tls {
				ts = startServer(t, Config{}, &okHandler{}, serverTLSConfig(t))
			} else {
				ts = startServer(t, Config{}, &okHandler{}, nil)
			}
			args := append([]string{"-sS", "-i", "--max-time", "10"}, tc.args...)
			out, err := exec.Command(curl, append(args, ts.url("/x?y=1"))...).CombinedOutput()
			if err != nil {
				t.Fatalf("curl: %v\n%s", err, out)
			}
			if !strings.HasPrefix(string(out), "HTTP/2 200") || !strings.HasSuffix(string(out), "\r\n\r\nok") {
				t.Errorf("got %q; want HTTP/2 200 with body ok", out)
			}
		})
	}
}
