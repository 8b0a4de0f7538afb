package proxy

// The response cache (issue 21; docs/cache.md): an RFC 9111 shared cache
// in front of a route's upstream. serveCached runs before the request goes
// upstream: it answers from a fresh entry, or from a stale one within its
// stale-while-revalidate window (refreshing it in the background), joins a
// miss already in flight for the same key, or readies a revalidation.
// cacheResponse runs as the upstream's answer comes back: it refreshes an
// entry on a 304, serves a stale entry on a 5xx within stale-if-error, and
// stores what may be stored while the body streams to the client.

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/balancer"
	"github.com/rampart-proxy/rampart/cache"
	"github.com/rampart-proxy/rampart/wire"
)

// routeCache is a route's response cache: the policy it uses.
type routeCache struct {
	policy *cachePolicy
}

// cacheStatusName is this cache's name in Cache-Status (RFC 9211).
const cacheStatusName = "Rampart"

// Outcomes of a request's cache step, for the access log and metrics.
const (
	cacheNone        = iota // the route has no cache, or the step did not run
	cacheHit                // answered from a fresh entry
	cacheStale              // answered from a stale entry (while revalidating, or on an error)
	cacheRevalidated        // a stale entry, revalidated by a 304
	cacheMiss               // went upstream
	cacheBypass             // not a request the cache answers (method, Range, ...)
)

var cacheOutcomes = [...]string{cacheNone: "", cacheHit: "hit", cacheStale: "stale",
	cacheRevalidated: "revalidated", cacheMiss: "miss", cacheBypass: "bypass"}

// cacheExchange is a request's cache state.
type cacheExchange struct {
	pc      *cachePolicy
	outcome int
	// key is the primary key; lookup is the key looked up (the secondary
	// key when the stored answers vary).
	key, lookup []byte
	// stale is the entry found stale: revalidated, or served on an error.
	stale *cache.Entry
	// flight is the miss this request leads (nil: none).
	flight  *cache.Flight
	reqCC   cache.Directives
	reqTime time.Time
	// revalidating says the request went upstream with the stale entry's
	// validators in place of the client's, which inm and ims keep.
	revalidating bool
	inm, ims     []byte
	// invalidate says an unsafe method: a success removes the entry.
	invalidate bool
	// headAsGet says a HEAD went upstream as a GET, to fill the cache.
	headAsGet bool
	st        cache.Status
	hdr       []byte // Cache-Status under construction
	// rq and rs read the request's and the answer's fields by name.
	rq foldRequest
	rs foldResponse
}

func (c *cacheExchange) reset() {
	if c.pc == nil {
		return
	}
	c.release()
	c.pc, c.outcome, c.stale = nil, cacheNone, nil
	c.key, c.lookup = c.key[:0], c.lookup[:0]
	c.revalidating, c.invalidate, c.headAsGet = false, false, false
	c.inm, c.ims = c.inm[:0], c.ims[:0]
	c.st = cache.Status{}
	c.rq.h, c.rs.h = nil, nil
}

// release ends the miss this request leads: its waiters look again.
func (c *cacheExchange) release() {
	if c.flight != nil {
		c.flight.Done()
		c.flight = nil
	}
}

// status is the request's cache outcome for the access log and traces
// (hit, miss, stale, revalidated, bypass; "": the route has no cache).
func (c *cacheExchange) status() string { return cacheOutcomes[c.outcome] }

