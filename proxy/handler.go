package proxy

import (
	"bytes"
	"errors"
	"io"
	"math"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/balancer"
	"github.com/rampart-proxy/rampart/metrics"
	"github.com/rampart-proxy/rampart/ratelimit"
	"github.com/rampart-proxy/rampart/waf"
	"github.com/rampart-proxy/rampart/wire"
	"github.com/rampart-proxy/rampart/wire/http1"
	"github.com/rampart-proxy/rampart/wire/http2"
)

// exchange is one request's way through the pipeline: where it came from,
// the snapshot it is served by, what was chosen for it (route, upstream,
// target), and its scratch state, pooled so that a request allocates nothing
// of its own. The snapshot is loaded once, by ServeWire, and everything the
// request reads of the configuration comes from it: one request never sees
// two configurations.
type exchange struct {
	ctx  *fasthttp.RequestCtx
	st   wire.Stream
	l    *listener
	snap *snapshot
	lr   *listenerRoutes // nil when a reload removed the listener
	rt   *route          // nil until a route matched
	p    *pool           // nil until an upstream was chosen
	ti   int             // the index in p of the target sent to; -1: none yet

	xff    []byte     // the X-Forwarded-For value sent upstream
	reqID  []byte     // the request id, incoming or generated
	peer   []byte     // the peer address in text
	client []byte     // the client address in text (see clientIP)
	body   []byte     // a small request body read whole
	line   []byte     // the access log line under construction
	start  time.Time  // when the request's header had been read
	stream clientBody // a large request body on its way through
	// clientIP is the client address (see clientIP).
	clientIP netip.Addr
	// limit and decision are the route's rate limit and its verdict.
	limit    *limit
	decision ratelimit.Decision
	hdr      []byte       // scratch for header values
	key      []byte       // the rate limit key
	verdict  *waf.Verdict // the WAF's, when the route has a policy
	hsts     bool         // add Strict-Transport-Security to the answer
	// received is the request target as received, for the access log
	// (forwarding may rewrite the header's); redact hides query parameters
	// in it (the snapshot's).
	received []byte
	redact   *queryRedactor
	// path is the normalized path when normalizing changed it
	// (pathChanged); target is the request target forwarded then.
	path        []byte
	target      []byte
	pathChanged bool
	// noParams is the path without ";" parameters (sameRouteWithoutParams).
	noParams []byte
	// args parses the query for a hash_key, leaving the URI's unparsed.
	args fasthttp.Args
	// owned holds the WAF's owned fields (ownedFields).
	owned [2]waf.Field
	// verdictHeld says the relay of an HTTP/2 upstream's response took the
	// WAF verdict over, to close it once the response is through.
	verdictHeld bool
	// held is an HTTP/1.1 client's request body streaming to an HTTP/2
	// upstream, which the relay releases after the response (heldBody).
	held *heldBody
	// up is what the access log and traces know of the tries of targets;
	// timed says they read its timing (accesslog_fields.go).
	up    upstreamTry
	timed bool
	// http10 says the client spoke HTTP/1.0 (forwarding rewrites the
	// request's version to HTTP/1.1), for the log.
	http10 bool

	// The edge features' per-request state (edge.go).
	corsX corsExchange // cors.go

	authX authExchange // auth.go

	cacheX cacheExchange // cache.go

	compressX compressExchange // compress.go

	traceX traceExchange // trace.go
}

var exchangePool = sync.Pool{New: func() any {
	return &exchange{xff: make([]byte, 0, 64), reqID: make([]byte, 0, 40), peer: make([]byte, 0, 40),
		client: make([]byte, 0, 40), line: make([]byte, 0, 512), hdr: make([]byte, 0, 64),
		key: make([]byte, 0, 64), received: make([]byte, 0, 128), path: make([]byte, 0, 64), target: make([]byte, 0, 64)}
}}

func (x *exchange) reset() {
	x.ctx, x.st, x.l, x.snap, x.lr, x.rt, x.p, x.ti = nil, nil, nil, nil, nil, nil, nil, -1
	x.stream = clientBody{}
	x.limit = nil
	x.verdict = nil
	x.hsts = false
	x.verdictHeld = false
	x.held = nil
	x.pathChanged = false
	x.up, x.timed, x.http10 = upstreamTry{}, false, false
	x.xff, x.reqID, x.peer, x.client, x.line = x.xff[:0], x.reqID[:0], x.peer[:0], x.client[:0], x.line[:0]
	x.received = x.received[:0]

	x.corsX.reset()

	x.authX.reset()

	x.cacheX.reset()

	x.compressX.reset()

	x.traceX.reset()
}

