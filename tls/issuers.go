package tls

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-proxy/rampart/config"
)

// Issuers keeps each ACME issuer (an autocert.Manager with its cache, its
// certificates in memory and its renewal timers) alive across rebuilds,
// keyed by what identifies an ACME account and its certificates: directory,
// email, the CA file's contents, and the cache (directory, or Redis client
// and key prefix). Managers built from unchanged ACME settings share one
// issuer, so a reload neither reads the cache again nor starts a second set
// of renewal timers (autocert cannot stop its timers: an issuer, once
// built, must be reused, not rebuilt).
//
// The proxy keeps one Issuers for the life of the process. Safe for
// concurrent use.
type Issuers struct {
	now func() time.Time // the clock of back-offs; tests set it

	mu sync.Mutex // guards m
	m  map[string]*issuer
}

// NewIssuers returns an empty set.
func NewIssuers() *Issuers {
	return &Issuers{now: time.Now, m: make(map[string]*issuer)}
}

// acquire returns the issuer for a, building it if needed, holds it for a
// Manager until that Manager's Close, and returns the state of each of
// hosts. p is the field path of a, for errors.
func (s *Issuers) acquire(m *Manager, p string, a *config.ACME, hosts []string, o Options) (*issuer, map[string]*hostState, error) {
	var caPEM []byte
	if a.CAFile != "" {
		var err error
		if caPEM, err = os.ReadFile(a.CAFile); err != nil {
			return nil, nil, fmt.Errorf("%s.ca_file: %w", p, err)
		}
	}
	prefix := o.RedisKeyPrefix
	if prefix == "" {
		prefix = config.DefaultRedisKeyPrefix
	}
	var keys *keyring
	if a.Cache == config.StoreRedis {
		var err error
		if keys, err = acmeKeyring(p, a); err != nil {
			return nil, nil, err
		}
	}
	key := issuerKey(a, caPEM, o.Redis, prefix, keys)

	s.mu.Lock()
	defer s.mu.Unlock()
	iss := s.m[key]
	if iss == nil {
		var err error
		if iss, err = newIssuer(p, a, caPEM, o, prefix, keys); err != nil {
			return nil, nil, err
		}
		iss.owner, iss.key, iss.now = s, key, s.now
		s.m[key] = iss
	}
	return iss, iss.hold(m, hosts, o), nil
}

// issuerKey identifies an ACME account and where its certificates live;
// with cache redis, also the keys that seal them and whether values in
// clear are accepted, so that a change of either builds a new cache.
func issuerKey(a *config.ACME, caPEM []byte, client any, prefix string, keys *keyring) string {
	ca := sha256.Sum256(caPEM)
	where := a.CacheDir
	if a.Cache == config.StoreRedis {
		where = fmt.Sprintf("%p %s %s %t", client, prefix, keys.fingerprint(), a.InsecureMigrateCleartext)
	}
	return strings.Join([]string{a.DirectoryURL, a.Email, hex.EncodeToString(ca[:]), a.Cache, where}, "\x00")
}

// hostState is one host's ACME state in an issuer; it outlives Managers.
type hostState struct {
	host     string
	ready    atomic.Bool   // autocert holds a certificate: handshakes go straight to it
	notAfter atomic.Int64  // Unix expiry of the last certificate served; zero: none yet
	sem      chan struct{} // one order (or wait for one) per host in this process
	ordering atomic.Bool   // obtain holds the host's lock (acme.cache: redis) for its order

	// Guarded by sem:
	failures int       // consecutive failed orders
	retryAt  time.Time // no new order before this, after a failure
	lastErr  error     // why the last order failed
}

// Back-off between orders for a host whose last order failed: retryFirst,
// doubling up to retryMax. The first is above autocert's own one minute
// during which it fails that host's handshakes without ordering. A failing
// host costs five orders in its first half hour, then one an hour, to stay
// clear of the CA's limits on failed validations. Orders are lazy: the
// retry is the first handshake for that host after retryAt.
var (
	retryFirst = 2 * time.Minute
	retryMax   = time.Hour
)

// backoff returns the wait after n consecutive failures (n >= 1).
func backoff(n int) time.Duration {
	d := retryFirst
	for i := 1; i < n && d < retryMax; i++ {
		d *= 2
	}
	return min(d, retryMax)
}
