package proxy

import (
	"bytes"
	"iter"
	"math/rand/v2"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/waf"
)

// Header names set or removed on the way through. Kept as package variables
// so that header operations take no string conversions on the hot path.
const (
	hdrXForwardedFor   = "X-Forwarded-For"
	hdrXForwardedProto = "X-Forwarded-Proto"
	hdrXForwardedHost  = "X-Forwarded-Host"
	hdrXRequestID      = "X-Request-Id"
)

// The same names as fasthttp stores them (it capitalizes each word), for
// SetCanonical: a name given as a string is copied and normalized on every
// call.
var (
	keyXForwardedFor   = []byte(hdrXForwardedFor)
	keyXForwardedProto = []byte(hdrXForwardedProto)
	keyXForwardedHost  = []byte(hdrXForwardedHost)
	keyXRequestID      = []byte(hdrXRequestID)
	protoHTTP          = []byte("http")
	protoHTTPS         = []byte("https")
)

// hop-by-hop header bits, found in one pass over a header.
const (
	hopConnection = 1 << iota
	hopKeepAlive
	hopProxyConnection
	hopProxyAuthenticate
	hopProxyAuthorization
	hopTE
	hopTrailer
	hopUpgrade
	hopXFF       // X-Forwarded-For seen once
	hopXFFMany   // X-Forwarded-For seen more than once
	hasRequestID // X-Request-Id seen (not hop-by-hop: the proxy sets it when absent)
	oddDate      // Date spelled otherwise than "Date" (not hop-by-hop: see relayHeader)

	// The request fields below say who the client is or where the request
	// came from: the proxy owns them (see prepareRequest).
	reqIDMany       // X-Request-Id seen more than once
	fwdField        // Forwarded, X-Real-IP, X-Forwarded-* but X-Forwarded-For
	subjectField    // X-Client-Cert-Subject
	underscoreField // a name with an underscore
	ownedUnderscore // an underscore spelling of a name the proxy owns
	maybeDup        // some name occurs more than once (see nameSet)
)

// hopBits are the hop-by-hop headers' bits.
const hopBits = hopConnection | hopKeepAlive | hopProxyConnection | hopProxyAuthenticate |
	hopProxyAuthorization | hopTE | hopTrailer | hopUpgrade

// hopHeaders are removed from requests and responses (RFC 9110 section 7.6.1,
// plus the legacy names proxies have always dropped). Transfer-Encoding is
// absent: fasthttp re-frames every body it writes.
var hopHeaders = [...]struct {
	name string
	bit  int
}{
	{"Connection", hopConnection},
	{"Keep-Alive", hopKeepAlive},
	{"Proxy-Connection", hopProxyConnection},
	{"Proxy-Authenticate", hopProxyAuthenticate},
	{"Proxy-Authorization", hopProxyAuthorization},
	{"Te", hopTE},
	{"Trailer", hopTrailer},
	{"Upgrade", hopUpgrade},
}

// classify returns the hop-by-hop bit of header name k, or 0.
func classify(k []byte) int {
	if len(k) < 2 {
		return 0
	}
	switch k[0] | 0x20 {
	case 'c':
		if nameIs(k, "Connection") {
			return hopConnection
		}
	case 'd':
		if nameIs(k, "Date") && string(k) != "Date" {
			return oddDate
		}
	case 'k':
		if nameIs(k, "Keep-Alive") {
			return hopKeepAlive
		}
	case 'p':
		switch {
		case nameIs(k, "Proxy-Connection"):
			return hopProxyConnection
		case nameIs(k, "Proxy-Authenticate"):
			return hopProxyAuthenticate
		case nameIs(k, "Proxy-Authorization"):
			return hopProxyAuthorization
		}
	case 't':
		switch {
		case nameIs(k, "Te"):
			return hopTE
		case nameIs(k, "Trailer"):
			return hopTrailer
		}
	case 'u':
		if nameIs(k, "Upgrade") {
			return hopUpgrade
		}
	case 'x':
		switch {
		case nameIs(k, hdrXForwardedFor):
			return hopXFF
		case nameIs(k, hdrXRequestID):
			return hasRequestID
		}
	}
	return 0
}

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
	return 0
}

