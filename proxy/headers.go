package proxy

import (
	"iter"
	"math/rand/v2"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/wire"
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

// nameIs reports whether b equals the ASCII name s, ignoring case.
func nameIs[S string | []byte](b []byte, s S) bool { return wire.EqualFold(b, s) }

// scanRequestHop finds, in one pass over the fields the client sent, the
// hop-by-hop headers of h and the fields the proxy owns (requestFieldBits),
// gathers every X-Forwarded-For value, in order, comma joined, into xff,
// the names the Connection fields list into t, and the repeated names into
// names. It reads the fields as received (AllInOrder): All would also
// gather the Cookie fields into one, which the upstream would then get
// rewritten, not as the WAF saw them.
//
// A header the wire built field by field (HTTP/2) has no raw fields: it is
// read with All, in the order the wire added the fields.
func scanRequestHop(h *fasthttp.RequestHeader, xff []byte, t *connTokens, names *nameSet) (bits int, _ []byte) {
	if len(h.RawHeaders()) == 0 {
		for k, v := range h.All() {
			bits, xff = scanRequestField(k, v, bits, xff, t, names)
		}
		return bits &^ (hasRequestID | oddDate), xff
	}
	for k, v := range h.AllInOrder() {
		bits, xff = scanRequestField(k, v, bits, xff, t, names)
	}
	return bits &^ (hasRequestID | oddDate), xff
}

// scanRequestField is scanRequestHop's look at one field.
func scanRequestField(k, v []byte, bits int, xff []byte, t *connTokens, names *nameSet) (int, []byte) {
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
	return bits | b, xff
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
