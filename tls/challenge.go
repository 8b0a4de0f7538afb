package tls

import (
	"bytes"
	"time"
)

// ChallengePathPrefix starts the path of every HTTP-01 validation request
// (RFC 8555 8.3).
const ChallengePathPrefix = "/.well-known/acme-challenge/"

// challengeLookup bounds the read of a shared cache (Redis) for another
// instance's token.
const challengeLookup = 2 * time.Second

// HTTPChallenge answers an HTTP-01 validation request that a plain
// listener received: host is the request's Host header (a port is
// ignored), path its path. It returns the body to send with status 200 and
// Content-Type text/plain, and true, when path is a challenge path, host
// is one of this Manager's ACME hosts and the token is pending (ordered by
// this process or, with acme.cache: redis, by any instance). Otherwise it
// returns false and the request is routed as usual (an upstream may answer
// its own challenges).
//
// A request whose path does not start with ChallengePathPrefix costs one
// prefix comparison, no allocation. The body is shared: do not modify it.
// The proxy asks every Manager with ACME, for requests on every plain
// listener, before routing.
func (m *Manager) HTTPChallenge(host, path []byte) ([]byte, bool) {
	if m.issuer == nil || !bytes.HasPrefix(path, []byte(ChallengePathPrefix)) {
		return nil, false
	}
	token := path[len(ChallengePathPrefix):]
	if !validToken(token) {
		return nil, false
	}
	var buf [253]byte
	h, ok := hostOnly(buf[:0], host)
	if !ok {
		return nil, false
	}
	if _, ok := m.acme[string(h)]; !ok {
		return nil, false
	}
	return m.issuer.cache.keyAuthorization(token)
}

// validToken reports whether t can be an ACME token: base64url, of a sane
// length (RFC 8555 8.1: at least 128 bits of entropy).
func validToken(t []byte) bool {
	if len(t) < 16 || len(t) > 128 {
		return false
	}
	for _, c := range t {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// hostOnly appends host, without a port and a trailing dot and lower-cased,
// to dst. It returns false for an IPv6 literal and a name too long for
// DNS: never an ACME host.
func hostOnly(dst, host []byte) ([]byte, bool) {
	if i := bytes.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	host = bytes.TrimSuffix(host, []byte("."))
	if len(host) == 0 || len(host) > 253 || host[0] == '[' {
		return nil, false
	}
	for _, c := range host {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst, true
}
