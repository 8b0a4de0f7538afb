package http1

import (
	"bytes"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/wire"
)

// checkRequest refuses what fasthttp's parser lets through but an edge
// proxy must not forward, because an upstream could read it differently
// (RFC 9112): it returns the status to answer with, or 0.
//
//   - an HTTP version other than 1.0 and 1.1 (505);
//   - header lines ended by a bare LF, and field names that are not tokens
//     (a space inside, say);
//   - a Transfer-Encoding field on a request that is not framed by a final
//     chunked coding (fasthttp drops "identity" silently, which would leave
//     the body to be read as the next request);
//   - a Host that is not host[:port];
//   - more than one Content-Type field: fasthttp keeps the last, which the
//     upstream gets, while the WAF (like most servers) reads the body by
//     the first;
//   - a request target with a fragment.
func checkRequest(h *fasthttp.RequestHeader) int {
	switch string(h.Protocol()) {
	case "HTTP/1.1", "HTTP/1.0":
	default:
		return fasthttp.StatusHTTPVersionNotSupported
	}
	sawTE, sawCT := false, false
	raw := h.RawHeaders()
	for len(raw) > 0 {
		i := bytes.IndexByte(raw, '\n')
		if i < 0 {
			break
		}
		if i == 0 || raw[i-1] != '\r' {
			return fasthttp.StatusBadRequest // a bare LF
		}
		line := raw[:i-1]
		raw = raw[i+1:]
		if len(line) == 0 {
			break // the end of the header block
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !wire.IsToken(line[:colon]) {
			return fasthttp.StatusBadRequest
		}
		switch name := line[:colon]; {
		case nameIs(name, "Transfer-Encoding"):
			sawTE = true
		case nameIs(name, "Content-Type"):
			if sawCT {
				return fasthttp.StatusBadRequest
			}
			sawCT = true
		}
	}
	if sawTE && h.ContentLength() != -1 {
		return fasthttp.StatusBadRequest
	}
	if host := h.Host(); len(host) > 0 && !wire.ValidHost(host) {
		return fasthttp.StatusBadRequest
	}
	if uri := h.RequestURI(); bytes.IndexByte(uri, '#') >= 0 || !validPathEscapes(uri) {
		return fasthttp.StatusBadRequest
	}
	return 0
}

// validPathEscapes reports whether every % in the path of a request target
// (before any ?) starts a percent-encoded octet, % and two hex digits (RFC
// 3986 section 2.1). A path such as /a%zz is not one, and the parsers behind
// a proxy disagree on it: some refuse it, some decode it their own way. The
// query is forwarded as sent, as servers leave it undecoded until they read
// it.
func validPathEscapes(uri []byte) bool {
	if q := bytes.IndexByte(uri, '?'); q >= 0 {
		uri = uri[:q]
	}
	for i := 0; i < len(uri); i++ {
		if uri[i] != '%' {
			continue
		}
		if i+2 >= len(uri) || !wire.IsHex(uri[i+1]) || !wire.IsHex(uri[i+2]) {
			return false
		}
		i += 2
	}
	return true
}

// Canned bodies of the answers the server makes itself: short, plain, and
// free of internal detail.
var (
	bodyBadRequest     = []byte("400 Bad Request\n")
	bodyRequestTimeout = []byte("408 Request Timeout\n")
	bodyVersion        = []byte("505 HTTP Version Not Supported\n")
	bodyHeaderTooLarge = []byte("431 Request Header Fields Too Large\n")
	bodyTooLarge       = []byte("413 Request Entity Too Large\n")
)

// nameIs reports whether b equals the ASCII name s, ignoring case.
func nameIs(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
