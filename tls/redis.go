package tls

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/acme/autocert"
)

// redisCache is autocert.Cache on Redis (acme.cache: redis), shared by every
// instance with the same key prefix: the account key, the certificates
// (PEM key and chain, autocert's format) and the pending challenge
// tokens, each under prefix + autocert's key. Certificates never expire in
// Redis (autocert renews them in place); challenge tokens expire after
// tokenTTL in case their Delete is lost.
//
// Every value is sealed (seal.go) before it is written and opened after it
// is read, challenge tokens included: they are no secret (the ACME server
// fetches them over plain HTTP), but a token planted in Redis would be
// served, and would let whoever planted it pass a challenge for our hosts.
// A value that is not what this cache sealed is never returned: in clear,
// or failing authentication, it is a cache miss (autocert orders anew and
// overwrites it); sealed under an unknown key, an error (see open).
type redisCache struct {
	client redis.UniversalClient
	prefix string   // KeyPrefix + "acme:"
	keys   *keyring // seals every value written
	// acceptClear is acme.insecure_migrate_cleartext: a value in clear
	// is returned, and sealed in place.
	acceptClear bool
	log         *slog.Logger
	notes       noteLimiter
}

// tokenTTL bounds how long a challenge token outlives a lost Delete.
const tokenTTL = time.Hour

// redisCallTimeout bounds each Redis call of the cache and the lock, well
// above config.Redis.Timeout (which is sized for rate limiting): these calls
// are rare, off the request path, and carry a few KiB.
const redisCallTimeout = 5 * time.Second

func (c *redisCache) Get(ctx context.Context, key string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, redisCallTimeout)
	defer cancel()
	name := c.prefix + key
	b, err := c.client.Get(ctx, name).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, autocert.ErrCacheMiss
	}
	if err != nil {
		return nil, fmt.Errorf("tls: ACME cache: %w", err)
	}
	plain, _, err := c.open(ctx, name, b)
	return plain, err
}

func (c *redisCache) Put(ctx context.Context, key string, data []byte) error {
	ctx, cancel := context.WithTimeout(ctx, redisCallTimeout)
	defer cancel()
	var ttl time.Duration
	if strings.HasSuffix(key, http01Suffix) || strings.HasSuffix(key, "+token") {
		ttl = tokenTTL
	}
	name := c.prefix + key
	if err := c.client.Set(ctx, name, c.keys.seal(name, data), ttl).Err(); err != nil {
		return fmt.Errorf("tls: ACME cache: %w", err)
	}
	return nil
}

func (c *redisCache) Delete(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, redisCallTimeout)
	defer cancel()
	if err := c.client.Del(ctx, c.prefix+key).Err(); err != nil {
		return fmt.Errorf("tls: ACME cache: %w", err)
	}
	return nil
}

// The lock's lease: an instance that dies holding it blocks the host's
// order for at most lockTTL. The holder renews the lease every lockTTL/3
// while its order runs, however long it takes.
var (
	lockTTL  = 30 * time.Second
	lockPoll = 200 * time.Millisecond // how often a waiting instance retries
)

// Scripts act only when the key still holds the caller's token, so a
// holder whose lease lapsed can neither renew nor delete another
// instance's lock.
var (
	unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)
	renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`)
)

// redisLock keeps two instances from ordering the same host's certificate
// at once: SET key token NX PX, renewed while held, deleted by token.
type redisLock struct {
	client redis.UniversalClient
	prefix string // KeyPrefix + "acme:lock:"
	ttl    time.Duration
	poll   time.Duration
}

// acquire waits until this instance holds host's lock or ctx ends. The
// holder calls release once its order is over (failed or not); the lease is
// renewed until then.
func (l *redisLock) acquire(ctx context.Context, host string) (release func(), err error) {
	key := l.prefix + host
	var b [16]byte
	rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	for {
		c, cancel := context.WithTimeout(ctx, redisCallTimeout)
		ok, err := l.client.SetNX(c, key, token, l.ttl).Result()
		cancel()
		if err != nil {
			return nil, fmt.Errorf("tls: ACME lock %q: %w", key, err)
		}
		if ok {
			break
		}
		t := time.NewTimer(l.poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("tls: waiting for another instance's order of %q: %w", host, ctx.Err())
		case <-t.C:
		}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go l.renew(key, token, stop, done)
	return func() {
		close(stop)
		<-done
		ctx, cancel := context.WithTimeout(context.Background(), l.ttl/3)
		defer cancel()
		// An error leaves the lock to expire within ttl.
		_ = unlockScript.Run(ctx, l.client, []string{key}, token).Err()
	}, nil
}

// renew extends the lease every ttl/3 until stop is closed, then closes
// done.
func (l *redisLock) renew(key, token string, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), l.ttl/3)
			_ = renewScript.Run(ctx, l.client, []string{key}, token, l.ttl.Milliseconds()).Err()
			cancel()
		}
	}
}
