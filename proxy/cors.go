package proxy

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/metrics"
)

// bodyCORSRefused answers a preflight the route's CORS policy refuses.
var bodyCORSRefused = []byte("403 Forbidden: CORS preflight refused\n")

// The CORS fields (the Fetch standard's names).
const (
	hdrOrigin        = "Origin"
	hdrACRM          = "Access-Control-Request-Method"
	hdrACRH          = "Access-Control-Request-Headers"
	hdrACAO          = "Access-Control-Allow-Origin"
	hdrACAC          = "Access-Control-Allow-Credentials"
	hdrACAM          = "Access-Control-Allow-Methods"
	hdrACAH          = "Access-Control-Allow-Headers"
	hdrACEH          = "Access-Control-Expose-Headers"
	hdrACMA          = "Access-Control-Max-Age"
	hdrVary          = "Vary"
	corsFieldPrefix  = "access-control-"
	varyPreflight    = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
	maxCORSFieldsDel = 16 // Access-Control-* fields of one answer deleted at most
)

var (
	valueTrue = []byte("true")
	valueAny  = []byte("*")
)

// corsPolicy is a route's CORS policy, compiled once per reload: origins
// in lower case, the answer's field values joined.
type corsPolicy struct {
	anyOrigin   bool     // "*": every origin, answered "*" (no credentials)
	origins     []string // exact origins, lower case
	wildcards   []corsWildcard
	credentials bool
	methods     [][]byte // allowed methods
	methodsVal  []byte   // Access-Control-Allow-Methods
	anyHeader   bool     // allow_headers ["*"]: a preflight's fields are echoed
	headers     []string // allowed request fields, lower case
	headersVal  []byte   // Access-Control-Allow-Headers; nil: none
	exposeVal   []byte   // Access-Control-Expose-Headers; nil: none
	maxAgeVal   []byte   // Access-Control-Max-Age; nil: not sent
	metrics     *metrics.AccessMetrics
}

// corsWildcard is an origin "scheme://*.domain[:port]": scheme is
// "scheme://", suffix ".domain[:port]".
type corsWildcard struct{ scheme, suffix string }

// corsExchange is a request's CORS state.
type corsExchange struct {
	preflight bool   // answered as a preflight: corsResponse adds nothing
	vary      []byte // scratch for the Vary value
}

func (c *corsExchange) reset() { c.preflight = false }

func (s *Server) buildCORS(e *edgeBuild, r *route) error {
	if r.cors != nil || r.cfg.CORS == "" {
		return nil // none, or built already for another listener
	}
	cfg := e.cfg.CORS[r.cfg.CORS]
	if cfg == nil { // Validate refuses this
		return nil
	}
	c := &corsPolicy{credentials: cfg.AllowCredentials}
	for _, o := range cfg.AllowOrigins {
		if o == "*" {
			c.anyOrigin = true
			continue
		}
		origin, wildcard, _ := config.ParseOrigin(o)
		if wildcard {
			scheme, suffix, _ := strings.Cut(origin, "://")
			c.wildcards = append(c.wildcards, corsWildcard{scheme: scheme + "://", suffix: suffix})
		} else {
			c.origins = append(c.origins, origin)
		}
	}
	methods := cfg.AllowMethods
	if len(methods) == 0 {
		methods = config.DefaultCORSMethods
	}
	for _, m := range methods {
		c.methods = append(c.methods, []byte(m))
	}
	c.methodsVal = []byte(strings.Join(methods, ", "))
	if len(cfg.AllowHeaders) == 1 && cfg.AllowHeaders[0] == "*" {
		c.anyHeader = true
	} else if len(cfg.AllowHeaders) > 0 {
		for _, h := range cfg.AllowHeaders {
			c.headers = append(c.headers, strings.ToLower(h))
		}
		c.headersVal = []byte(strings.Join(cfg.AllowHeaders, ", "))
	}
	if len(cfg.ExposeHeaders) > 0 {
		c.exposeVal = []byte(strings.Join(cfg.ExposeHeaders, ", "))
	}
	if secs := int64(cfg.MaxAge.Std().Seconds()); secs > 0 {
		c.maxAgeVal = strconv.AppendInt(nil, secs, 10)
	}
	if !e.dryRun {
		c.metrics = s.metrics.Access(r.name)
	}
	r.cors = c
	return nil
}

// allowOrigin reports whether origin (an Origin field's value) is allowed.
func (c *corsPolicy) allowOrigin(origin []byte) bool {
	if len(origin) == 0 {
		return false
	}
	if c.anyOrigin {
		return true
	}
	for _, o := range c.origins {
		if equalFold(origin, o) {
			return true
		}
	}
	for _, w := range c.wildcards {
		if len(origin) <= len(w.scheme)+len(w.suffix) || !equalFold(origin[:len(w.scheme)], w.scheme) {
			continue
		}
		host := origin[len(w.scheme):]
		cut := len(host) - len(w.suffix)
		if equalFold(host[cut:], w.suffix) && subdomain(host[:cut]) {
			return true
		}
	}
	return false
}