const xForwarded = "X-Forwarded-"

// ownedName reports whether k, its underscores read as dashes, names a field
// the proxy sets or owns: Forwarded, X-Forwarded-*, X-Real-IP, X-Request-Id,
// X-Client-Cert-Subject. CGI and the frameworks built on it (PHP, Rack,
// WSGI) give "X_Forwarded_For" and "X-Forwarded-For" one name.
func ownedName(k []byte) bool {
	if len(k) < 9 {
		return false
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

// nameIs reports whether b equals the ASCII name s, ignoring case.
func nameIs[S string | []byte](b []byte, s S) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c, d := b[i], s[i]
		if c == d {
			continue
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// scanRequestHop finds, in one pass over the fields the client sent, the
// hop-by-hop headers of h and the fields the proxy owns (requestFieldBits),
// gathers every X-Forwarded-For value, in order, comma joined, into xff,
// the names the Connection fields list into t, and the repeated names into
// names. It reads the fields as received (AllInOrder): All would also
// gather the Cookie fields into one, which the upstream would then get
// rewritten, not as the WAF saw them.
func scanRequestHop(h *fasthttp.RequestHeader, xff []byte, t *connTokens, names *nameSet) (bits int, _ []byte) {
	for k, v := range h.AllInOrder() {
		if names.add(k) {
			bits |= maybeDup
		}
		b := requestFieldBits(k)
		switch b {
		case hopConnection:
			t.add(v)
		case hopXFF:
			if bits&hopXFF != 0 {
				bits |= hopXFFMany
				xff = append(xff, ", "...)
			}
			xff = append(xff, v...)
		case hasRequestID:
			if bits&hasRequestID != 0 {
				bits |= reqIDMany
			}
		}
		bits |= b
	}
	return bits &^ (hasRequestID | oddDate), xff
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
func (x *exchange) ownedFields(ctx *fasthttp.RequestCtx, lr *listenerRoutes, cn *conn) []waf.Field {
	o := append(x.owned[:0], waf.Field{Name: clientSubjectHeader})
	if lr.clientSubject {
		o[0].Value = cn.subject
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

// connTokenBytes bounds the names a Connection header lists that are removed.
const connTokenBytes = 256

// connTokens are the header names listed in Connection headers, copied out
// of the header (deleting from a header moves its storage).
type connTokens struct {
	buf  [connTokenBytes]byte
	ends [8]int
	n    int
}

// collect gathers the names listed by every Connection header in all, except
// close, keep-alive and upgrade, which are connection options, not names.
func (t *connTokens) collect(all iter.Seq2[[]byte, []byte]) {
	for k, v := range all {
		if classify(k) == hopConnection {
			t.add(v)
		}
	}
}

// add gathers the names one Connection value lists (see collect).
func (t *connTokens) add(v []byte) {
	used := 0
	if t.n > 0 {
		used = t.ends[t.n-1]
	}
	for len(v) > 0 {
		i := 0
		for i < len(v) && v[i] != ',' {
			i++
		}
		tok := trimOWS(v[:i])
		if len(tok) > 0 && !nameIs(tok, "close") && !nameIs(tok, "keep-alive") &&
			!nameIs(tok, "upgrade") && t.n < len(t.ends) && used+len(tok) <= len(t.buf) {
			used += copy(t.buf[used:], tok)
			t.ends[t.n] = used
			t.n++
		}
		if i == len(v) {
			break
		}
		v = v[i+1:]
	}
}

// name returns the i-th collected name.
func (t *connTokens) name(i int) []byte {
	start := 0
	if i > 0 {
		start = t.ends[i-1]
	}
	return t.buf[start:t.ends[i]]
}

// isProtectedHeader reports names a Connection header may not remove: the
// body framing and the host, which the proxy manages itself, and the fields
// the proxy sets (X-Client-Cert-Subject is set before the WAF runs, the
// others after the client's hop-by-hop fields are gone).
func isProtectedHeader(name []byte) bool {
	return nameIs(name, "Content-Length") || nameIs(name, "Transfer-Encoding") ||
		nameIs(name, "Host") || nameIs(name, hdrXForwardedFor) ||
		nameIs(name, hdrXRequestID) || nameIs(name, clientSubjectHeader)
}

// deleteRequestHop removes the hop-by-hop headers flagged in bits from h,
// and those t, its Connection fields' names, lists.
// It and deleteResponseHop are written out twice on purpose: one generic
// function over both header types allocates four times per call (the
// iterator escapes through the generic dictionary; TestHeaderRewriteAllocs).
func deleteRequestHop(h *fasthttp.RequestHeader, bits int, t *connTokens) {
	for i := 0; i < t.n; i++ {
		if name := t.name(i); !isProtectedHeader(name) {
			h.DelBytes(name)
		}
	}
	for _, hh := range hopHeaders {
		if bits&hh.bit != 0 {
			h.Del(hh.name)
		}
	}
}

// scanResponseHop returns the hop-by-hop bits of h, hasRequestID and
// oddDate.
func scanResponseHop(h *fasthttp.ResponseHeader) (bits int) {
	for k := range h.All() {
		bits |= classify(k)
	}
	return bits &^ (hopXFF | hopXFFMany)
}

// deleteResponseHop removes the hop-by-hop headers flagged in bits from h,
// whatever the case of their names. A response's names are relayed as the
// target wrote them (its header is not normalized), and fasthttp's Del
// matches a name exactly.
func deleteResponseHop(h *fasthttp.ResponseHeader, bits int) {
	if bits&hopConnection != 0 {
		var t connTokens
		t.collect(h.All())
		for i := 0; i < t.n; i++ {
			if name := t.name(i); !isProtectedHeader(name) {
				delFold(h, name)
			}
		}
	}
	for _, hh := range hopHeaders {
		if bits&hh.bit != 0 {
			delFold(h, hh.name)
		}
	}
}

// relayHeader readies a target's response header for the client: its
// hop-by-hop fields go, and the request id is added unless the target sent
// one (in any case). fasthttp writes the proxy's own Date on every response,
// as nginx does, and skips only a target's field spelled exactly "Date": one
// spelled otherwise goes here, or the client would get two.
func relayHeader(h *fasthttp.ResponseHeader, reqID []byte) {
	bits := scanResponseHop(h)
	if bits&oddDate != 0 {
		delFold(h, "Date")
	}
	if bits&^(hasRequestID|oddDate) != 0 {
		deleteResponseHop(h, bits)
	}
	if bits&hasRequestID == 0 {
		h.SetCanonical(keyXRequestID, reqID)
	}
}

// setFold sets the field name of h to value, replacing the target's
// fields of that name in any spelling: the proxy's value is the one that
// counts.
func setFold(h *fasthttp.ResponseHeader, name string, value []byte) {
	delFold(h, name)
	h.SetBytesV(name, value)
}

// delFold deletes the fields of h named name in any case, one spelling at a
// time. The bound only guards against a field fasthttp lists but cannot
// delete; a header has far fewer spellings of one name.
func delFold[S string | []byte](h *fasthttp.ResponseHeader, name S) {
	var spelling [connTokenBytes]byte // no name to delete is longer
	for range 64 {
		n := 0
		for k := range h.All() {
			if nameIs(k, name) {
				n = copy(spelling[:], k) // k is in h's storage, which DelBytes moves
				break
			}
		}
		if n == 0 {
			return
		}
		h.DelBytes(spelling[:n])
	}
}

// validRequestID reports whether an incoming X-Request-Id may be kept: 1 to
// 128 characters that are safe in logs and headers.
func validRequestID(id []byte) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for _, c := range id {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '_', c == '.', c == ':', c == '+', c == '/', c == '=':
		default:
			return false
		}
	}
	return true
}

const hexDigits = "0123456789abcdef"

// appendRequestID appends a random version 4 UUID to dst.
func appendRequestID(dst []byte) []byte {
	var b [16]byte
	hi, lo := rand.Uint64(), rand.Uint64()
	for i := 0; i < 8; i++ {
		b[i] = byte(hi >> (56 - 8*i))
		b[8+i] = byte(lo >> (56 - 8*i))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hexDigits[c>>4], hexDigits[c&0x0f])
	}
	return dst
}
