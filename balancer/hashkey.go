package balancer

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/rampart-proxy/rampart/config"
)

// KeyKind is where a consistent_hash key comes from.
type KeyKind uint8

// The sources of a hash key (upstreams.NAME.hash_key).
const (
	KeyClientIP KeyKind = iota // the client IP (Request.ClientIP)
	KeyHeader                  // a request header's value
	KeyCookie                  // a cookie's value
	KeyQuery                   // a query argument's value
	KeyPath                    // the request path
)

// HashKey is a parsed hash_key: what the proxy extracts into Request.Key.
type HashKey struct {
	Kind KeyKind
	// Name is the header, cookie or query argument; "" for the others.
	Name string
}

// ParseHashKey parses a hash_key: client_ip ("" too), path, header:NAME,
// cookie:NAME or query:NAME.
func ParseHashKey(s string) (HashKey, error) {
	switch s {
	case "", config.KeyClientIP:
		return HashKey{Kind: KeyClientIP}, nil
	case config.KeyPath:
		return HashKey{Kind: KeyPath}, nil
	}
	for _, k := range []struct {
		prefix string
		kind   KeyKind
	}{{config.KeyHeaderPrefix, KeyHeader}, {config.KeyCookiePrefix, KeyCookie}, {config.KeyQueryPrefix, KeyQuery}} {
		if name, ok := strings.CutPrefix(s, k.prefix); ok && name != "" {
			return HashKey{Kind: k.kind, Name: name}, nil
		}
	}
	return HashKey{}, fmt.Errorf("invalid hash_key %q", s)
}

// The hashes below are fixed (no per-process seed) so that every instance
// and every reload maps a key to the same target.

// mix64 is the MurmurHash3 finalizer: a bijection that spreads every input
// bit over the output.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// hashBytes is 64-bit FNV-1a followed by mix64.
func hashBytes(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return mix64(h)
}

// hashString is hashBytes of a string.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return mix64(h)
}

// hashAddr hashes an IP address; an IPv4-mapped IPv6 address hashes as its
// IPv4 form, and the zero Addr as zero bytes.
func hashAddr(a netip.Addr) uint64 {
	b := a.Unmap().As16()
	var hi, lo uint64
	for i := range 8 {
		hi = hi<<8 | uint64(b[i])
		lo = lo<<8 | uint64(b[8+i])
	}
	return mix64(hi ^ mix64(lo))
}

// keyHash is the hash a hashing algorithm places r with: its Key, or its
// client IP when the key is empty.
func keyHash(r *Request) uint64 {
	if len(r.Key) > 0 {
		return hashBytes(r.Key)
	}
	return hashAddr(r.ClientIP)
}
