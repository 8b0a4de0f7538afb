package proxy

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// exchange is the per-request scratch state, pooled so that a request
// allocates nothing of its own.
type exchange struct {
	xff    []byte // the X-Forwarded-For value sent upstream
	reqID  []byte // the request id, incoming or generated
	peer   []byte // the peer address in text
	client []byte // the client address in text (see clientIP)
	body   []byte // a small request body read whole
	line   []byte // the access log line under construction
}

var exchangePool = sync.Pool{New: func() any {
	return &exchange{xff: make([]byte, 0, 64), reqID: make([]byte, 0, 40), peer: make([]byte, 0, 40),
		client: make([]byte, 0, 40), line: make([]byte, 0, 512)}
}}

func (x *exchange) reset() {
	x.xff, x.reqID, x.peer, x.client, x.line = x.xff[:0], x.reqID[:0], x.peer[:0], x.client[:0], x.line[:0]
}

// Canned bodies: short, plain, and free of internal detail.
var (
	bodyBadRequest     = []byte("400 Bad Request\n")
	bodyNotFound       = []byte("404 Not Found: no route matches this request\n")
	bodyTooLarge       = []byte("413 Request Entity Too Large\n")
	bodyBadGateway     = []byte("502 Bad Gateway: the upstream could not be reached\n")
	bodyNoTarget       = []byte("503 Service Unavailable: no healthy upstream target\n")
	bodyGatewayTimeout = []byte("504 Gateway Timeout: the upstream did not answer in time\n")
)

// errBodyTooLarge is returned by limitReader once a chunked body exceeds
// max_body_size.
var errBodyTooLarge = errors.New("proxy: request body exceeds max_body_size")

// handle serves one request on listener l.
func (l *listener) handle(ctx *fasthttp.RequestCtx) {
	snap := l.srv.snap.Load()
	lr := snap.listeners[l.name]
	x := exchangePool.Get().(*exchange)
	x.reset()
	defer exchangePool.Put(x)

	peer := peerAddr(ctx)
	x.peer = peer.AppendTo(x.peer)
	x.client = l.clientAddr(ctx, snap, peer).AppendTo(x.client)
	h := &ctx.Request.Header
	reqID := h.Peek(hdrXRequestID)
	if validRequestID(reqID) {
		x.reqID = append(x.reqID, reqID...)
	} else {
		x.reqID = appendRequestID(x.reqID)
	}

	if lr == nil { // listener removed by a reload while this connection lived
		l.finish(ctx, x, nil, "", "", fasthttp.StatusNotFound, bodyNotFound)
		return
	}
	idx := lr.router.match(ctx.Host(), ctx.Path(), h.Method(), h)
	if idx < 0 {
		l.finish(ctx, x, nil, "", "", fasthttp.StatusNotFound, bodyNotFound)
		return
	}
	rt := lr.routes[idx]

	if max := int(lr.limits.MaxBodySize); max > 0 {
		if cl := h.ContentLength(); cl > max {
			ctx.SetConnectionClose() // the unread body cannot be skipped cheaply
			l.finish(ctx, x, rt, "", "", fasthttp.StatusRequestEntityTooLarge, bodyTooLarge)
			return
		} else if cl == -1 { // chunked: count while streaming
			ctx.Request.SetBodyStream(&limitReader{r: ctx.RequestBodyStream(), n: int64(max)}, -1)
		}
	}

	if rt.respond != nil {
		ctx.Response.Header.SetContentType(rt.respond.ContentType)
		l.finish(ctx, x, rt, "", "", rt.respond.Status, rt.respondBody)
		return
	}
	p := rt.pickPool()
	if p == nil {
		l.finish(ctx, x, rt, "", "", fasthttp.StatusServiceUnavailable, bodyNoTarget)
		return
	}
	l.forward(ctx, x, snap, lr, rt, p, peer)

}

// forward sends the request to a target of p and relays its response.
func (l *listener) forward(ctx *fasthttp.RequestCtx, x *exchange, snap *snapshot, lr *listenerRoutes, rt *route, p *pool, peer netip.Addr) {
	t := p.balancer.Pick(-1)
	if t == nil {
		l.finish(ctx, x, rt, "", "", fasthttp.StatusServiceUnavailable, bodyNoTarget)
		return
	}
	tr := p.transports[t.Index]
	req := &ctx.Request
	trusted := isTrusted(peer, snap.trusted)
	upgrade := isWebSocketUpgrade(&req.Header)
	prepareRequest(req, x, lr.tls, trusted, upgrade)
	if upgrade {
		l.tunnel(ctx, x, rt, p, t.Index, tr)
		return
	}
	if lr.tls != tr.client.IsTLS { // fasthttp refuses a scheme that differs from the client's
		if tr.client.IsTLS {
			req.URI().SetScheme("https")
		} else {
			req.URI().SetScheme("http")
		}
	}

	// A small body is read whole, so that the request can be sent again if
	// a pooled connection turns out to be stale; a large one streams.
	replayable := true
	if req.IsBodyStream() {
		cl := req.Header.ContentLength()
		if cl < 0 || cl > smallBody {
			replayable = false
		} else if !x.readBody(req, cl) {
			ctx.SetConnectionClose()
			l.finish(ctx, x, rt, p.name, "", fasthttp.StatusBadRequest, bodyBadRequest)
			return
		}
	}

	out := &ctx.Response
	t.State.Acquire()
	body, err := tr.pool.roundTrip(req, out, replayable)
	if err != nil {
		t.State.Release()
		out.Reset()
		status, msg := statusForError(err)
		l.srv.log.Warn("upstream request failed", "request_id", string(x.reqID),
			"route", rt.name, "upstream", p.name, "target", tr.key.addr, "status", status, "error", err.Error())
		if status == fasthttp.StatusRequestEntityTooLarge {
			ctx.SetConnectionClose()
		}
		l.finish(ctx, x, rt, p.name, p.targetNames[t.Index], status, msg)
		return
	}
	out.Header.SetNoDefaultContentType(true)
	// The target's wish to close its connection was for the upstream
	// connection only; the client's connection stays open.
	out.Header.ResetConnectionClose()
	if bits := scanResponseHop(&out.Header); bits != 0 {
		deleteResponseHop(&out.Header, bits)
	}
	if len(out.Header.Peek(hdrXRequestID)) == 0 {
		out.Header.SetBytesV(hdrXRequestID, x.reqID)
	}
	if body == nil { // read whole: the target is free again
		t.State.Release()
		l.logResponse(ctx, x, rt, p.name, p.targetNames[t.Index])
		return
	}
	rb := acquireRelay(l.srv.access, body, t.State, ctx.Time())
	if al := l.srv.access; al != nil {
		rb.line = al.appendPrefix(rb.line, ctx, x, l.name, rt, p.name, p.targetNames[t.Index])
	}
	out.SetBodyStream(rb, out.Header.ContentLength())
}

