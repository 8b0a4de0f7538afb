package metrics

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// cacheFamilies are the response cache's collectors (issue 21).
type cacheFamilies struct {
	lookups     *prometheus.CounterVec // cache, result
	stores      *prometheus.CounterVec // cache
	storedBytes *prometheus.CounterVec // cache
	evictions   *prometheus.CounterVec // cache
	stale       *prometheus.CounterVec // cache, reason
	coalesced   *prometheus.CounterVec // cache
	storeErrors *prometheus.CounterVec // cache
	bytes       *cacheBytes

	mu      sync.Mutex // guards handles
	handles map[string]*CacheMetrics
}

func newCacheFamilies() *cacheFamilies {
	c := &cacheFamilies{
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "cache_requests_total",
			Help: "Requests a response cache looked up, by cache and result: hit (fresh, or stale as the request allowed), miss (went upstream), revalidated (a stale entry refreshed by a 304).",
		}, []string{"cache", "result"}),
		stores: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "cache_stores_total",
			Help: "Answers stored by a response cache.",
		}, []string{"cache"}),
		storedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "cache_stored_bytes_total",
			Help: "Body bytes of the answers stored by a response cache.",
		}, []string{"cache"}),
		evictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "cache_evictions_total",
			Help: "Entries a memory cache evicted to stay within max_size.",
		}, []string{"cache"}),
		stale: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "cache_stale_served_total",
			Help: "Stale answers served, by reason: while_revalidate (stale-while-revalidate), if_error (stale-if-error).",
		}, []string{"cache", "reason"}),
		coalesced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "cache_coalesced_total",
			Help: "Misses that waited for another request for the same key instead of going upstream at once.",
		}, []string{"cache"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "cache_store_errors_total",
			Help: "Failed or skipped calls to a cache's shared store (Redis down or paused): the request went on as a miss.",
		}, []string{"cache"}),
		handles: map[string]*CacheMetrics{},
	}
	c.bytes = &cacheBytes{c: c, desc: prometheus.NewDesc(Namespace+"_cache_bytes",
		"Bytes held by a memory cache (bodies, headers and overhead).", []string{"cache"}, nil)}
	return c
}

func (c *cacheFamilies) collectors() []prometheus.Collector {
	return []prometheus.Collector{c.lookups, c.stores, c.storedBytes, c.evictions, c.stale, c.coalesced, c.storeErrors, c.bytes}
}

// CacheMetrics records one cache policy. A nil *CacheMetrics records
// nothing.
type CacheMetrics struct {
	hit, miss, revalidated                 prometheus.Counter
	stores, storedBytes, evictions         prometheus.Counter
	staleRevalidate, staleError, coalesced prometheus.Counter
	storeErrors                            prometheus.Counter
	// bytes reports the bytes held (nil: not a memory cache); a reload
	// sets it while a scrape may read it.
	bytes atomic.Pointer[func() int64]
}

// Cache returns the handle of the cache policy, creating it on first use.
func (m *Metrics) Cache(name string) *CacheMetrics {
	if m == nil {
		return nil
	}
	c := m.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	if h := c.handles[name]; h != nil {
		return h
	}
	h := &CacheMetrics{
		hit:             c.lookups.WithLabelValues(name, "hit"),
		miss:            c.lookups.WithLabelValues(name, "miss"),
		revalidated:     c.lookups.WithLabelValues(name, "revalidated"),
		stores:          c.stores.WithLabelValues(name),
		storedBytes:     c.storedBytes.WithLabelValues(name),
		evictions:       c.evictions.WithLabelValues(name),
		staleRevalidate: c.stale.WithLabelValues(name, "while_revalidate"),
		staleError:      c.stale.WithLabelValues(name, "if_error"),
		coalesced:       c.coalesced.WithLabelValues(name),
		storeErrors:     c.storeErrors.WithLabelValues(name),
	}
	c.handles[name] = h
	return h
}

// RetainCaches deletes the series of every cache policy not in names.
func (m *Metrics) RetainCaches(names []string) {
	if m == nil {
		return
	}
	keep := setOf(names)
	c := m.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	for name := range c.handles {
		if _, ok := keep[name]; ok {
			continue
		}
		delete(c.handles, name)
		l := prometheus.Labels{"cache": name}
		for _, v := range []*prometheus.CounterVec{c.lookups, c.stores, c.storedBytes, c.evictions, c.stale, c.coalesced, c.storeErrors} {
			v.DeletePartialMatch(l)
		}
	}
}

// Hit counts an answer from the cache.
func (h *CacheMetrics) Hit() {
	if h != nil {
		h.hit.Inc()
	}
}

// Miss counts a request that went upstream.
func (h *CacheMetrics) Miss() {
	if h != nil {
		h.miss.Inc()
	}
}

// Revalidated counts a stale entry refreshed by a 304.
func (h *CacheMetrics) Revalidated() {
	if h != nil {
		h.revalidated.Inc()
	}
}

// Stored counts an answer stored, with its body's size.
func (h *CacheMetrics) Stored(bodyBytes int) {
	if h != nil {
		h.stores.Inc()
		h.storedBytes.Add(float64(bodyBytes))
	}
}

// Evicted counts an entry evicted for room.
func (h *CacheMetrics) Evicted() {
	if h != nil {
		h.evictions.Inc()
	}
}

// Stale counts a stale answer served: on an error (stale-if-error), or
// while revalidating.
func (h *CacheMetrics) Stale(onError bool) {
	if h == nil {
		return
	}
	if onError {
		h.staleError.Inc()
	} else {
		h.staleRevalidate.Inc()
	}
}

// Coalesced counts a miss that waited for another.
func (h *CacheMetrics) Coalesced() {
	if h != nil {
		h.coalesced.Inc()
	}
}

// StoreError counts a failed call to a shared store.
func (h *CacheMetrics) StoreError() {
	if h != nil {
		h.storeErrors.Inc()
	}
}

// SetBytes sets what rampart_cache_bytes reports for the policy.
func (h *CacheMetrics) SetBytes(f func() int64) {
	if h != nil {
		h.bytes.Store(&f)
	}
}

// cacheBytes collects rampart_cache_bytes from the memory caches.
type cacheBytes struct {
	c    *cacheFamilies
	desc *prometheus.Desc
}

func (b *cacheBytes) Describe(ch chan<- *prometheus.Desc) { ch <- b.desc }

func (b *cacheBytes) Collect(ch chan<- prometheus.Metric) {
	b.c.mu.Lock()
	defer b.c.mu.Unlock()
	for name, h := range b.c.handles {
		if f := h.bytes.Load(); f != nil {
			ch <- prometheus.MustNewConstMetric(b.desc, prometheus.GaugeValue, float64((*f)()), name)
		}
	}
}
