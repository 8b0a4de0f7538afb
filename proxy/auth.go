package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/auth"
	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/metrics"
	"github.com/rampart-proxy/rampart/ratelimit"
)

// authPolicy is a built authentication policy (config.Auth), shared by the
// routes that name it and kept by the next snapshot while its settings
// (and its users file) are unchanged: a JWT policy's fetched keys and a
// basic policy's remembered credentials survive a reload.
type authPolicy struct {
	name string
	cfg  config.Auth // as built, to compare with the next config's
	file []byte      // the users file as read (basic)
	// filePath is where the users file was read.
	filePath string

	basic *auth.Basic
	jwt   *auth.JWT
	fwd   *auth.Forward

	// challenge is the WWW-Authenticate of a 401.
	challenge []byte
	// owned are the request header fields the policy sets: the client's
	// fields of these names are removed on every request of its routes
	// (Authorization among them unless it is forwarded).
	owned [][]byte
	// claims map JWT claims to header names; copy are the forward
	// service's fields copied upstream.
	claims []claimHeader
	copy   [][]byte
	// cookie carries a JWT when no Authorization: Bearer is sent.
	cookie   []byte
	optional bool
	// failStatus answers when the forward service fails.
	failStatus int
	metrics    *metrics.AuthMetrics
}

type claimHeader struct {
	claim  string
	header []byte
}

// authExchange is a request's authentication state: the header fields the
// policy sets upstream, kept so that they can be set again after the
// forwarding's header rewrite (prepareRequest), which may restore the
// client's repeated fields.
type authExchange struct {
	done bool        // the policy let the request through
	vals []authValue // the fields set, their values in buf
	buf  []byte
}

type authValue struct {
	name       []byte
	start, end int
}

func (a *authExchange) reset() {
	a.done = false
	a.vals = a.vals[:0]
	a.buf = a.buf[:0]
}

// add records a field to set upstream.
func (a *authExchange) add(name, value []byte) {
	start := len(a.buf)
	a.buf = append(a.buf, value...)
	a.vals = append(a.vals, authValue{name: name, start: start, end: len(a.buf)})
}

// buildAuth gives r its policy: built once per snapshot, or the running
// one when its settings are unchanged.
func (s *Server) buildAuth(e *edgeBuild, r *route) error {
	name := r.cfg.Auth
	if name == "" {
		return nil
	}
	if p := e.snap.auths[name]; p != nil {
		r.auth = p
		return nil
	}
	p, err := s.newAuthPolicy(e, name)
	if err != nil {
		return err
	}
	if e.snap.auths == nil {
		e.snap.auths = map[string]*authPolicy{}
	}
	e.snap.auths[name] = p
	r.auth = p
	return nil
}