// Canned bodies: short, plain, and free of internal detail.
var (
	bodyBadRequest       = []byte("400 Bad Request\n")
	bodyRequestTimeout   = []byte("408 Request Timeout\n")
	bodyVersion          = []byte("505 HTTP Version Not Supported\n")
	bodyHeaderTooLarge   = []byte("431 Request Header Fields Too Large\n")
	bodyNotFound         = []byte("404 Not Found: no route matches this request\n")
	bodyRedirect         = []byte("308 Permanent Redirect\n")
	bodyTooLarge         = []byte("413 Request Entity Too Large\n")
	bodyBadGateway       = []byte("502 Bad Gateway: the upstream could not be reached\n")
	bodyBadResponse      = []byte("502 Bad Gateway: the upstream did not send a valid response\n")
	bodyNoTarget         = []byte("503 Service Unavailable: no healthy upstream target\n")
	bodyTooManyRequests  = []byte("429 Too Many Requests\n")
	bodyLimitUnavailable = []byte("503 Service Unavailable: the rate limit store is unavailable\n")
	bodyGatewayTimeout   = []byte("504 Gateway Timeout: the upstream did not answer in time\n")
	bodyNoWebSocket      = []byte("501 Not Implemented: WebSocket to an HTTP/2 upstream\n")
	bodyClientClosed     = []byte("499 Client Closed Request\n")
)

// statusClientClosed is the status the access log records for a request
// whose client went away before the upstream answered (nginx's 499). No
// client reads it.
const statusClientClosed = 499

// errBodyTooLarge is returned by clientBody once a streamed body exceeds
// max_body_size.
var errBodyTooLarge = errors.New("proxy: request body exceeds max_body_size")

// ServeWire serves one request that arrived on listener l by st.
func (l *listener) ServeWire(ctx *fasthttp.RequestCtx, st wire.Stream) {
	x := exchangePool.Get().(*exchange)
	x.reset()
	x.ctx, x.st, x.l = ctx, st, l
	x.snap = l.srv.snap.Load()
	x.lr = x.snap.listeners[l.name]
	x.redact = x.snap.redact
	x.serve()
	x.reset() // keeps nothing of the request: ctx is the wire's again
	exchangePool.Put(x)
}

