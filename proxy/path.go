package proxy

import (
	"bytes"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/config"
)

// A listener's path handling (listeners.NAME.path_handling). Whatever the
// mode, the router, the WAF and the upstream see one path: the router never
// matches a normal form while the upstream receives another.
const (
	// pathNormalize: the path is put in a normal form that every upstream
	// reads one way (normalizePath), which routes match, the WAF inspects
	// and the upstream receives. Paths without one are refused with 400.
	pathNormalize = iota
	// pathReject: a path that normalizing would change in meaning is
	// refused with 400 (pathAmbiguous); any other goes as received.
	pathReject
	// pathRaw: the path is matched and forwarded as received, encoded.
	pathRaw
)

// pathModeOf compiles a path_handling value (defaulted and validated).
func pathModeOf(s string) int {
	switch s {
	case config.PathReject:
		return pathReject
	case config.PathRaw:
		return pathRaw
	}
	return pathNormalize
}

var slashPath = []byte("/")

// requestPath returns the path the router matches, after putting the
// request's path in the form the listener's mode forwards; ok is false when
// the request must be refused with 400. In the common case, a path that
// needs no change, it only reads the path once and allocates nothing.
func (x *exchange) requestPath(ctx *fasthttp.RequestCtx, mode int) (path []byte, ok bool) {
	if ctx.Request.Header.IsConnect() {
		return ctx.Path(), true // an authority, not a path: forwarded as received
	}
	u := ctx.URI()
	raw := u.PathOriginal()
	switch {
	case mode == pathRaw:
		if len(raw) == 0 {
			return slashPath, true // what the upstream receives
		}
		return raw, true
	case !pathNeedsLook(raw):
		return ctx.Path(), true // fasthttp's decoded path: raw itself here
	case mode == pathReject:
		if pathAmbiguous(raw) {
			return nil, false
		}
		// Only safe escapes are left, which ctx.Path() decodes; the
		// upstream decodes them the same way.
		return ctx.Path(), true
	}
	out, ok := normalizePath(x.path[:0], raw)
	if !ok {
		return nil, false
	}
	x.path = out
	if !bytes.Equal(out, raw) {
		// The URI forwards PathOriginal (roundTrip disables fasthttp's own
		// normalizing), and its Path becomes the decoded normal form.
		u.SetPathBytes(out)
		x.pathChanged = true
	}
	return ctx.Path(), true
}

// sameRouteWithoutParams reports whether path, which holds a ";", is
// matched to route idx also when the ";" parameters of its segments are
// dropped, as servlet containers (Tomcat, Jetty, Spring) do before they map
// a path: "/api;x=1/secret" is "/api/secret" to them and a segment
// "api;x=1" to the router and to most other servers. Where the two readings
// belong to different routes, no path can be forwarded that every upstream
// reads as the route the router chose (a guarded route could be reached
// through an open one), and the request is refused. Where they agree, as
// for "/app/page;jsessionid=1" or an Angular matrix URL, it goes through.
func (x *exchange) sameRouteWithoutParams(lr *listenerRoutes, ctx *fasthttp.RequestCtx, path []byte, idx int) bool {
	x.noParams = appendWithoutParams(x.noParams[:0], path)
	h := &ctx.Request.Header
	return lr.router.match(ctx.Host(), x.noParams, h.Method(), h) == idx
}

// appendWithoutParams appends path to dst with each segment's ";"
// parameters removed ("/a;x/b;y=1;z" -> "/a/b").
func appendWithoutParams(dst, path []byte) []byte {
	for len(path) > 0 {
		semi := bytes.IndexByte(path, ';')
		if semi < 0 {
			return append(dst, path...)
		}
		dst = append(dst, path[:semi]...)
		path = path[semi:]
		slash := bytes.IndexByte(path, '/')
		if slash < 0 {
			return dst
		}
		path = path[slash:]
	}
	return dst
}

// forwardedTarget returns the request target the upstream receives when
// the path was normalized (the query goes as received), for the WAF to
// inspect; nil when the target goes as received.
func (x *exchange) forwardedTarget(u *fasthttp.URI) []byte {
	if !x.pathChanged {
		return nil
	}
	t := append(x.target[:0], u.PathOriginal()...)
	if q := u.QueryString(); len(q) > 0 {
		t = append(t, '?')
		t = append(t, q...)
	}
	x.target = t
	return t
}

// pathNeedsLook reports whether raw, the path of a request target as
// received, may need normalizing: it does not start with "/", or it holds a
// percent sign, a backslash, an empty segment ("//") or a dot segment ("."
// or "..", also with ";" parameters). A path without any of these is its
// own normal form in every mode. One pass, no allocation.
func pathNeedsLook(raw []byte) bool {
	if len(raw) == 0 {
		return false // absolute-form without a path: the upstream gets "/"
	}
	if raw[0] != '/' {
		return !(len(raw) == 1 && raw[0] == '*') // OPTIONS *
	}
	for i := 0; i < len(raw); i++ {
		switch raw[i] {
		case '%', '\\':
			return true
		case '/':
			if i+1 < len(raw) && (raw[i+1] == '/' || (raw[i+1] == '.' && dotSegment(raw[i+1:]))) {
				return true
			}
		}
	}
	return false
}

// dotSegment reports whether b, which starts with a dot and follows a
// slash, starts a dot segment: "." or "..", ended by the path's end, a slash
// or a ";" that starts path parameters.
func dotSegment(b []byte) bool {
	n := 1
	if len(b) > 1 && b[1] == '.' {
		n = 2
	}
	return len(b) == n || b[n] == '/' || b[n] == ';'
}

