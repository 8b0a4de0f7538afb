package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestCacheMetrics records every outcome of one cache policy, then drops
// the policy with RetainCaches.
func TestCacheMetrics(t *testing.T) {
	m, reg := newTest(t)
	h := m.Cache("pages")
	if m.Cache("pages") != h {
		t.Fatal("a second Cache(pages) made another handle")
	}
	h.Hit()
	h.Hit()
	h.Miss()
	h.Revalidated()
	h.Stored(100)
	h.Evicted()
	h.Stale(true)
	h.Stale(false)
	h.Coalesced()
	h.StoreError()
	h.SetBytes(func() int64 { return 4096 })
	want := `
# HELP rampart_cache_bytes Bytes held by a memory cache (bodies, headers and overhead).
# TYPE rampart_cache_bytes gauge
rampart_cache_bytes{cache="pages"} 4096
# HELP rampart_cache_requests_total Requests a response cache looked up, by cache and result: hit (fresh, or stale as the request allowed), miss (went upstream), revalidated (a stale entry refreshed by a 304).
# TYPE rampart_cache_requests_total counter
rampart_cache_requests_total{cache="pages",result="hit"} 2
rampart_cache_requests_total{cache="pages",result="miss"} 1
rampart_cache_requests_total{cache="pages",result="revalidated"} 1
# HELP rampart_cache_stale_served_total Stale answers served, by reason: while_revalidate (stale-while-revalidate), if_error (stale-if-error).
# TYPE rampart_cache_stale_served_total counter
rampart_cache_stale_served_total{cache="pages",reason="if_error"} 1
rampart_cache_stale_served_total{cache="pages",reason="while_revalidate"} 1
# HELP rampart_cache_stored_bytes_total Body bytes of the answers stored by a response cache.
# TYPE rampart_cache_stored_bytes_total counter
rampart_cache_stored_bytes_total{cache="pages"} 100
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "rampart_cache_bytes", "rampart_cache_requests_total",
		"rampart_cache_stale_served_total", "rampart_cache_stored_bytes_total"); err != nil {
		t.Error(err)
	}
	for name, c := range map[string]float64{"stores": testutil.ToFloat64(h.stores), "evictions": testutil.ToFloat64(h.evictions),
		"coalesced": testutil.ToFloat64(h.coalesced), "store errors": testutil.ToFloat64(h.storeErrors)} {
		if c != 1 {
			t.Errorf("%s: got %v; want 1", name, c)
		}
	}
	m.RetainCaches(nil)
	if n, err := testutil.GatherAndCount(reg, "rampart_cache_requests_total", "rampart_cache_bytes"); err != nil || n != 0 {
		t.Errorf("series after RetainCaches(nil): got %d (%v); want 0", n, err)
	}
	var none *Metrics
	none.Cache("x").Hit() // a nil handle records nothing, without a panic
}
