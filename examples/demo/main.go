// Command rampart-demo is a small upstream to try Rampart with.
//
// `make run` starts it beside Rampart (examples/quickstart.yaml sends
// everything to it) so a newcomer can curl through the proxy at once. It
// answers:
//
//	/health        200 "ok"
//	/slow?ms=N     sleeps N milliseconds (at most maxSlow), then replies
//	/echo          the request body, with its Content-Type
//	/status/NNN    status NNN (200-599)
//	anything else  JSON describing what the upstream received: method, path,
//	               query, Host and the proxy headers
//
// It stops gracefully on SIGINT and SIGTERM.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

const (
	// maxSlow caps /slow so a typo cannot park a connection for hours.
	maxSlow = 60 * time.Second
	// shutdownGrace is how long in-flight requests may take after a signal.
	shutdownGrace = 5 * time.Second
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "address to listen on (host:port)")
	name := flag.String("name", "demo", "name reported in replies and the X-Upstream header")
	flag.Parse()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("rampart-demo: %v", err)
	}
	srv := newServer(*name)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Printf("rampart-demo %q listening on http://%s", *name, ln.Addr())

	select {
	case err := <-errc:
		if err != nil {
			log.Fatalf("rampart-demo: %v", err)
		}
		return
	case <-ctx.Done():
	}
	log.Printf("rampart-demo %q stopping", *name)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.ShutdownWithContext(sctx); err != nil {
		log.Printf("rampart-demo: shutdown: %v", err)
	}
}

// newServer returns the demo server; timeouts keep Shutdown from waiting
// on idle keep-alive connections.
func newServer(name string) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:     newHandler(name),
		Name:        "rampart-demo",
		ReadTimeout: 30 * time.Second,
		IdleTimeout: 30 * time.Second,
	}
}

// received is what the catch-all endpoint reports.
type received struct {
	Upstream        string `json:"upstream"`
	Method          string `json:"method"`
	Path            string `json:"path"`
	Query           string `json:"query"`
	Host            string `json:"host"`
	RemoteAddr      string `json:"remote_addr"`
	XForwardedFor   string `json:"x_forwarded_for"`
	XForwardedProto string `json:"x_forwarded_proto"`
	XForwardedHost  string `json:"x_forwarded_host"`
	XRequestID      string `json:"x_request_id"`
}

// newHandler returns the demo's request handler; name identifies this
// instance when several run behind one pool.
func newHandler(name string) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		// Set last: ctx.Error resets the response headers.
		defer ctx.Response.Header.Set("X-Upstream", name)
		path := ctx.Path()
		switch {
		case string(path) == "/health":
			ctx.SetContentType("text/plain; charset=utf-8")
			ctx.SetBodyString("ok\n")
		case string(path) == "/slow":
			handleSlow(ctx, name)
		case string(path) == "/echo":
			handleEcho(ctx)
		case bytes.HasPrefix(path, []byte("/status/")):
			handleStatus(ctx, path[len("/status/"):])
		default:
			handleInfo(ctx, name)
		}
	}
}

// handleSlow sleeps ?ms=N milliseconds (capped at maxSlow), or less if the
// server is shutting down.
func handleSlow(ctx *fasthttp.RequestCtx, name string) {
	ms, err := strconv.Atoi(string(ctx.QueryArgs().Peek("ms")))
	if err != nil || ms < 0 {
		ctx.Error("slow: ms must be a whole number of milliseconds >= 0\n", fasthttp.StatusBadRequest)
		return
	}
	d := maxSlow
	if ms < int(maxSlow/time.Millisecond) {
		d = time.Duration(ms) * time.Millisecond
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		ctx.Error("slow: shutting down\n", fasthttp.StatusServiceUnavailable)
		return
	}
	ctx.SetContentType("text/plain; charset=utf-8")
	fmt.Fprintf(ctx, "%s: slept %s\n", name, d)
}

// handleEcho returns the request body unchanged.
func handleEcho(ctx *fasthttp.RequestCtx) {
	ct := ctx.Request.Header.ContentType()
	if len(ct) == 0 {
		ct = []byte("application/octet-stream")
	}
	ctx.Response.Header.SetContentTypeBytes(ct)
	ctx.SetBody(ctx.Request.Body())
}

// handleStatus answers with the status code in the path.
func handleStatus(ctx *fasthttp.RequestCtx, code []byte) {
	n, err := strconv.Atoi(string(code))
	if err != nil || n < 200 || n > 599 {
		ctx.Error("status: want /status/NNN with NNN in 200-599\n", fasthttp.StatusBadRequest)
		return
	}
	ctx.SetStatusCode(n)
	ctx.SetContentType("text/plain; charset=utf-8")
	fmt.Fprintf(ctx, "%d %s\n", n, fasthttp.StatusMessage(n))
}

// handleInfo reports what the upstream received, so the proxy headers can be
// seen.
func handleInfo(ctx *fasthttp.RequestCtx, name string) {
	h := &ctx.Request.Header
	r := received{
		Upstream:        name,
		Method:          string(ctx.Method()),
		Path:            string(ctx.Path()),
		Query:           string(ctx.QueryArgs().QueryString()),
		Host:            string(ctx.Host()),
		RemoteAddr:      ctx.RemoteAddr().String(),
		XForwardedFor:   string(h.Peek("X-Forwarded-For")),
		XForwardedProto: string(h.Peek("X-Forwarded-Proto")),
		XForwardedHost:  string(h.Peek("X-Forwarded-Host")),
		XRequestID:      string(h.Peek("X-Request-Id")),
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		// received holds only strings; Marshal cannot fail.
		panic(err)
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '\n'))
}