// serveCached answers from the cache and reports whether it did.
func (x *exchange) serveCached() bool {
	c, pc, h := &x.cacheX, x.rt.cache.policy, &x.ctx.Request.Header
	c.pc = pc
	c.rq.h = h
	// Cache-Status is the proxy's word: a client's copy on its request is
	// neither read nor passed on.
	delRequestFold(h, "Cache-Status")
	if !h.IsGet() && !h.IsHead() {
		c.outcome = cacheBypass
		c.st.Fwd = "bypass"
		// RFC 9111 section 4.4: a successful unsafe request invalidates
		// the stored answers of its URI.
		c.invalidate = !h.IsOptions() && !h.IsTrace()
		c.key = appendCacheKey(c.key[:0], x) // the GET's
		return false
	}
	if peekFold(&c.rq, "Range") != nil || (h.ContentLength() != 0 && h.ContentLength() != -2) || h.ConnectionUpgrade() {
		// Ranges are not cached; nor is a GET with a body, whose meaning
		// the URI does not capture; an upgrade (WebSocket) is a tunnel,
		// never answered from the cache.
		c.outcome, c.st.Fwd = cacheBypass, "bypass"
		return false
	}
	c.reqCC = cache.ParseControl(&c.rq)
	c.key = appendCacheKey(c.key[:0], x)
	now := time.Now()
	e, fwd := x.lookupEntry(now)
	if e != nil {
		if x.usable(e, now) {
			pc.metrics.Hit()
			c.outcome = cacheHit
			x.answerFromCache(e, now, cache.Status{Hit: true, TTL: e.TTL(now), HasTTL: true})
			return true
		}
		if x.staleWhileRevalidate(e, now) {
			return true
		}
		c.stale = e
		if fwd == "" {
			fwd = "stale"
			if c.reqCC.NoCache || c.reqCC.MaxAge == 0 {
				fwd = "request"
			}
		}
	}
	if c.reqCC.OnlyIfCached {
		c.outcome = cacheMiss
		c.st.Fwd = fwd
		x.finish(fasthttp.StatusGatewayTimeout, bodyGatewayTimeout)
		return true
	}
	// Coalescing: one request per key goes upstream; the others wait for
	// its answer to be stored, then look again.
	f, leader := pc.flights.Join(c.lookup)
	if leader {
		c.flight = f
	} else {
		pc.metrics.Coalesced()
		if f.Wait(pc.coalesce) {
			now = time.Now()
			if e2, _ := x.lookupEntry(now); e2 != nil && x.usable(e2, now) {
				pc.metrics.Hit()
				c.outcome = cacheHit
				x.answerFromCache(e2, now, cache.Status{Hit: true, TTL: e2.TTL(now), HasTTL: true, Collapsed: true})
				return true
			}
		}
		// The answer was not stored (or not in time): upstream, alone.
	}
	pc.metrics.Miss()
	c.outcome = cacheMiss
	c.st.Fwd = fwd
	c.reqTime = time.Now()
	if e := c.stale; e != nil && e.Validated() {
		x.setValidators(h, e)
	}
	if h.IsHead() && x.rt.mirror == nil {
		// As nginx does: the upstream gets a GET, whose answer is stored
		// and answered to the HEAD without its body. (Not on a mirrored
		// route: the copy would be a GET.)
		h.SetMethod(fasthttp.MethodGet)
		c.headAsGet = true
	}
	return false
}

// lookupEntry finds the request's entry, following a Vary marker to the
// variant; fwd is why nothing was found ("miss": nothing for the URI;
// "vary-miss": nothing for these Vary values).
func (x *exchange) lookupEntry(now time.Time) (e *cache.Entry, fwd string) {
	c := &x.cacheX
	c.lookup = append(c.lookup[:0], c.key...)
	ctx := context.Background() // a shared store bounds its calls itself
	e, err := c.pc.store.Get(ctx, unsafeString(c.key))
	if err != nil {
		c.pc.metrics.StoreError()
	}
	if e == nil {
		return nil, "miss"
	}
	if e.Marker() {
		c.lookup = cache.AppendVaryKey(c.lookup[:0], unsafeString(c.key), e.Vary, &c.rq)
		if e, _ = c.pc.store.Get(ctx, unsafeString(c.lookup)); e == nil || e.Marker() {
			return nil, "vary-miss"
		}
	}
	return e, ""
}