// serve routes the request and answers it, or forwards it.
func (x *exchange) serve() {
	ctx, l, snap, lr := x.ctx, x.l, x.snap, x.lr
	if x.snap.access != nil || l.srv.metrics != nil || x.snap.tracing != nil {
		x.start = time.Now() // only the access log, the metrics and traces read it
	}
	if x.snap.access != nil {
		x.received = append(x.received, ctx.Request.Header.RequestURI()...)
		x.timed = x.snap.access.timed
		x.http10 = !ctx.Request.Header.IsHTTP11()
	}
	if l.srv.metrics != nil {
		proto := metrics.ProtocolHTTP1
		if x.st.Protocol() == wire.HTTP2 {
			proto = metrics.ProtocolHTTP2
		}
		l.metrics.Request(proto)
	}

	peer := x.st.Peer() // resolved once, when the connection was accepted
	x.peer = peer.AppendTo(x.peer)
	x.clientIP = clientAddr(ctx, snap, peer)
	x.client = x.clientIP.AppendTo(x.client)
	h := &ctx.Request.Header
	reqID := h.Peek(hdrXRequestID)
	if validRequestID(reqID) {
		x.reqID = append(x.reqID, reqID...)
	} else {
		x.reqID = appendRequestID(x.reqID)
	}
	if tr := snap.tracing; tr != nil { // trace.go
		x.startTrace(tr)
	}

	if lr == nil { // listener removed by a reload while this connection lived
		x.finish(fasthttp.StatusNotFound, bodyNotFound)
		return
	}
	path, ok := x.requestPath(ctx, lr.pathMode)
	if !ok { // a path without a normal form, or ambiguous (path_handling)
		x.finish(fasthttp.StatusBadRequest, bodyBadRequest)
		return
	}
	if !lr.tls && len(snap.acme) > 0 && isACMEChallenge(ctx.Path()) {
		for _, m := range snap.acme {
			if body, ok := m.HTTPChallenge(ctx.Host(), ctx.Path()); ok {
				x.finish(fasthttp.StatusOK, body)
				return
			}
		}
	}
	if !lr.http1 && x.st.Protocol() == wire.HTTP1 {
		// protocols leaves http1 out: a TLS client without ALPN (or
		// with http/1.1 alone), or a plain one without the h2c preface.
		// ACME's HTTP-01 validations (HTTP/1.1) were answered above.
		ctx.SetConnectionClose()
		x.finish(fasthttp.StatusHTTPVersionNotSupported, bodyVersion)
		return
	}
	idx := lr.router.match(ctx.Host(), path, h.Method(), h)
	if lr.pathMode != pathRaw && bytes.IndexByte(path, ';') >= 0 && !x.sameRouteWithoutParams(lr, ctx, path, idx) {
		x.finish(fasthttp.StatusBadRequest, bodyBadRequest)
		return
	}
	if idx < 0 {
		x.finish(fasthttp.StatusNotFound, bodyNotFound)
		return
	}
	rt := lr.routes[idx]
	x.rt = rt

	if max := int(lr.limits.MaxBodySize); max > 0 {
		if cl := h.ContentLength(); cl > max {
			ctx.SetConnectionClose() // the unread body cannot be skipped cheaply
			x.finish(fasthttp.StatusRequestEntityTooLarge, bodyTooLarge)
			return
		}
	}

	if rt.cfg.RedirectHTTPS && !lr.tls {
		x.redirectHTTPS()
		return
	}
	x.hsts = rt.cfg.HSTS && lr.tls
	if lr.clientSubject {
		h.Del(clientSubjectHeader) // never the client's word for it
		if subj := x.st.ClientSubject(); len(subj) > 0 {
			h.SetBytesV(clientSubjectHeader, subj)
		}
	}

	if rt.access != nil && !x.admit() { // ipaccess.go
		return
	}

	// Cheap checks first: a flood is refused before it costs anything else.
	if rt.limit != nil && !x.checkLimit() {
		return
	}

	if rt.cors != nil && x.corsPreflight() { // cors.go
		return
	}

	if rt.auth != nil && !x.authenticate() { // auth.go
		return
	}

	// The WAF reads the request as the client sent it: before the proxy
	// headers are set (and before the headers are rewritten at all, since it
	// holds them without a copy).
	if rt.waf != nil {
		// The body of a gRPC call to a route of HTTP/2 upstreams
		// (protobuf, streaming both ways) is not inspected: the WAF sees
		// the method path and the metadata only. Only a call gRPC can
		// make counts: a POST over HTTP/2 (gRPC has no HTTP/1.1 form), so
		// that a content type alone cannot take a body past the WAF.
		x.traceX.wafBegin()
		v := rt.waf.Inspect(ctx, waf.Request{ID: x.reqID, ClientIP: x.clientIP, Route: rt.name,
			URI: x.forwardedTarget(ctx.URI()), Owned: x.ownedFields(ctx, lr, x.st.ClientSubject()),
			GRPC: rt.h2 && x.st.Protocol() == wire.HTTP2 && h.IsPost() && http2.IsGRPC(h)})
		x.traceX.wafEnd(v)
		// After forwarding: a streamed body is replayed from it. An HTTP/2
		// upstream's relay closes it instead (verdictHeld), once the
		// response is through: the request body streams on until then.
		defer func() {
			if !x.verdictHeld {
				v.Close()
			}
		}()
		x.verdict = v // the log and traces read it, blocked too
		if v != nil && v.BodyErr != nil {
			// The client failed while the WAF read its body: nothing of
			// it is forwarded.
			ctx.SetConnectionClose()
			status, msg := statusForError(&clientError{v.BodyErr})
			if status == fasthttp.StatusRequestTimeout {
				l.metrics.TimedOut(metrics.TimeoutBody)
			}
			x.finish(status, msg)
			return
		}
		if v.Blocked() {
			if v.Location != "" {
				ctx.Response.Header.Set("Location", v.Location)
			}
			if v.RetryAfter > 0 {
				ctx.Response.Header.Set("Retry-After", strconv.Itoa(v.RetryAfter))
			}
			if v.Drop || v.RetryAfter > 0 {
				// A body refused unread cannot be skipped cheaply.
				ctx.SetConnectionClose()
			}
			x.hdr = v.AppendBody(x.hdr[:0], x.reqID)
			x.finishCopy(v.Status, x.hdr)
			return
		}
		if v.Body != nil {
			ctx.Request.SetBodyStream(v.Body, ctx.Request.Header.ContentLength())
		}
		x.verdict = v
	}

	if rt.edits != nil && !x.editRequest() { // edits.go: after the WAF, which inspects what the client sent
		return
	}

	if rt.respond != nil {
		ctx.Response.Header.SetContentType(rt.respond.ContentType)
		x.finish(rt.respond.Status, rt.respondBody)
		return
	}

	if rt.cache != nil && x.serveCached() { // cache.go
		return
	}

	if rt.mirror != nil { // mirror.go
		x.mirrorRequest()
	}

	p := rt.pickPool(ctx)
	if p == nil {
		x.finish(fasthttp.StatusServiceUnavailable, bodyNoTarget)
		return
	}
	x.p = p
	x.forward()
}