// pathAmbiguous reports whether raw holds anything that upstreams may read
// in different ways, or that a normal form would change: a dot segment, an
// empty segment, a backslash, an encoded dot, slash, backslash or NUL, an
// encoded percent sign followed by two hex digits (double encoding), an
// invalid escape, or a target that does not start with "/".
func pathAmbiguous(raw []byte) bool {
	if len(raw) == 0 {
		return false
	}
	if raw[0] != '/' {
		return !(len(raw) == 1 && raw[0] == '*')
	}
	for i := 0; i < len(raw); i++ {
		switch raw[i] {
		case '\\':
			return true
		case '/':
			if i+1 < len(raw) && (raw[i+1] == '/' || (raw[i+1] == '.' && dotSegment(raw[i+1:]))) {
				return true
			}
		case '%':
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return true
			}
			switch unhex(raw[i+1])<<4 | unhex(raw[i+2]) {
			case '.', '/', '\\', 0:
				return true
			case '%':
				if i+4 < len(raw) && isHex(raw[i+3]) && isHex(raw[i+4]) {
					return true
				}
			}
			i += 2
		}
	}
	return false
}

// normalizePath appends to dst the normal form of raw, the path of a request
// target as received, and returns it; ok is false when raw has none (the
// request is refused with 400). The normal form is one that the router, the
// WAF and every upstream read alike:
//
//   - a percent-encoded unreserved character (RFC 3986 section 2.3: letters,
//     digits, "-", ".", "_", "~") is decoded; other escapes stay as they are,
//     "%25" included, so that the path is decoded once, by the upstream,
//     exactly as the router decoded it; but a path that a second decoding
//     would give a dot, slash, backslash or NUL ("%252e", "%25252f") is
//     refused, for the upstreams behind which another hop decodes again;
//   - "%2F", "%5C" and "\" separate segments like "/" (Envoy's
//     UNESCAPE_AND_FORWARD; IIS and some Windows servers read a backslash
//     as a slash), and empty segments are merged (nginx's merge_slashes);
//   - dot segments are resolved (section 5.2.4), never above the root;
//   - a dot segment with path parameters (".;x", "..;x") is refused: Tomcat
//     and Spring drop the parameters and resolve it, other servers take it
//     as a name, so it has no normal form; so is an encoded NUL.
//
// The result starts with "/". It holds no dot segment, empty segment,
// backslash or encoded slash, dot or backslash, so decoding it once (what
// fasthttp's URI.Path does) changes only the escapes that stay.
func normalizePath(dst, raw []byte) (_ []byte, ok bool) {
	out := append(dst[:0], '/')
	seg := len(out) // where the current segment starts in out
	for i := 0; i <= len(raw); {
		sep, n := i == len(raw), 1
		if !sep {
			switch c := raw[i]; c {
			case '/', '\\':
				sep = true
			case '%':
				if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
					return out, false
				}
				n = 3
				switch d := unhex(raw[i+1])<<4 | unhex(raw[i+2]); {
				case d == '/' || d == '\\':
					sep = true
				case d == 0 || d == '%' && doubleEncoded(raw[i+3:]):
					return out, false
				case isUnreserved(d):
					out = append(out, d)
				default:
					out = append(out, raw[i:i+3]...)
				}
			default:
				out = append(out, c)
			}
		}
		if sep {
			s := out[seg:]
			switch {
			case len(s) == 0: // an empty segment: merged
			case len(s) == 1 && s[0] == '.':
				out = out[:seg]
			case len(s) == 2 && s[0] == '.' && s[1] == '.':
				out = out[:seg]
				if seg > 1 { // never above the root
					out = out[:bytes.LastIndexByte(out[:seg-1], '/')+1]
				}
			case s[0] == '.' && dotSegment(s):
				return out, false // ".;x" or "..;x"
			case i < len(raw):
				out = append(out, '/')
			}
			seg = len(out)
		}
		i += n
	}
	return out, true
}

// doubleEncoded reports whether b, which follows an encoded percent sign,
// is (after any more "25") the hex pair of a dot, slash, backslash or NUL:
// the path decodes to one of these when decoded more than once.
func doubleEncoded(b []byte) bool {
	for len(b) >= 2 && b[0] == '2' && b[1] == '5' {
		b = b[2:]
	}
	if len(b) < 2 || !isHex(b[0]) || !isHex(b[1]) {
		return false
	}
	switch unhex(b[0])<<4 | unhex(b[1]) {
	case '.', '/', '\\', 0:
		return true
	}
	return false
}

// isUnreserved reports RFC 3986 unreserved characters, whose percent-encoded
// and plain forms are equivalent.
func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// unhex is the value of the hexadecimal digit c (0 for another byte).
func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10
	}
	return 0
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// NormalizedTarget returns the request target the WAF inspects for a
// request whose target has the path raw (as received) and the query, on a
// listener that normalizes paths (the default path_handling): nil when the
// target is inspected as received, and ok false when the proxy refuses
// the request with 400 before the WAF sees it. For tools that inspect
// requests as the proxy does (rampart waf eval).
func NormalizedTarget(raw, query []byte) (target []byte, ok bool) {
	if !pathNeedsLook(raw) {
		return nil, true
	}
	out, ok := normalizePath(nil, raw)
	if !ok {
		return nil, false
	}
	if bytes.Equal(out, raw) {
		return nil, true
	}
	if len(query) > 0 {
		out = append(append(out, '?'), query...)
	}
	return out, true
}