// usable reports whether e may answer the request without going upstream:
// fresh by its own word and the request's (max-age, min-fresh, no-cache),
// or stale within what the request's max-stale accepts.
func (x *exchange) usable(e *cache.Entry, now time.Time) bool {
	d := &x.cacheX.reqCC
	if d.NoCache || e.NoCache {
		return false
	}
	age, ttl := e.Age(now), e.TTL(now)
	if d.MaxAge >= 0 && age > time.Duration(d.MaxAge)*time.Second {
		return false
	}
	if ttl > 0 {
		return d.MinFresh < 0 || ttl >= time.Duration(d.MinFresh)*time.Second
	}
	if e.MustRevalidate {
		return false
	}
	return d.MaxStaleAny || (d.MaxStale >= 0 && -ttl <= time.Duration(d.MaxStale)*time.Second)
}

// staleWhileRevalidate answers with a stale entry inside its
// stale-while-revalidate window and refreshes it in the background (one
// refresh per key at a time). It reports whether it answered.
func (x *exchange) staleWhileRevalidate(e *cache.Entry, now time.Time) bool {
	c := &x.cacheX
	// Only a stale entry, and only for a request that set no freshness
	// bound of its own: an entry still fresh but refused by the request's
	// max-age or min-fresh is what the client asked not to get.
	if e.NoCache || e.MustRevalidate || c.reqCC.NoCache || c.reqCC.MaxAge >= 0 || c.reqCC.MinFresh >= 0 ||
		e.TTL(now) > 0 || -e.TTL(now) > e.WhileRevalidate {
		return false
	}
	x.refreshInBackground(e)
	c.pc.metrics.Stale(false)
	c.outcome = cacheStale
	x.answerFromCache(e, now, cache.Status{Hit: true, TTL: e.TTL(now), HasTTL: true, Detail: "stale-while-revalidate"})
	return true
}

// setValidators replaces the client's conditionals with the stale entry's
// validators, keeping the client's to answer it once the entry is
// revalidated.
func (x *exchange) setValidators(h *fasthttp.RequestHeader, e *cache.Entry) {
	c := &x.cacheX
	c.inm = append(c.inm[:0], peekFold(&c.rq, "If-None-Match")...)
	c.ims = append(c.ims[:0], peekFold(&c.rq, "If-Modified-Since")...)
	delRequestFold(h, "If-None-Match")
	delRequestFold(h, "If-Modified-Since")
	if v := e.Get("etag"); v != "" {
		h.Set("If-None-Match", v)
	}
	if v := e.Get("last-modified"); v != "" {
		h.Set("If-Modified-Since", v)
	}
	c.revalidating = true
}

// answerFromCache answers the request with e, as relay answers with a
// target's response: the proxy's headers, the route's response edits and
// CORS headers, Cache-Status, compression, the access log.
func (x *exchange) answerFromCache(e *cache.Entry, now time.Time, st cache.Status) {
	x.writeEntry(e, now)
	x.cacheX.st = st
	if x.rt.edits != nil { // edits.go
		x.editResponse()
	}
	if x.rt.cors != nil { // cors.go
		x.corsResponse()
	}
	x.setCacheStatus()
	if x.rt.compress != nil { // compress.go: the body is whole
		x.compressResponse(nil)
	}
	x.logResponse()
}

// writeEntry puts e into the response, with Age and the proxy's own
// per-request fields; a client whose conditionals match gets a 304.
func (x *exchange) writeEntry(e *cache.Entry, now time.Time) {
	c, ctx := &x.cacheX, x.ctx
	out := &ctx.Response
	out.Reset()
	out.Header.SetNoDefaultContentType(true)
	out.SetStatusCode(e.Status)
	for _, f := range e.Header {
		out.Header.Add(f.Name, f.Value)
	}
	x.hdr = strconv.AppendInt(x.hdr[:0], int64(e.Age(now)/time.Second), 10)
	out.Header.SetBytesV("Age", x.hdr)
	out.Header.SetCanonical(keyXRequestID, x.reqID)
	setLimitHeaders(&out.Header, x)
	if x.hsts {
		setFold(&out.Header, "Strict-Transport-Security", []byte(hstsValue))
	}
	h := &ctx.Request.Header
	c.rq.h = h
	inm, ims := peekFold(&c.rq, "If-None-Match"), peekFold(&c.rq, "If-Modified-Since")
	if c.revalidating {
		inm, ims = c.inm, c.ims // the client's, not the validators sent
	}
	if e.NotModified(inm, ims) {
		out.SetStatusCode(fasthttp.StatusNotModified)
		out.Header.Del("Content-Type")
		out.SkipBody = true
		return
	}
	out.SetBodyRaw(e.Body) // shared, never written to: entries do not change
	if h.IsHead() {
		out.SkipBody = true
	}
}