// forward sends the request to a target of x.p and relays its response.
func (x *exchange) forward() {
	ctx, lr, p := x.ctx, x.lr, x.p
	req := &ctx.Request
	p.budget.earn()
	t := p.pick(ctx, x, 0)
	if t == nil {
		x.finish(fasthttp.StatusServiceUnavailable, bodyNoTarget)
		return
	}
	trusted := isTrusted(x.st.Peer(), x.snap.trusted)
	upgrade := isWebSocketUpgrade(&req.Header)
	host := req.Header.Host()
	if uri := req.Header.RequestURI(); len(uri) > 0 && uri[0] != '/' {
		host = ctx.Host() // absolute-form: the target's host wins over Host
	}
	if len(req.Header.Host()) == 0 {
		// An HTTP/1.0 request may come without Host; HTTP/1.1 needs one.
		req.Header.SetHost(p.transports[t.Index].hostPort)
		req.URI().SetHost(p.transports[t.Index].hostPort)
	}
	prepareRequest(req, x, host, forwardFlags(lr, trusted, upgrade))
	if upgrade {
		x.ti = t.Index
		if p.h2 {
			// RFC 8441's extended CONNECT to upstreams is not supported.
			x.finish(fasthttp.StatusNotImplemented, bodyNoWebSocket)
			return
		}
		x.tunnel(p.transports[t.Index])
		return
	}
	if p.h2 {
		x.forwardH2(t)
		return
	}

	// A small body is read whole, so that the request can be sent again if
	// a pooled connection turns out to be stale; a large one streams.
	replayable := true
	if req.IsBodyStream() && req.Header.ContentLength() == -1 && !http2.IsGRPC(&req.Header) {
		// (Not a gRPC stream: a bidirectional call sends its messages one
		// by one as answers arrive, and reading ahead would deadlock it.)
		// A chunked body is read up to http1.SmallBody before anything is sent,
		// so that a malformed one is refused before it reaches the target;
		// a larger one streams on from where the reading stopped.
		switch x.readChunked(req, int64(lr.limits.MaxBodySize)) {
		case chunkedWhole:
		case chunkedTooLarge:
			ctx.SetConnectionClose()
			x.finish(fasthttp.StatusRequestEntityTooLarge, bodyTooLarge)
			return
		case chunkedBad:
			ctx.SetConnectionClose()
			x.finish(fasthttp.StatusBadRequest, bodyBadRequest)
			return
		case chunkedTimeout:
			ctx.SetConnectionClose()
			x.finish(fasthttp.StatusRequestTimeout, bodyRequestTimeout)
			return
		}
	}
	if req.IsBodyStream() {
		// Only bodies beyond http1.SmallBody get here as a stream (the connection
		// loop and readChunked read the others whole): it goes out as it
		// comes in, counted and bounded by max_body_size.
		replayable = false
		x.stream = clientBody{r: req.BodyStream(), left: int64(lr.limits.MaxBodySize), want: int64(req.Header.ContentLength())}
		if x.stream.left <= 0 {
			x.stream.left = math.MaxInt64
		}
		req.SetBodyStream(&x.stream, req.Header.ContentLength())
	}
	idempotent := isIdempotent(req.Header.Method())

	out := &ctx.Response
	var tried uint64
	connects, resends := 0, 0 // the retries after a connect failure, and of sent requests
	for {
		x.ti = t.Index
		tried |= balancer.Tried(t.Index)
		tr := p.transports[t.Index]
		var start time.Time
		if p.latency || x.timed {
			start = time.Now()
		}
		t.State.Acquire()
		x.tryBegin(t.Index) // trace.go
		body, resent, err := tr.client.RoundTripTimed(req, out, replayable, idempotent, x.up.connectTimer(x.timed))
		status := out.StatusCode()
		x.up.record(start, status, err)
		x.traceX.tryEnd(status, err)
		tm := p.targetMetrics[t.Index]
		if err != nil {
			tm.Observe(0) // no answer
		} else {
			tm.Observe(status)
		}
		if resent > 0 {
			tm.Retried(metrics.RetryStaleConnection, resent)
		}
		if err != nil && !targetFault(err) {
			// The client failed (a broken or oversized body): not the
			// target's fault, and nothing to retry.
			t.State.Release()
			out.Reset()
			x.upstreamError(err)
			return
		}
		p.report(t, err != nil || status >= 500, start)
		// Another target may be tried when nothing reached this one (a
		// connect failure: connect_retries), or when an idempotent request
		// whose body can be sent again met a timeout or a 502/503/504
		// (retries).
		retry := false
		dial := err != nil && http1.IsDialError(err)
		switch {
		case dial:
			retry = connects < p.connectRetries
			connects++
		case resends >= p.cfg.Retries:
		case err != nil:
			// A timeout, or the connection dropped before an answer:
			// the target failed as surely as with a 502.
			retry = idempotent && replayable && (http1.IsTimeout(err) || http1.IsConnGone(err))
			resends++
		case status == fasthttp.StatusBadGateway || status == fasthttp.StatusServiceUnavailable ||
			status == fasthttp.StatusGatewayTimeout:
			retry = idempotent && replayable
			resends++
		}
		if retry {
			if next := x.retryElsewhere(t, tried, dial, body); next != nil {
				t = next
				continue
			}
		}
		if err != nil {
			t.State.Release()
			out.Reset()
			x.upstreamError(err)
			return
		}
		x.relay(t, body)
		return
	}
}

