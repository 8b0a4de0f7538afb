package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/balancer"
	"github.com/rampart-proxy/rampart/cache"
	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/metrics"
)

// cachePolicy is a running cache policy: its store and its misses in
// flight, kept by the next snapshot while the store's settings are the
// same (a memory store also when only its sizes changed), so that a
// reload keeps the entries.
type cachePolicy struct {
	name      string
	cfg       config.Cache
	store     cache.Store
	mem       *cache.Memory // the store, when in memory
	rclient   redis.UniversalClient
	flights   *cache.Flights
	metrics   *metrics.CacheMetrics
	limits    cache.Limits
	maxObject int
	coalesce  time.Duration
}

// cacheRedisPause is how long a Redis store stays away from a failing
// Redis before it asks again.
const cacheRedisPause = time.Second

// usesRedisCache reports whether any cache policy of cfg stores in Redis.
func usesRedisCache(cfg *config.Config) bool {
	for _, c := range cfg.Caches {
		if c != nil && c.Store == config.StoreRedis {
			return true
		}
	}
	return false
}

// buildCache gives r its cache policy. The first route built builds the
// snapshot's policies, every one the config defines (a policy no route
// names keeps its entries for a later reload, and can be purged).
func (s *Server) buildCache(e *edgeBuild, r *route) error {
	if e.dryRun {
		return nil // validated; nothing is opened
	}
	if e.snap.caches == nil {
		e.snap.caches = s.buildCaches(e)
	}
	if r.cfg.Cache == "" {
		return nil
	}
	pc := e.snap.caches[r.cfg.Cache]
	if pc == nil {
		return fmt.Errorf("route %q: cache policy %q is not defined", r.name, r.cfg.Cache)
	}
	r.cache = &routeCache{policy: pc}
	return nil
}

// buildCaches builds every cache policy of the config, reusing the
// running stores whose settings allow it.
func (s *Server) buildCaches(e *edgeBuild) map[string]*cachePolicy {
	out := make(map[string]*cachePolicy, len(e.cfg.Caches))
	for name, cc := range e.cfg.Caches {
		pc := &cachePolicy{name: name, cfg: *cc, metrics: s.metrics.Cache(name),
			limits: cache.Limits{MaxStale: cc.MaxStale.Std()}, maxObject: int(cc.MaxObjectSize),
			coalesce: cc.CoalesceTimeout.Std()}
		var old *cachePolicy
		if e.old != nil {
			old = e.old.caches[name]
		}
		switch {
		case old != nil && cc.Store == config.StoreMemory && old.mem != nil:
			pc.store, pc.mem, pc.flights = old.store, old.mem, old.flights
			if old.cfg.MaxSize != cc.MaxSize {
				pc.mem.SetMaxBytes(int64(cc.MaxSize))
			}
		case old != nil && cc.Store == config.StoreRedis && old.rclient != nil && old.rclient == e.snap.redis:
			pc.store, pc.rclient, pc.flights = old.store, old.rclient, old.flights
		case cc.Store == config.StoreRedis:
			prefix, timeout := config.DefaultRedisKeyPrefix, config.DefaultRedisTimeout
			if rc := e.cfg.Redis; rc != nil {
				prefix, timeout = rc.KeyPrefix, rc.Timeout.Std()
			}
			pc.rclient = e.snap.redis
			pc.store = cache.NewRedis(e.snap.redis, cache.RedisOptions{Prefix: prefix + "cache:" + name + ":",
				Timeout: timeout, Pause: cacheRedisPause, OnError: pc.metrics.StoreError})
			pc.flights = cache.NewFlights()
		default:
			m := pc.metrics
			pc.mem = cache.NewMemory(cache.MemoryOptions{MaxBytes: int64(cc.MaxSize), OnEvict: m.Evicted})
			pc.store, pc.flights = pc.mem, cache.NewFlights()
		}
		if pc.mem != nil {
			pc.metrics.SetBytes(pc.mem.Bytes)
		}
		out[name] = pc
	}
	s.metrics.RetainCaches(keysOf(out))
	return out
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// closeCaches closes the stores of s that next does not keep (next nil:
// all of them).
func (s *snapshot) closeCaches(next *snapshot) {
	for name, pc := range s.caches {
		if next != nil {
			if n := next.caches[name]; n != nil && n.store == pc.store {
				continue
			}
		}
		_ = pc.store.Close()
	}
}

// PurgeCache deletes cached answers (the admin API's POST
// /api/v1/cache/purge): of the policy name (""; every policy), the answer
// for rawURL and its variants, or every answer whose URL starts with
// prefix, or with both empty every answer. It returns how many entries
// went.
func (s *Server) PurgeCache(ctx context.Context, name, rawURL, prefix string) (int, error) {
	snap := s.snap.Load()
	if name != "" && snap.caches[name] == nil {
		return 0, fmt.Errorf("%w: %q", errNoCache, name)
	}
	var key string
	isPrefix := true
	switch {
	case rawURL != "" && prefix != "":
		return 0, fmt.Errorf("%w: url and prefix are exclusive", errBadPurge)
	case rawURL != "":
		k, err := cacheKeyOf(rawURL, false)
		if err != nil {
			return 0, err
		}
		key, isPrefix = k, false
	case prefix != "":
		k, err := cacheKeyOf(prefix, true)
		if err != nil {
			return 0, err
		}
		key = k
	}
	total := 0
	for pname, pc := range snap.caches {
		if name != "" && pname != name {
			continue
		}
		n, err := pc.store.Purge(ctx, key, isPrefix)
		total += n
		if err != nil {
			return total, err
		}
		if !isPrefix { // the URL's variants
			n, err = pc.store.Purge(ctx, key+"\x00", true)
			total += n
			if err != nil {
				return total, err
			}
		}
	}
	return total, nil
}

// errNoCache is a purge of a policy that does not exist; errBadPurge a
// purge whose URL or prefix is not one.
var (
	errNoCache  = errors.New("no such cache policy")
	errBadPurge = errors.New("invalid purge")
)

// cacheKeyOf turns a URL (or a URL prefix) into the key (prefix) the
// cache stores it under: "GET scheme://host/path?query", the host in
// lower case.
func cacheKeyOf(raw string, prefix bool) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%w: %q is not an http or https URL", errBadPurge, raw)
	}
	target := u.RequestURI()
	if prefix && u.Path == "" && u.RawQuery == "" {
		target = "" // every path of the host
	}
	if prefix && strings.HasSuffix(raw, "?") {
		target += "?"
	}
	return "GET " + u.Scheme + "://" + strings.ToLower(u.Host) + target, nil
}

