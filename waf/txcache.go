package waf

import (
	"reflect"
	"sync"
)

// Coraza keeps a transformation cache map in each transaction and clears
// it, entry by entry, at the start of every phase. Transactions are
// pooled, a Go map keeps its capacity when emptied, and ranging over a map
// costs its capacity, not its length. After a 16 KiB JSON POST (some
// 60,000 entries in phase 2) every request that drew the same transaction
// from the pool paid for ranging over that capacity in each phase: a
// benign GET cost 843 us of CPU on a fresh process and 1017 us right after
// a few seconds of such POSTs.
//
// So large caches are kept apart: once the request phases are done, a
// cache that grew past bigTransformationCache entries leaves the
// transaction for bigCaches, and the transaction gets an empty one; a
// request with a large body borrows one from bigCaches before its body is
// inspected. GETs keep small caches, large POSTs find a grown one.
// Replacing large caches by empty ones instead made the POST 13% dearer
// (the map grows again each time).
//
// Only stock Coraza needs this: patched (waf/corazapatch), it caches no
// single transformation, and every chain of the CRS is one (fuse.go), so
// the cache stays small and Inspect leaves it alone.

// bigTransformationCache is the size from which a transaction's
// transformation cache counts as large (a browser GET leaves about 1,000).
const bigTransformationCache = 8192

// largeBody is the request body size from which the inspection borrows a
// large cache.
const largeBody = 4 << 10

// bigCaches holds large transformation caches between requests.
var bigCaches sync.Pool

// transformationCache returns tx's cache field, settable; tx is a
// *corazawaf.Transaction, whose field is unexported. ok is false when it is
// not laid out as expected (TestTransformationCacheSwap notices).
func transformationCache(tx any) (f reflect.Value, ok bool) {
	v, ok := pointedStruct(tx)
	if !ok {
		return reflect.Value{}, false
	}
	f = v.FieldByName("transformationCache")
	if !f.IsValid() || f.Kind() != reflect.Map || !f.CanAddr() {
		return reflect.Value{}, false
	}
	return exposed(f), true
}

// borrowBigCache gives tx a large cache kept from an earlier request, if
// there is one, before a large body is inspected.
func borrowBigCache(tx any) {
	f, ok := transformationCache(tx)
	if !ok || f.Len() > bigTransformationCache {
		return
	}
	if m := bigCaches.Get(); m != nil {
		if mv := reflect.ValueOf(m); mv.Type() == f.Type() {
			f.Set(mv)
		}
	}
}

// releaseBigCache moves a cache that grew large out of tx into bigCaches
// and leaves tx an empty one; it reports whether it did.
func releaseBigCache(tx any) bool {
	f, ok := transformationCache(tx)
	if !ok || f.Len() <= bigTransformationCache {
		return false
	}
	bigCaches.Put(f.Interface())
	f.Set(reflect.MakeMap(f.Type()))
	return true
}
