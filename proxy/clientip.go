package proxy

import (
	"bytes"
	"net/netip"

	"github.com/valyala/fasthttp"
)

// clientIP returns the downstream client's address. It is the peer address
// unless the peer is a trusted proxy; then it is the right-most address of
// the X-Forwarded-For list that is not itself trusted: the walk goes from
// the right and skips trusted hops, so only hops appended by trusted proxies
// are believed and a client can never choose the result freely. When every
// hop is trusted, the left-most one is the client. A malformed entry stops
// the walk, and the last good address (or the peer) is the client. Empty
// list elements are skipped, as HTTP list syntax allows.
//
// xff holds the X-Forwarded-For header lines in the order received; they
// form one comma-separated list. Entries may be an IPv4 or IPv6 address,
// optionally bracketed ("[2001:db8::1]") and with a port ("192.0.2.1:4711",
// "[2001:db8::1]:4711"). IPv4-mapped IPv6 addresses are unmapped, so a
// trusted 10.0.0.0/8 also covers ::ffff:10.0.0.1. clientIP does not
// allocate.
func clientIP(peer netip.Addr, xff [][]byte, trusted []netip.Prefix) netip.Addr {
	peer = peer.Unmap()
	if !isTrusted(peer, trusted) {
		return peer
	}
	var w xffWalk
	for _, line := range xff {
		w.add(line, trusted)
	}
	return w.result(peer)
}

// clientIPFromHeader is clientIP reading the X-Forwarded-For lines of h.
// Header names are compared without regard to case because the server may
// run with header name normalizing disabled, where PeekAll is
// case-sensitive.
func clientIPFromHeader(peer netip.Addr, h *fasthttp.RequestHeader, trusted []netip.Prefix) netip.Addr {
	peer = peer.Unmap()
	if h == nil || !isTrusted(peer, trusted) {
		return peer
	}
	var w xffWalk
	if len(h.RawHeaders()) > 0 {
		// As received: All would gather the Cookie fields into one,
		// rewritten on their way upstream (see scanRequestHop).
		for k, v := range h.AllInOrder() {
			if equalFold(k, "x-forwarded-for") {
				w.add(v, trusted)
			}
		}
		return w.result(peer)
	}
	for k, v := range h.All() { // a header built in code
		if equalFold(k, "x-forwarded-for") {
			w.add(v, trusted)
		}
	}
	return w.result(peer)
}

// isTrusted reports whether a (unmapped, zone ignored) is in trusted.
func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	if !a.IsValid() {
		return false
	}
	a = a.WithZone("")
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// xffWalk computes, in one left-to-right pass, what a walk from the right
// end of the list would return. Appending an entry on the right changes the
// answer as follows: an untrusted address becomes the answer (the walk
// stops there); a malformed entry makes the answer "the good address to its
// right, else the peer"; a trusted address is the answer only when nothing
// to its left stops the walk and nothing good lies to its left since the
// last stop.
type xffWalk struct {
	stop  netip.Addr // the last untrusted address, when no stop follows it
	first netip.Addr // the first trusted address after the last stop
}

// add appends one header line's entries.
func (w *xffWalk) add(line []byte, trusted []netip.Prefix) {
	for len(line) > 0 {
		var entry []byte
		if i := bytes.IndexByte(line, ','); i >= 0 {
			entry, line = line[:i], line[i+1:]
		} else {
			entry, line = line, nil
		}
		entry = trimOWS(entry)
		if len(entry) == 0 {
			continue
		}
		a, ok := parseXFFEntry(entry)
		switch {
		case !ok:
			w.stop, w.first = netip.Addr{}, netip.Addr{}
		case !isTrusted(a, trusted):
			w.stop, w.first = a, netip.Addr{}
		case !w.first.IsValid():
			w.first = a
		}
	}
}

func (w *xffWalk) result(peer netip.Addr) netip.Addr {
	if w.stop.IsValid() {
		return w.stop
	}
	if w.first.IsValid() {
		return w.first
	}
	return peer
}

