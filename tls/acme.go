package tls

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/rampart-proxy/rampart/config"
)

// ErrRefused is returned for a host ACME may not order a certificate for:
// not in acme.hosts (or the routes' hosts) of any Manager holding the
// issuer.
var ErrRefused = errors.New("tls: host not allowed to order a certificate")

// orderWait bounds how long a handshake waits for another instance's order
// of the same host (acme.cache: redis), like autocert's own bound on an
// order.
const orderWait = 5 * time.Minute

// issuer obtains and renews certificates from one ACME account through
// autocert. Issuers keeps it across rebuilds.
//
// What autocert does itself, and what the issuer adds:
//   - The cache survives restarts: a handshake loads a cached certificate
//     (autocert.Manager.GetCertificate reads Cache before ordering).
//   - Renewal: autocert renews each certificate it holds, in the background,
//     1/3 of its lifetime (at most 30 days) before it expires, re-reading
//     the cache first (another instance may have renewed it); a failed
//     renewal is retried every 30 to 60 minutes, silently, while the current
//     certificate is served. Certificates() lets a metric watch the expiry.
//   - A failed order: autocert fails that host's handshakes, only that
//     host's, for one minute, then orders again on the next handshake. The
//     issuer adds the log line with the ACME server's reason (autocert
//     drops a failed validation's reason; acmeTransport reads it from the
//     authorization) and an exponential back-off (backoff) during which the
//     host's handshakes fail at once with the last error.
//   - acme.cache: redis: a lock per host so that one instance orders while
//     the others wait, then load the certificate it cached. Renewals take
//     it too (renewlock.go).
type issuer struct {
	owner     *Issuers
	key       string
	now       func() time.Time
	ac        *autocert.Manager
	cache     *tokenCache
	lock      func(ctx context.Context, host string) (release func(), err error) // nil: none (acme.cache: dir)
	transport *acmeTransport
	log       *slog.Logger
	migrated  chan struct{} // closed when the cache's migration is over (or was not needed)

	allowed atomic.Pointer[map[string]bool] // union of the holders' hosts: autocert's HostPolicy

	mu       sync.Mutex // guards the fields below
	holders  map[*Manager][]string
	hosts    map[string]*hostState // every host ever held; a handful, bounded by the configuration
	problems map[string][]string   // host -> the ACME server's reasons for invalid authorizations, since the last order ended
	renewals map[string]*renewal   // host -> the lock of an order obtain did not start (renewlock.go)
	http01   bool                  // autocert tries HTTP-01 (sticky: autocert cannot turn it off)
}

// newIssuer builds the autocert manager for a; keys seal the values of
// cache redis. It creates the cache directory but does not contact the
// ACME server; with cache redis, it starts the migration of values in
// clear or under a previous key in the background (migrated is closed when
// it ends).
func newIssuer(p string, a *config.ACME, caPEM []byte, o Options, prefix string, keys *keyring) (*issuer, error) {
	httpClient, transport, err := newACMEHTTPClient(caPEM)
	if err != nil {
		return nil, fmt.Errorf("%s.ca_file: %q %w", p, a.CAFile, err)
	}
	iss := &issuer{
		transport: transport,
		log:       o.Logger,
		holders:   make(map[*Manager][]string),
		hosts:     make(map[string]*hostState),
		problems:  make(map[string][]string),
		renewals:  make(map[string]*renewal),
		migrated:  make(chan struct{}),
	}
	transport.note = iss.noteProblem
	var base autocert.Cache
	switch a.Cache {
	case config.StoreRedis:
		if o.Redis == nil {
			return nil, fmt.Errorf(`%s.cache: "redis" needs a Redis client (the top-level redis section)`, p)
		}
		if keys == nil {
			return nil, fmt.Errorf("%s.cache: cache redis needs encryption_key or encryption_key_file", p)
		}
		rc := &redisCache{client: o.Redis, prefix: prefix + "acme:", keys: keys,
			acceptClear: a.InsecureMigrateCleartext, log: o.Logger}
		base = rc
		if rc.acceptClear {
			o.Logger.Warn("tls: insecure_migrate_cleartext is on: ACME values in clear in Redis are accepted and sealed; "+
				"while it is on, anyone who can write to Redis can plant a certificate that will be served. Remove it once migrated",
				"acme", p)
		}
		if rc.acceptClear || len(keys.ids) > 1 {
			go func() {
				defer close(iss.migrated)
				ctx, cancel := context.WithTimeout(context.Background(), migrateTimeout)
				defer cancel()
				rc.migrate(ctx)
			}()
		} else {
			close(iss.migrated)
		}
		l := &redisLock{client: o.Redis, prefix: prefix + "acme:lock:", ttl: lockTTL, poll: lockPoll}
		iss.lock = l.acquire
		transport.beforeOrder = iss.beforeOrder // renewals take the lock too
		transport.beforeFinalize = iss.beforeFinalize
	default:
		dir := a.CacheDir
		if dir == "" {
			dir = config.DefaultACMECacheDir
		}
		if err := prepareCacheDir(dir, o.Logger); err != nil {
			return nil, fmt.Errorf("%s.cache_dir: %w", p, err)
		}
		base = autocert.DirCache(dir)
		close(iss.migrated)
	}
	iss.cache = &tokenCache{next: base, shared: a.Cache == config.StoreRedis}
	if iss.lock != nil {
		iss.cache.stored = iss.stored
	}
	empty := map[string]bool{}
	iss.allowed.Store(&empty)
	iss.ac = &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      iss.cache,
		HostPolicy: iss.hostPolicy,
		Email:      a.Email,
		Client: &acme.Client{
			DirectoryURL: a.DirectoryURL,
			HTTPClient:   httpClient,
			UserAgent:    "rampart",
		},
	}
	return iss, nil
}

