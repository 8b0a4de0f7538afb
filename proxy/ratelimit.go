package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/metrics"
	"github.com/rampart-proxy/rampart/ratelimit"
)

// limit is a compiled rate limit policy.
type limit struct {
	name    string
	policy  ratelimit.Policy
	limiter ratelimit.Limiter
	// memories are the in-memory stores to sweep (the store itself, or the
	// fallback of a Redis store).
	memories []*ratelimit.Memory
	// header is the key's header name for header:NAME keys ("" otherwise);
	// byRoute keys on the route's name.
	header  string
	byRoute bool
	// policyHeader is the RateLimit-Policy value, built once.
	policyHeader []byte
	metrics      *metrics.RateLimitMetrics
}

// buildLimits compiles every rate limit policy of cfg. client is the shared
// Redis client (nil when no policy uses Redis).
func buildLimits(cfg *config.Config, client redis.UniversalClient, log *slog.Logger, m *metrics.Metrics) (map[string]*limit, error) {
	out := make(map[string]*limit, len(cfg.RateLimits))
	for _, name := range sortedKeys(cfg.RateLimits) {
		rl := cfg.RateLimits[name]
		p, err := ratelimit.NewPolicy(name, rl)
		if err != nil {
			return nil, fmt.Errorf("rate limit %q: %w", name, err)
		}
		l := &limit{name: name, policy: p, policyHeader: p.AppendPolicyHeader(nil), metrics: m.RateLimit(name)}
		switch {
		case rl.Key == config.DefaultRateLimitKey || rl.Key == "":
		case rl.Key == "route":
			l.byRoute = true
		case strings.HasPrefix(rl.Key, "header:"):
			l.header = strings.TrimPrefix(rl.Key, "header:")
		default:
			return nil, fmt.Errorf("rate limit %q: unknown key %q", name, rl.Key)
		}
		if rl.Store == config.StoreRedis {
			if client == nil {
				return nil, fmt.Errorf("rate limit %q: store redis needs the redis section", name)
			}
			var local ratelimit.Limiter
			if rl.OnStoreError != config.OnStoreErrorDeny {
				m := ratelimit.NewMemory(p, 0)
				l.memories = append(l.memories, m)
				local = m
			}
			// Decisions in flight at once share round trips to Redis: one
			// write and one read carry many of them.
			scripter := ratelimit.ScriptClient(client)
			var ro ratelimit.RedisOptions
			if cfg.Redis != nil {
				ro.KeyPrefix, ro.Timeout = cfg.Redis.KeyPrefix, cfg.Redis.Timeout.Std()
			}
			l.limiter = ratelimit.NewFailover(ratelimit.NewRedis(scripter, p, ro), local, p,
				ratelimit.FailoverOptions{Logger: log.With("rate_limit", name), OnChange: l.metrics.SetDegraded})
		} else {
			m := ratelimit.NewMemory(p, 0)
			l.memories = append(l.memories, m)
			l.limiter = m
		}
		out[name] = l
	}
	return out, nil
}

// usesRedis reports whether any rate limit policy of cfg stores in Redis.
func usesRedis(cfg *config.Config) bool {
	for _, rl := range cfg.RateLimits {
		if rl.Store == config.StoreRedis {
			return true
		}
	}
	return false
}

// key returns what the request is counted under: never a value the client
// chooses freely, except for header:NAME keys, which exist for API keys.
// Header values and client addresses are kept apart by a prefix, so that a
// client cannot spend another's budget by sending its address as the key.
func (l *limit) key(ctx *fasthttp.RequestCtx, x *exchange, rt *route) []byte {
	switch {
	case l.byRoute:
		return rt.nameBytes
	case l.header != "":
		if v := ctx.Request.Header.Peek(l.header); len(v) > 0 {
			x.key = append(append(x.key[:0], "h:"...), v...)
			return x.key
		}
	}
	x.key = append(append(x.key[:0], "ip:"...), x.client...)
	return x.key
}

// check decides the request. It returns false after answering it (429, or
// 503 when the shared store is down and the policy says deny).
func (x *exchange) checkLimit() bool {
	ctx, rt := x.ctx, x.rt
	lim := rt.limit
	d, err := lim.limiter.Allow(context.Background(), lim.key(ctx, x, rt), time.Now())
	if err != nil {
		// Only a misconfigured limiter errs (Failover never does): fail open,
		// loudly, rather than take the route down.
		x.l.srv.log.Error("rate limit", "rate_limit", lim.name, "error", err.Error())
		return true
	}
	x.limit, x.decision = lim, d
	lim.metrics.Record(d.Allowed, d.Fallback, d.Unavailable)
	switch {
	case d.Unavailable:
		ctx.Response.Header.SetBytesV("Retry-After", ratelimit.AppendRetryAfter(x.hdr[:0], d))
		x.finish(fasthttp.StatusServiceUnavailable, bodyLimitUnavailable)
		return false
	case !d.Allowed:
		ctx.Response.Header.SetBytesV("Retry-After", ratelimit.AppendRetryAfter(x.hdr[:0], d))
		x.finish(fasthttp.StatusTooManyRequests, bodyTooManyRequests)
		return false
	}
	return true
}

// setLimitHeaders adds the IETF RateLimit-Policy and RateLimit fields
// (draft-ietf-httpapi-ratelimit-headers) to an answer, so that clients can
// pace themselves.
func setLimitHeaders(h *fasthttp.ResponseHeader, x *exchange) {
	if x.limit == nil {
		return
	}
	setFold(h, "RateLimit-Policy", x.limit.policyHeader)
	x.hdr = x.limit.policy.AppendHeader(x.hdr[:0], x.decision)
	setFold(h, "RateLimit", x.hdr)
}

// sweepLimits clears expired keys from the in-memory stores every minute
// until stop is closed, so that memory shrinks back after a flood.
func sweepLimits(limits func() map[string]*limit, stop <-chan struct{}) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			for _, l := range limits() {
				for _, m := range l.memories {
					m.Sweep(now)
				}
			}
		}
	}
}
