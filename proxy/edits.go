package proxy

import (
	"bytes"
	"regexp"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/config"
)

// The kinds of rewrite.
const (
	rewriteNone = iota
	rewriteStrip
	rewriteReplace
	rewriteRegex
)

// routeEdits are a route's rewrite and header edits, compiled from its
// rewrite, request_headers and response_headers (docs/edge.md):
//
//   - the rewrite changes the path forwarded after the WAF inspected the
//     request as the client sent it (routing matched the original too);
//   - request header edits are applied last of all on the way up, after
//     the proxy's own forwarding fields (prepareRequest), so that nothing
//     the proxy does to the client's fields (hop-by-hop removal, the order
//     of repeated fields put back) undoes them; the fields the proxy owns
//     cannot be named (config.ProtectedRequestHeader);
//   - response header edits are applied to the target's answer once the
//     proxy set its own fields, and to the answers the proxy makes itself
//     for the route (404 and 5xx, WAF blocks, 429, respond), as nginx's
//     add_header ... always does.
type routeEdits struct {
	rewrite int
	from    []byte         // strip_prefix, replace_prefix.from
	to      []byte         // replace_prefix.to
	re      *regexp.Regexp // regex.pattern
	repl    []byte         // regex.replacement
	req     headerEdits
	resp    headerEdits
}

// headerEdits are one direction's edits, applied remove, set, add.
type headerEdits struct {
	remove  []string
	set     [][2]string
	add     [][2]string
	setResp []fieldValue // set, with values as bytes for setFold
}

type fieldValue struct {
	name  string
	value []byte
}

func (h *headerEdits) empty() bool { return len(h.remove)+len(h.set)+len(h.add) == 0 }

func compileHeaderEdits(e *config.HeaderEdits) headerEdits {
	var h headerEdits
	if e == nil {
		return h
	}
	h.remove = append(h.remove, e.Remove...)
	for _, name := range sortedKeys(e.Set) {
		h.set = append(h.set, [2]string{name, e.Set[name]})
		h.setResp = append(h.setResp, fieldValue{name, []byte(e.Set[name])})
	}
	for _, name := range sortedKeys(e.Add) {
		h.add = append(h.add, [2]string{name, e.Add[name]})
	}
	return h
}

func (s *Server) buildEdits(e *edgeBuild, r *route) error {
	rc := r.cfg
	if rc.Rewrite == nil && rc.RequestHeaders == nil && rc.ResponseHeaders == nil {
		return nil
	}
	ed := &routeEdits{req: compileHeaderEdits(rc.RequestHeaders), resp: compileHeaderEdits(rc.ResponseHeaders)}
	if rw := rc.Rewrite; rw != nil {
		switch {
		case rw.StripPrefix != "":
			ed.rewrite, ed.from = rewriteStrip, []byte(rw.StripPrefix)
		case rw.ReplacePrefix != nil:
			ed.rewrite, ed.from, ed.to = rewriteReplace, []byte(rw.ReplacePrefix.From), []byte(rw.ReplacePrefix.To)
		case rw.Regex != nil:
			re, err := regexp.Compile(rw.Regex.Pattern)
			if err != nil { // validated at load; a Config built in code may skip that
				return err
			}
			ed.rewrite, ed.re, ed.repl = rewriteRegex, re, []byte(rw.Regex.Replacement)
		}
	}
	r.edits = ed
	return nil
}

