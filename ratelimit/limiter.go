package ratelimit

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rampart-proxy/rampart/config"
)

// Limiter decides whether one more request for key may pass at now.
//
// key is only read during the call and may be reused by the caller
// afterwards. now is the caller's clock: the memory store and the back-off of
// Failover use it; the Redis store by default uses the Redis server's clock
// instead (see RedisOptions.ClientClock).
type Limiter interface {
	Allow(ctx context.Context, key []byte, now time.Time) (Decision, error)
}

// Decision is the outcome of one Allow call, with what the proxy needs for
// the Retry-After, RateLimit and RateLimit-Policy headers.
type Decision struct {
	// Allowed reports whether the request may pass.
	Allowed bool
	// Limit is the policy's burst: the most requests that may pass at once.
	Limit int64
	// Remaining is how many more requests would pass right now.
	Remaining int64
	// RetryAfter is how long until one more request would pass: zero while
	// Remaining > 0, positive when the request was refused.
	RetryAfter time.Duration
	// Reset is how long until the bucket is full again (Remaining == Limit)
	// if no request arrives meanwhile.
	Reset time.Duration
	// Fallback reports that the shared store was unavailable and this
	// decision came from the instance's memory fallback (on_store_error:
	// allow). Allowed may then be false: answer 429 as usual.
	Fallback bool
	// Unavailable reports that the shared store was unavailable and the
	// policy says on_store_error: deny: Allowed is false and the proxy
	// answers 503. RetryAfter is then the time until the store is probed
	// again.
	Unavailable bool
}

// Options are what New needs besides the policy.
type Options struct {
	// Redis is the client from NewRedisClient, shared by every policy;
	// required for store: redis.
	Redis redis.Scripter
	// RedisConfig is the redis section (defaults applied): key prefix and
	// timeout.
	RedisConfig *config.Redis
	// MaxKeys bounds each memory store (the policy's store, or its
	// fallback). Default DefaultMaxKeys.
	MaxKeys int
	// Logger receives the Failover transitions. Default: discard.
	Logger *slog.Logger
	// OnChange is passed to FailoverOptions.OnChange.
	OnChange func(degraded bool)
}

// New builds the limiter of rl (defaults applied, valid), compiled as p:
// a Memory for store: memory; for store: redis, a Failover around a Redis
// store, falling back to a Memory (on_store_error: allow) or refusing
// (deny).
func New(p Policy, rl *config.RateLimit, o Options) (Limiter, error) {
	switch rl.Store {
	case "", config.StoreMemory:
		return NewMemory(p, o.MaxKeys), nil
	case config.StoreRedis:
	default:
		return nil, fmt.Errorf("ratelimit: policy %q: unknown store %q", p.name, rl.Store)
	}
	if o.Redis == nil {
		return nil, fmt.Errorf("ratelimit: policy %q: store redis needs a Redis client", p.name)
	}
	var ro RedisOptions
	if c := o.RedisConfig; c != nil {
		ro.KeyPrefix, ro.Timeout = c.KeyPrefix, c.Timeout.Std()
	}
	var local Limiter
	switch rl.OnStoreError {
	case "", config.OnStoreErrorAllow:
		local = NewMemory(p, o.MaxKeys)
	case config.OnStoreErrorDeny:
	default:
		return nil, fmt.Errorf("ratelimit: policy %q: unknown on_store_error %q", p.name, rl.OnStoreError)
	}
	return NewFailover(NewRedis(o.Redis, p, ro), local, p, FailoverOptions{Logger: o.Logger, OnChange: o.OnChange}), nil
}
