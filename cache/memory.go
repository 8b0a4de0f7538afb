package cache

import (
	"context"
	"strings"
	"time"

	"github.com/maypok86/otter/v2"
)

// Memory is a store in this process's memory, bounded by bytes.
type Memory struct {
	c       *otter.Cache[string, stored]
	onEvict func()
}

// stored is an entry and how long it is kept.
type stored struct {
	e   *Entry
	ttl time.Duration
}

// MemoryOptions configure NewMemory.
type MemoryOptions struct {
	// MaxBytes bounds the sum of the entries' sizes (Entry.Size).
	MaxBytes int64
	// OnEvict, when set, is called for each entry evicted to make room
	// (not for entries that expired or were replaced or purged).
	OnEvict func()
}

// NewMemory returns an empty memory store.
func NewMemory(o MemoryOptions) *Memory {
	m := &Memory{onEvict: o.OnEvict}
	m.c = otter.Must(&otter.Options[string, stored]{
		MaximumWeight: uint64(max(o.MaxBytes, 1)),
		Weigher: func(key string, v stored) uint32 {
			return uint32(min(len(key)+v.e.Size(), 1<<32-1))
		},
		ExpiryCalculator: otter.ExpiryWritingFunc(func(en otter.Entry[string, stored]) time.Duration {
			return en.Value.ttl
		}),
		OnDeletion: func(ev otter.DeletionEvent[string, stored]) {
			if ev.Cause == otter.CauseOverflow && m.onEvict != nil {
				m.onEvict()
			}
		},
	})
	return m
}

// Get returns the entry under key.
func (m *Memory) Get(_ context.Context, key string) (*Entry, error) {
	v, ok := m.c.GetIfPresent(key)
	if !ok {
		return nil, nil
	}
	return v.e, nil
}

// Set stores e under key for ttl.
func (m *Memory) Set(_ context.Context, key string, e *Entry, ttl time.Duration) error {
	m.c.Set(key, stored{e: e, ttl: ttl})
	return nil
}

// Purge deletes key, or every key it prefixes.
func (m *Memory) Purge(_ context.Context, key string, prefix bool) (int, error) {
	if !prefix {
		if _, ok := m.c.Invalidate(key); ok {
			return 1, nil
		}
		return 0, nil
	}
	if key == "" {
		n := m.c.EstimatedSize()
		m.c.InvalidateAll()
		return n, nil
	}
	n := 0
	for k := range m.c.Keys() {
		if strings.HasPrefix(k, key) {
			if _, ok := m.c.Invalidate(k); ok {
				n++
			}
		}
	}
	return n, nil
}

// Bytes is the weight of the entries held now.
func (m *Memory) Bytes() int64 { return int64(m.c.WeightedSize()) }

// Len is the number of entries held now (expired ones may still count).
func (m *Memory) Len() int { return m.c.EstimatedSize() }

// SetMaxBytes changes the bound, evicting what no longer fits.
func (m *Memory) SetMaxBytes(n int64) { m.c.SetMaximum(uint64(max(n, 1))) }

// Close stops the store's maintenance goroutine and drops its entries.
func (m *Memory) Close() error {
	m.c.InvalidateAll()
	m.c.StopAllGoroutines()
	return nil
}
