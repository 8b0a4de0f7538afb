package proxy

import (
	"io"

	"github.com/rampart-proxy/rampart/balancer"
)

// routeCache is a route's response cache (not built yet).
type routeCache struct{}

// cacheExchange is a request's cache state.
type cacheExchange struct{}

func (c *cacheExchange) reset() {}

// status is the request's cache outcome for the access log and traces
// (hit, miss, stale, ...; "": the route has no cache).
func (c *cacheExchange) status() string { return "" }

func (s *Server) buildCache(e *edgeBuild, r *route) error { return nil }

// serveCached answers from the cache and reports whether it did.
func (x *exchange) serveCached() bool { return false }

// cacheResponse stores the target's response when it may be, and returns
// the body to relay in body's place (nil: the body is whole in the
// response).
func (x *exchange) cacheResponse(t *balancer.Target, body io.ReadCloser) io.ReadCloser { return body }
