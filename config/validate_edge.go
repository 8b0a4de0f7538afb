package config

import (
	"regexp"
	"strconv"
	"strings"
)

// edges checks compression, rewrites, header edits and mirroring (issue 21).
func (v *validator) edges() {
	if c := v.c.Compression; c != nil {
		v.compression(c)
	}
	for i, r := range v.c.Routes {
		if r == nil {
			continue
		}
		if r.Rewrite != nil {
			v.rewrite(i, r)
		}
		if r.RequestHeaders != nil {
			v.headerEdits(i, r, "request_headers", r.RequestHeaders, ProtectedRequestHeader)
		}
		if r.ResponseHeaders != nil {
			protected := ProtectedResponseHeader
			if r.HSTS {
				protected = func(name string) bool {
					return ProtectedResponseHeader(name) || strings.EqualFold(name, "Strict-Transport-Security")
				}
			}
			v.headerEdits(i, r, "response_headers", r.ResponseHeaders, protected)
		}
		if r.Mirror != nil {
			v.mirror(i, r)
		}
	}
}

// compression checks the compression section.
func (v *validator) compression(c *Compression) {
	const p = "compression"
	if c.MinSize < 0 {
		v.fieldf(p, "min_size", "min_size must not be negative")
	}
	for j, t := range c.Types {
		if !validMediaTypePattern(t) {
			v.fieldf(p, "types["+strconv.Itoa(j)+"]", `invalid media type %q (want type/subtype, type/*, or a suffix such as +json)`, t)
		}
	}
	seen := map[string]bool{}
	for j, e := range c.Encodings {
		switch e {
		case EncodingGzip, EncodingBrotli, EncodingZstd:
		default:
			v.fieldf(p, "encodings["+strconv.Itoa(j)+"]", "unknown encoding %q (want gzip, br or zstd)", e)
		}
		if seen[e] {
			v.fieldf(p, "encodings["+strconv.Itoa(j)+"]", "encoding %q is listed twice", e)
		}
		seen[e] = true
	}
	if c.GzipLevel < 1 || c.GzipLevel > 9 {
		v.fieldf(p, "gzip_level", "gzip_level %d is out of range (1 to 9)", c.GzipLevel)
	}
	if c.BrotliLevel < 1 || c.BrotliLevel > 11 {
		v.fieldf(p, "brotli_level", "brotli_level %d is out of range (1 to 11)", c.BrotliLevel)
	}
	if c.ZstdLevel < 1 || c.ZstdLevel > 22 {
		v.fieldf(p, "zstd_level", "zstd_level %d is out of range (1 to 22)", c.ZstdLevel)
	}
}

// validMediaTypePattern accepts "type/subtype", "type/*" and "+suffix".
func validMediaTypePattern(t string) bool {
	if s, ok := strings.CutPrefix(t, "+"); ok {
		return validToken(s)
	}
	typ, sub, ok := strings.Cut(t, "/")
	return ok && validToken(typ) && (sub == "*" || validToken(sub))
}

// rewrite checks route i's rewrite: exactly one kind, paths that start
// with "/", a regular expression RE2 compiles.
func (v *validator) rewrite(i int, r *Route) {
	rw := r.Rewrite
	switch n := btoi(rw.StripPrefix != "") + btoi(rw.ReplacePrefix != nil) + btoi(rw.Regex != nil); {
	case n == 0:
		v.routeErrorf(i, r, "rewrite", "rewrite needs one of strip_prefix, replace_prefix or regex")
		return
	case n > 1:
		v.routeErrorf(i, r, "rewrite", "rewrite takes only one of strip_prefix, replace_prefix or regex")
		return
	}
	switch {
	case rw.StripPrefix != "":
		if !validPathPrefix(rw.StripPrefix) {
			v.routeErrorf(i, r, "rewrite.strip_prefix", "rewrite.strip_prefix %q must be a path starting with / (no query, no spaces)", rw.StripPrefix)
		}
	case rw.ReplacePrefix != nil:
		rp := rw.ReplacePrefix
		if !validPathPrefix(rp.From) {
			v.routeErrorf(i, r, "rewrite.replace_prefix.from", "rewrite.replace_prefix.from %q must be a path starting with / (no query, no spaces)", rp.From)
		}
		if !validPathPrefix(rp.To) {
			v.routeErrorf(i, r, "rewrite.replace_prefix.to", "rewrite.replace_prefix.to %q must be a path starting with / (no query, no spaces)", rp.To)
		}
	default:
		re := rw.Regex
		if re.Pattern == "" {
			v.routeErrorf(i, r, "rewrite.regex", "rewrite.regex needs a pattern")
		} else if _, err := regexp.Compile(re.Pattern); err != nil {
			v.routeErrorf(i, r, "rewrite.regex.pattern", "rewrite.regex.pattern %q is not a valid RE2 expression: %v", re.Pattern, err)
		}
		if !strings.HasPrefix(re.Replacement, "/") && !strings.HasPrefix(re.Replacement, "$") {
			v.routeErrorf(i, r, "rewrite.regex.replacement", "rewrite.regex.replacement %q must start with / (or with a group that holds it)", re.Replacement)
		} else if !validPathChars(re.Replacement) {
			v.routeErrorf(i, r, "rewrite.regex.replacement", "rewrite.regex.replacement %q holds a character not allowed in a path", re.Replacement)
		}
	}
}