// readBody reads a small streamed request body whole into x, and makes it
// the request's body.
func (x *exchange) readBody(req *fasthttp.Request, n int) bool {
	if cap(x.body) < n {
		x.body = make([]byte, n)
	}
	x.body = x.body[:n]
	if _, err := io.ReadFull(req.BodyStream(), x.body); err != nil {
		return false
	}
	req.SetBodyRaw(x.body)
	return true
}

// statusForError maps a failed upstream exchange to the client's answer.
func statusForError(err error) (int, []byte) {
	var de *dialError
	switch {
	case errors.Is(err, errBodyTooLarge):
		return fasthttp.StatusRequestEntityTooLarge, bodyTooLarge
	case errors.As(err, &de):
		return fasthttp.StatusBadGateway, bodyBadGateway
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return fasthttp.StatusServiceUnavailable, bodyNoTarget
	case isTimeout(err):
		return fasthttp.StatusGatewayTimeout, bodyGatewayTimeout
	default:
		return fasthttp.StatusBadGateway, bodyBadGateway
	}
}

// prepareRequest rewrites the request's headers for the upstream: hop-by-hop
// headers out, proxy headers in.
func prepareRequest(req *fasthttp.Request, x *exchange, isTLS, trusted, upgrade bool) {
	h := &req.Header
	// The client's Connection: close was recorded by the server for the
	// downstream connection; the upstream connection stays reusable.
	h.ResetConnectionClose()
	bits, xff := scanRequestHop(h, x.xff)
	x.xff = xff
	if bits&^(hopXFF|hopXFFMany) != 0 {
		deleteRequestHop(h, bits)
	}
	if upgrade {
		h.Set("Connection", "Upgrade")
		h.Set("Upgrade", "websocket")
	}
	if len(x.xff) > 0 {
		x.xff = append(x.xff, ", "...)
	}
	x.xff = append(x.xff, x.peer...)
	if bits&hopXFFMany != 0 {
		h.Del(hdrXForwardedFor)
	}
	h.SetBytesV(hdrXForwardedFor, x.xff)
	if !trusted || len(h.Peek(hdrXForwardedProto)) == 0 {
		if isTLS {
			h.Set(hdrXForwardedProto, "https")
		} else {
			h.Set(hdrXForwardedProto, "http")
		}
	}
	if !trusted || len(h.Peek(hdrXForwardedHost)) == 0 {
		h.SetBytesV(hdrXForwardedHost, h.Host())
	}
	h.SetBytesV(hdrXRequestID, x.reqID)
}

// isWebSocketUpgrade reports a request to switch to the WebSocket protocol.
func isWebSocketUpgrade(h *fasthttp.RequestHeader) bool {
	return h.ConnectionUpgrade() && nameIs(h.Peek("Upgrade"), "websocket")
}

// peerAddr returns the downstream peer's address.
func peerAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	if a, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			return ip.Unmap()
		}
	}
	return netip.IPv4Unspecified()
}

// finish answers with a status and a short body produced by Rampart itself.
func (l *listener) finish(ctx *fasthttp.RequestCtx, x *exchange, rt *route, upstream, target string, status int, body []byte) {
	ctx.SetStatusCode(status)
	if len(ctx.Response.Header.ContentType()) == 0 {
		ctx.SetContentType("text/plain; charset=utf-8")
	}
	ctx.Response.Header.SetBytesV(hdrXRequestID, x.reqID)
	ctx.Response.SetBodyRaw(body)
	l.logResponse(ctx, x, rt, upstream, target)
}

// limitReader fails a streamed body beyond n bytes.
type limitReader struct {
	r io.Reader
	n int64
}

func (r *limitReader) Read(p []byte) (int, error) {
	if r.n < 0 {
		return 0, errBodyTooLarge
	}
	if int64(len(p)) > r.n+1 {
		p = p[:r.n+1]
	}
	n, err := r.r.Read(p)
	r.n -= int64(n)
	if r.n < 0 {
		return 0, errBodyTooLarge
	}
	return n, err
}

// logResponse writes the access log line of an answer whose body is in
// memory (streamed upstream bodies are logged by their relay).
func (l *listener) logResponse(ctx *fasthttp.RequestCtx, x *exchange, rt *route, upstream, target string) {
	al := l.srv.access
	if al == nil {
		return
	}
	line := al.appendPrefix(x.line, ctx, x, l.name, rt, upstream, target)
	line = al.appendSuffix(line, int64(len(ctx.Response.Body())), time.Since(ctx.Time()))
	al.writeLine(line)
	x.line = line[:0]
}