// report records the outcome of an exchange with target t of p in its
// passive health: failed (no answer, or a 5xx), or a success, whose latency
// since start counts when the balancer weighs targets by it.
func (p *pool) report(t *balancer.Target, failed bool, start time.Time) {
	if failed {
		t.ReportFailure(time.Now())
		return
	}
	t.ReportSuccess()
	if p.latency {
		t.State.ObserveLatency(time.Since(start))
	}
}

// retryElsewhere picks another target of the exchange's pool than those
// tried for a request that failed on t, and readies the retry: body (the
// failed answer's, when there is one) closed, t released, the response
// cleared, the retry counted and logged. It returns nil, with nothing
// changed, when no target is left or the retry budget is spent. A connect
// failure reached nothing and costs the next target nothing extra: it does
// not spend the budget, which is there to keep retries from multiplying
// the load on live targets.
func (x *exchange) retryElsewhere(t *balancer.Target, tried uint64, connect bool, body io.Closer) *balancer.Target {
	p := x.p
	if !connect && !p.budget.spend() {
		return nil
	}
	next := p.pick(x.ctx, x, tried)
	if next == nil {
		return nil
	}
	if body != nil {
		_ = body.Close()
	}
	t.State.Release()
	x.ctx.Response.Reset()
	p.targetMetrics[t.Index].Retried(metrics.RetryOtherTarget, 1)
	x.l.srv.log.Info("retrying on another target", "request_id", string(x.reqID), "route", x.rt.name,
		"upstream", p.name, "failed_target", p.targetNames[t.Index], "next_target", p.targetNames[next.Index])
	return next
}

// upstreamError answers a request whose exchange with its target failed.
func (x *exchange) upstreamError(err error) {
	l, rt, p, i := x.l, x.rt, x.p, x.ti
	status, msg := statusForError(err)
	if targetFault(err) {
		l.srv.log.Warn("upstream request failed", "request_id", string(x.reqID),
			"route", rt.name, "upstream", p.name, "target", p.targetNames[i], "status", status, "error", err.Error())
	} else {
		// The client's doing (a short, broken, oversized or stalled body):
		// nothing an operator of the target needs to act on.
		l.srv.log.Info("client failed while its request was forwarded", "request_id", string(x.reqID),
			"route", rt.name, "upstream", p.name, "target", p.targetNames[i], "status", status, "error", err.Error())
	}
	// A 408 (the client stalled its body) was counted and logged by the
	// connection's read (conn.readRaw).
	if status == fasthttp.StatusRequestEntityTooLarge || status == fasthttp.StatusBadRequest || status == fasthttp.StatusRequestTimeout {
		x.ctx.SetConnectionClose() // the rest of the body cannot be skipped reliably
	}
	x.finish(status, msg)
}