// setCacheStatus appends the cache's member to the answer's Cache-Status
// (after any upstream cache's, RFC 9211 section 2).
func (x *exchange) setCacheStatus() {
	c, h := &x.cacheX, &x.ctx.Response.Header
	c.hdr = c.hdr[:0]
	c.rs.h = h
	for _, prev := range c.rs.PeekAll("Cache-Status") {
		c.hdr = append(append(c.hdr, prev...), ", "...)
	}
	c.hdr = cache.AppendStatus(c.hdr, cacheStatusName, c.st)
	setFold(h, "Cache-Status", c.hdr)
}

// cacheResponse stores the target's response when it may be, and returns
// the body to relay in body's place (nil: the body is whole in the
// response). It runs before the route's response edits, so that what is
// stored is the target's answer; a hit gets the edits as a miss does.
func (x *exchange) cacheResponse(t *balancer.Target, body io.ReadCloser) io.ReadCloser {
	c := &x.cacheX
	pc := c.pc
	if pc == nil {
		return body
	}
	out := &x.ctx.Response
	status := out.StatusCode()
	c.st.FwdStatus = status
	defer x.setCacheStatus()
	if c.headAsGet {
		x.ctx.Request.Header.SetMethod(fasthttp.MethodHead) // the client's again
		var whole bool
		if body, whole = x.readWhole(body); !whole {
			c.release()
			out.SkipBody = true
			return nil
		}
		defer func() { out.SkipBody = true }()
	}
	if c.invalidate {
		if status < 400 {
			pc.purgeURL(unsafeString(c.key))
		}
		return body
	}
	if c.outcome == cacheBypass {
		return body
	}
	now := time.Now()
	if c.revalidating && status == fasthttp.StatusNotModified {
		closeBody(body)
		e := c.stale.Refresh(storedFields(x, &out.Header), c.reqTime, now, pc.limits)
		pc.set(c.lookup, e, now)
		c.release()
		pc.metrics.Revalidated()
		c.outcome = cacheRevalidated
		c.st.Stored = true
		x.writeEntry(e, now)
		return nil
	}
	if status >= 500 && x.staleIfError(now) {
		closeBody(body)
		return nil
	}
	e := x.storable(&out.Header, status, now)
	if e == nil {
		c.release()
		return body
	}
	if body == nil {
		if len(out.Body()) > pc.maxObject {
			c.release()
			return nil
		}
		e.Body = bytes.Clone(out.Body())
		pc.keep(x, e, now)
		c.st.Stored = true
		c.release()
		return nil
	}
	if cl := out.Header.ContentLength(); cl > pc.maxObject {
		c.release()
		return body
	}
	// The body streams to the client as it comes, and into the entry up
	// to max_object_size; the entry is stored when the body ended whole.
	tb := &teeBody{r: body, pc: pc, e: e, want: out.Header.ContentLength(), flight: c.flight}
	tb.key = x.storeKey(e)
	c.flight = nil // the tee ends it
	c.st.Stored = tb.want >= 0
	return tb
}

// readWhole reads a streamed body into the response, for a HEAD that went
// upstream as a GET: the client waits for the whole answer to be stored,
// as with nginx. It reports false, with the body dropped, for a body beyond
// max_object_size or one that failed.
func (x *exchange) readWhole(body io.ReadCloser) (io.ReadCloser, bool) {
	if body == nil {
		return nil, true
	}
	defer body.Close()
	out, max := &x.ctx.Response, x.cacheX.pc.maxObject
	cl := out.Header.ContentLength()
	if cl > max {
		return nil, false
	}
	buf, err := io.ReadAll(io.LimitReader(body, int64(max)+1))
	if err != nil || len(buf) > max || (cl >= 0 && len(buf) != cl) {
		return nil, false
	}
	out.SetBodyRaw(buf)
	return nil, true
}

