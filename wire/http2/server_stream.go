package http2

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/wire"
)

// stream is what the pipeline knows of one HTTP/2 stream (wire.Stream),
// with the RequestCtx it is served in. Streams are pooled.
type stream struct {
	c    *conn
	ctx  context.Context
	rc   fasthttp.RequestCtx
	body bodyReader

	// For Config.Run: the stream's writer and request, the function the
	// worker runs (st.serve, made once), and its end.
	w       http.ResponseWriter
	r       *http.Request
	serveFn func()
	done    chan any // what serve panicked with, or nil
}

var streamPool = sync.Pool{New: func() any {
	st := new(stream)
	st.serveFn = st.serve
	st.done = make(chan any, 1)
	return st
}}

func (st *stream) Peer() netip.Addr         { return st.c.peer }
func (st *stream) Protocol() wire.Protocol  { return wire.HTTP2 }
func (st *stream) TLS() bool                { return st.c.tls }
func (st *stream) ClientSubject() []byte    { return st.c.subject }
func (st *stream) Context() context.Context { return st.ctx }

// TLSVersion is the TLS version the connection negotiated (tls.VersionTLS13,
// ...), 0 without TLS.
func (st *stream) TLSVersion() uint16 { return st.c.tlsVer }

// Hijack reports false: an HTTP/2 stream is not a connection to hand over.
func (st *stream) Hijack(func(net.Conn, io.Reader, io.Writer)) bool { return false }

func (st *stream) release() {
	st.rc.Request.Reset()
	busy := st.body.stop()
	st.rc.Response.Reset()
	st.rc.ResetUserValues()
	st.c, st.ctx, st.w, st.r = nil, nil, nil, nil
	if busy {
		return // a reader of the body is still in it: left to the GC
	}
	streamPool.Put(st)
}

// ServeHTTP serves one stream: x/net calls it on a goroutine of its own
// once the request's header block is in and valid by its rules. With
// Config.Run the stream is served on a worker, and this goroutine waits.
func (cn *conn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if n := cn.ip.streams.Add(1); int(n) > cn.s.cfg.MaxStreamsPerIP {
		cn.ip.streams.Add(-1)
		cn.s.countError("stream_REFUSED_per_ip")
		refuse(w, r, http.StatusTooManyRequests, "too many streams from this address")
		return
	}
	defer cn.ip.streams.Add(-1)
	st := streamPool.Get().(*stream)
	st.c, st.ctx, st.w, st.r = cn, r.Context(), w, r
	run := cn.s.cfg.Run
	if run == nil {
		st.serveStream()
		st.release()
		return
	}
	run(st.serveFn)
	p := <-st.done
	st.release()
	if p != nil {
		panic(p) // for x/net to recover, as if it had happened here
	}
}

// serve is ServeHTTP's work on a worker (Config.Run). A panic,
// http.ErrAbortHandler from writeResponse among them, goes back to x/net's
// goroutine through st.done.
func (st *stream) serve() {
	var p any
	defer func() {
		if v := recover(); v != nil {
			p = v
			if v != http.ErrAbortHandler {
				// x/net logs the stack of its goroutine, not this one.
				st.c.s.cfg.Logger.Error("http2: panic serving a stream", "panic", v, "stack", string(debug.Stack()))
			}
		}
		st.done <- p
	}()
	st.serveStream()
}

// serveStream translates the request, passes it to the pipeline and
// writes the response.
func (st *stream) serveStream() {
	cn, w, r := st.c, st.w, st.r
	rc := &st.rc
	rc.Init2(cn.nc, fasthttpLogger{}, false)
	var rd readDeadliner
	if d := cn.s.cfg.BodyTimeout; d > 0 && r.ContentLength != 0 {
		rd, _ = w.(readDeadliner)
	}
	st.body.start(r.Body, cn.s.cfg.BodyTimeout, rd)
	if status, msg := fillRequest(&rc.Request, r, &st.body); status != 0 {
		refuse(w, r, status, msg)
		return
	}
	cn.s.h.ServeWire(rc, st)
	writeResponse(w, r, &rc.Response)
}

// fasthttpLogger drops RequestCtx.Logger's lines: the pipeline logs
// through its own logger.
type fasthttpLogger struct{}

