package cache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a store shared by every instance, in Redis. Redis is a cache
// here, never a source of truth: when it fails, lookups return
// ErrUnavailable (the request is a miss) and the store pauses for
// RedisOptions.Pause before it asks again, so that a dead Redis costs
// requests nothing. Writes go in the background, a bounded number at a
// time.
type Redis struct {
	c       redis.UniversalClient
	prefix  string
	timeout time.Duration
	pause   time.Duration
	// downUntil is when a paused store tries Redis again (Unix ns).
	downUntil atomic.Int64
	writes    chan struct{} // one token per write in flight
	onError   func()
}

// RedisOptions configure NewRedis.
type RedisOptions struct {
	// Prefix starts every key (the redis section's key_prefix, "cache:"
	// and the policy's name).
	Prefix string
	// Timeout bounds each lookup and write. Default 50ms.
	Timeout time.Duration
	// Pause is how long the store stays away from Redis after a
	// failure. Default one second.
	Pause time.Duration
	// MaxWrites bounds the writes in flight; more are dropped. Default 64.
	MaxWrites int
	// OnError, when set, is called for each failed call to Redis.
	OnError func()
}

// NewRedis returns a store on client c, which the caller owns.
func NewRedis(c redis.UniversalClient, o RedisOptions) *Redis {
	if o.Timeout <= 0 {
		o.Timeout = 50 * time.Millisecond
	}
	if o.Pause <= 0 {
		o.Pause = time.Second
	}
	if o.MaxWrites <= 0 {
		o.MaxWrites = 64
	}
	return &Redis{c: c, prefix: o.Prefix, timeout: o.Timeout, pause: o.Pause,
		writes: make(chan struct{}, o.MaxWrites), onError: o.OnError}
}

// available reports whether the store is not paused after a failure.
func (r *Redis) available() bool {
	until := r.downUntil.Load()
	return until == 0 || time.Now().UnixNano() >= until
}

// failed pauses the store.
func (r *Redis) failed() {
	r.downUntil.Store(time.Now().Add(r.pause).UnixNano())
	if r.onError != nil {
		r.onError()
	}
}

// Get returns the entry under key; ErrUnavailable when Redis fails or
// the store is paused.
func (r *Redis) Get(ctx context.Context, key string) (*Entry, error) {
	if !r.available() {
		return nil, ErrUnavailable
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	b, err := r.c.Get(ctx, r.prefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		r.downUntil.Store(0)
		return nil, nil
	}
	if err != nil {
		r.failed()
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	r.downUntil.Store(0)
	e, err := Decode(b)
	if err != nil {
		return nil, nil // another version's or a damaged entry: a miss
	}
	return e, nil
}

// Set stores e under key for ttl, in the background: it returns ErrBusy
// when too many writes are in flight and ErrUnavailable while the store is
// paused, and nil once the write is on its way.
func (r *Redis) Set(_ context.Context, key string, e *Entry, ttl time.Duration) error {
	if !r.available() {
		return ErrUnavailable
	}
	select {
	case r.writes <- struct{}{}:
	default:
		return ErrBusy
	}
	b := Encode(make([]byte, 0, e.Size()), e)
	go func() {
		defer func() { <-r.writes }()
		ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
		defer cancel()
		if err := r.c.Set(ctx, r.prefix+key, b, ttl).Err(); err != nil {
			r.failed()
		}
	}()
	return nil
}

// Flush waits, up to timeout, for the writes in flight (for tests and
// for a clean shutdown).
func (r *Redis) Flush(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if len(r.writes) == 0 {
			return true
		}
		time.Sleep(time.Millisecond)
	}
	return len(r.writes) == 0
}

// purgeBatches bounds the SCAN rounds of one purge.
const purgeBatches = 100_000

// Purge deletes key, or every key it prefixes (SCAN and UNLINK; the
// admin API's path, not the request path: it is bounded by ctx).
func (r *Redis) Purge(ctx context.Context, key string, prefix bool) (int, error) {
	if !prefix {
		n, err := r.c.Unlink(ctx, r.prefix+key).Result()
		return int(n), err
	}
	pattern := globEscape(r.prefix+key) + "*"
	total := 0
	var cursor uint64
	for range purgeBatches {
		keys, next, err := r.c.Scan(ctx, cursor, pattern, 1000).Result()
		if err != nil {
			return total, err
		}
		if len(keys) > 0 {
			n, err := r.c.Unlink(ctx, keys...).Result()
			total += int(n)
			if err != nil {
				return total, err
			}
		}
		if cursor = next; cursor == 0 {
			return total, nil
		}
	}
	return total, errors.New("cache: purge did not finish")
}

// globEscape quotes the characters SCAN's MATCH treats as a pattern.
func globEscape(s string) string {
	if !strings.ContainsAny(s, `*?[]\`) {
		return s
	}
	var b strings.Builder
	for _, c := range []byte(s) {
		switch c {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}

// Close waits briefly for the writes in flight; the client is the
// caller's.
func (r *Redis) Close() error {
	r.Flush(r.timeout * 2)
	return nil
}