// relay passes the target's response (its header already in ctx.Response)
// to the client: body is nil when the body was read whole, else it streams.
func (x *exchange) relay(t *balancer.Target, body io.ReadCloser) {
	ctx, rt, p := x.ctx, x.rt, x.p
	out := &ctx.Response
	refused := false
	if x.verdict != nil {
		// The WAF may read the body into its engine: body becomes what to
		// relay in its place.
		refused, body = x.verdict.InspectResponse(out, body)
	}
	if refused {
		// The WAF refuses the target's answer (inspect_response); it has
		// closed the body.
		t.State.Release()
		v := x.verdict
		x.hdr = v.AppendBody(x.hdr[:0], x.reqID)
		out.Reset()
		if v.RetryAfter > 0 {
			out.Header.Set("Retry-After", strconv.Itoa(v.RetryAfter))
		}
		x.finishCopy(v.Status, x.hdr)
		return
	}
	out.Header.SetNoDefaultContentType(true)
	// The target's wish to close its connection was for the upstream
	// connection only; the client's connection stays open.
	out.Header.ResetConnectionClose()
	relayHeader(&out.Header, x.reqID)
	if p.balancer.Sticky() {
		p.setStickyCookie(ctx, t.Index)
	}
	setLimitHeaders(&out.Header, x)
	if x.hsts {
		setFold(&out.Header, "Strict-Transport-Security", []byte(hstsValue)) // the route's policy, not the target's
	}

	if rt.cache != nil { // cache.go: stores the answer as the target gave it, before the edits
		body = x.cacheResponse(t, body)
	}

	if rt.edits != nil { // edits.go
		x.editResponse()
	}

	if rt.cors != nil { // cors.go
		x.corsResponse()
	}

	if rt.compress != nil { // compress.go
		body = x.compressResponse(body)
	}
	if p.h2 && out.Header.ContentLength() == 0 {
		// Nothing follows the header (a gRPC Trailers-Only answer, whose
		// status is in it): relayed whole, so that the wire ends the
		// client's stream with the header too.
		_ = body.Close()
		body = nil
	}
	if body == nil { // read whole: the target is free again
		t.State.Release()
		x.logResponse()
		return
	}
	rb := acquireRelay(x.snap.access, body, t.State, x.start, rt.metrics)
	rb.status = out.StatusCode()
	rb.span = x.endTrace() // ended once the body is through
	if p.h2 && x.verdict != nil {
		rb.verdict, x.verdictHeld = x.verdict, true
	}
	rb.held, x.held = x.held, nil
	if al := x.snap.access; al != nil {
		rb.line = al.appendPrefix(rb.line, x)
	}
	cl := out.Header.ContentLength()
	if cl == -2 {
		cl = -1 // a body the target ended by closing goes to the client chunked
	}
	out.SetBodyStream(rb, cl)
}

// targetFault reports whether a failed exchange is the target's doing, as
// opposed to the client's.
func targetFault(err error) bool {
	var ce *clientError
	return !errors.As(err, &ce) && !errors.Is(err, errBodyTooLarge) &&
		!errors.Is(err, http2.ErrCanceled) && !errors.Is(err, http2.ErrRequestBody)
}

// hstsValue asks browsers to use HTTPS only, for a year.
const hstsValue = "max-age=31536000"

// redirectHTTPS answers 308 with the https URL of the request: the same
// host, path and query, on the port of a TLS listener that serves the route
// (rt.httpsPort), when it is not 443. A route that no TLS listener serves
// goes to the first TLS listener whose routes match the request; with
// none, nothing serves the request over https: 404.
func (x *exchange) redirectHTTPS() {
	ctx, rt, snap := x.ctx, x.rt, x.snap
	port := rt.httpsPort
	if rt.httpsByMatch {
		found := false
		h := &ctx.Request.Header
		for i, lr := range snap.redirectTLS {
			if lr.router.match(ctx.Host(), ctx.Path(), h.Method(), h) >= 0 {
				port, found = snap.redirectPorts[i], true
				break
			}
		}
		if !found {
			x.finish(fasthttp.StatusNotFound, bodyNotFound)
			return
		}
	}
	u := append(x.hdr[:0], "https://"...)
	u = append(u, hostWithoutPort(ctx.Host())...)
	if port != "" {
		u = append(u, ':')
		u = append(u, port...)
	}
	u = append(u, ctx.URI().RequestURI()...) // origin-form, also for an absolute-form request
	x.hdr = u
	ctx.Response.Header.SetBytesV("Location", u)
	x.finish(fasthttp.StatusPermanentRedirect, bodyRedirect)
}

// isIdempotent reports the methods RFC 9110 section 9.2.2 calls idempotent.
func isIdempotent(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}

const (
	chunkedWhole    = iota // the body was read whole and is the request's body
	chunkedStreams         // larger than http1.SmallBody: what was read streams on first
	chunkedTooLarge        // beyond max_body_size
	chunkedBad             // malformed, or the client failed
	chunkedTimeout         // the client stalled (body_timeout) or was too slow (read_timeout)
)

// readChunked reads a chunked request body of up to http1.SmallBody whole. A larger
// one is left to stream, the part already read first.
func (x *exchange) readChunked(req *fasthttp.Request, max int64) int {
	if cap(x.body) < http1.SmallBody+1 {
		x.body = make([]byte, http1.SmallBody+1)
	}
	buf := x.body[:http1.SmallBody+1]
	// Read until the stream itself says the body ended (io.EOF after the
	// last chunk); a truncated or malformed body fails with another error.
	n, err := 0, error(nil)
	for n < len(buf) && err == nil {
		var m int
		m, err = req.BodyStream().Read(buf[n:])
		n += m
	}
	switch {
	case err == io.EOF:
		if max > 0 && int64(n) > max {
			return chunkedTooLarge
		}
		x.body = buf[:n]
		req.SetBodyRaw(x.body) // now framed by Content-Length upstream
		return chunkedWhole
	case http1.IsTimeout(err):
		return chunkedTimeout
	case err != nil:
		return chunkedBad
	}
	if max > 0 && int64(n) > max {
		return chunkedTooLarge
	}
	req.SetBodyStream(io.MultiReader(bytes.NewReader(buf[:n]), req.BodyStream()), -1)
	return chunkedStreams
}