// subdomain reports whether b is one or more DNS labels (the part a
// wildcard origin's "*" stands for).
func subdomain(b []byte) bool {
	if len(b) == 0 || b[0] == '.' || b[len(b)-1] == '.' || bytes.Contains(b, []byte("..")) {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// allowMethod reports whether a preflight may ask for method.
func (c *corsPolicy) allowMethod(method []byte) bool {
	for _, m := range c.methods {
		if bytes.Equal(method, m) {
			return true
		}
	}
	return false
}

// allowHeaders reports whether every field name of list (an
// Access-Control-Request-Headers value) is allowed.
func (c *corsPolicy) allowHeaders(list []byte) bool {
	for len(list) > 0 {
		var name []byte
		if i := bytes.IndexByte(list, ','); i >= 0 {
			name, list = list[:i], list[i+1:]
		} else {
			name, list = list, nil
		}
		name = trimOWS(name)
		if len(name) == 0 {
			continue
		}
		if !validFieldName(name) {
			return false
		}
		if c.anyHeader {
			continue
		}
		found := false
		for _, h := range c.headers {
			if equalFold(name, h) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// validFieldName reports whether b is a header field name (an HTTP token).
func validFieldName(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return len(b) > 0
}

// corsPreflight answers a preflight request (OPTIONS with Origin and
// Access-Control-Request-Method) and reports whether it did: 204 with the
// policy's fields when the origin, the method and every requested field
// are allowed, else 403 without them. The upstream never sees a preflight.
func (x *exchange) corsPreflight() bool {
	h := &x.ctx.Request.Header
	if !h.IsOptions() {
		return false
	}
	origin, method := h.Peek(hdrOrigin), h.Peek(hdrACRM)
	if len(origin) == 0 || len(method) == 0 {
		return false // an actual OPTIONS request
	}
	c := x.rt.cors
	x.corsX.preflight = true
	resp := &x.ctx.Response.Header
	resp.Set(hdrVary, varyPreflight)
	reqHeaders := h.Peek(hdrACRH)
	if !c.allowOrigin(origin) || !c.allowMethod(method) || !c.allowHeaders(reqHeaders) {
		c.metrics.Denied(metrics.DeniedCORSPreflight)
		x.l.srv.log.Info("CORS preflight refused", "request_id", string(x.reqID), "route", x.rt.name,
			"client", string(x.client), "origin", string(origin), "method", string(method))
		x.finish(fasthttp.StatusForbidden, bodyCORSRefused)
		return true
	}
	c.setOrigin(resp, origin)
	resp.SetBytesV(hdrACAM, c.methodsVal)
	switch {
	case c.anyHeader && len(reqHeaders) > 0:
		resp.SetBytesV(hdrACAH, reqHeaders) // checked: a list of field names
	case c.headersVal != nil:
		resp.SetBytesV(hdrACAH, c.headersVal)
	}
	if c.maxAgeVal != nil {
		resp.SetBytesV(hdrACMA, c.maxAgeVal)
	}
	x.ctx.SetStatusCode(fasthttp.StatusNoContent)
	resp.SetNoDefaultContentType(true)
	resp.SetBytesV(hdrXRequestID, x.reqID)
	setLimitHeaders(resp, x)
	if x.hsts {
		resp.Set("Strict-Transport-Security", hstsValue)
	}
	x.ctx.Response.ResetBody()
	x.logResponse()
	return true
}

// setOrigin sets Access-Control-Allow-Origin (and -Credentials) for an
// allowed origin: "*" for a policy of every origin, else the origin itself.
func (c *corsPolicy) setOrigin(resp *fasthttp.ResponseHeader, origin []byte) {
	if c.anyOrigin {
		resp.SetBytesV(hdrACAO, valueAny)
	} else {
		resp.SetBytesV(hdrACAO, origin)
	}
	if c.credentials {
		resp.SetBytesV(hdrACAC, valueTrue)
	}
}

// corsResponse puts the route's CORS fields on an answer, the target's or
// the proxy's own (an error, a refusal): the target's Access-Control-*
// fields out, Vary: Origin always, and for an allowed Origin the policy's
// Allow-Origin, Allow-Credentials and Expose-Headers.
func (x *exchange) corsResponse() {
	if x.corsX.preflight {
		return
	}
	c := x.rt.cors
	resp := &x.ctx.Response.Header
	deleteCORSFields(resp)
	x.corsX.vary = appendVaryOrigin(x.corsX.vary[:0], resp.Peek(hdrVary))
	if len(x.corsX.vary) > 0 {
		resp.SetBytesV(hdrVary, x.corsX.vary)
	}
	origin := x.ctx.Request.Header.Peek(hdrOrigin)
	if !c.allowOrigin(origin) {
		return
	}
	c.setOrigin(resp, origin)
	if c.exposeVal != nil {
		resp.SetBytesV(hdrACEH, c.exposeVal)
	}
}

// appendVaryOrigin appends to dst the Vary value that adds Origin to vary;
// it appends nothing when vary already covers it ("*", or Origin listed).
func appendVaryOrigin(dst, vary []byte) []byte {
	if len(vary) == 0 {
		return append(dst, hdrOrigin...)
	}
	for list := vary; len(list) > 0; {
		var tok []byte
		if i := bytes.IndexByte(list, ','); i >= 0 {
			tok, list = list[:i], list[i+1:]
		} else {
			tok, list = list, nil
		}
		tok = trimOWS(tok)
		if equalFold(tok, "origin") || (len(tok) == 1 && tok[0] == '*') {
			return dst
		}
	}
	dst = append(dst, vary...)
	return append(dst, ", Origin"...)
}

// deleteCORSFields deletes the Access-Control-* fields of resp, in any
// spelling: on a route with a policy the proxy owns them.
func deleteCORSFields(resp *fasthttp.ResponseHeader) {
	var name [connTokenBytes]byte
	for range maxCORSFieldsDel {
		n := 0
		for k := range resp.All() {
			if len(k) >= len(corsFieldPrefix) && len(k) <= len(name) && equalFold(k[:len(corsFieldPrefix)], corsFieldPrefix) {
				n = copy(name[:], k)
				break
			}
		}
		if n == 0 {
			return
		}
		delFold(resp, name[:n])
	}
}
