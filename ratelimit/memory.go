package ratelimit

import (
	"context"
	"hash/maphash"
	"math/bits"
	"sync"
	"time"
)

// DefaultMaxKeys is the default bound on the keys a Memory store holds.
const DefaultMaxKeys = 1 << 20

const (
	shardBits = 6
	shards    = 1 << shardBits // by the top bits of the key's hash
	ways      = 8              // entries per set: 128 bytes, two cache lines
	minSets   = 4              // per shard, when first used and after a sweep
	entrySize = 16             // bytes per entry
)

// Memory is the in-process store: the default, needing nothing running.
//
// Keys are not stored: each key is hashed (hash/maphash, a random seed per
// store, so a client cannot aim at a collision) to 64 bits, and an entry is
// that hash and the key's TAT, 16 bytes. Two keys colliding on all 64 bits
// (about one chance in 10^7 among a million keys) would share one bucket.
//
// The table is split into 64 shards, each behind its own mutex, and each
// shard is a set-associative table of 8-entry sets, like a CPU cache, where
// a key may live in either of two sets chosen by its hash (two choices keep
// the sets evenly loaded: a full table holds about 93% of its capacity in
// live keys before evicting). An entry whose TAT is past is free (GCRA
// treats it as absent), so idle keys expire lazily by being reused. A shard
// starts with 4 sets and doubles when a new key finds both its sets full of
// live entries, up to MaxKeys in all; at the bound the new key replaces the
// entry of its two sets with the smallest TAT, which is the one closest to a
// full bucket, so evicting it loses the least. Memory is therefore bounded
// by MaxKeys*16 bytes: 16 MiB for the default 1,048,576 keys, allocated only
// as keys arrive. Sweep clears expired entries and gives memory back after a
// flood.
//
// A decision takes no allocation, for a known key or a new one (except when
// its shard grows, at most 9 times per shard in a store's life).
type Memory struct {
	policy  Policy
	seed    maphash.Seed
	maxSets int // per shard, a power of two
	shards  [shards]shard
}

type entry struct {
	hash uint64 // 0: empty
	tat  int64  // µs
}

type set [ways]entry

type shard struct {
	mu        sync.Mutex // guards the fields below
	sets      []set      // a power of two long, up to Memory.maxSets
	used      int        // entries with hash != 0, live or expired
	evictions uint64     // live entries replaced because the shard was full
	_         [64]byte   // keep shards on separate cache lines
}

// NewMemory returns a memory store for p holding at most maxKeys keys,
// rounded up to a power of two; maxKeys <= 0 means DefaultMaxKeys.
func NewMemory(p Policy, maxKeys int) *Memory {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	perShard := max(minSets, (maxKeys+shards*ways-1)/(shards*ways))
	return &Memory{
		policy:  p,
		seed:    maphash.MakeSeed(),
		maxSets: 1 << bits.Len(uint(perShard-1)),
	}
}

// Allow implements Limiter. It never returns an error.
func (m *Memory) Allow(_ context.Context, key []byte, now time.Time) (Decision, error) {
	h := maphash.Bytes(m.seed, key)
	if h == 0 {
		h = 1
	}
	n := now.UnixMicro()
	sh := &m.shards[h>>(64-shardBits)]
	sh.mu.Lock()
	e := sh.slot(h, n, m.maxSets)
	var tat int64
	if e.hash == h {
		tat = e.tat
	}
	tat, ok := m.policy.decide(tat, n)
	if ok {
		if e.hash == 0 {
			sh.used++
		}
		e.hash, e.tat = h, tat
	}
	sh.mu.Unlock()
	return m.policy.decision(ok, tat-n), nil
}

// pair returns the two sets a key hashed to h may live in (possibly the
// same one). The bits differ from the shard's top bits.
func (sh *shard) pair(h uint64) (*set, *set) {
	mask := uint64(len(sh.sets) - 1)
	return &sh.sets[h&mask], &sh.sets[(h>>32)&mask]
}