// statusForError maps a failed upstream exchange to the client's answer.
func statusForError(err error) (int, []byte) {
	var de *http1.DialError
	var ce *clientError
	switch {
	case errors.Is(err, errBodyTooLarge):
		return fasthttp.StatusRequestEntityTooLarge, bodyTooLarge
	case errors.As(err, &ce) && http1.IsTimeout(ce.err):
		return fasthttp.StatusRequestTimeout, bodyRequestTimeout
	case errors.As(err, &ce):
		return fasthttp.StatusBadRequest, bodyBadRequest
	case errors.Is(err, http2.ErrConnect):
		return fasthttp.StatusBadGateway, bodyBadGateway
	case errors.Is(err, http2.ErrTimeout):
		return fasthttp.StatusGatewayTimeout, bodyGatewayTimeout
	case errors.Is(err, http2.ErrCanceled):
		return statusClientClosed, bodyClientClosed
	case errors.Is(err, http2.ErrBadRequest), errors.Is(err, http2.ErrRequestBody):
		return fasthttp.StatusBadRequest, bodyBadRequest
	case errors.As(err, &de):
		return fasthttp.StatusBadGateway, bodyBadGateway
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return fasthttp.StatusServiceUnavailable, bodyNoTarget
	case http1.IsTimeout(err):
		return fasthttp.StatusGatewayTimeout, bodyGatewayTimeout
	default: // reached, but it closed the connection or broke the protocol
		return fasthttp.StatusBadGateway, bodyBadResponse
	}
}

// prepareRequest rewrites the request's headers for the upstream: hop-by-hop
// headers and the client's word for the fields the proxy owns out
// (dropClasses), proxy headers in. f holds forwardFlags.
// host is the request's host: the Host header, or the host of an
// absolute-form request target, which RFC 9112 section 3.2.2 says wins.
func prepareRequest(req *fasthttp.Request, x *exchange, host []byte, f int) {
	trusted := f&fwdTrusted != 0
	h := &req.Header
	// A proxy speaks its own version upstream (RFC 9110 section 6.2), and
	// adds no Content-Type the client did not send.
	h.SetProtocol("HTTP/1.1")
	h.SetNoDefaultContentType(true)
	// The client's Connection: close was recorded by the server for the
	// downstream connection; the upstream connection stays reusable.
	h.ResetConnectionClose()
	var t connTokens // the names Connection lists
	var names nameSet
	bits, xff := scanRequestHop(h, x.xff, &t, &names)
	x.xff = xff
	if len(h.RawHeaders()) == 0 {
		// Built by the wire (HTTP/2): no raw fields to delete by or
		// restore the order from.
		rebuildRequest(h, bits&hopBits, dropClasses(bits, f), &t)
		bits = 0
	}
	// The client's hop-by-hop fields, those its Connection names included,
	// go before the proxy sets its own, which Connection cannot remove.
	if bits&hopBits != 0 {
		deleteRequestHop(h, bits, &t)
	}
	drop := dropClasses(bits, f)
	if drop != 0 {
		scrubRequest(h, drop)
	}
	if bits&hopXFFMany != 0 {
		h.Del(hdrXForwardedFor) // joined in x.xff, set again below
	}
	if bits&reqIDMany != 0 {
		h.Del(hdrXRequestID) // SetCanonical replaces the first only
	}
	// Last of the deletions, each of which may have moved a field (the
	// client's X-Client-Cert-Subject was deleted here or by handle).
	if bits&maybeDup != 0 && (bits&(hopBits|hopXFFMany|reqIDMany|subjectField) != 0 || drop != 0) {
		restoreOrder(h, drop, &t, &names)
		if x.authX.done {
			x.setAuthHeaders(h) // auth.go: restoreOrder may have brought the client's back
		}
	}
	if f&fwdUpgrade != 0 {
		h.Set("Connection", "Upgrade")
		h.Set("Upgrade", "websocket")
	}
	if !trusted {
		// An untrusted peer's list is its own word, which an upstream that
		// reads the left-most entry would take for the client: the list
		// starts at the peer, as Caddy and Traefik do.
		x.xff = x.xff[:0]
	}
	if len(x.xff) > 0 {
		x.xff = append(x.xff, ", "...)
	}
	x.xff = append(x.xff, x.peer...)
	h.SetCanonical(keyXForwardedFor, x.xff)
	if !trusted || len(h.PeekBytes(keyXForwardedProto)) == 0 {
		if f&fwdTLS != 0 {
			h.SetCanonical(keyXForwardedProto, protoHTTPS)
		} else {
			h.SetCanonical(keyXForwardedProto, protoHTTP)
		}
	}
	if !trusted || len(h.PeekBytes(keyXForwardedHost)) == 0 {
		h.SetCanonical(keyXForwardedHost, host)
	}
	h.SetCanonical(keyXRequestID, x.reqID)
	if x.rt != nil && x.rt.edits != nil { // edits.go: last, so that nothing above undoes them
		x.editRequestHeader(h)
	}
}