func (fasthttpLogger) Printf(string, ...any) {}

// fillRequest translates the request x/net decoded into req, or returns
// the status and reason to refuse it with. x/net has already refused
// (with RST_STREAM PROTOCOL_ERROR, or 400 for connection-specific fields
// and te) what RFC 9113 lists and it checks; this refuses what it lets
// through but an HTTP/1.1 upstream could read differently.
func fillRequest(req *fasthttp.Request, r *http.Request, body io.Reader) (int, string) {
	if !wire.IsToken(r.Method) {
		return http.StatusBadRequest, "the :method is not a token"
	}
	if r.Method == http.MethodConnect {
		return http.StatusMethodNotAllowed, "CONNECT is not supported"
	}
	target := r.RequestURI
	if target == "*" && r.Method != http.MethodOptions {
		return http.StatusBadRequest, `a :path of "*" is for OPTIONS only`
	}
	if !validTarget(target) {
		return http.StatusBadRequest, "the :path holds a space, a fragment or a byte that is not visible ASCII"
	}
	if r.Host == "" {
		return http.StatusBadRequest, "the request has neither :authority nor host"
	}
	if !wire.ValidHost(r.Host) {
		return http.StatusBadRequest, "the :authority is not host[:port]"
	}
	h := &req.Header
	h.SetMethod(r.Method)
	h.SetRequestURI(target)
	h.SetHost(r.Host)

	// The fields go out in name order: x/net hands them over in a map,
	// which has none, and the upstream and the access log should see the
	// same request the same way each time.
	var arr [48]string
	names := arr[:0]
	for name := range r.Header {
		names = append(names, name)
	}
	slices.Sort(names)
	declared := int64(-1)
	for _, name := range names {
		vv := r.Header[name]
		switch name {
		case "Content-Length":
			if len(vv) != 1 || !isDigits(vv[0]) {
				return http.StatusBadRequest, "content-length is not one decimal number"
			}
			n, err := strconv.ParseInt(vv[0], 10, 64)
			if err != nil {
				return http.StatusBadRequest, "content-length is not one decimal number"
			}
			declared = n
			continue // set with the body below
		case "Te":
			// x/net lets an empty te through.
			if len(vv) != 1 || vv[0] != "trailers" {
				return http.StatusBadRequest, `te other than "trailers"`
			}
		case "Content-Type":
			if len(vv) > 1 {
				return http.StatusBadRequest, "more than one content-type"
			}
		}
		for _, v := range vv {
			if v != "" && (isSpace(v[0]) || isSpace(v[len(v)-1])) {
				// RFC 9113 section 8.2.1; x/net checks only for CR,
				// LF, NUL and other controls.
				return http.StatusBadRequest, "a field value begins or ends with white space"
			}
			h.Add(name, v)
		}
	}

	// x/net sets ContentLength from content-length only when a body
	// follows the header block; it is 0 when the stream ended with it,
	// -1 for a body of unknown length. x/net refuses DATA beyond the
	// declared length (RST_STREAM), and ends the body with an error
	// when the stream ends short of it.
	switch n := r.ContentLength; {
	case n == 0 && declared > 0:
		return http.StatusBadRequest, "content-length promises a body the stream does not have"
	case n == 0 && declared == 0:
		h.SetContentLength(0)
	case n != 0:
		req.SetBodyStream(body, int(n))
	}
	return 0, ""
}

