package proxy

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/ratelimit"
	proxytls "github.com/rampart-proxy/rampart/tls"
	"github.com/rampart-proxy/rampart/waf"
)

// assembly is what a config compiles to: the snapshot, and the Redis client
// its stores use (the running one when the redis section is unchanged).
type assembly struct {
	snap  *snapshot
	redis redis.UniversalClient
}

// assemble builds everything cfg describes, off the request path. It is
// the one build path of the first start (New, old nil), a reload (Reload,
// old the running snapshot) and `rampart validate` (Check, dryRun).
//
// From old it keeps what has the same settings: rate limiters with their
// counts, compiled WAF policies, transports with their pooled connections,
// the access log. A dry run opens nothing that outlives it: the WAF is
// validated rather than compiled (no audit log opened), TLS settings are
// checked rather than served (no certificate loaded into a manager, no
// ACME), no access log is opened; Redis clients connect lazily, so none is
// dialed.
//
// On error, whatever assemble opened is closed again and old is untouched.
func (s *Server) assemble(cfg *config.Config, old *snapshot, dryRun bool) (_ *assembly, err error) {
	a := &assembly{} // what is built so far: the deferred cleanup reads it
	var policies map[string]*waf.Policy
	defer func() {
		if err == nil {
			return
		}
		if a.snap != nil {
			a.snap.closeTLS()
			closeNewAuth(a.snap, old) // auth.go
			a.snap.closeCaches(old)
		}
		if policies != nil && !dryRun {
			closeNew(policies, old)
		}
		s.closeRedisIfNew(a.redis)
	}()
	if a.redis, err = s.redisFor(cfg, old); err != nil {
		return nil, err
	}
	limits, err := buildLimits(cfg, a.redis, s.log, s.metrics)
	if err != nil {
		return nil, err
	}
	if old != nil {
		reuseLimits(limits, cfg, old, a.redis != s.redis)
	}
	var tb *tlsBuild
	if dryRun {
		if policies, err = checkWAF(cfg); err != nil {
			return nil, err
		}
		for _, name := range sortedKeys(cfg.Listeners) {
			if t := cfg.Listeners[name].TLS; t != nil {
				if err := proxytls.Check(name, t); err != nil {
					return nil, err
				}
			}
		}
	} else {
		if policies, err = buildWAF(cfg, old, s.audits, s.metrics, s.wafBuffer, s.log); err != nil {
			policies = nil // buildWAF closed what it built
			return nil, err
		}
		tb = s.tlsBuild(a.redis)
	}
	if a.snap, err = buildSnapshot(cfg, old, s.reg, s.balancerOptions(), limits, s.metrics, tb, policies, s.workers); err != nil {
		return nil, err
	}
	a.snap.redis = a.redis
	if err = s.buildEdges(cfg, old, a.snap, dryRun); err != nil { // edge.go
		return nil, err
	}
	if a.snap.tracing, err = s.buildTracing(cfg, old, dryRun); err != nil { // trace.go
		return nil, err
	}
	if !dryRun {
		if old != nil && old.cfg.AccessLog.Path == cfg.AccessLog.Path {
			a.snap.access = old.access.reformat(cfg.AccessLog) // the same file, the format anew
		} else if a.snap.access, err = openAccessLog(cfg.AccessLog); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// discard closes what a built assembly holds that old does not share: for
// a reload that fails after assemble (a listener cannot be bound).
func (s *Server) discard(a *assembly, old *snapshot) {
	a.snap.closeTLS()
	a.snap.closeCaches(old)
	closeNew(a.snap.waf, old)
	closeNewAuth(a.snap, old) // auth.go
	if old == nil || !a.snap.access.shares(old.access) {
		_ = a.snap.access.Close()
	}
	if old == nil || a.snap.tracing != old.tracing {
		_ = a.snap.tracing.shutdown(context.Background())
	}
	s.closeRedisIfNew(a.redis)
}

// retire closes, once requests that began under old are done with them,
// what old had that next no longer uses: TLS managers (handshakes that
// began with the old certificates may still ask for them for a moment),
// WAF policies, the access log. The idle HTTP/2 connections of transports
// next dropped (a target removed, or its settings changed) close at once,
// and again then: streams in flight finish first.
func retire(old, next *snapshot) {
	dropped := old.droppedTransports(next)
	for _, t := range dropped {
		t.closeIdle()
	}
	time.AfterFunc(time.Minute, func() {
		old.closeTLS()
		old.closeCaches(next)
		retireWAF(old, next)
		retireAuth(old, next) // auth.go
		if !old.access.shares(next.access) {
			_ = old.access.Close()
		}
		if old.tracing != next.tracing {
			_ = old.tracing.shutdown(context.Background()) // flushes its spans
		}
		for _, t := range dropped {
			t.closeIdle()
		}
	})
}

// droppedTransports are the transports of s that next does not reuse.
func (s *snapshot) droppedTransports(next *snapshot) []*transport {
	var out []*transport
	for k, t := range s.transports {
		if next == nil || next.transports[k] != t {
			out = append(out, t)
		}
	}
	return out
}

// checkWAF validates cfg's WAF policies without compiling them for real
// (which would open their audit logs). The snapshot needs only their names.
func checkWAF(cfg *config.Config) (map[string]*waf.Policy, error) {
	base := ""
	if cfg.File != "" {
		base = filepath.Dir(cfg.File)
	}
	if err := waf.Validate(cfg.WAF, base); err != nil {
		return nil, err
	}
	names := make(map[string]*waf.Policy, len(cfg.WAF))
	for name := range cfg.WAF {
		names[name] = nil
	}
	return names, nil
}

// redisFor returns the Redis client cfg needs: the running one when the
// redis section is unchanged from old's, a new one otherwise, nil when none
// is needed.
func (s *Server) redisFor(cfg *config.Config, old *snapshot) (redis.UniversalClient, error) {
	if cfg.Redis == nil || !(usesRedis(cfg) || usesRedisACME(cfg) || usesRedisCache(cfg)) {
		return nil, nil
	}
	if s.redis != nil && old != nil && reflect.DeepEqual(old.cfg.Redis, cfg.Redis) {
		return s.redis, nil
	}
	c, err := newRedisClient(cfg.Redis)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	return c, nil
}

// newRedisClient makes the Redis clients of builds (a test's seam: it
// sees every client made).
var newRedisClient = ratelimit.NewRedisClient

// closeRedisIfNew closes c unless it is the running client.
func (s *Server) closeRedisIfNew(c redis.UniversalClient) {
	if c != nil && c != s.redis {
		_ = c.Close()
	}
}

// reuseLimits puts in fresh the running limiter of every policy whose
// settings are unchanged from old's, so that a reload does not reset
// anybody's count. Redis-backed ones are kept only when the Redis client is
// (newClient false): the old limiter talks to the old one.
func reuseLimits(fresh map[string]*limit, cfg *config.Config, old *snapshot, newClient bool) {
	for name := range fresh {
		prev, ok := old.limits[name]
		if !ok || !reflect.DeepEqual(old.cfg.RateLimits[name], cfg.RateLimits[name]) {
			continue
		}
		if cfg.RateLimits[name].Store == config.StoreRedis && newClient {
			continue
		}
		fresh[name] = prev
	}
}
