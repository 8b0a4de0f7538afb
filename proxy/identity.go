package proxy

// The fields the proxy owns: which request fields say who the client is or
// where the request came from, which of the client's never reach the
// upstream (dropClasses), which the WAF sees as the proxy sets them
// (ownedFields), and keeping the order of what is left.

import (
	"bytes"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/waf"
)

// requestFieldBits returns the bits of a request field name: classify's,
// or its identity class, and whether it holds an underscore.
func requestFieldBits(k []byte) int {
	if bytes.IndexByte(k, '_') >= 0 {
		if ownedName(k) {
			return underscoreField | ownedUnderscore
		}
		return underscoreField
	}
	if b := classify(k); b != 0 {
		return b
	}
	if len(k) < 9 {
		return 0
	}
	switch k[0] | 0x20 {
	case 'f':
		if nameIs(k, "Forwarded") {
			return fwdField
		}
	case 'x':
		switch {
		case nameIs(k, clientSubjectHeader):
			return subjectField
		case nameIs(k, "X-Real-Ip"), len(k) > len(xForwarded) && nameIs(k[:len(xForwarded)], xForwarded):
			return fwdField
		}
	}
	if claimsName(k, nameIs[string]) {
		return fwdField
	}
	return 0
}

// claimFields are request fields that other proxies and CDNs set to say who
// the client is (True-Client-IP, CF-Connecting-IP...) or which URL it asked
// for (X-Original-URL, X-Rewrite-URL: IIS, Symfony and Zend route by them,
// past a path the router matched). Applications and frameworks believe
// them, so from a peer outside trusted_proxies they are removed, like
// Forwarded and X-Forwarded-*; a trusted CDN's reach the upstream.
var claimFields = [...]string{
	"Client-Ip", "True-Client-Ip", "X-Client-Ip", "X-Cluster-Client-Ip", "X-Remote-Ip", "X-Remote-Addr",
	"Cf-Connecting-Ip", "Cf-Connecting-Ipv6", "Fastly-Client-Ip", "X-Original-Url", "X-Rewrite-Url", "X-Original-Uri",
}

// claimsName reports whether k names one of claimFields, compared by eq.
// Most names differ in length from all of them, so the common case costs
// a dozen length comparisons.
func claimsName(k []byte, eq func([]byte, string) bool) bool {
	for _, n := range claimFields {
		if len(k) == len(n) && eq(k, n) {
			return true
		}
	}
	return false
}

const xForwarded = "X-Forwarded-"

// ownedName reports whether k, its underscores read as dashes, names a field
// the proxy sets or owns: Forwarded, X-Forwarded-*, X-Real-IP, X-Request-Id,
// X-Client-Cert-Subject, or one of claimFields. CGI and the frameworks built on it (PHP, Rack,
// WSGI) give "X_Forwarded_For" and "X-Forwarded-For" one name.
func ownedName(k []byte) bool {
	if len(k) < 9 {
		return false
	}
	if claimsName(k, nameIsDash) {
		return true
	}
	switch k[0] | 0x20 {
	case 'f':
		return nameIsDash(k, "Forwarded")
	case 'x':
		return nameIsDash(k, "X-Real-Ip") || nameIsDash(k, hdrXRequestID) || nameIsDash(k, clientSubjectHeader) ||
			len(k) > len(xForwarded) && nameIsDash(k[:len(xForwarded)], xForwarded)
	}
	return false
}

// nameIsDash is nameIs reading an underscore in b as a dash.
func nameIsDash(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c, d := b[i], s[i]
		if c == '_' {
			c = '-'
		}
		if c != d && lower(c) != lower(d) {
			return false
		}
	}
	return true
}

// Flags of prepareRequest.
const (
	fwdTLS         = 1 << iota // the listener terminates TLS
	fwdTrusted                 // the peer is a trusted proxy
	fwdUpgrade                 // a WebSocket upgrade
	fwdUnderscores             // underscores_in_headers: names with "_" are kept
	fwdSubject                 // the proxy set X-Client-Cert-Subject (client_ca_file)
)

// forwardFlags returns prepareRequest's flags for a request on lr.
func forwardFlags(lr *listenerRoutes, trusted, upgrade bool) int {
	f := 0
	if lr.tls {
		f |= fwdTLS
	}
	if trusted {
		f |= fwdTrusted
	}
	if upgrade {
		f |= fwdUpgrade
	}
	if lr.underscores {
		f |= fwdUnderscores
	}
	if lr.clientSubject {
		f |= fwdSubject
	}
	return f
}

