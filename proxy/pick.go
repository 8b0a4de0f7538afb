package proxy

import (
	"bytes"
	"crypto/tls"
	"math/rand/v2"
	"sync/atomic"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/balancer"
)

// pick chooses a target of p for the request, skipping the targets in
// tried. It fills the balancer's request from the client address, the pool's
// hash key and its sticky cookie, without allocating.
func (p *pool) pick(ctx *fasthttp.RequestCtx, x *exchange, tried uint64) *balancer.Target {
	b := p.balancer
	r := balancer.Request{ClientIP: x.clientIP, Tried: tried}
	if b.Balancer == "consistent_hash" {
		r.Key = hashKey(ctx, x, b.HashKey)
	}
	if b.Sticky() {
		r.Sticky = requestCookie(&ctx.Request.Header, p.cfg.Sticky.Cookie)
	}
	return b.PickFor(r)
}

// hashKey extracts what consistent_hash hashes; nil means the client IP.
// The query and the cookies are read without parsing them into the request:
// a request whose query args or cookies were parsed is written upstream
// from the parsed form, re-encoded, not as received (and inspected).
func hashKey(ctx *fasthttp.RequestCtx, x *exchange, k balancer.HashKey) []byte {
	switch k.Kind {
	case balancer.KeyHeader:
		return ctx.Request.Header.Peek(k.Name)
	case balancer.KeyCookie:
		return requestCookie(&ctx.Request.Header, k.Name)
	case balancer.KeyQuery:
		x.args.ParseBytes(ctx.URI().QueryString())
		return x.args.Peek(k.Name)
	case balancer.KeyPath:
		return ctx.Path()
	}
	return nil
}

// requestCookie returns the value of the cookie name in h's Cookie fields,
// read as received: Header.Cookie gathers them into one, which the upstream
// would then get rewritten. Surrounding quotes are dropped, as fasthttp
// does.
func requestCookie(h *fasthttp.RequestHeader, name string) []byte {
	if len(h.RawHeaders()) == 0 {
		return h.Cookie(name) // a header built in code
	}
	for k, v := range h.AllInOrder() {
		if !nameIs(k, "Cookie") {
			continue
		}
		for len(v) > 0 {
			c := v
			if i := bytes.IndexByte(v, ';'); i >= 0 {
				c, v = v[:i], v[i+1:]
			} else {
				v = nil
			}
			eq := bytes.IndexByte(c, '=')
			if eq < 0 || string(trimOWS(c[:eq])) != name {
				continue
			}
			val := trimOWS(c[eq+1:])
			if n := len(val); n >= 2 && val[0] == '"' && val[n-1] == '"' {
				val = val[1 : n-1]
			}
			return val
		}
	}
	return nil
}

// setStickyCookie pins the client to target i unless its cookie already
// does.
func (p *pool) setStickyCookie(ctx *fasthttp.RequestCtx, i int) {
	v := p.balancer.StickyValue(i)
	name := p.cfg.Sticky.Cookie
	if string(ctx.Request.Header.Cookie(name)) == v {
		return
	}
	c := fasthttp.AcquireCookie()
	c.SetKey(name)
	c.SetValue(v)
	c.SetPath("/")
	c.SetHTTPOnly(true)
	c.SetSameSite(fasthttp.CookieSameSiteLaxMode)
	ctx.Response.Header.SetCookie(c)
	fasthttp.ReleaseCookie(c)
}

// pickPool returns the pool that serves this request: the route's upstream,
// or one side of its split. A client whose sticky cookie names a target of
// one side stays on that side; others are split by weight.
func (r *route) pickPool(ctx *fasthttp.RequestCtx) *pool {
	if r.pool != nil || len(r.split) == 0 {
		return r.pool
	}
	for _, sp := range r.split {
		if sp.balancer.Sticky() {
			if v := ctx.Request.Header.Cookie(sp.cfg.Sticky.Cookie); len(v) > 0 && sp.balancer.StickyIndex(v) >= 0 {
				return sp
			}
		}
	}
	n := rand.IntN(r.splitCum[len(r.splitCum)-1])
	for i, c := range r.splitCum {
		if n < c {
			return r.split[i]
		}
	}
	return r.split[len(r.split)-1]
}

// retryBudget keeps retries to a share of a pool's traffic, so that an
// outage does not multiply the load on the targets that are left: each
// request earns a fifth of a retry, up to a reserve of ten, and each retry
// spends one.
type retryBudget struct {
	milli atomic.Int64 // thousandths of a retry
}

const (
	retryEarn    = 200   // per request: 20% of the traffic may be retried
	retryCost    = 1000  // per retry
	retryReserve = 10000 // at most ten retries saved up
)

func newRetryBudget() *retryBudget {
	b := &retryBudget{}
	b.milli.Store(retryReserve)
	return b
}

// earn credits one request.
func (b *retryBudget) earn() {
	if b.milli.Load() < retryReserve {
		b.milli.Add(retryEarn)
	}
}

// spend takes one retry from the budget, if there is one.
func (b *retryBudget) spend() bool {
	for {
		v := b.milli.Load()
		if v < retryCost {
			return false
		}
		if b.milli.CompareAndSwap(v, v-retryCost) {
			return true
		}
	}
}

// healthTLS is the TLS configuration health checks use for https targets:
// the one the pool's transports use, but for the server name, which each
// target's own host gives (an empty ServerName: the probe sets it from the
// target's URL) unless the upstream's tls.server_name names one for all.
func (p *pool) healthTLS() *tls.Config {
	for _, t := range p.transports {
		if t.tlsConfig != nil {
			if p.cfg.TLS != nil && p.cfg.TLS.ServerName != "" {
				return t.tlsConfig
			}
			c := t.tlsConfig.Clone()
			c.ServerName = ""
			return c
		}
	}
	return nil
}
