package auth

import (
	"net/netip"
	"sync"
	"time"
)

// credCache remembers verified credentials, by a salted hash of name and
// password, for ttl, ttl at most max of them.
type credCache struct {
	ttl time.Duration
	max int

	mu sync.Mutex // guards m
	m  map[[32]byte]credEntry
}

type credEntry struct {
	user    string
	expires time.Time
}

func newCredCache(ttl time.Duration, max int) *credCache {
	return &credCache{ttl: ttl, max: max, m: make(map[[32]byte]credEntry)}
}

func (c *credCache) get(key [32]byte, now time.Time) (string, bool) {
	c.mu.Lock()
	e, ok := c.m[key]
	if ok && !now.Before(e.expires) {
		delete(c.m, key)
		ok = false
	}
	c.mu.Unlock()
	return e.user, ok
}

// put remembers key for user. A full cache drops its expired entries, and
// when none has expired, one entry of Go's random map order.
func (c *credCache) put(key [32]byte, user string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; !ok && len(c.m) >= c.max {
		for k, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < c.max {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[key] = credEntry{user: user, expires: now.Add(c.ttl)}
}

// maxFailureClients bounds the client addresses whose failures are
// counted at once.
const maxFailureClients = 100_000

// failures counts failed checks per client address in fixed windows.
type failures struct {
	limit  int
	window time.Duration
	max    int

	mu     sync.Mutex // guards the fields below
	m      map[netip.Addr]failCount
	purged time.Time // the last sweep of expired windows
}

type failCount struct {
	n     int
	start time.Time
}

func newFailures(limit int, window time.Duration, max int) *failures {
	return &failures{limit: limit, window: window, max: max, m: make(map[netip.Addr]failCount)}
}

// blocked reports whether client has failed limit times in its current
// window, and how long until that window ends. When the table is full of
// live windows, a client not in it is blocked too: a flood from more
// addresses than it holds does not buy anyone free guesses.
func (f *failures) blocked(client netip.Addr, now time.Time) (bool, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.m[client]
	if ok && now.Sub(c.start) >= f.window {
		delete(f.m, client)
		ok = false
	}
	if !ok {
		if len(f.m) >= f.max && !f.sweep(now) {
			return true, f.window
		}
		return false, 0
	}
	if c.n >= f.limit {
		return true, f.window - now.Sub(c.start)
	}
	return false, 0
}

// add counts a failure of client.
func (f *failures) add(client netip.Addr, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.m[client]
	if !ok || now.Sub(c.start) >= f.window {
		if !ok && len(f.m) >= f.max && !f.sweep(now) {
			return
		}
		c = failCount{start: now}
	}
	c.n++
	f.m[client] = c
}

// sweep drops the expired windows, at most once a second, and reports
// whether the table has room.
func (f *failures) sweep(now time.Time) bool {
	if now.Sub(f.purged) >= time.Second {
		f.purged = now
		for k, c := range f.m {
			if now.Sub(c.start) >= f.window {
				delete(f.m, k)
			}
		}
	}
	return len(f.m) < f.max
}