// dropClasses returns the identity bits of the fields in bits that must not
// reach the upstream: an underscore spelling of an owned name always; any
// name with an underscore unless the listener keeps them; Forwarded,
// X-Real-IP and X-Forwarded-* from a peer that is not a trusted proxy;
// X-Client-Cert-Subject unless the proxy set it.
func dropClasses(bits, f int) int {
	drop := bits & ownedUnderscore
	if f&fwdUnderscores == 0 {
		drop |= bits & underscoreField
	}
	if f&fwdTrusted == 0 {
		drop |= bits & fwdField
	}
	if f&fwdSubject == 0 {
		drop |= bits & subjectField
	}
	return drop
}

// ownedFields returns the fields the WAF must see as the proxy sets them,
// not as the client sent them: X-Client-Cert-Subject (the verified subject
// on a listener with client certificates, none elsewhere: a rule keyed on it
// must not believe a client), and the Host of an absolute-form target, which
// is the request's host (RFC 9112 section 3.2.2) and what the upstream gets.
func (x *exchange) ownedFields(ctx *fasthttp.RequestCtx, lr *listenerRoutes, subject []byte) []waf.Field {
	o := append(x.owned[:0], waf.Field{Name: clientSubjectHeader})
	if lr.clientSubject {
		o[0].Value = subject
	}
	if uri := ctx.Request.Header.RequestURI(); len(uri) > 0 && uri[0] != '/' {
		o = append(o, waf.Field{Name: fasthttp.HeaderHost, Value: ctx.Host()})
	}
	return o
}

// restoreOrder puts the fields of each name the client sent more than once
// back in the order received, after fields were deleted: fasthttp's Del
// moves the last field into the gap it leaves, which can put a field ahead
// of an earlier one of its name, whose order is significant (RFC 9110
// section 5.3). drop and t are what was deleted (dropClasses, the names
// Connection lists). It runs only when the scan saw a name twice (maybeDup)
// and something was deleted. The fields the proxy frames or sets are left
// alone, and so is Cookie, which fasthttp would parse and rewrite if it were
// added again (its values all go through, their order may change).
func restoreOrder(h *fasthttp.RequestHeader, drop int, t *connTokens, names *nameSet) {
	moved := false
	for k := range h.AllInOrder() { // the raw fields: Del and Add leave them
		if names.repeated(k) && restorable(k, drop, t) && repeated(h, k) {
			h.DelBytes(k)
			moved = true
		}
	}
	if !moved {
		return
	}
	for k, v := range h.AllInOrder() {
		if names.repeated(k) && restorable(k, drop, t) && repeated(h, k) {
			h.AddBytesKV(k, v)
		}
	}
}

// restorable reports whether restoreOrder may delete and add again the
// client's fields named k: kept on their way upstream, and neither framed
// nor set by the proxy nor parsed by fasthttp.
func restorable(k []byte, drop int, t *connTokens) bool {
	if requestFieldBits(k)&(hopBits|hopXFF|hasRequestID|subjectField|drop) != 0 {
		return false
	}
	switch {
	case nameIs(k, "Host"), nameIs(k, "Content-Length"), nameIs(k, "Content-Type"), nameIs(k, "User-Agent"),
		nameIs(k, "Transfer-Encoding"), nameIs(k, "Cookie"):
		return false
	}
	for i := 0; i < t.n; i++ {
		if nameIs(k, t.name(i)) {
			return false
		}
	}
	return true
}

// repeated reports whether h's raw fields hold k more than once.
func repeated(h *fasthttp.RequestHeader, k []byte) bool {
	n := 0
	for k2 := range h.AllInOrder() {
		if nameIs(k2, k) {
			if n++; n > 1 {
				return true
			}
		}
	}
	return false
}

// scrubRequest deletes the fields the client sent whose requestFieldBits
// are in drop. Del removes every field of a name, so a name repeated at
// once is deleted once.
func scrubRequest(h *fasthttp.RequestHeader, drop int) {
	var last [connTokenBytes]byte
	n := -1
	for k := range h.AllInOrder() { // the raw fields: Del does not change them
		if requestFieldBits(k)&drop == 0 {
			continue
		}
		if n >= 0 && string(last[:n]) == string(k) {
			continue
		}
		n = copy(last[:], k)
		h.DelBytes(k)
	}
}