// validPathPrefix accepts an origin-form path without a query.
func validPathPrefix(s string) bool {
	return strings.HasPrefix(s, "/") && validPathChars(s)
}

// validPathChars reports whether s holds only characters of an origin-form
// path (RFC 3986 pchar and "/", "%" escapes) and no "?" or "#".
func validPathChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~!$&'()*+,;=:@/%{}", c) >= 0: // {} for ${name}
		default:
			return false
		}
	}
	return true
}

// ProtectedRequestHeader reports whether request_headers may not edit
// the field name: the proxy sets or removes it itself (X-Forwarded-*,
// Forwarded, X-Real-IP, X-Request-Id, X-Client-Cert-Subject), it frames
// the message (Host, Content-Length, Transfer-Encoding) or it is hop by
// hop.
func ProtectedRequestHeader(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "host", "content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection",
		"te", "trailer", "upgrade", "proxy-authorization", "forwarded", "x-real-ip", "x-request-id",
		"x-client-cert-subject":
		return true
	}
	return strings.HasPrefix(n, "x-forwarded-")
}

// ProtectedResponseHeader reports whether response_headers may not edit
// the field name: the proxy sets it (X-Request-Id, RateLimit,
// RateLimit-Policy, Content-Encoding with compression), it frames the
// message (Content-Length, Transfer-Encoding) or it is hop by hop.
func ProtectedResponseHeader(name string) bool {
	switch strings.ToLower(name) {
	case "content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection", "te",
		"trailer", "upgrade", "x-request-id", "ratelimit", "ratelimit-policy", "content-encoding":
		return true
	}
	return false
}

// headerEdits checks one set of header edits of route i.
func (v *validator) headerEdits(i int, r *Route, field string, e *HeaderEdits, protected func(string) bool) {
	check := func(sub, name string) {
		at := field + "." + sub
		switch {
		case !validToken(name):
			v.routeErrorf(i, r, at, "%s: invalid header name %q", field, name)
		case protected(name):
			v.routeErrorf(i, r, at, "%s cannot edit %s: the proxy owns that field", field, name)
		}
	}
	for _, kind := range []struct {
		name string
		m    map[string]string
	}{{"set", e.Set}, {"add", e.Add}} {
		for _, name := range sortedKeys(kind.m) {
			check(kind.name+"."+name, name)
			if !validFieldValue(kind.m[name]) {
				v.routeErrorf(i, r, field+"."+kind.name+"."+name, "%s: the value of %s holds a control character", field, name)
			}
		}
	}
	for j, name := range e.Remove {
		check("remove["+strconv.Itoa(j)+"]", name)
	}
}

// validFieldValue refuses what RFC 9110 section 5.5 forbids in a field
// value: CR, LF, NUL and the other control characters but tab.
func validFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// mirror checks route i's mirror.
func (v *validator) mirror(i int, r *Route) {
	m := r.Mirror
	u, ok := v.c.Upstreams[m.Upstream]
	switch {
	case m.Upstream == "":
		v.routeErrorf(i, r, "mirror.upstream", "mirror.upstream is required")
	case !ok:
		v.routeErrorf(i, r, "mirror.upstream", "mirror.upstream %q is not defined", m.Upstream)
	case u != nil && u.Protocol == UpstreamHTTP2:
		v.routeErrorf(i, r, "mirror.upstream", "mirroring to an HTTP/2 upstream (%q) is not supported yet", m.Upstream)
	}
	if m.Percent < 0 || m.Percent > 100 || m.Percent != m.Percent {
		v.routeErrorf(i, r, "mirror.percent", "mirror.percent %v is out of range (0 to 100)", m.Percent)
	}
	if m.MaxBodySize < 0 {
		v.routeErrorf(i, r, "mirror.max_body_size", "mirror.max_body_size must not be negative")
	}
}
