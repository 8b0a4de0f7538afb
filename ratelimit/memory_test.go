package ratelimit

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestMemoryKeysAreIndependent(t *testing.T) {
	m := NewMemory(mustPolicy(t, "p", 1, time.Hour, 2), 0)
	for _, k := range []string{"a", "b", "", "a\x00"} {
		for i, want := range []bool{true, true, false} {
			if d, _ := m.Allow(context.Background(), []byte(k), t0); d.Allowed != want {
				t.Errorf("key %q request %d: allowed = %v; want %v", k, i, d.Allowed, want)
			}
		}
	}
}

func TestMemoryMaxKeys(t *testing.T) {
	p := mustPolicy(t, "p", 1, time.Second, 1)
	tests := []struct{ in, want int }{
		{0, DefaultMaxKeys},
		{-1, DefaultMaxKeys},
		{1, shards * ways * minSets},
		{100000, 131072},
		{1 << 20, 1 << 20},
	}
	for _, tt := range tests {
		if got := NewMemory(p, tt.in).MaxKeys(); got != tt.want {
			t.Errorf("NewMemory(%d).MaxKeys() = %d; want %d", tt.in, got, tt.want)
		}
	}
}

// TestMemoryFloodIsBounded sends a million distinct keys, every one still
// live (1/h), and checks the entry count and the heap stay within the stated
// bound of MaxKeys*16 bytes.
func TestMemoryFloodIsBounded(t *testing.T) {
	const keys = 1_000_000
	p := mustPolicy(t, "p", 1, time.Hour, 1)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m := NewMemory(p, 0)
	key := make([]byte, 0, 32)
	now := t0
	for i := range keys {
		key = strconv.AppendInt(append(key[:0], "203.0.113."...), int64(i), 10)
		if d, _ := m.Allow(context.Background(), key, now); !d.Allowed {
			t.Fatalf("new key %d refused", i)
		}
		now = now.Add(time.Microsecond)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	s := m.Stats()
	bound := m.MaxKeys()
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("keys %d, capacity %d, evictions %d, heap +%.1f MiB (bound %d keys = %d MiB)",
		s.Keys, s.Capacity, s.Evictions, float64(heap)/(1<<20), bound, bound*entrySize>>20)
	if s.Keys > bound || s.Capacity > bound {
		t.Errorf("keys %d, capacity %d; want at most %d", s.Keys, s.Capacity, bound)
	}
	if s.Keys < keys/2 {
		t.Errorf("keys %d: fewer than half the flood kept", s.Keys)
	}
	if limit := int64(bound*entrySize) + 1<<20; heap > limit {
		t.Errorf("heap grew %d bytes; want at most %d", heap, limit)
	}
	// The newest key is still known: its second request is refused.
	if d, _ := m.Allow(context.Background(), key, now); d.Allowed {
		t.Error("the last key's second request passed: its entry was lost")
	}
	runtime.KeepAlive(m)
}

// TestMemoryEvictsAtTheBound floods a small store and checks the count stays
// at its bound and that the evicted entries are the ones closest to expiry.
func TestMemoryEvictsAtTheBound(t *testing.T) {
	p := mustPolicy(t, "p", 1, time.Hour, 1)
	m := NewMemory(p, 1<<14)
	key := make([]byte, 0, 32)
	now := t0
	for i := range 200_000 {
		key = strconv.AppendInt(key[:0], int64(i), 10)
		m.Allow(context.Background(), key, now)
		now = now.Add(time.Millisecond)
	}
	s := m.Stats()
	if s.Keys > 1<<14 || s.Capacity != 1<<14 || s.Evictions == 0 {
		t.Errorf("stats %+v; want keys <= capacity = %d, evictions > 0", s, 1<<14)
	}
	// Entries are evicted oldest TAT first: the most recent 1000 keys are
	// all still held.
	for i := 200_000 - 1000; i < 200_000; i++ {
		key = strconv.AppendInt(key[:0], int64(i), 10)
		if d, _ := m.Allow(context.Background(), key, now); d.Allowed {
			t.Fatalf("recent key %d was evicted", i)
		}
	}
}

func TestMemorySweep(t *testing.T) {
	p := mustPolicy(t, "p", 1, time.Second, 1) // an entry lives 1 s
	m := NewMemory(p, 0)
	key := make([]byte, 0, 32)
	for i := range 100_000 {
		key = strconv.AppendInt(key[:0], int64(i), 10)
		m.Allow(context.Background(), key, t0)
	}
	grown := m.Stats().Capacity
	// Two full 8-way buckets can, rarely, make a new key evict another even
	// far below the bound (a key then starts afresh): allow a handful.
	if live := m.Sweep(t0); live < 100_000-10 || live > 100_000 {
		t.Errorf("Sweep before expiry: %d live; want 100000 (at least 99990)", live)
	}
	key = strconv.AppendInt(key[:0], 42, 10)
	m.Allow(context.Background(), key, t0.Add(time.Second)) // key 42 again, live for 1 s more
	if live := m.Sweep(t0.Add(time.Second)); live != 1 {
		t.Errorf("Sweep after expiry: %d live; want 1", live)
	}
	s := m.Stats()
	if want := shards * ways * minSets; s.Keys != 1 || s.Capacity != want {
		t.Errorf("after sweep: %+v; want 1 key, capacity %d (was %d)", s, want, grown)
	}
	if d, _ := m.Allow(context.Background(), key, t0.Add(1500*time.Millisecond)); d.Allowed {
		t.Error("key 42 lost by the sweep")
	}
}

// TestMemoryConcurrent: many goroutines on one key pass exactly the burst.
func TestMemoryConcurrent(t *testing.T) {
	m := NewMemory(mustPolicy(t, "p", 1, time.Hour, 100), 0)
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			other := []byte("other" + strconv.Itoa(g))
			for range 200 {
				if d, _ := m.Allow(context.Background(), []byte("shared"), t0); d.Allowed {
					allowed.Add(1)
				}
				m.Allow(context.Background(), other, t0)
			}
		})
	}
	wg.Wait()
	if n := allowed.Load(); n != 100 {
		t.Errorf("allowed %d; want 100", n)
	}
}

