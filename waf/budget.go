package waf

import "sync/atomic"

// Budget bounds the bytes of request and response bodies held in memory for
// inspection by every policy that shares it (the proxy gives all of its
// policies one, so the bound is process-wide: waf_buffer_limit). A body
// reserves its bytes before they are read (a declared Content-Length at
// once, a chunked body as it arrives) and gives them back when its request
// ends, so a thousand stalled uploads cannot hold more than the limit
// between them. A nil *Budget bounds nothing.
//
// Reserving is one atomic compare-and-swap; the limit may change (a
// reload) while bytes are held, and a lower limit then only refuses new
// reservations.
type Budget struct {
	limit atomic.Int64
	used  atomic.Int64
}

// NewBudget returns a budget of limit bytes.
func NewBudget(limit int64) *Budget {
	b := &Budget{}
	b.limit.Store(limit)
	return b
}

// SetLimit changes the limit; bytes already held stay held.
func (b *Budget) SetLimit(limit int64) { b.limit.Store(limit) }

// Limit returns the limit in bytes.
func (b *Budget) Limit() int64 { return b.limit.Load() }

// Used returns the bytes held now.
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	return b.used.Load()
}

// reserve takes n bytes if they fit under the limit.
func (b *Budget) reserve(n int64) bool {
	if b == nil || n <= 0 {
		return true
	}
	lim := b.limit.Load()
	for {
		u := b.used.Load()
		if u+n > lim || u+n < u {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

// release gives back n bytes taken by reserve.
func (b *Budget) release(n int64) {
	if b != nil && n > 0 {
		b.used.Add(-n)
	}
}
