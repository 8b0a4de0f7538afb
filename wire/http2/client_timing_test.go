package http2

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// The client's cost per request, beside net/http's own HTTP/2 client
// against the same h2c target (fasthttp's *_timing_test.go pairs).

func benchTarget(b *testing.B) string {
	target := startH2C(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "hello, world\n")
	}), 0)
	return target
}

func BenchmarkClientGET(b *testing.B) {
	target := benchTarget(b)
	c, err := NewClient(target, ClientOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.CloseIdleConnections()
	req := getRequest("/bench")
	var resp fasthttp.Response
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp.Reset()
		rb, err := c.RoundTrip(ctx, req, nil, &resp)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, rb)
		_ = rb.Close()
	}
}

func BenchmarkNetHTTPGET(b *testing.B) {
	target := benchTarget(b)
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	defer tr.CloseIdleConnections()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, target+"/bench", nil)
		req.Host = "backend.test"
		res, err := tr.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
	}
}

func BenchmarkClientPOSTStream(b *testing.B) {
	target := benchTarget(b)
	c, err := NewClient(target, ClientOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.CloseIdleConnections()
	req := getRequest("/bench")
	req.Header.SetMethod(fasthttp.MethodPost)
	var resp fasthttp.Response
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp.Reset()
		// A reader without Len: read through the pump, as a streamed body.
		rb, err := c.RoundTrip(ctx, req, io.LimitReader(strings.NewReader("payload"), 7), &resp)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, rb)
		_ = rb.Close()
	}
}