// writeResponse writes the pipeline's response to the stream and closes
// its body stream, if any.
func writeResponse(w http.ResponseWriter, r *http.Request, resp *fasthttp.Response) {
	status := resp.StatusCode()
	if status < 200 || status > 999 {
		// 1xx (a 101 the pipeline meant to hijack with) has no
		// meaning as a final response.
		_ = resp.CloseBodyStream()
		refuse(w, r, http.StatusBadGateway, "bad gateway")
		return
	}
	h := w.Header()
	grpcStatus := false
	n := 0
	for range resp.Header.All() {
		n++
	}
	values := make([]string, n) // one allocation for every value
	i := 0
	for k, v := range resp.Header.All() {
		if dropResponseField(k) {
			continue
		}
		name := canonicalName(k)
		values[i] = string(v)
		if old := h[name]; old == nil {
			h[name] = values[i : i+1 : i+1]
		} else {
			h[name] = append(old, values[i])
		}
		i++
		if name == "Grpc-Status" {
			grpcStatus = true
		}
	}
	if _, ok := h["Content-Type"]; !ok {
		h["Content-Type"] = nil // x/net would sniff one; a proxy must not
	}
	head := r.Method == http.MethodHead

	if !resp.IsBodyStream() {
		body := resp.Body()
		switch {
		case len(body) == 0 && grpcStatus:
			// A gRPC trailers-only response: HEADERS with END_STREAM
			// and no content-length, which x/net sends when the
			// handler returns without writing.
			h["Content-Length"] = nil
		case head:
			if cl := resp.Header.ContentLength(); cl >= 0 {
				h["Content-Length"] = []string{strconv.Itoa(cl)}
			}
		case bodyAllowed(status):
			h["Content-Length"] = []string{strconv.Itoa(len(body))}
		}
		w.WriteHeader(status)
		if len(body) > 0 && !head && bodyAllowed(status) {
			_, _ = w.Write(body)
		}
		return
	}

	body := resp.BodyStream()
	if cl := resp.Header.ContentLength(); cl >= 0 {
		h["Content-Length"] = []string{strconv.Itoa(cl)}
	}
	w.WriteHeader(status)
	if head || !bodyAllowed(status) {
		_ = resp.CloseBodyStream()
		return
	}
	flusher, _ := w.(http.Flusher)
	if f, ok := body.(wire.Flusher); !ok || !f.FlushEach() {
		flusher = nil
	}
	if flusher != nil {
		flusher.Flush() // the header now: the first read may wait long
	}
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				closeBodyStream(resp, werr)
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			closeBodyStream(resp, err)
			// The body is cut short: reset the stream (RST_STREAM
			// INTERNAL_ERROR) rather than end it as if complete.
			panic(http.ErrAbortHandler)
		}
	}
	if ts, ok := body.(wire.TrailerSource); ok {
		for _, f := range ts.Trailers() {
			name := http.TrailerPrefix + string(f.Name)
			h[name] = append(h[name], string(f.Value))
		}
	}
	_ = resp.CloseBodyStream()
}

var copyBufPool = sync.Pool{New: func() any {
	b := make([]byte, 16<<10) // one DATA frame of the default size
	return &b
}}

// closeBodyStream closes the response body stream with the error that
// stopped its copy, so that its source (an upstream connection) is not
// reused as if it had been read to the end.
func closeBodyStream(resp *fasthttp.Response, err error) {
	if rc, ok := resp.BodyStream().(fasthttp.ReadCloserWithError); ok {
		_ = rc.CloseWithError(err)
		return
	}
	_ = resp.CloseBodyStream()
}

// refuse answers a request the wire will not pass on: a gRPC client (its
// content-type says so) gets a trailers-only response with the gRPC status
// for the HTTP one, any other client status and reason as text.
func refuse(w http.ResponseWriter, r *http.Request, status int, reason string) {
	h := w.Header()
	if isGRPC(r.Header["Content-Type"]) {
		code := "13" // INTERNAL
		switch status {
		case http.StatusTooManyRequests:
			code = "8" // RESOURCE_EXHAUSTED
		case http.StatusMethodNotAllowed:
			code = "12" // UNIMPLEMENTED
		}
		h["Content-Type"] = []string{"application/grpc"}
		h["Grpc-Status"] = []string{code}
		h["Grpc-Message"] = []string{reason}
		h["Content-Length"] = nil
		w.WriteHeader(http.StatusOK)
		return
	}
	h["Content-Type"] = []string{"text/plain; charset=utf-8"}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, reason+"\n")
}

func isGRPC(ct []string) bool {
	if len(ct) != 1 {
		return false
	}
	const p = "application/grpc"
	v := ct[0]
	return len(v) >= len(p) && v[:len(p)] == p && (len(v) == len(p) || v[len(p)] == '+' || v[len(p)] == ';')
}

