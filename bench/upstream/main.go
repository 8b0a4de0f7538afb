// Command upstream is the target server of the benchmark harness: a fasthttp
// server that answers as cheaply as it can, so that a benchmark measures the
// proxy in front of it, not the upstream.
//
// GET (and any method other than POST) returns a fixed body of -body-size bytes
// ("Hello, World!" by default). POST reads the whole request body and returns a
// small body naming its length. -delay adds a fixed latency to every response,
// for balancing benchmarks. -cache-control sets a Cache-Control field on
// every GET answer (for the cache benchmark). The server runs with GOMAXPROCS=1 and sends neither
// a Date nor a Server header.
package main

import (
	"bytes"
	"flag"
	"log"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// defaultBody is the body of a GET when -body-size is 13, its default.
const defaultBody = "Hello, World!"

func main() {
	addr := flag.String("addr", "127.0.0.1:18080", "listen address")
	// -body-file: the compression scenario's text (bench/scenario_compress.sh).
	bodyFile := flag.String("body-file", "", "a file whose bytes are the GET response body (overrides -body-size)")
	delay := flag.Duration("delay", 0, "fixed latency added to every response (0 = none)")
	bodySize := flag.Int("body-size", len(defaultBody), "size of the GET response body in bytes")
	cacheControl := flag.String("cache-control", "", "Cache-Control of GET answers (empty: none)")
	flag.Parse()

	runtime.GOMAXPROCS(1)

	body := makeBody(*bodySize)
	if *bodyFile != "" {
		b, err := os.ReadFile(*bodyFile)
		if err != nil {
			log.Fatalf("upstream: %v", err)
		}
		body = b
	}
	contentType := []byte("text/plain")
	postPrefix := []byte("received ")

	handler := func(ctx *fasthttp.RequestCtx) {
		if *delay > 0 {
			time.Sleep(*delay)
		}
		ctx.Response.Header.SetContentTypeBytes(contentType)
		if ctx.IsPost() {
			// fasthttp has already read the whole body; answer with its length
			// so a client can check that nothing was lost on the way.
			n := len(ctx.PostBody())
			buf := ctx.Response.BodyWriter()
			var tmp [32]byte
			out := append(tmp[:0], postPrefix...)
			out = strconv.AppendInt(out, int64(n), 10)
			_, _ = buf.Write(out)
			return
		}
		if *cacheControl != "" {
			ctx.Response.Header.Set("Cache-Control", *cacheControl)
		}
		ctx.Response.SetBodyRaw(body)
	}

	srv := &fasthttp.Server{
		Handler:               handler,
		Name:                  "",
		NoDefaultDate:         true,
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		// Idle keep-alive connections from the proxies must survive a run.
		IdleTimeout: 5 * time.Minute,
	}
	log.Printf("upstream: listening on %s (delay %s, GET body %d bytes)", *addr, *delay, len(body))
	if err := srv.ListenAndServe(*addr); err != nil {
		log.Fatalf("upstream: %v", err)
	}
}

// makeBody returns n bytes: defaultBody, cut or padded with 'x'.
func makeBody(n int) []byte {
	if n < 0 {
		n = 0
	}
	if n <= len(defaultBody) {
		return []byte(defaultBody[:n])
	}
	return append([]byte(defaultBody), bytes.Repeat([]byte("x"), n-len(defaultBody))...)
}