// staleIfError answers with the stale entry when the upstream failed
// (5xx, or no answer at all) within the entry's stale-if-error window or
// what the request's own stale-if-error allows. It reports whether it
// answered.
func (x *exchange) staleIfError(now time.Time) bool {
	c := &x.cacheX
	e := c.stale
	if e == nil || e.MustRevalidate {
		return false
	}
	window := e.IfError
	if c.reqCC.StaleIfError >= 0 {
		window = max(window, min(time.Duration(c.reqCC.StaleIfError)*time.Second, c.pc.limits.MaxStale))
	}
	if -e.TTL(now) > window {
		return false
	}
	c.release()
	c.pc.metrics.Stale(true)
	c.outcome = cacheStale
	c.st.Fwd, c.st.Detail = "stale", "stale-if-error"
	c.st.TTL, c.st.HasTTL = e.TTL(now), true
	x.writeEntry(e, now)
	return true
}

// cacheFinish runs when the proxy answers itself (x.finish): with
// status 5xx, a stale entry within stale-if-error answers instead. It
// reports whether it did.
func (x *exchange) cacheFinish(status int) bool {
	c := &x.cacheX
	c.st.FwdStatus = status
	if c.headAsGet {
		x.ctx.Request.Header.SetMethod(fasthttp.MethodHead) // the client's again
		c.headAsGet = false
	}
	if status >= 500 && c.outcome == cacheMiss && x.staleIfError(time.Now()) {
		if x.rt.edits != nil { // edits.go
			x.editResponse()
		}
		if x.rt.cors != nil { // cors.go
			x.corsResponse()
		}
		x.setCacheStatus()
		if x.rt.compress != nil { // compress.go
			x.compressResponse(nil)
		}
		x.logResponse()
		return true
	}
	x.setCacheStatus()
	return false
}

// storable returns a new entry (without its body) for the target's
// answer, nil when it may not be stored.
func (x *exchange) storable(h *fasthttp.ResponseHeader, status int, now time.Time) *cache.Entry {
	c := &x.cacheX
	rh := &x.ctx.Request.Header
	if !rh.IsGet() && !c.headAsGet {
		return nil // a HEAD's answer has no body to keep
	}
	c.rs.h = h
	resp := cache.ParseControl(&c.rs)
	if cache.Storable(c.reqCC, resp, status, &c.rs, peekFold(&c.rq, "Authorization") != nil) != "" {
		return nil
	}
	if x.foreignCookie(h) {
		return nil // an answer that sets a cookie is somebody's own
	}
	e := &cache.Entry{Status: status, Header: storedFields(x, h), RequestTime: c.reqTime, ResponseTime: now}
	e.Freshness(&c.rs, resp, c.pc.limits)
	if names := cache.VaryNames(&c.rs); len(names) > 0 {
		e.Vary = names
	}
	return e
}

// foreignCookie reports whether the answer sets a cookie other than the
// proxy's own sticky cookie.
func (x *exchange) foreignCookie(h *fasthttp.ResponseHeader) bool {
	sticky := ""
	if x.p != nil && x.p.balancer.Sticky() {
		sticky = x.p.cfg.Sticky.Cookie
	}
	found := false
	h.VisitAllCookie(func(key, _ []byte) {
		if string(key) != sticky {
			found = true
		}
	})
	return found
}

