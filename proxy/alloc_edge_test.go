package proxy

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/config"
)

// TestEdgeAllocs measures whole proxied requests, as TestWholeRequestAllocs
// does, through routes that use rewrites and header edits both ways, and
// compression of a whole body: once warm, they allocate nothing either.
func TestEdgeAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	page := strings.Repeat("<p>a line of text that compresses well</p>\n", 100)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("text/html")
			ctx.Response.Header.Set("ETag", `"x"`)
			ctx.SetBodyString(page)
		},
		NoDefaultDate: true, NoDefaultServerHeader: true,
	}
	go up.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { _ = up.Shutdown() })
	cfg, err := config.Parse(fmt.Appendf(nil, `
listeners:
  web: {address: "127.0.0.1:0"}
upstreams:
  u:
    targets: [{url: "http://%s"}]
routes:
  - name: edits
    match: {path_prefix: /static}
    upstream: u
    rewrite: {strip_prefix: /static}
    request_headers: {set: {X-Env: prod}, add: {X-Tag: a}, remove: [X-Debug]}
    response_headers: {set: {X-Frame-Options: DENY}, add: {X-Served-By: rampart}, remove: [X-Powered-By]}
  - name: gzip
    match: {path_prefix: /gz}
    upstream: u
    compress: true
access_log: {path: "off"}
`, ln.Addr()), "alloc.yaml")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(t.Context()) })
	for _, tt := range []struct {
		name       string
		req        string
		check, val string // a response field that proves the feature ran
		want       float64
	}{
		{"rewrite and header edits", "GET /static/a.css?v=1 HTTP/1.1\r\nHost: bench.local\r\nX-Debug: 1\r\n\r\n", "X-Frame-Options", "DENY", 0},
		{"gzip whole body", "GET /gz HTTP/1.1\r\nHost: bench.local\r\nAccept-Encoding: gzip\r\n\r\n", "Content-Encoding", "gzip", 0},
		{"zstd whole body", "GET /gz HTTP/1.1\r\nHost: bench.local\r\nAccept-Encoding: zstd\r\n\r\n", "Content-Encoding", "zstd", 0},
		{"br whole body", "GET /gz HTTP/1.1\r\nHost: bench.local\r\nAccept-Encoding: br\r\n\r\n", "Content-Encoding", "br", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := dialRaw(t, srv.Addr("web")).roundTrip(tt.req)
			if got, _ := m.get(tt.check); got != tt.val {
				t.Fatalf("%s %q; want %q", tt.check, got, tt.val)
			}
			n := requestAllocs(t, srv.Addr("web"), tt.req)
			if n > tt.want {
				t.Errorf("got %v allocations per proxied request; want %v", n, tt.want)
			}
		})
	}
}