// newAuthPolicy builds the policy name of e.cfg, or returns the running
// one when nothing of it changed. A dry run fetches nothing and spends no
// bcrypt, but reads and checks the users file.
func (s *Server) newAuthPolicy(e *edgeBuild, name string) (*authPolicy, error) {
	c := e.cfg.Auth[name]
	path := "auth." + name
	p := &authPolicy{name: name, cfg: *c}
	users := map[string]string{}
	if b := c.Basic; b != nil {
		for u, h := range b.Users {
			users[u] = h
		}
		if b.UsersFile != "" {
			file := b.UsersFile
			if !filepath.IsAbs(file) && e.cfg.File != "" {
				file = filepath.Join(filepath.Dir(e.cfg.File), file)
			}
			data, err := os.ReadFile(file)
			if err != nil {
				return nil, fmt.Errorf("%s.basic.users_file: %w", path, err)
			}
			fromFile, err := auth.ParseHtpasswd(data)
			if err != nil {
				return nil, fmt.Errorf("%s.basic.users_file: %s: %w", path, file, err)
			}
			for u, h := range fromFile {
				if _, dup := users[u]; dup {
					return nil, fmt.Errorf("%s.basic: user %q is both in users and in %s", path, u, file)
				}
				users[u] = h
			}
			p.file, p.filePath = data, file
		}
	}
	if e.old != nil {
		if old := e.old.auths[name]; old != nil && reflect.DeepEqual(old.cfg, p.cfg) && bytes.Equal(old.file, p.file) {
			return old, nil
		}
	}
	if !e.dryRun {
		p.metrics = s.metrics.Auth(name)
	}
	switch {
	case c.Basic != nil:
		b := c.Basic
		p.challenge = []byte(`Basic realm="` + b.Realm + `", charset="UTF-8"`)
		if !b.ForwardAuthorization {
			p.owned = append(p.owned, []byte(fasthttp.HeaderAuthorization))
		}
		if e.dryRun {
			return p, nil
		}
		var err error
		p.basic, err = auth.NewBasic(auth.BasicOptions{Users: users, CacheTTL: time.Duration(b.CacheTTL), CacheSize: b.CacheSize,
			FailureLimit: b.FailureLimit, FailureWindow: time.Duration(b.FailureWindow)})
		if err != nil {
			return nil, fmt.Errorf("%s.basic: %w", path, err)
		}
	case c.Forward != nil:
		f := c.Forward
		p.failStatus = f.FailureStatus
		if !f.ForwardAuthorization {
			p.owned = append(p.owned, []byte(fasthttp.HeaderAuthorization))
		}
		for _, h := range f.CopyHeaders {
			p.copy = append(p.copy, []byte(h))
			p.owned = append(p.owned, []byte(h))
		}
		var err error
		p.fwd, err = auth.NewForward(auth.ForwardOptions{URL: f.URL, Timeout: time.Duration(f.Timeout),
			MaxConns: f.MaxConns, SendHeaders: f.SendHeaders})
		if err != nil {
			return nil, fmt.Errorf("%s.forward: %w", path, err)
		}
	case c.JWT != nil:
		j := c.JWT
		p.challenge = []byte(`Bearer realm="` + config.DefaultAuthRealm + `"`)
		p.optional = j.Optional
		if j.Cookie != "" {
			p.cookie = []byte(j.Cookie)
		}
		if !j.ForwardAuthorization {
			p.owned = append(p.owned, []byte(fasthttp.HeaderAuthorization))
		}
		claims := make([]string, 0, len(j.ClaimsToHeaders))
		for claim := range j.ClaimsToHeaders {
			claims = append(claims, claim)
		}
		sort.Strings(claims)
		for _, claim := range claims {
			h := []byte(j.ClaimsToHeaders[claim])
			p.claims = append(p.claims, claimHeader{claim: claim, header: h})
			p.owned = append(p.owned, h)
		}
		var err error
		p.jwt, err = auth.NewJWT(auth.JWTOptions{JWKSURL: j.JWKSURL, Issuer: j.Issuer, Audience: j.Audience,
			Algorithms: j.Algorithms, Leeway: time.Duration(j.Leeway), RefreshInterval: time.Duration(j.RefreshInterval),
			MinRefreshInterval: time.Duration(j.MinRefreshInterval), FetchTimeout: time.Duration(j.FetchTimeout),
			Log: s.log.With("auth", name), NoFetch: e.dryRun})
		if err != nil {
			return nil, fmt.Errorf("%s.jwt: %w", path, err)
		}
	}
	return p, nil
}

// authFilesChanged reports whether a users file of s's policies reads
// otherwise now (or not at all) than when it was built: a reload of an
// unchanged config then rebuilds, so that the file is read again.
func (s *snapshot) authFilesChanged() bool {
	for _, p := range s.auths {
		if p.cfg.Basic == nil || p.cfg.Basic.UsersFile == "" {
			continue
		}
		data, err := os.ReadFile(p.filePath)
		if err != nil || !bytes.Equal(data, p.file) {
			return true
		}
	}
	return false
}

// close stops what the policy runs: the JWKS refreshes, the forward
// service's idle connections.
func (p *authPolicy) close() {
	p.jwt.Close()
	p.fwd.Close()
}

// closeNewAuth closes the policies of snap that old does not share (a
// build or a reload that failed).
func closeNewAuth(snap, old *snapshot) {
	for name, p := range snap.auths {
		if old == nil || old.auths[name] != p {
			p.close()
		}
	}
}

// retireAuth closes the policies of old that next does not keep (nil
// next: all of them).
func retireAuth(old, next *snapshot) {
	for name, p := range old.auths {
		if next == nil || next.auths[name] != p {
			p.close()
		}
	}
}

