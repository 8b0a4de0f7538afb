package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
	"golang.org/x/net/http2"

	"github.com/rampart-proxy/rampart/config"
)

// benchUpstream serves a small fixed body, and echoes a short answer to POSTs.
func benchUpstream(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("text/plain")
			ctx.SetBodyString("Hello, World!")
		},
		NoDefaultDate: true, NoDefaultServerHeader: true,
	}
	go s.Serve(ln) //nolint:errcheck
	tb.Cleanup(func() { _ = s.Shutdown() })
	return ln.Addr().String()
}

// benchProxy starts Rampart in front of upstream and returns its address.
func benchProxy(tb testing.TB, upstream string) string {
	tb.Helper()
	yaml := fmt.Sprintf(`
listeners:
  web: {address: "127.0.0.1:0"}
upstreams:
  u:
    targets: [{url: "http://%s"}]
routes:
  - upstream: u
access_log: {path: "off"}
`, upstream)
	cfg, err := config.Parse([]byte(yaml), "bench.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	srv := serveConfig(tb, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return srv.Addr("web")
}

// benchGET drives addr with keep-alive GETs from one client; the proxied and
// the direct runs differ only by the proxy in between.
func benchGET(b *testing.B, addr string) {
	c := &fasthttp.HostClient{Addr: addr, MaxConns: 64}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI("http://bench.local/hello")
		for pb.Next() {
			if err := c.Do(req, resp); err != nil {
				b.Fatal(err)
			}
			if resp.StatusCode() != 200 {
				b.Fatalf("status: got %d; want 200", resp.StatusCode())
			}
		}
	})
}

func BenchmarkDirectGET(b *testing.B) { benchGET(b, benchUpstream(b)) }

func BenchmarkProxyGET(b *testing.B) { benchGET(b, benchProxy(b, benchUpstream(b))) }

func benchPOST(b *testing.B, addr string) {
	c := &fasthttp.HostClient{Addr: addr, MaxConns: 64}
	body := []byte(`{"items":[` + strings.Repeat(`{"id":12345,"name":"value"},`, 580) + `{}]}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI("http://bench.local/items")
		req.Header.SetMethod("POST")
		req.SetBody(body)
		for pb.Next() {
			if err := c.Do(req, resp); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDirectPOST16K(b *testing.B) { benchPOST(b, benchUpstream(b)) }

func BenchmarkProxyPOST16K(b *testing.B) { benchPOST(b, benchProxy(b, benchUpstream(b))) }

// benchH2GET drives addr (an h2c listener) with GETs from 16 goroutines
// over one x/net client, which multiplexes them on its connections.
func benchH2GET(b *testing.B, addr string) {
	tr := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	url := "http://" + addr + "/hello"
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("status: got %d; want 200", resp.StatusCode)
			}
		}
	})
}

// benchH2Proxy starts Rampart with an h2c listener in front of upstream.
func benchH2Proxy(b *testing.B, upstream string, onGoroutines bool) string {
	h2OnGoroutines = onGoroutines
	b.Cleanup(func() { h2OnGoroutines = false })
	yaml := fmt.Sprintf(`
listeners:
  web: {address: "127.0.0.1:0", protocols: [http1, h2c]}
upstreams:
  u:
    targets: [{url: "http://%s"}]
routes:
  - upstream: u
access_log: {path: "off"}
`, upstream)
	cfg, err := config.Parse([]byte(yaml), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	srv := serveConfig(b, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return srv.Addr("web")
}

// BenchmarkProxyH2GET is a GET over h2c through Rampart to an HTTP/1.1
// upstream, the client in the same process; Workers serves the streams on
// the worker pool (as the listeners do), Goroutines on x/net's goroutine
// per stream.
func BenchmarkProxyH2GET(b *testing.B) {
	b.Run("Workers", func(b *testing.B) { benchH2GET(b, benchH2Proxy(b, benchUpstream(b), false)) })
	b.Run("Goroutines", func(b *testing.B) { benchH2GET(b, benchH2Proxy(b, benchUpstream(b), true)) })
}
