package waf

import (
	"net/netip"
	"reflect"
	"strconv"
	"testing"

	"github.com/corazawaf/coraza/v3/experimental"

	"github.com/rampart-proxy/rampart/config"
)

// TestTransformationCacheSwap: a large POST leaves its grown cache in
// bigCaches and its transaction with an empty one; a transaction lends it
// out and takes it back.
func TestTransformationCacheSwap(t *testing.T) {
	if CorazaPatched() {
		t.Skip("patched Coraza grows no large caches, and Inspect swaps none (make test runs ./waf stock too)")
	}
	p := policy(t, "cache-swap", config.WAFPolicy{Mode: config.WAFModeBlock})
	body := benchJSON()
	raw := "POST /api/orders HTTP/1.1\n" + browserHeaders + "\nContent-Type: application/json\nContent-Length: " +
		strconv.Itoa(len(body)) + "\n\n" + body
	info := Request{ID: []byte("cache-swap"), ClientIP: netip.MustParseAddr("192.0.2.7"), Route: "r"}

	// sync.Pool may drop what it is given (it does, at random, under
	// -race): try a few requests.
	var big any
	for range 10 {
		v := p.Inspect(newCtx(t, raw), info)
		if v.Blocked() {
			t.Fatalf("benign POST blocked: %d", v.Status)
		}
		v.Close()
		if big = bigCaches.Get(); big != nil {
			break
		}
	}
	if big == nil {
		t.Fatal("no large transformation cache after ten 16 KiB JSON POSTs")
	}
	if n := reflect.ValueOf(big).Len(); n <= bigTransformationCache {
		t.Fatalf("cache kept with %d entries; want more than %d", n, bigTransformationCache)
	}

	tx := p.waf.NewTransactionWithOptions(experimental.Options{ID: "cache-swap-2"})
	defer tx.Close()
	f, ok := transformationCache(tx)
	if !ok {
		t.Fatal("coraza's Transaction has no transformationCache map: large caches stay in pooled transactions")
	}
	f.Set(reflect.ValueOf(big))
	if !releaseBigCache(tx) || f.Len() != 0 {
		t.Fatalf("releaseBigCache left %d entries", f.Len())
	}
	if releaseBigCache(tx) {
		t.Fatal("an empty cache released")
	}
	for range 10 {
		borrowBigCache(tx)
		if f.Len() > bigTransformationCache {
			return
		}
		bigCaches.Put(big) // dropped by the pool: give it again
	}
	t.Fatalf("borrowBigCache: %d entries; want the large cache", f.Len())
}