// trimOWS trims the spaces and tabs HTTP allows around list elements.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// parseXFFEntry parses "ip", "[ipv6]", "ipv4:port" or "[ipv6]:port". Zones
// are refused: they mean nothing beyond the host that wrote them.
func parseXFFEntry(b []byte) (netip.Addr, bool) {
	if b[0] == '[' {
		end := bytes.IndexByte(b, ']')
		if end < 0 || !isPort(b[end+1:], true) {
			return netip.Addr{}, false
		}
		a, ok := parseIP(b[1:end])
		if !ok || !a.Is6() {
			return netip.Addr{}, false
		}
		return a.Unmap(), true
	}
	if i := bytes.IndexByte(b, ':'); i >= 0 && bytes.IndexByte(b[i+1:], ':') < 0 {
		// One colon: IPv4 with a port.
		if !isPort(b[i:], false) {
			return netip.Addr{}, false
		}
		a, ok := parseIP(b[:i])
		if !ok || !a.Is4() {
			return netip.Addr{}, false
		}
		return a, true
	}
	a, ok := parseIP(b)
	if !ok {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// isPort reports whether b is ":" and one to five digits, or, when
// optional, empty.
func isPort(b []byte, optional bool) bool {
	if len(b) == 0 {
		return optional
	}
	if b[0] != ':' || len(b) < 2 || len(b) > 6 {
		return false
	}
	for _, c := range b[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// parseIP parses an IPv4 or IPv6 address without zone, as netip.ParseAddr
// does, but from bytes and without allocating (netip.ParseAddr needs a
// string, and the conversion escapes).
func parseIP(b []byte) (netip.Addr, bool) {
	if bytes.IndexByte(b, ':') < 0 {
		ip, ok := parseIPv4(b)
		if !ok {
			return netip.Addr{}, false
		}
		return netip.AddrFrom4(ip), true
	}
	ip, ok := parseIPv6(b)
	if !ok {
		return netip.Addr{}, false
	}
	return netip.AddrFrom16(ip), true
}

// parseIPv4 parses dotted decimal: four fields of 0 to 255, no leading
// zeros.
func parseIPv4(b []byte) ([4]byte, bool) {
	var ip [4]byte
	field, digits, val := 0, 0, 0
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c >= '0' && c <= '9':
			if digits == 1 && val == 0 { // leading zero
				return ip, false
			}
			val = val*10 + int(c-'0')
			digits++
			if val > 255 {
				return ip, false
			}
		case c == '.':
			if digits == 0 || field == 3 {
				return ip, false
			}
			ip[field] = byte(val)
			field++
			digits, val = 0, 0
		default:
			return ip, false
		}
	}
	if field != 3 || digits == 0 {
		return ip, false
	}
	ip[3] = byte(val)
	return ip, true
}

// parseIPv6 parses RFC 4291 text: up to eight hex groups, at most one "::",
// optionally ending in an embedded IPv4 address.
func parseIPv6(b []byte) ([16]byte, bool) {
	var ip [16]byte
	ellipsis := -1 // index in ip where "::" stands
	if len(b) >= 2 && b[0] == ':' && b[1] == ':' {
		ellipsis = 0
		b = b[2:]
		if len(b) == 0 {
			return ip, true
		}
	}
	i := 0
	for i < 16 {
		off, acc := 0, 0
		for ; off < len(b); off++ {
			d, ok := hexDigit(b[off])
			if !ok {
				break
			}
			if off > 3 {
				return ip, false
			}
			acc = acc<<4 | d
		}
		if off == 0 {
			return ip, false
		}
		if off < len(b) && b[off] == '.' {
			if (ellipsis < 0 && i != 12) || i+4 > 16 {
				return ip, false
			}
			v4, ok := parseIPv4(b)
			if !ok {
				return ip, false
			}
			copy(ip[i:], v4[:])
			i += 4
			b = nil
			break
		}
		ip[i], ip[i+1] = byte(acc>>8), byte(acc)
		i += 2
		b = b[off:]
		if len(b) == 0 {
			break
		}
		if b[0] != ':' || len(b) == 1 {
			return ip, false
		}
		b = b[1:]
		if b[0] == ':' {
			if ellipsis >= 0 {
				return ip, false
			}
			ellipsis = i
			b = b[1:]
			if len(b) == 0 {
				break
			}
		}
	}
	if len(b) != 0 {
		return ip, false
	}
	if i < 16 {
		if ellipsis < 0 {
			return ip, false
		}
		n := 16 - i
		for j := i - 1; j >= ellipsis; j-- {
			ip[j+n] = ip[j]
		}
		clear(ip[ellipsis : ellipsis+n])
	} else if ellipsis >= 0 {
		return ip, false
	}
	return ip, true
}

func hexDigit(c byte) (int, bool) {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0'), true
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10, true
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10, true
	}
	return 0, false
}

// hostWithoutPort returns the host of a Host header value without port,
// brackets or one trailing dot: "[::1]:80" -> "::1", "a.com:8080" ->
// "a.com", "a.com." -> "a.com". An unbracketed value with several colons
// is an IPv6 address without port. A malformed bracketed value is returned
// as is, so it matches no configured host. The result is a sub-slice of
// host; case is left alone.
func hostWithoutPort(host []byte) []byte {
	if len(host) > 0 && host[0] == '[' {
		end := bytes.IndexByte(host, ']')
		if end < 0 || (end+1 < len(host) && host[end+1] != ':') {
			return host
		}
		return host[1:end]
	}
	if i := bytes.LastIndexByte(host, ':'); i >= 0 && bytes.IndexByte(host[:i], ':') < 0 {
		host = host[:i]
	}
	if n := len(host); n > 0 && host[n-1] == '.' {
		host = host[:n-1]
	}
	return host
}
