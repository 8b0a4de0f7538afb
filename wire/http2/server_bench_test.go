package http2

import (
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/net/http2"

	"github.com/rampart-proxy/rampart/wire"
	"github.com/rampart-proxy/rampart/wire/http1"
)

// benchWriter is the least http.ResponseWriter: it keeps the header map
// and drops the rest, so that only the conversion is measured.
type benchWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) WriteHeader(code int)        { w.status = code }
func (w *benchWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }
func (w *benchWriter) Flush()                      {}

// benchRequest is a browser's GET as x/net hands it to a handler.
func benchRequest() *http.Request {
	r := &http.Request{
		Method:     "GET",
		RequestURI: "/api/v1/items?id=42&sort=name",
		Host:       "shop.example.com",
		Proto:      "HTTP/2.0",
		ProtoMajor: 2,
		Header: http.Header{
			"Accept":          {"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
			"Accept-Encoding": {"gzip, deflate, br"},
			"Accept-Language": {"en-US,en;q=0.5"},
			"Cookie":          {"session=0123456789abcdef; theme=dark"},
			"Referer":         {"https://shop.example.com/"},
			"User-Agent":      {"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"},
			"Sec-Fetch-Mode":  {"navigate"},
			"Sec-Fetch-Site":  {"same-origin"},
		},
		Body: http.NoBody,
	}
	return r.WithContext(context.Background())
}

var benchBody = []byte(strings.Repeat("x", 2048))

// BenchmarkServeStream is one request through the conversion: x/net's
// http.Request into a pooled RequestCtx, the pipeline (a handler that sets
// three fields and a 2 KiB body), the response back through an
// http.ResponseWriter.
func BenchmarkServeStream(b *testing.B) {
	h := wire.HandlerFunc(func(ctx *fasthttp.RequestCtx, s wire.Stream) {
		ctx.SetStatusCode(200)
		ctx.Response.Header.Set("Content-Type", "application/json")
		ctx.Response.Header.Set("Cache-Control", "no-store")
		ctx.Response.Header.Set("X-Request-Id", "4bf92f3577b34da6")
		ctx.Response.SetBodyRaw(benchBody)
	})
	s := New(h, Config{})
	cn := &conn{s: s, nc: fakeConn{}, ip: &ipStreams{}}
	r := benchRequest()
	w := &benchWriter{h: make(http.Header)}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		w.n = 0
		cn.ServeHTTP(w, r)
	}
	if w.status != 200 || w.n != len(benchBody) {
		b.Fatalf("got %d with %d bytes; want 200 with %d", w.status, w.n, len(benchBody))
	}
}

// BenchmarkServeStreamBaseline is the same answer written by a net/http
// handler straight to the ResponseWriter, reading the same fields: what
// an x/net server costs without the translation to fasthttp's types.
func BenchmarkServeStreamBaseline(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.Header.Get("User-Agent")
		_ = r.Header.Get("Cookie")
		wh := w.Header()
		wh["Content-Type"] = []string{"application/json"}
		wh["Cache-Control"] = []string{"no-store"}
		wh["X-Request-Id"] = []string{"4bf92f3577b34da6"}
		w.WriteHeader(200)
		_, _ = w.Write(benchBody)
	})
	r := benchRequest()
	w := &benchWriter{h: make(http.Header)}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, r)
	}
}

// BenchmarkRoundTrip is one GET from x/net's client over a loopback h2c
// connection, both ends in this process: the whole server side included.
func BenchmarkRoundTrip(b *testing.B) {
	ts := startServer(b, Config{}, &okHandler{}, nil)
	c := ts.client()
	url := ts.url("/")
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// fakeConn is a net.Conn with addresses only, for RequestCtx.Init2.
type fakeConn struct{ net.Conn }

func (fakeConn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000} }
func (fakeConn) LocalAddr() net.Addr  { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 443} }

// BenchmarkIdleConnection reports the memory an idle HTTP/2 connection
// holds on the server (heap and goroutine stacks, after its SETTINGS
// exchange), measured over 500 connections; the client ends are bare
// sockets that cost little beside.
func BenchmarkIdleConnection(b *testing.B) {
	const n = 500
	ts := startServer(b, Config{}, &okHandler{}, nil)
	greeting := append([]byte(http2.ClientPreface), 0, 0, 0, 0x4, 0, 0, 0, 0, 0) // an empty SETTINGS
	for b.Loop() {
		before := memInUse()
		conns := make([]net.Conn, 0, n)
		for range n {
			c, err := net.Dial("tcp", ts.addr)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Write(greeting); err != nil {
				b.Fatal(err)
			}
			conns = append(conns, c)
		}
		// Wait for every connection to be registered and read.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			ts.mu.Lock()
			k := len(ts.conns)
			ts.mu.Unlock()
			if k >= n {
				break
			}
		}
		time.Sleep(200 * time.Millisecond)
		after := memInUse()
		b.ReportMetric(float64(after-before)/n, "B/conn")
		for _, c := range conns {
			c.Close()
		}
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			ts.mu.Lock()
			k := len(ts.conns)
			ts.mu.Unlock()
			if k == 0 {
				break
			}
		}
	}
}

func memInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse + m.StackInuse)
}

// useStack takes about n KiB of stack: a handler as deep as the pipeline.
//
//go:noinline
func useStack(n int) byte {
	var buf [1000]byte
	buf[n%len(buf)] = byte(n)
	if n == 0 {
		return buf[0]
	}
	return useStack(n-1) + buf[7]
}

// benchmarkServeGoroutine is BenchmarkServeStream with ServeHTTP called on
// a new goroutine each time, as x/net does, and a handler that takes 16
// KiB of stack.
func benchmarkServeGoroutine(b *testing.B, run func(func())) {
	h := wire.HandlerFunc(func(ctx *fasthttp.RequestCtx, s wire.Stream) {
		_ = useStack(16)
		ctx.SetStatusCode(200)
		ctx.Response.Header.Set("Content-Type", "application/json")
		ctx.Response.SetBodyRaw(benchBody)
	})
	s := New(h, Config{Run: run})
	cn := &conn{s: s, nc: fakeConn{}, ip: &ipStreams{}}
	r := benchRequest()
	w := &benchWriter{h: make(http.Header)}
	done := make(chan struct{})
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		go func() {
			cn.ServeHTTP(w, r)
			done <- struct{}{}
		}()
		<-done
	}
	if w.status != 200 {
		b.Fatalf("got %d; want 200", w.status)
	}
}

// BenchmarkServeGoroutine: the stream served on x/net's goroutine, whose
// stack grows (by copying) on every stream.
func BenchmarkServeGoroutine(b *testing.B) { benchmarkServeGoroutine(b, nil) }

// BenchmarkServeGoroutineWorkers: the stream served on a pooled worker
// (Config.Run, as the listeners do), whose stack has grown once.
func BenchmarkServeGoroutineWorkers(b *testing.B) {
	w := http1.NewWorkers()
	defer w.Close()
	benchmarkServeGoroutine(b, w.Go)
}