// editRequest rewrites the path (the query is kept). A rewrite whose
// result is not a valid origin-form path is answered 400; it returns
// false then. Request header edits wait for prepareRequest
// (editRequestHeader).
func (x *exchange) editRequest() bool {
	ed := x.rt.edits
	if ed.rewrite == rewriteNone {
		return true
	}
	ctx := x.ctx
	if ctx.Request.Header.IsConnect() {
		return true
	}
	u := ctx.URI()
	raw := u.PathOriginal()
	if len(raw) == 0 || raw[0] != '/' { // OPTIONS *, or an absolute form without a path
		return true
	}
	var out []byte
	switch ed.rewrite {
	case rewriteStrip, rewriteReplace:
		rest, ok := cutSegmentPrefix(raw, ed.from)
		if !ok {
			return true
		}
		out = append(x.target[:0], ed.to...) // empty for strip_prefix
		if len(rest) > 0 && rest[0] == '/' && len(out) > 0 && out[len(out)-1] == '/' {
			rest = rest[1:]
		}
		if len(rest) > 0 && rest[0] != '/' && (len(out) == 0 || out[len(out)-1] != '/') {
			out = append(out, '/')
		}
		out = append(out, rest...)
		if len(out) == 0 {
			out = append(out, '/')
		}
	case rewriteRegex:
		m := ed.re.FindSubmatchIndex(raw)
		if m == nil {
			return true
		}
		out = ed.re.Expand(x.target[:0], ed.repl, raw, m)
	}
	if x.lr.pathMode == pathNormalize && pathNeedsLook(out) {
		// A rewrite may join what normalizing had taken apart ("/a/" and
		// "/b" into "/a//b", a group holding ".."): the upstream gets the
		// normal form, as it would for a client's own path.
		n, ok := normalizePath(x.path[:0], out)
		if !ok {
			x.finish(fasthttp.StatusBadRequest, bodyBadRequest)
			return false
		}
		x.path, out = n, append(out[:0], n...)
	}
	if !validOriginPath(out) {
		x.finish(fasthttp.StatusBadRequest, bodyBadRequest)
		return false
	}
	x.target = out
	u.SetPathBytes(out)
	// The HTTP/2 upstream client sends the header's request target: the
	// new path, after the scheme and authority of an absolute-form target
	// (whose host forward still prefers to Host), with the query.
	t := append(x.hdr[:0], absolutePrefix(ctx.Request.Header.RequestURI())...)
	t = append(t, out...)
	if q := u.QueryString(); len(q) > 0 {
		t = append(append(t, '?'), q...)
	}
	x.hdr = t
	ctx.Request.Header.SetRequestURIBytes(t)
	return true
}

// absolutePrefix returns the scheme and authority of an absolute-form
// request target ("http://host:8080" of "http://host:8080/a?b"), nothing
// for an origin-form one.
func absolutePrefix(uri []byte) []byte {
	if len(uri) == 0 || uri[0] == '/' {
		return nil
	}
	i := bytes.Index(uri, []byte("://"))
	if i < 0 {
		return nil
	}
	if j := bytes.IndexAny(uri[i+3:], "/?"); j >= 0 {
		return uri[:i+3+j]
	}
	return uri
}

// cutSegmentPrefix returns path without prefix when prefix ends at a
// segment boundary of path ("/api" is a prefix of "/api" and "/api/x", not
// of "/apix"; "/api/" of "/api/x").
func cutSegmentPrefix(path, prefix []byte) ([]byte, bool) {
	if !bytes.HasPrefix(path, prefix) {
		return nil, false
	}
	rest := path[len(prefix):]
	if len(rest) == 0 || rest[0] == '/' || prefix[len(prefix)-1] == '/' {
		return rest, true
	}
	return nil, false
}

// validOriginPath reports whether p is an absolute path as a request
// target carries it (RFC 9112 section 3.2.1): "/" first, then pchars, "/"
// and percent escapes; no query, fragment, space or control character.
func validOriginPath(p []byte) bool {
	if len(p) == 0 || p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '%':
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return false
			}
		case strings.IndexByte("-._~!$&'()*+,;=:@/", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// editRequestHeader applies the route's request header edits, last of
// all before the request goes upstream (prepareRequest).
func (x *exchange) editRequestHeader(h *fasthttp.RequestHeader) {
	e := &x.rt.edits.req
	for _, name := range e.remove {
		h.Del(name)
	}
	for _, kv := range e.set {
		h.Set(kv[0], kv[1])
	}
	for _, kv := range e.add {
		h.Add(kv[0], kv[1])
	}
}

// editResponse edits the response header fields: the target's answer (in
// relay) and the proxy's own answers for the route (in finish).
func (x *exchange) editResponse() {
	e := &x.rt.edits.resp
	h := &x.ctx.Response.Header
	// The target's field names are relayed as sent (normalizing is off):
	// removed and replaced in any case.
	for _, name := range e.remove {
		delFold(h, name)
	}
	for _, kv := range e.setResp {
		setFold(h, kv.name, kv.value)
	}
	for _, kv := range e.add {
		h.Add(kv[0], kv[1])
	}
}