// refreshInBackground revalidates a stale entry served under
// stale-while-revalidate, once per key at a time, without delaying the
// client: a copy of the request goes upstream from a goroutine of its own,
// with the entry's validators. A request with a body is not refreshed so.
func (x *exchange) refreshInBackground(e *cache.Entry) {
	c, ctx := &x.cacheX, x.ctx
	pc := c.pc
	if ctx.Request.IsBodyStream() || len(ctx.Request.Body()) > 0 {
		return
	}
	f, leader := pc.flights.Join(c.lookup)
	if !leader {
		return // a miss or a refresh is already under way
	}
	p := x.rt.pickPool(ctx)
	if p == nil {
		f.Done()
		return
	}
	t := p.pick(ctx, x, 0)
	if t == nil {
		f.Done()
		return
	}
	req := fasthttp.AcquireRequest()
	ctx.Request.Header.CopyTo(&req.Header)
	host := req.Header.Host()
	if uri := req.Header.RequestURI(); len(uri) > 0 && uri[0] != '/' {
		host = ctx.Host()
	}
	prepareRequest(req, x, host, forwardFlags(x.lr, isTrusted(x.st.Peer(), x.snap.trusted), false))
	delRequestFold(&req.Header, "If-None-Match")
	delRequestFold(&req.Header, "If-Modified-Since")
	if v := e.Get("etag"); v != "" {
		req.Header.Set("If-None-Match", v)
	}
	if v := e.Get("last-modified"); v != "" {
		req.Header.Set("If-Modified-Since", v)
	}
	// The answer's stored and vary keys are those of this request.
	job := &refreshJob{pc: pc, p: p, t: t, req: req, e: e, key: append([]byte(nil), c.lookup...),
		primary: append([]byte(nil), c.key...), reqCC: c.reqCC, authorized: peekFold(&c.rq, "Authorization") != nil}
	go job.run(f)
}

// refreshJob is one background revalidation.
type refreshJob struct {
	pc           *cachePolicy
	p            *pool
	t            *balancer.Target
	req          *fasthttp.Request
	e            *cache.Entry
	key, primary []byte
	reqCC        cache.Directives
	authorized   bool
}

// refreshTimeout bounds a background refresh's whole exchange.
const refreshTimeout = 30 * time.Second

func (j *refreshJob) run(f *cache.Flight) {
	defer f.Done()
	defer fasthttp.ReleaseRequest(j.req)
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	pc, t := j.pc, j.t
	reqTime := time.Now()
	t.State.Acquire()
	var body io.ReadCloser
	var err error
	if tr := j.p.transports[t.Index]; j.p.h2 {
		ctx, cancel := context.WithTimeout(context.Background(), refreshTimeout)
		defer cancel()
		body, err = tr.h2.RoundTrip(ctx, j.req, nil, resp)
	} else {
		body, _, err = tr.client.RoundTrip(j.req, resp, true, true)
	}
	status := resp.StatusCode()
	j.p.report(t, err != nil || status >= 500, reqTime)
	if err != nil {
		t.State.Release()
		return
	}
	now := time.Now()
	var data []byte
	if body != nil {
		// Read up to one byte past max_object_size, bounded in time by
		// the transport's read timeout.
		data, err = io.ReadAll(io.LimitReader(body, int64(pc.maxObject)+1))
		_ = body.Close()
	} else {
		data = resp.Body()
	}
	t.State.Release()
	if err != nil {
		return
	}
	switch {
	case status == fasthttp.StatusNotModified:
		pc.set(j.key, j.e.Refresh(storedFields(nil, &resp.Header), reqTime, now, pc.limits), now)
		pc.metrics.Revalidated()
	case status >= 500:
		// The stale entry stays: stale-if-error may still serve it.
	default:
		rs := &foldResponse{h: &resp.Header}
		resp304 := cache.ParseControl(rs)
		if cache.Storable(j.reqCC, resp304, status, rs, j.authorized) != "" ||
			len(data) > pc.maxObject || hasCookie(&resp.Header) {
			pc.purgeURL(string(j.primary))
			return
		}
		ne := &cache.Entry{Status: status, Header: storedFields(nil, &resp.Header), RequestTime: reqTime,
			ResponseTime: now, Body: append([]byte(nil), data...)}
		ne.Freshness(rs, resp304, pc.limits)
		ne.Vary = cache.VaryNames(rs)
		if len(ne.Vary) > 0 {
			// The variant key is computed from the request copy.
			pc.setMarker(j.primary, ne, now)
			pc.set(cache.AppendVaryKey(nil, string(j.primary), ne.Vary, &foldRequest{h: &j.req.Header}), ne, now)
			return
		}
		pc.set(j.primary, ne, now)
	}
}

func hasCookie(h *fasthttp.ResponseHeader) bool {
	found := false
	h.VisitAllCookie(func(_, _ []byte) { found = true })
	return found
}
