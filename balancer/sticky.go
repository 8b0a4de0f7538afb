package balancer

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"sync"
)

// stickyMACLen is how many bytes of the HMAC a cookie value keeps: 128 bits
// (22 base64url characters) cannot be guessed or collide by chance.
const stickyMACLen = 16

// processStickyKey is the sticky key when none is configured.
var processStickyKey = sync.OnceValue(func() []byte {
	k := make([]byte, 32)
	rand.Read(k) // never fails (crypto/rand panics instead)
	return k
})

// sticky maps cookie values to targets and back. A value is
// base64url(HMAC-SHA256(key, len(upstream) upstream address)[:16]): opaque (the
// address cannot be read or brute-forced without the key), stable across
// reloads and target reordering, and distinct per upstream, so that a
// cookie of one side of a split never pins a client on the other side.
type sticky struct {
	values []string       // by target position
	index  map[string]int // value -> target position
}

func newSticky(key []byte, upstream string, ts []*Target) *sticky {
	if len(key) == 0 {
		key = processStickyKey()
	}
	s := &sticky{values: make([]string, len(ts)), index: make(map[string]int, len(ts))}
	for i, t := range ts {
		v := StickyValue(key, upstream, t.State.Addr)
		s.values[i] = v
		if _, dup := s.index[v]; !dup { // the same address twice: the first
			s.index[v] = i
		}
	}
	return s
}

// StickyValue returns the sticky cookie value that names target addr of
// upstream under key.
func StickyValue(key []byte, upstream, addr string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write(binary.AppendUvarint(nil, uint64(len(upstream)))) // no two splits of one string collide
	mac.Write([]byte(upstream))
	mac.Write([]byte(addr))
	var sum [sha256.Size]byte
	return base64.RawURLEncoding.EncodeToString(mac.Sum(sum[:0])[:stickyMACLen])
}

// Sticky reports whether the pool pins clients with a cookie.
func (p *Pool) Sticky() bool { return p.sticky != nil }

// StickyValue returns the cookie value that pins a client to target i, or
// "" when the pool is not sticky. After a pick whose target's value differs
// from Request.Sticky, the proxy sets the cookie to it.
func (p *Pool) StickyValue(i int) string {
	if p.sticky == nil || i < 0 || i >= len(p.sticky.values) {
		return ""
	}
	return p.sticky.values[i]
}

// StickyIndex returns the position of the target a cookie value names, or
// -1 when it names none of this pool's (another upstream's, or a target
// since removed). It does not allocate.
func (p *Pool) StickyIndex(v []byte) int {
	if p.sticky == nil {
		return -1
	}
	if i, ok := p.sticky.index[string(v)]; ok {
		return i
	}
	return -1
}
