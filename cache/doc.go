// Package cache is Rampart's HTTP response cache: an RFC 9111 shared cache's
// rules (what may be stored, how long it stays fresh, when it must be
// revalidated, when a stale answer may still be served), the entries it
// keeps, the stores that keep them, and the coalescing of concurrent misses.
//
// The package knows nothing of the proxy's request types: headers are read
// through Header (fasthttp's request and response headers satisfy it), and
// the proxy (proxy/cache.go) decides per request what to look up, what to
// forward and what to store.
//
// # Keys
//
// An entry's primary key is the method class, scheme, host and request
// target of the request ("GET https://example.com/a?b=1"; HEAD shares GET's
// class: a HEAD is answered from a stored GET). An answer with Vary is stored
// under a secondary key, the primary key followed by the values of the
// request fields Vary names, and a small marker entry under the primary key
// records the names (as Squid does), so that one lookup path serves both
// stores.
//
// # Stores
//
// Memory is bounded by bytes and evicts with github.com/maypok86/otter/v2
// (W-TinyLFU, weighted by each entry's size, with a per-entry expiry).
// hashicorp/golang-lru was the other candidate: its bound is a count of
// entries, not bytes, and a cache of answers from a few hundred bytes to
// megabytes needs a byte bound; W-TinyLFU also keeps a popular page from
// being pushed out by one scan of rarely asked URLs, which plain LRU does
// not. Redis keeps encoded entries under a TTL, shared by every instance;
// it is a cache, so a failing Redis turns lookups into misses and stores
// into no-ops, with short timeouts and a pause after a failure so that a
// dead Redis costs the request path nothing but a branch.
package cache