// storedFields copies the answer's fields that are stored: not the framing
// (Content-Length, Transfer-Encoding), not hop-by-hop fields, not the
// fields the proxy sets per request (X-Request-ID, rate limit fields,
// Strict-Transport-Security of an hsts route, its sticky cookie, Age and
// Cache-Status, which the cache writes), never a cookie.
func storedFields(x *exchange, h *fasthttp.ResponseHeader) []cache.Field {
	out := make([]cache.Field, 0, h.Len())
	for k, v := range h.All() {
		switch {
		case nameIs(k, "Content-Length"), nameIs(k, "Transfer-Encoding"), nameIs(k, "Connection"),
			nameIs(k, "Keep-Alive"), nameIs(k, "Proxy-Connection"), nameIs(k, "Upgrade"), nameIs(k, "Trailer"),
			nameIs(k, "TE"), nameIs(k, "Set-Cookie"), nameIs(k, "Age"), nameIs(k, "Cache-Status"),
			nameIs(k, hdrXRequestID):
			continue
		case nameIs(k, "Date") && string(k) != "Date":
			continue // fasthttp writes its own Date and skips only this spelling (see relayHeader)
		case x != nil && x.limit != nil && (nameIs(k, "RateLimit") || nameIs(k, "RateLimit-Policy")):
			continue
		case x != nil && x.hsts && nameIs(k, "Strict-Transport-Security"):
			continue
		}
		out = append(out, cache.Field{Name: string(k), Value: string(v)})
	}
	return out
}

// storeKey is where e goes: its variant's key when it varies (whose
// marker set stores under the primary key), else the primary key.
func (x *exchange) storeKey(e *cache.Entry) []byte {
	c := &x.cacheX
	if len(e.Vary) == 0 {
		return bytes.Clone(c.key)
	}
	return cache.AppendVaryKey(nil, unsafeString(c.key), e.Vary, &c.rq)
}

// keep stores a whole answer, with its Vary marker when it varies.
func (pc *cachePolicy) keep(x *exchange, e *cache.Entry, now time.Time) {
	key := x.storeKey(e)
	if len(e.Vary) > 0 {
		pc.setMarker(x.cacheX.key, e, now)
	}
	pc.set(key, e, now)
}

// setMarker stores the Vary marker for e's primary key.
func (pc *cachePolicy) setMarker(primary []byte, e *cache.Entry, now time.Time) {
	m := &cache.Entry{Vary: e.Vary, ResponseTime: now}
	// A marker outlives a short-lived variant: the others it leads to may
	// live longer, and a marker without them costs a lookup, no more.
	pc.setFor(string(primary), m, max(e.Keep(now, pc.limits.MaxStale), pc.limits.MaxStale))
}

// set stores e under key.
func (pc *cachePolicy) set(key []byte, e *cache.Entry, now time.Time) {
	pc.setFor(string(key), e, e.Keep(now, pc.limits.MaxStale))
}

func (pc *cachePolicy) setFor(key string, e *cache.Entry, ttl time.Duration) {
	if err := pc.store.Set(context.Background(), key, e, ttl); err != nil {
		pc.metrics.StoreError()
		return
	}
	if !e.Marker() {
		pc.metrics.Stored(len(e.Body))
	}
}

// purgeURL removes the entries of a primary key and its variants.
// The variants are looked for (a prefix scan of the store) only when the
// key holds a Vary marker: an unsafe request to a URL that does not vary
// costs one lookup and one delete.
func (pc *cachePolicy) purgeURL(key string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	e, _ := pc.store.Get(ctx, key)
	if e == nil {
		return
	}
	_, _ = pc.store.Purge(ctx, key, false)
	if e.Marker() {
		_, _ = pc.store.Purge(ctx, key+"\x00", true)
	}
}

// teeBody relays a target's body and keeps a copy, stored when the body
// ended whole within max_object_size.
type teeBody struct {
	r      io.ReadCloser
	pc     *cachePolicy
	e      *cache.Entry
	key    []byte
	buf    []byte
	want   int // Content-Length; -1 or less: unknown
	over   bool
	done   bool
	flight *cache.Flight
}

