package tls

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/acme/autocert"
)

// What open found in a value read from Redis.
type outcome int

const (
	sealedCurrent outcome = iota // sealed under the current key
	resealed                     // sealed under a previous key; sealed again under the current one
	migrated                     // in clear, accepted (insecure_migrate_cleartext) and sealed in place
	clearIgnored                 // in clear, not accepted: a cache miss
	unknownKey                   // sealed under a key this instance does not have: an error
	forged                       // fails authentication: a cache miss
	nOutcomes
)

// open returns the plaintext of raw, read from the Redis key name, seals it
// again in place when it is in clear (and accepted) or under a previous
// key, and logs what is wrong with it. The error is autocert.ErrCacheMiss
// for a value that must not be used but may be replaced by a new order
// (in clear, or forged), and an error for a value sealed under an unknown
// key: a new order would overwrite what the other instances of the fleet
// can read, so the handshake fails until the keys agree.
func (c *redisCache) open(ctx context.Context, name string, raw []byte) ([]byte, outcome, error) {
	plain, stale, err := c.keys.open(name, raw)
	switch {
	case err == nil && !stale:
		return plain, sealedCurrent, nil
	case err == nil:
		if c.reseal(ctx, name, raw, plain) {
			c.log.Info("tls: ACME cache value sealed again under the current encryption_key", "key", name)
		}
		return plain, resealed, nil
	case errors.Is(err, errCleartext) && c.acceptClear:
		if c.reseal(ctx, name, raw, raw) {
			c.log.Warn("tls: ACME cache value in clear accepted and sealed (insecure_migrate_cleartext)", "key", name)
		}
		return raw, migrated, nil
	case errors.Is(err, errCleartext):
		c.notes.log(c.log, name, raw, slog.LevelWarn, "tls: ACME cache value in clear ignored, a cache miss: autocert orders anew in its place. "+
			"Someone who can write to Redis may have planted it; if a Rampart without encryption wrote it, "+
			"set insecure_migrate_cleartext for one start to keep it (docs/security-acme.md)", "key", name)
		return nil, clearIgnored, autocert.ErrCacheMiss
	case errors.Is(err, errUnknownKey):
		c.notes.log(c.log, name, raw, slog.LevelError, "tls: ACME cache value sealed under another key, not used: "+
			"every instance sharing this Redis needs the same encryption_key; during a rotation, "+
			"list the other key in previous_encryption_keys", "key", name, "err", err)
		return nil, unknownKey, fmt.Errorf("%w: %q: every instance sharing the Redis needs the same encryption_key", err, name)
	default:
		c.notes.log(c.log, name, raw, slog.LevelError, "tls: ACME cache value fails authentication, not served: "+
			"someone who can write to Redis modified it or copied it from another key; autocert orders anew in its place",
			"key", name)
		return nil, forged, autocert.ErrCacheMiss
	}
}

// resealScript replaces a value only if it is still the one read, so that
// sealing an old value in place never overwrites a newer one (another
// instance's renewal); a token keeps its expiry.
var resealScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return 1`)

// reseal writes plain, sealed under the current key, over old at name
// unless the value changed since it was read. It reports whether it did;
// a failure is logged: the next read tries again.
func (c *redisCache) reseal(ctx context.Context, name string, old, plain []byte) bool {
	n, err := resealScript.Run(ctx, c.client, []string{name}, old, c.keys.seal(name, plain)).Int()
	if err != nil {
		c.log.Warn("tls: ACME cache value could not be sealed in place; the next read tries again", "key", name, "err", err)
		return false
	}
	return n == 1
}

// noteLimiter keeps a value's problem from filling the log when it is read
// again and again (an HTTP-01 lookup of a planted token): each value of a
// key is logged at most once per noteEvery; another value of that key is
// logged at once.
type noteLimiter struct {
	mu   sync.Mutex            // guards last
	last map[noteKey]time.Time // when each value was last logged
}

type noteKey struct {
	name string
	hash uint64 // FNV-1a of the value
}

const (
	noteEvery = time.Minute
	maxNotes  = 1024 // keys remembered; past it the memory starts over
)

func (n *noteLimiter) log(l *slog.Logger, name string, value []byte, level slog.Level, msg string, args ...any) {
	h := fnv.New64a()
	h.Write(value)
	key := noteKey{name, h.Sum64()}
	now := time.Now()
	n.mu.Lock()
	if n.last == nil || len(n.last) >= maxNotes {
		n.last = make(map[noteKey]time.Time)
	}
	t, seen := n.last[key]
	if seen && now.Sub(t) < noteEvery {
		n.mu.Unlock()
		return
	}
	n.last[key] = now
	n.mu.Unlock()
	l.Log(context.Background(), level, msg, args...)
}

// migrateTimeout bounds migrate, which walks the whole Redis keyspace.
const migrateTimeout = 5 * time.Minute

// migrate reads every value of the cache once, through open: values in
// clear (with insecure_migrate_cleartext) and values under a previous key
// are sealed under the current key, including those no handshake will ask
// for (hosts no longer configured, autocert's legacy account key), so that
// after it nothing in clear remains and a previous key can be dropped. It
// logs what it did and returns the count of each outcome.
func (c *redisCache) migrate(ctx context.Context) [nOutcomes]int {
	var counts [nOutcomes]int
	var mu sync.Mutex // guards counts: a cluster's masters are scanned at once
	lockPrefix := c.prefix + "lock:"
	scan := func(ctx context.Context, client redis.Cmdable) error {
		iter := client.Scan(ctx, 0, globEscape(c.prefix)+"*", 256).Iterator()
		for iter.Next(ctx) {
			name := iter.Val()
			if strings.HasPrefix(name, lockPrefix) {
				continue // the order lock: a random token, not a cache value
			}
			cctx, cancel := context.WithTimeout(ctx, redisCallTimeout)
			raw, err := client.Get(cctx, name).Bytes()
			var o outcome
			if err == nil {
				_, o, _ = c.open(cctx, name, raw)
			}
			cancel()
			if errors.Is(err, redis.Nil) {
				continue // deleted since the scan saw it
			}
			if err != nil {
				return err
			}
			mu.Lock()
			counts[o]++
			mu.Unlock()
		}
		return iter.Err()
	}
	var err error
	if cc, ok := c.client.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { return scan(ctx, m) })
	} else {
		err = scan(ctx, c.client)
	}
	args := []any{"prefix", c.prefix, "sealed", counts[sealedCurrent], "resealed", counts[resealed],
		"migrated_from_clear", counts[migrated], "ignored_clear", counts[clearIgnored],
		"unknown_key", counts[unknownKey], "failed_authentication", counts[forged]}
	switch {
	case err != nil:
		c.log.Error("tls: ACME cache migration stopped; values not reached are sealed when read", append(args, "err", err)...)
	case c.acceptClear:
		c.log.Warn("tls: ACME cache migration done: remove insecure_migrate_cleartext, "+
			"which lets anyone who can write to Redis plant a certificate", args...)
	default:
		c.log.Info("tls: ACME cache migration done", args...)
	}
	return counts
}

// globEscape escapes the characters that a Redis MATCH pattern treats
// specially.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