// isWebSocketUpgrade reports a request to switch to the WebSocket protocol.
func isWebSocketUpgrade(h *fasthttp.RequestHeader) bool {
	return h.ConnectionUpgrade() && nameIs(h.Peek("Upgrade"), "websocket")
}

// finish answers with a status and a short body produced by Rampart itself,
// one that outlives the request (a canned body, a route's respond body).
func (x *exchange) finish(status int, body []byte) { x.answer(status, body, false) }

// finishCopy is finish for a body in the exchange's own buffers (x.hdr).
// The wire writes the answer after ServeWire has put the exchange back in
// its pool, where another request may take it and reuse the buffer before
// the write: the body is copied into the response.
func (x *exchange) finishCopy(status int, body []byte) { x.answer(status, body, true) }

func (x *exchange) answer(status int, body []byte, copyBody bool) {
	if x.cacheX.pc != nil && x.cacheFinish(status) { // cache.go: stale-if-error
		return
	}
	ctx := x.ctx
	if x.rt != nil && x.rt.edits != nil { // edits.go: the route's answers made here too
		x.editResponse()
	}
	ctx.SetStatusCode(status)
	if len(ctx.Response.Header.ContentType()) == 0 {
		ctx.SetContentType("text/plain; charset=utf-8")
	}
	ctx.Response.Header.SetBytesV(hdrXRequestID, x.reqID)
	setLimitHeaders(&ctx.Response.Header, x)
	if x.hsts {
		ctx.Response.Header.Set("Strict-Transport-Security", hstsValue)
	}
	if x.rt != nil && x.rt.cors != nil { // cors.go: the proxy's own answers too
		x.corsResponse()
	}
	if copyBody {
		ctx.Response.SetBody(body)
	} else {
		ctx.Response.SetBodyRaw(body)
	}
	if http2.IsGRPC(&ctx.Request.Header) {
		// A gRPC client reads no text: the same answer as a gRPC
		// Trailers-Only response (grpc-status, grpc-message).
		http2.AnswerGRPC(&ctx.Response)
	}
	x.logResponse()
}

// names are the upstream chosen and the target sent to, for the log ("":
// none yet).
func (x *exchange) names() (upstream, target string) {
	if x.p == nil {
		return "", ""
	}
	if x.ti < 0 {
		return x.p.name, ""
	}
	return x.p.name, x.p.targetNames[x.ti]
}

// clientBody reads a streamed request body from the client: it counts it,
// fails it beyond max_body_size, and marks the client's failures so that they
// are answered 400 rather than blamed on the target.
type clientBody struct {
	r    io.Reader
	left int64 // bytes still allowed
	n    int64 // bytes read
	// want is the declared Content-Length (-1: chunked). fasthttp's body
	// stream ends a body the client cut short of it as if it were whole;
	// that is the client's failure, not the target's.
	want int64
}

// clientError is a failure to read the request from the client.
type clientError struct{ err error }

func (e *clientError) Error() string { return "reading the request body: " + e.err.Error() }
func (e *clientError) Unwrap() error { return e.err }

func (b *clientBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, errBodyTooLarge
	}
	if b.left < int64(len(p)) { // read one byte past the limit to see it crossed
		p = p[:b.left+1]
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	b.left -= int64(n)
	if b.left < 0 {
		return 0, errBodyTooLarge
	}
	if err == io.EOF && b.want >= 0 && b.n < b.want {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && err != io.EOF {
		err = &clientError{err}
	}
	return n, err
}

// logResponse writes the access log line of an answer whose body is in
// memory (streamed upstream bodies are logged by their relay).
func (x *exchange) logResponse() {
	srv, ctx := x.l.srv, x.ctx
	if srv.metrics != nil {
		if x.rt != nil {
			x.rt.metrics.Observe(ctx.Response.StatusCode(), time.Since(x.start))
		} else {
			x.snap.noRoute.Observe(ctx.Response.StatusCode(), time.Since(x.start))
		}
	}
	endSpan(x.endTrace()) // trace.go
	al := x.snap.access
	if al == nil {
		return
	}
	line := al.appendPrefix(x.line, x)
	line = al.appendSuffix(line, int64(len(ctx.Response.Body())), time.Since(x.start))
	al.writeLine(line)
	x.line = line[:0]
}