// authenticate reports whether the request may go on; when not, it has
// answered. On the way on, the client's copies of the fields the policy
// owns are gone and the policy's are set.
func (x *exchange) authenticate() bool {
	p := x.rt.auth
	var result string
	switch {
	case p.basic != nil:
		result = x.authBasic(p)
	case p.jwt != nil:
		result = x.authJWT(p)
	case p.fwd != nil:
		result = x.authForward(p)
	default: // built by a dry run: never serves
		result = metrics.AuthError
		x.finish(fasthttp.StatusServiceUnavailable, bodyAuthUnavailable)
	}
	p.metrics.Record(result)
	if result != metrics.AuthOK {
		return false
	}
	x.authX.done = true
	x.setAuthHeaders(&x.ctx.Request.Header)
	return true
}

// setAuthHeaders removes the client's fields of the names the policy owns
// and sets the policy's. prepareRequest calls it again after it restored
// the order of repeated fields, which may have brought the client's back.
func (x *exchange) setAuthHeaders(h *fasthttp.RequestHeader) {
	p := x.rt.auth
	for _, name := range p.owned {
		h.DelBytes(name)
	}
	a := &x.authX
	for _, v := range a.vals {
		h.AddBytesKV(v.name, a.buf[v.start:v.end])
	}
}

var (
	bodyUnauthorized    = []byte("401 Unauthorized\n")
	bodyAuthUnavailable = []byte("503 Service Unavailable: authentication is unavailable\n")
	bodyAuthFailed      = []byte("authentication service unavailable\n")
)

// denyAuth answers 401 with the policy's challenge, and logs why.
func (x *exchange) denyAuth(p *authPolicy, challenge []byte, reason string) string {
	x.ctx.Response.Header.SetBytesV(fasthttp.HeaderWWWAuthenticate, challenge)
	x.finish(fasthttp.StatusUnauthorized, bodyUnauthorized)
	x.logAuth(p, metrics.AuthDenied, reason)
	return metrics.AuthDenied
}

// logAuth logs a request the policy did not let through.
func (x *exchange) logAuth(p *authPolicy, result, reason string) {
	x.l.srv.log.Info("authentication refused the request", "request_id", string(x.reqID), "route", x.rt.name,
		"auth", p.name, "client", string(x.client), "result", result, "reason", reason)
}

// authBasic checks basic credentials.
func (x *exchange) authBasic(p *authPolicy) string {
	authz := x.ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
	_, r, retry := p.basic.Check(authz, x.clientIP)
	switch r {
	case auth.OK:
		return metrics.AuthOK
	case auth.Limited:
		x.ctx.Response.Header.SetBytesV("Retry-After", ratelimit.AppendRetryAfter(x.hdr[:0], ratelimit.Decision{RetryAfter: retry}))
		x.finish(fasthttp.StatusTooManyRequests, bodyTooManyRequests)
		x.logAuth(p, metrics.AuthRateLimited, "too many failures from the client")
		return metrics.AuthRateLimited
	case auth.Busy:
		x.finish(fasthttp.StatusServiceUnavailable, bodyAuthUnavailable)
		x.logAuth(p, metrics.AuthError, "every bcrypt slot busy")
		return metrics.AuthError
	}
	reason := "wrong credentials"
	if len(authz) == 0 {
		reason = "no credentials"
	}
	return x.denyAuth(p, p.challenge, reason)
}

// invalidToken is the challenge of a bad bearer token (RFC 6750 3.1).
var invalidToken = []byte(`Bearer realm="` + config.DefaultAuthRealm + `", error="invalid_token"`)

// authJWT checks a bearer token.
func (x *exchange) authJWT(p *authPolicy) string {
	h := &x.ctx.Request.Header
	tok := bearerToken(h.Peek(fasthttp.HeaderAuthorization))
	if tok == nil && p.cookie != nil {
		tok = h.CookieBytes(p.cookie)
	}
	if len(tok) == 0 {
		if p.optional {
			return metrics.AuthOK // the claim headers are removed all the same
		}
		return x.denyAuth(p, p.challenge, "no token")
	}
	claims, err := p.jwt.Verify(string(tok))
	if errors.Is(err, auth.ErrNoKeys) {
		x.finish(fasthttp.StatusServiceUnavailable, bodyAuthUnavailable)
		x.logAuth(p, metrics.AuthError, auth.Reason(err))
		return metrics.AuthError
	}
	if err != nil {
		x.l.srv.log.Info("authentication refused the request", "request_id", string(x.reqID), "route", x.rt.name,
			"auth", p.name, "client", string(x.client), "result", metrics.AuthDenied, "reason", auth.Reason(err), "error", err.Error())
		x.ctx.Response.Header.SetBytesV(fasthttp.HeaderWWWAuthenticate, invalidToken)
		x.finish(fasthttp.StatusUnauthorized, bodyUnauthorized)
		return metrics.AuthDenied
	}
	for _, c := range p.claims {
		v, ok := claims[c.claim]
		if !ok {
			continue
		}
		start := len(x.authX.buf)
		x.authX.buf = appendClaim(x.authX.buf, v)
		val := x.authX.buf[start:]
		x.authX.buf = x.authX.buf[:start]
		if len(val) > 0 && headerSafe(val) {
			x.authX.add(c.header, val)
		}
	}
	return metrics.AuthOK
}