// dropResponseField reports whether a response field must not go out on
// HTTP/2 (RFC 9113 section 8.2.2), or is set here from the body.
func dropResponseField(k []byte) bool {
	switch len(k) {
	case 7:
		return wire.EqualFold(k, "Upgrade")
	case 10:
		return wire.EqualFold(k, "Connection") || wire.EqualFold(k, "Keep-Alive")
	case 14:
		return wire.EqualFold(k, "Content-Length")
	case 16:
		return wire.EqualFold(k, "Proxy-Connection")
	case 17:
		return wire.EqualFold(k, "Transfer-Encoding")
	}
	return false
}

// commonNames are response field names in net/http's canonical form; a
// name found here costs no allocation.
var commonNames = func() map[string]string {
	m := make(map[string]string)
	for _, n := range []string{
		"Accept-Ranges", "Access-Control-Allow-Origin", "Age", "Alt-Svc",
		"Cache-Control", "Content-Disposition", "Content-Encoding",
		"Content-Language", "Content-Location", "Content-Range",
		"Content-Security-Policy", "Content-Type", "Date", "Etag", "Expires",
		"Grpc-Encoding", "Grpc-Message", "Grpc-Status", "Last-Modified",
		"Link", "Location", "Referrer-Policy", "Retry-After", "Server",
		"Set-Cookie", "Strict-Transport-Security", "Trailer", "Vary",
		"Www-Authenticate", "X-Content-Type-Options", "X-Frame-Options",
		"X-Request-Id", "X-Xss-Protection",
	} {
		m[n] = n
	}
	return m
}()

func canonicalName(k []byte) string {
	if n, ok := commonNames[string(k)]; ok {
		return n
	}
	return http.CanonicalHeaderKey(string(k))
}

func bodyAllowed(status int) bool {
	return status != http.StatusNoContent && status != http.StatusNotModified
}

// readDeadliner is x/net's http.ResponseWriter: a read deadline in the
// past ends the request body with os.ErrDeadlineExceeded.
type readDeadliner interface {
	SetReadDeadline(time.Time) error
}

// bodyReader is a request body as the pipeline reads it. It is not an
// io.Closer: fasthttp closes a request's body stream whenever it is
// replaced (SetBodyStream), and the pipeline replaces it with readers that
// wrap it (its body counter, the WAF's replay); x/net's body ends when the
// handler returns. With a timeout (limits.body_timeout), every read must
// get bytes within d, like the HTTP/1.1 side's: a timer armed for the
// length of each read ends the body through x/net's read deadline.
//
// A read may still be in progress when the handler has returned: the
// pipeline streams the body to an HTTP/2 upstream while the response comes
// back, and its reader (another goroutine) may be waiting for the client's
// next bytes when the response ends; x/net's body ends that read once the
// handler returns. stop then leaves the reader's fields alone and reports
// the body busy, and the stream is not pooled again.
type bodyReader struct {
	mu      sync.Mutex // guards the fields below
	r       io.Reader
	d       time.Duration
	timer   *time.Timer // nil without a timeout
	reading bool        // a Read is in progress
	stopped bool        // the stream is over: no more reads
}

// errBodyStopped is a read of a request body after its stream ended.
var errBodyStopped = errors.New("http2: the request's stream has ended")

// start makes r the body; d and rd, when both set, bound each read.
func (b *bodyReader) start(r io.Reader, d time.Duration, rd readDeadliner) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.r, b.stopped, b.reading = r, false, false
	if d > 0 && rd != nil {
		b.timer = time.AfterFunc(time.Hour, func() { _ = rd.SetReadDeadline(aLongTimeAgo) })
		b.timer.Stop()
		b.d = d
	}
}

func (b *bodyReader) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.stopped {
		b.mu.Unlock()
		return 0, errBodyStopped
	}
	r, t, d := b.r, b.timer, b.d
	b.reading = true
	b.mu.Unlock()
	if t != nil {
		t.Reset(d)
	}
	n, err := r.Read(p)
	if t != nil {
		t.Stop()
	}
	b.mu.Lock()
	b.reading = false
	b.mu.Unlock()
	return n, err
}

// stop ends the body. It reports true when a Read is still in progress:
// b must not be reused then.
func (b *bodyReader) stop() (busy bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.timer != nil {
		b.timer.Stop()
	}
	b.stopped = true
	if b.reading {
		return true
	}
	b.r, b.d, b.timer = nil, 0, nil
	return false
}