func TestMemoryDoesNotAllocate(t *testing.T) {
	p := mustPolicy(t, "p", 1000, time.Second, 10)
	ctx := context.Background()
	t.Run("known key", func(t *testing.T) {
		m := NewMemory(p, 0)
		key := []byte("198.51.100.7")
		now := t0
		if n := testing.AllocsPerRun(1000, func() {
			m.Allow(ctx, key, now)
			now = now.Add(time.Millisecond)
		}); n != 0 {
			t.Errorf("allocs = %v; want 0", n)
		}
	})
	t.Run("new key", func(t *testing.T) {
		m := NewMemory(p, 1<<12)
		key := make([]byte, 0, 32)
		i := int64(0)
		next := func() {
			key = strconv.AppendInt(key[:0], i, 10)
			i++
			m.Allow(ctx, key, t0)
		}
		for range 1 << 14 { // grown to the bound
			next()
		}
		if n := testing.AllocsPerRun(1000, next); n != 0 {
			t.Errorf("allocs = %v; want 0", n)
		}
	})
}

func BenchmarkMemoryAllow(b *testing.B) {
	m := NewMemory(mustPolicy(b, "p", 1000000, time.Second, 1000), 0)
	key := []byte("198.51.100.7")
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		m.Allow(context.Background(), key, now)
	}
}

func BenchmarkMemoryAllowParallel(b *testing.B) {
	m := NewMemory(mustPolicy(b, "p", 1000, time.Second, 1000), 0)
	var ids atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		key := make([]byte, 0, 32)
		id := ids.Add(1) << 20
		i := int64(0)
		for pb.Next() {
			key = strconv.AppendInt(key[:0], id+i%1024, 10)
			i++
			m.Allow(context.Background(), key, t0)
		}
	})
}

func BenchmarkMemoryAllowNewKey(b *testing.B) {
	m := NewMemory(mustPolicy(b, "p", 1, time.Hour, 1), 0)
	key := make([]byte, 0, 32)
	i := int64(0)
	b.ReportAllocs()
	for b.Loop() {
		key = strconv.AppendInt(key[:0], i, 10)
		i++
		m.Allow(context.Background(), key, t0)
	}
}