func (b *teeBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if !b.over && !b.done {
		if len(b.buf)+n > b.pc.maxObject {
			b.over, b.buf = true, nil
			b.end() // waiters go upstream themselves
		} else {
			if b.buf == nil && b.want > 0 {
				b.buf = make([]byte, 0, b.want) // announced, and within max_object_size
			}
			b.buf = append(b.buf, p[:n]...)
		}
	}
	if err == io.EOF && !b.over && !b.done {
		b.done = true
		if b.want < 0 || len(b.buf) == b.want {
			if cap(b.buf)-len(b.buf) > 4<<10 {
				b.buf = bytes.Clone(b.buf) // a chunked body's spare capacity would go unaccounted
			}
			b.e.Body = b.buf
			now := time.Now()
			if len(b.e.Vary) > 0 {
				b.pc.setMarker(b.primary(), b.e, now)
			}
			b.pc.set(b.key, b.e, now)
		}
		b.end()
	}
	return n, err
}

// primary is the primary key of a variant's key.
func (b *teeBody) primary() []byte {
	if i := bytes.IndexByte(b.key, 0); i >= 0 {
		return b.key[:i]
	}
	return b.key
}

func (b *teeBody) end() {
	if b.flight != nil {
		b.flight.Done()
		b.flight = nil
	}
}

func (b *teeBody) Close() error {
	b.end()
	b.buf = nil
	return b.r.Close()
}

// Trailers and FlushEach pass on the upstream body's (see relay).
func (b *teeBody) Trailers() []wire.Field {
	if ts, ok := b.r.(wire.TrailerSource); ok {
		return ts.Trailers()
	}
	return nil
}

func (b *teeBody) FlushEach() bool {
	f, ok := b.r.(wire.Flusher)
	return ok && f.FlushEach()
}

func closeBody(b io.Closer) {
	if b != nil {
		_ = b.Close()
	}
}

// appendCacheKey appends the request's primary key: the method class
// (GET: only GETs are stored, and HEADs answered from them), scheme, host
// and request target as forwarded (after rewrites).
func appendCacheKey(dst []byte, x *exchange) []byte {
	h := &x.ctx.Request.Header
	dst = append(dst, "GET "...)
	if x.lr.tls {
		dst = append(dst, "https://"...)
	} else {
		dst = append(dst, "http://"...)
	}
	for _, c := range x.ctx.Host() {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	uri := h.RequestURI()
	if len(uri) > 0 && uri[0] != '/' { // absolute-form: the path on
		if i := bytes.Index(uri, []byte("://")); i >= 0 {
			uri = uri[i+3:]
			if j := bytes.IndexByte(uri, '/'); j >= 0 {
				uri = uri[j:]
			} else {
				uri = []byte("/")
			}
		}
	}
	return append(dst, uri...)
}

// unsafeString views b as a string for a lookup that does not keep it.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// foldRequest and foldResponse read a header's fields by name in any
// case, as cache.Header: the wire keeps names as they were sent. The
// slice returned is reused by the next call.
type foldRequest struct {
	h   *fasthttp.RequestHeader
	buf [][]byte
}

func (f *foldRequest) PeekAll(name string) [][]byte {
	f.buf = f.buf[:0]
	for k, v := range f.h.All() {
		if nameIs(k, name) {
			f.buf = append(f.buf, v)
		}
	}
	return f.buf
}

type foldResponse struct {
	h   *fasthttp.ResponseHeader
	buf [][]byte
}

func (f *foldResponse) PeekAll(name string) [][]byte {
	f.buf = f.buf[:0]
	for k, v := range f.h.All() {
		if nameIs(k, name) {
			f.buf = append(f.buf, v)
		}
	}
	return f.buf
}

// peekFold returns the first value of the field name of h, in any case.
func peekFold(h cache.Header, name string) []byte {
	if all := h.PeekAll(name); len(all) > 0 {
		return all[0]
	}
	return nil
}

// delRequestFold deletes the request's fields named name, in any case.
func delRequestFold(h *fasthttp.RequestHeader, name string) {
	var spelling [64]byte
	for range 16 {
		n := 0
		for k := range h.All() {
			if nameIs(k, name) {
				n = copy(spelling[:], k)
				break
			}
		}
		if n == 0 {
			return
		}
		h.DelBytes(spelling[:n])
	}
}