// hold records that m serves hosts and returns their states.
func (iss *issuer) hold(m *Manager, hosts []string, o Options) map[string]*hostState {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	if !o.NoHTTP01 && !iss.http01 {
		iss.ac.HTTPHandler(nil) // the handler is unused: it only turns HTTP-01 on
		iss.http01 = true
	}
	iss.holders[m] = hosts
	states := make(map[string]*hostState, len(hosts))
	for _, h := range hosts {
		hs := iss.hosts[h]
		if hs == nil {
			hs = &hostState{host: h, sem: make(chan struct{}, 1)}
			iss.hosts[h] = hs
		}
		states[h] = hs
	}
	iss.updateAllowed()
	return states
}

// release drops m's hold; the last release retires the issuer: it leaves
// Issuers, and its ACME client refuses every request, which stops renewals
// (autocert's timers keep firing, but fail at once without a connection).
func (s *Issuers) release(iss *issuer, m *Manager) {
	s.mu.Lock()
	defer s.mu.Unlock()
	iss.mu.Lock()
	defer iss.mu.Unlock()
	delete(iss.holders, m)
	iss.updateAllowed()
	if len(iss.holders) == 0 {
		if s.m[iss.key] == iss {
			delete(s.m, iss.key)
		}
		iss.transport.closed.Store(true)
	}
}

// updateAllowed recomputes the host policy. iss.mu must be held.
func (iss *issuer) updateAllowed() {
	allowed := make(map[string]bool)
	for _, hosts := range iss.holders {
		for _, h := range hosts {
			allowed[h] = true
		}
	}
	iss.allowed.Store(&allowed)
}

// hostPolicy is autocert's HostPolicy: only the hosts of the Managers that
// hold the issuer. Managers check their own hosts first; this is the second
// lock on the door.
func (iss *issuer) hostPolicy(_ context.Context, host string) error {
	if (*iss.allowed.Load())[host] {
		return nil
	}
	return fmt.Errorf("%w: %q", ErrRefused, host)
}

// certificate returns hs's certificate for the handshake, ordering one if
// needed.
func (iss *issuer) certificate(hello *tls.ClientHelloInfo, hs *hostState) (*tls.Certificate, error) {
	if hs.ready.Load() {
		c, err := iss.ac.GetCertificate(hello)
		if err == nil {
			hs.served(c)
		}
		return c, err
	}
	return iss.obtain(hello, hs)
}

// obtain loads hs's certificate from the cache or orders it: one caller per
// host in this process, and with a lock, one instance per host.
func (iss *issuer) obtain(hello *tls.ClientHelloInfo, hs *hostState) (*tls.Certificate, error) {
	ctx, cancel := context.WithTimeout(hello.Context(), orderWait)
	defer cancel()
	select {
	case hs.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("tls: waiting for the certificate of %q: %w", hs.host, ctx.Err())
	}
	defer func() { <-hs.sem }()
	if hs.ready.Load() { // obtained while this handshake waited
		return iss.certificate(hello, hs)
	}
	if hs.failures > 0 && iss.now().Before(hs.retryAt) {
		return nil, fmt.Errorf("tls: no certificate for %q before %s: %w", hs.host, hs.retryAt.Format(time.RFC3339), hs.lastErr)
	}
	if iss.lock != nil {
		release, err := iss.lock(ctx, hs.host)
		if err != nil {
			if ctx.Err() == nil { // Redis failed, not the wait
				iss.failed(hs, err)
			}
			return nil, err
		}
		hs.ordering.Store(true) // the transport's beforeOrder: the lock is held
		defer func() {
			hs.ordering.Store(false)
			release()
		}()
	}
	c, err := iss.ac.GetCertificate(hello)
	if err != nil {
		return nil, iss.failed(hs, err)
	}
	hs.failures, hs.lastErr = 0, nil
	iss.takeProblem(hs.host) // a challenge type that failed before the one that worked
	hs.ready.Store(true)
	hs.served(c)
	return c, nil
}

// failed records a failed order of hs (hs.sem held), logs it with the ACME
// server's reason and returns the error the handshake reports.
func (iss *issuer) failed(hs *hostState, err error) error {
	if reason := iss.takeProblem(hs.host); reason != "" {
		err = fmt.Errorf("%w (ACME server: %s)", err, reason)
	}
	hs.failures++
	wait := backoff(hs.failures)
	hs.retryAt = iss.now().Add(wait)
	hs.lastErr = err
	iss.log.Error("tls: ACME certificate order failed; that host's handshakes fail until a retry succeeds",
		"host", hs.host, "err", err, "failures", hs.failures, "retry_in", wait)
	return err
}

// maxProblems bounds the reasons kept per host: autocert tries each
// challenge type once per order.
const maxProblems = 4

// noteProblem keeps the ACME server's reason for an invalid authorization
// of host, for the log line of the failed order.
func (iss *issuer) noteProblem(host, reason string) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	if _, ok := iss.hosts[host]; !ok {
		return
	}
	if p := iss.problems[host]; !slices.Contains(p, reason) && len(p) < maxProblems {
		iss.problems[host] = append(p, reason)
	}
}

// takeProblem returns and forgets the reasons noted for host.
func (iss *issuer) takeProblem(host string) string {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	r := strings.Join(iss.problems[host], "; ")
	delete(iss.problems, host)
	return r
}

// served records the expiry of a certificate handed to a handshake; the
// store is skipped when unchanged, so the hot path only reads.
func (hs *hostState) served(c *tls.Certificate) {
	if c == nil || c.Leaf == nil {
		return
	}
	if exp := c.Leaf.NotAfter.Unix(); hs.notAfter.Load() != exp {
		hs.notAfter.Store(exp)
	}
}
