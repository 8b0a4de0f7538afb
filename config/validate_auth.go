package config

import (
	"net"
	"net/url"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// auths checks the authentication policies and the routes' use of them
// (issue 22).
func (v *validator) auths() {
	for _, name := range sortedKeys(v.c.Auth) {
		p := "auth." + name
		a := v.c.Auth[name]
		n := 0
		if a != nil {
			if a.Basic != nil {
				n++
				v.basicAuth(p+".basic", a.Basic)
			}
			if a.Forward != nil {
				n++
				v.forwardAuth(p+".forward", a.Forward)
			}
			if a.JWT != nil {
				n++
				v.jwtAuth(p+".jwt", a.JWT)
			}
		}
		if n != 1 {
			v.errorf(p, "needs exactly one of basic, forward and jwt (has %d)", n)
		}
	}
	for i, r := range v.c.Routes {
		if r == nil || r.Auth == "" {
			continue
		}
		if _, ok := v.c.Auth[r.Auth]; !ok {
			v.routeErrorf(i, r, "auth", "auth policy %q is not defined", r.Auth)
		}
	}
}

// basicAuth checks a basic policy at p. The users file is read by the
// build (auth.ParseHtpasswd), which names its bad lines.
func (v *validator) basicAuth(p string, b *BasicAuth) {
	if len(b.Users) == 0 && b.UsersFile == "" {
		v.errorf(p, "users or users_file is required")
	}
	for _, name := range sortedKeys(b.Users) {
		if name == "" || strings.ContainsAny(name, ":\r\n") || hasControl(name) {
			v.fieldf(p, "users", "user name %q is empty or holds ':' or a control character", name)
			continue
		}
		hash := b.Users[name]
		if !isBcrypt(hash) {
			// The hash itself is not shown: it is a secret.
			v.fieldf(p, "users", "user %q: the hash is not a bcrypt hash ($2a$, $2b$ or $2y$; htpasswd -B)", name)
		}
	}
	if strings.ContainsAny(b.Realm, "\"\\") || hasControl(b.Realm) {
		v.fieldf(p, "realm", "%q must not hold a quote, a backslash or a control character", b.Realm)
	}
	if b.CacheTTL < 0 {
		v.fieldf(p, "cache_ttl", "must not be negative")
	}
	if b.CacheSize < 1 {
		v.fieldf(p, "cache_size", "%d must be at least 1", b.CacheSize)
	}
	if b.FailureLimit < 1 {
		v.fieldf(p, "failure_limit", "%d must be at least 1", b.FailureLimit)
	}
	if b.FailureWindow <= 0 {
		v.fieldf(p, "failure_window", "must be positive")
	}
}

// isBcrypt reports whether hash is a well-formed bcrypt hash.
func isBcrypt(hash string) bool {
	if !strings.HasPrefix(hash, "$2a$") && !strings.HasPrefix(hash, "$2b$") && !strings.HasPrefix(hash, "$2y$") {
		return false
	}
	_, err := bcrypt.Cost([]byte(hash))
	return err == nil && len(hash) == 60
}

// hasControl reports whether s holds an ASCII control character.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// ownedHeaders are the request header fields the proxy frames or sets
// itself: an auth policy may not set them.
var ownedHeaders = []string{
	"host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer",
	"proxy-connection", "cookie", "authorization", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
	"x-request-id", "x-client-cert-subject", "content-type",
}

// setHeaderName checks the name of a header field that a policy sets on
// the upstream request.
func (v *validator) setHeaderName(p, field, name string) {
	switch {
	case !validToken(name):
		v.fieldf(p, field, "%q is not a header name", name)
	case oneOf(strings.ToLower(name), ownedHeaders...):
		v.fieldf(p, field, "%q is a header field the proxy owns", name)
	}
}

// forwardAuth checks a forward policy at p.
func (v *validator) forwardAuth(p string, f *ForwardAuth) {
	if f.URL == "" {
		v.fieldf(p, "url", "url is required")
	} else if u, err := url.Parse(f.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.Fragment != "" || u.User != nil {
		v.fieldf(p, "url", "%q must be an http or https URL with a host, no user info and no fragment", redactURL(f.URL))
	}
	seen := map[string]bool{}
	for _, h := range f.CopyHeaders {
		v.setHeaderName(p, "copy_headers", h)
		if seen[strings.ToLower(h)] {
			v.fieldf(p, "copy_headers", "%q is listed twice", h)
		}
		seen[strings.ToLower(h)] = true
	}
	for _, h := range f.SendHeaders {
		if !validToken(h) {
			v.fieldf(p, "send_headers", "%q is not a header name", h)
		} else if oneOf(strings.ToLower(h), "host", "content-length", "transfer-encoding", "connection", "x-forwarded-for",
			"x-forwarded-proto", "x-forwarded-host", "x-forwarded-method", "x-forwarded-uri") {
			v.fieldf(p, "send_headers", "%q is set by the proxy on the subrequest", h)
		}
	}
	if f.Timeout <= 0 {
		v.fieldf(p, "timeout", "must be positive")
	}
	if f.FailureStatus < 400 || f.FailureStatus > 599 {
		v.fieldf(p, "failure_status", "%d must be a 4xx or 5xx status", f.FailureStatus)
	}
	if f.MaxConns < 1 {
		v.fieldf(p, "max_conns", "%d must be at least 1", f.MaxConns)
	}
}

// redactURL hides a URL's user info for an error message.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		u.User = url.User("REDACTED")
		return u.String()
	}
	return s
}

