package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RouteMetrics records the requests of one route: rampart_requests_total
// and rampart_request_duration_seconds. A nil *RouteMetrics records
// nothing.
type RouteMetrics struct {
	codes    codeTable
	duration prometheus.Observer
}

// Route returns the handle of the route name, creating it (and its
// duration series) on first use. Call it when building a snapshot, not per
// request.
func (m *Metrics) Route(name string) *RouteMetrics {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.routes[name]; r != nil {
		return r
	}
	r := &RouteMetrics{duration: m.duration.WithLabelValues(name)}
	r.codes.init(m.requests, []string{"route"}, []string{name})
	m.routes[name] = r
	return r
}

// Observe records one answered request: its status code and the time it
// took. It does not allocate once the code has been seen on this route.
func (r *RouteMetrics) Observe(code int, d time.Duration) {
	if r == nil {
		return
	}
	r.codes.counter(code).Inc()
	r.duration.Observe(d.Seconds())
}

// RetainRoutes deletes the series of every route not in names and retires
// its handle. Call it after a snapshot swap with the routes now serving.
func (m *Metrics) RetainRoutes(names []string) {
	if m == nil {
		return
	}
	keep := setOf(names)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.retainEdge(keep) // edge.go
	for name, r := range m.routes {
		if _, ok := keep[name]; !ok {
			delete(m.routes, name)
			r.codes.retire()
			m.duration.DeleteLabelValues(name)
		}
	}
	m.retainAccess(keep)
}

// setOf returns the elements of s as a set.
func setOf[T comparable](s []T) map[T]struct{} {
	set := make(map[T]struct{}, len(s))
	for _, v := range s {
		set[v] = struct{}{}
	}
	return set
}