// nameSet finds the names a header repeats, by a hash of each: a repeated
// name always matches itself, and the rare two names that share a hash only
// cost restoreOrder a look.
type nameSet struct {
	seen [32]uint32 // the hashes of the names so far
	n    int
	dups [8]uint32 // the hashes seen twice
	nd   int
	all  bool // more names or repeats than fit: take every name as repeated
}

// add records k and reports whether a name of its hash came before.
func (s *nameSet) add(k []byte) bool {
	hv := nameHash(k)
	for _, v := range s.seen[:s.n] {
		if v == hv {
			if !s.isDup(hv) {
				if s.nd == len(s.dups) {
					s.all = true
				} else {
					s.dups[s.nd] = hv
					s.nd++
				}
			}
			return true
		}
	}
	if s.n == len(s.seen) {
		s.all = true
		return true
	}
	s.seen[s.n] = hv
	s.n++
	return false
}

func (s *nameSet) isDup(hv uint32) bool {
	for _, v := range s.dups[:s.nd] {
		if v == hv {
			return true
		}
	}
	return false
}

// repeated reports whether k may be a repeated name.
func (s *nameSet) repeated(k []byte) bool { return s.all || s.isDup(nameHash(k)) }

// nameHash hashes a field name without regard to ASCII case, from its
// length and its first and last four bytes: constant time.
func nameHash(k []byte) uint32 {
	hv := uint32(2166136261) ^ uint32(len(k))
	mix := func(c byte) { hv = (hv ^ uint32(lower(c))) * 16777619 }
	for i := 0; i < len(k) && i < 4; i++ {
		mix(k[i])
	}
	for i := max(4, len(k)-4); i < len(k); i++ {
		mix(k[i])
	}
	return hv
}

// rebuildRequest does for a header the wire built field by field (HTTP/2)
// what deleteRequestHop, scrubRequest and restoreOrder do for a parsed one,
// which read the raw fields (a built header has none) and would leave
// fasthttp's Del to reorder what is left: the hop-by-hop fields in hop and
// those t names, the classes in drop (dropClasses), and every
// X-Forwarded-For and X-Request-Id (the proxy sets both again) go; the
// other fields keep their order. The fields fasthttp keeps apart from the
// others (Host, Content-Length, Content-Type, User-Agent, Cookie,
// Transfer-Encoding, Connection, Trailer) are deleted by name when they
// must go and otherwise left alone. It allocates, on HTTP/2's path only.
func rebuildRequest(h *fasthttp.RequestHeader, hop, drop int, t *connTokens) {
	gone := func(k []byte) bool {
		b := requestFieldBits(k)
		if b&(hop|drop) != 0 || nameIs(k, hdrXForwardedFor) || nameIs(k, hdrXRequestID) {
			return true
		}
		for i := 0; i < t.n; i++ {
			if nameIs(k, t.name(i)) && !isProtectedHeader(k) {
				return true
			}
		}
		return false
	}
	var buf []byte
	var spans [][4]int // name and value of each field, in buf
	var special [][2]int
	dropping := false
	for k, v := range h.All() {
		isGone := gone(k)
		if specialRequestField(k) {
			if isGone {
				special = append(special, [2]int{len(buf), len(buf) + len(k)})
				buf = append(buf, k...)
			}
			continue
		}
		dropping = dropping || isGone
		kv := [4]int{len(buf), len(buf) + len(k)}
		buf = append(buf, k...)
		kv[2], kv[3] = len(buf), len(buf)+len(v)
		buf = append(buf, v...)
		if isGone {
			kv[0] = -1 - kv[0] // marked: not added again
		}
		spans = append(spans, kv)
	}
	for _, k := range special {
		h.DelBytes(buf[k[0]:k[1]])
	}
	if !dropping {
		return
	}
	for _, kv := range spans {
		if kv[0] < 0 {
			h.DelBytes(buf[-1-kv[0] : kv[1]])
		} else {
			h.DelBytes(buf[kv[0]:kv[1]])
		}
	}
	for _, kv := range spans {
		if kv[0] >= 0 {
			h.AddBytesKV(buf[kv[0]:kv[1]], buf[kv[2]:kv[3]])
		}
	}
}

// specialRequestField reports a field fasthttp keeps apart from the
// others in a RequestHeader.
func specialRequestField(k []byte) bool {
	switch {
	case nameIs(k, "Host"), nameIs(k, "Content-Length"), nameIs(k, "Content-Type"), nameIs(k, "User-Agent"),
		nameIs(k, "Cookie"), nameIs(k, "Transfer-Encoding"), nameIs(k, "Connection"), nameIs(k, "Trailer"):
		return true
	}
	return false
}