// slot returns h's entry in the shard, or else the entry a new key h should
// take: a free (empty or expired) one in the emptier of its two sets,
// growing the shard when both are full of live entries, else (at the bound)
// the live entry with the smallest TAT.
func (sh *shard) slot(h uint64, now int64, maxSets int) *entry {
	if sh.sets == nil {
		sh.sets = make([]set, minSets)
	}
	for {
		a, b := sh.pair(h)
		fa, na := a.find(h, now)
		if fa != nil && fa.hash == h {
			return fa
		}
		fb, nb := b.find(h, now)
		if fb != nil && fb.hash == h {
			return fb
		}
		switch {
		case na >= nb && na > 0:
			return fa
		case nb > 0:
			return fb
		case len(sh.sets) < maxSets:
			sh.resize(2*len(sh.sets), now)
			continue
		}
		sh.evictions++
		return minTAT(a, b)
	}
}

// find returns h's entry in st if present, else the first free entry (nil
// if none), and the number of free entries.
func (st *set) find(h uint64, now int64) (*entry, int) {
	var free *entry
	n := 0
	for i := range st {
		e := &st[i]
		if e.hash == h {
			return e, 0
		}
		if e.hash == 0 || e.tat <= now {
			if free == nil {
				free = e
			}
			n++
		}
	}
	return free, n
}

// minTAT returns the entry of a or b with the smallest TAT: the one closest
// to a full bucket, whose loss changes the fewest decisions.
func minTAT(a, b *set) *entry {
	v := &a[0]
	for _, st := range [2]*set{a, b} {
		for i := range st {
			if st[i].tat < v.tat {
				v = &st[i]
			}
		}
	}
	return v
}

// resize rebuilds the shard with n sets, keeping the live entries. Doubling
// never drops one: each new set takes a subset of one old set. When
// shrinking, a key whose two sets are full replaces the entry with the
// smallest TAT if its own is larger.
func (sh *shard) resize(n int, now int64) {
	old := sh.sets
	sh.sets = make([]set, n)
	sh.used = 0
	for i := range old {
		for _, e := range old[i] {
			if e.hash != 0 && e.tat > now {
				sh.insert(e)
			}
		}
	}
}

// insert puts the live entry e, whose key is not in the shard, in the
// emptier of its sets.
func (sh *shard) insert(e entry) {
	a, b := sh.pair(e.hash)
	fa, na := a.find(e.hash, 0)
	fb, nb := b.find(e.hash, 0)
	switch {
	case na >= nb && na > 0:
		*fa = e
		sh.used++
	case nb > 0:
		*fb = e
		sh.used++
	default:
		if v := minTAT(a, b); v.tat < e.tat {
			*v = e
			sh.evictions++
		}
	}
}

// Sweep drops the entries that expired by now and shrinks shards that are
// at most a quarter full, returning the number of live keys. It holds one
// shard's lock at a time, for a scan of at most MaxKeys/64 entries (256 KiB
// at the default). Call it periodically, e.g. every minute; decisions are
// correct without it.
func (m *Memory) Sweep(now time.Time) int {
	n := now.UnixMicro()
	live := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		size, l := len(sh.sets), sh.clearExpired(n)
		for size > minSets && l*4 <= (size/2)*ways {
			size /= 2
		}
		if size < len(sh.sets) {
			sh.resize(size, n)
		}
		live += sh.used
		sh.mu.Unlock()
	}
	return live
}

// clearExpired empties the entries that expired by now and returns the
// number left.
func (sh *shard) clearExpired(now int64) int {
	for i := range sh.sets {
		for j := range sh.sets[i] {
			if e := &sh.sets[i][j]; e.hash != 0 && e.tat <= now {
				*e = entry{}
				sh.used--
			}
		}
	}
	return sh.used
}

// MemoryStats describes a Memory store, for metrics.
type MemoryStats struct {
	// Keys counts the entries held, including expired ones not yet reused
	// or swept.
	Keys int
	// Capacity is the number of entries allocated; at most MaxKeys.
	Capacity int
	// Evictions counts live keys dropped because their set was full at the
	// bound: a key dropped early gets a fresh bucket on its next request.
	Evictions uint64
}

// Stats returns the store's counters, taking each shard's lock in turn.
func (m *Memory) Stats() MemoryStats {
	var s MemoryStats
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		s.Keys += sh.used
		s.Capacity += len(sh.sets) * ways
		s.Evictions += sh.evictions
		sh.mu.Unlock()
	}
	return s
}

// MaxKeys returns the bound on the entries the store holds.
func (m *Memory) MaxKeys() int { return m.maxSets * ways * shards }