// bearerToken is the token of an "Authorization: Bearer" value; nil for
// another scheme.
func bearerToken(v []byte) []byte {
	const scheme = "bearer "
	if len(v) <= len(scheme) || !bytes.EqualFold(v[:len(scheme)], []byte(scheme)) {
		return nil
	}
	return bytes.TrimSpace(v[len(scheme):])
}

// appendClaim appends a claim's value as a header value: a string as is,
// a list of strings joined by ", ", anything else as JSON.
func appendClaim(dst []byte, v any) []byte {
	switch v := v.(type) {
	case string:
		return append(dst, v...)
	case bool:
		return strconv.AppendBool(dst, v)
	case float64:
		return strconv.AppendFloat(dst, v, 'f', -1, 64)
	case []any:
		strs := true
		for _, e := range v {
			if _, ok := e.(string); !ok {
				strs = false
			}
		}
		if strs {
			for i, e := range v {
				if i > 0 {
					dst = append(dst, ", "...)
				}
				dst = append(dst, e.(string)...)
			}
			return dst
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return dst
	}
	return append(dst, b...)
}

// headerSafe reports whether v can be a header value: no control
// character but tab.
func headerSafe(v []byte) bool {
	for _, c := range v {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// forwardRelayed are the fields of a forward service's refusal relayed to
// the client with its status and body.
var forwardRelayed = []string{fasthttp.HeaderLocation, fasthttp.HeaderWWWAuthenticate, fasthttp.HeaderContentType}

// authForward asks the policy's authentication service.
func (x *exchange) authForward(p *authPolicy) string {
	ctx := x.ctx
	h := &ctx.Request.Header
	proto := protoHTTP
	if x.lr.tls {
		proto = protoHTTPS
	}
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	err := p.fwd.Ask(auth.ForwardRequest{Header: h, Proto: proto, Host: ctx.Host(), URI: h.RequestURI(), ClientIP: x.client}, resp)
	status := resp.StatusCode()
	if err != nil || status >= 500 || status < 200 {
		reason := "status " + strconv.Itoa(status)
		if err != nil {
			reason = err.Error()
		}
		x.l.srv.log.Warn("the authentication service failed", "request_id", string(x.reqID), "route", x.rt.name,
			"auth", p.name, "reason", reason)
		x.finish(p.failStatus, bodyAuthFailed)
		return metrics.AuthError
	}
	if status < 300 {
		for _, name := range p.copy {
			for _, v := range resp.Header.PeekAll(string(name)) {
				if headerSafe(v) {
					x.authX.add(name, v)
				}
			}
		}
		return metrics.AuthOK
	}
	// Its refusal (a 401, a 403, a redirect to a login page) goes to the
	// client as it gave it.
	out := &ctx.Response.Header
	for _, name := range forwardRelayed {
		for _, v := range resp.Header.PeekAll(name) {
			out.Add(name, string(v))
		}
	}
	for _, v := range resp.Header.Cookies() { // each Set-Cookie whole
		c := fasthttp.AcquireCookie()
		if c.ParseBytes(v) == nil {
			out.SetCookie(c)
		}
		fasthttp.ReleaseCookie(c)
	}
	// A copy of its own: the wire writes the response after the exchange
	// went back to its pool, so the body may not be the exchange's.
	x.finish(status, append([]byte(nil), resp.Body()...))
	x.logAuth(p, metrics.AuthDenied, "the service answered "+strconv.Itoa(status))
	return metrics.AuthDenied
}