// jwtAuth checks a JWT policy at p.
func (v *validator) jwtAuth(p string, j *JWTAuth) {
	if j.JWKSURL == "" {
		v.fieldf(p, "jwks_url", "jwks_url is required")
	} else if u, err := url.Parse(j.JWKSURL); err != nil || u.Host == "" || u.User != nil {
		v.fieldf(p, "jwks_url", "%q must be an https URL with a host and no user info", redactURL(j.JWKSURL))
	} else if u.Scheme != "https" && !(u.Scheme == "http" && IsLoopbackHost(u.Hostname())) {
		v.fieldf(p, "jwks_url", "%q must be https (http only to a loopback address): the keys decide who gets in", j.JWKSURL)
	}
	if len(j.Algorithms) == 0 {
		v.fieldf(p, "algorithms", "at least one algorithm is required")
	}
	for _, a := range j.Algorithms {
		switch {
		case strings.EqualFold(a, "none"):
			v.fieldf(p, "algorithms", "%q is never accepted: it means an unsigned token", a)
		case strings.HasPrefix(strings.ToUpper(a), "HS"):
			v.fieldf(p, "algorithms", "%q is never accepted: an HMAC key is a shared secret, not a published key", a)
		case !oneOf(a, DefaultJWTAlgorithms...):
			v.fieldf(p, "algorithms", "%q is not supported (want %s)", a, quoteList(DefaultJWTAlgorithms...))
		}
	}
	seen := map[string]bool{}
	for _, claim := range sortedKeys(j.ClaimsToHeaders) {
		h := j.ClaimsToHeaders[claim]
		if claim == "" {
			v.fieldf(p, "claims_to_headers", "a claim name is empty")
		}
		v.setHeaderName(p, "claims_to_headers", h)
		if seen[strings.ToLower(h)] {
			v.fieldf(p, "claims_to_headers", "header %q is the target of two claims", h)
		}
		seen[strings.ToLower(h)] = true
	}
	if j.Leeway < 0 {
		v.fieldf(p, "leeway", "must not be negative")
	}
	if j.Cookie != "" && !validToken(j.Cookie) {
		v.fieldf(p, "cookie", "%q is not a cookie name", j.Cookie)
	}
	if j.RefreshInterval <= 0 {
		v.fieldf(p, "refresh_interval", "must be positive")
	}
	if j.MinRefreshInterval <= 0 {
		v.fieldf(p, "min_refresh_interval", "must be positive")
	}
	if j.FetchTimeout <= 0 {
		v.fieldf(p, "fetch_timeout", "must be positive")
	}
}

// IsLoopbackHost reports whether host (a URL's host name, without port) is
// a loopback address or "localhost".
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
