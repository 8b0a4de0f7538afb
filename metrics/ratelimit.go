package metrics

import "github.com/prometheus/client_golang/prometheus"

// RateLimitMetrics records one rate limit policy:
// rampart_ratelimit_decisions_total and rampart_ratelimit_store_degraded.
// A nil *RateLimitMetrics records nothing.
type RateLimitMetrics struct {
	allowed, refused, unavailable, fallback prometheus.Counter
	degraded                                prometheus.Gauge
}

// RateLimit returns the handle of the policy, creating it on first use.
func (m *Metrics) RateLimit(policy string) *RateLimitMetrics {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.limits[policy]; r != nil {
		return r
	}
	r := &RateLimitMetrics{
		allowed:     m.rlDecisions.WithLabelValues(policy, "allowed"),
		refused:     m.rlDecisions.WithLabelValues(policy, "refused"),
		unavailable: m.rlDecisions.WithLabelValues(policy, "unavailable"),
		fallback:    m.rlDecisions.WithLabelValues(policy, "fallback"),
		degraded:    m.rlDegraded.WithLabelValues(policy),
	}
	m.limits[policy] = r
	return r
}

// Record counts one decision, from the fields of a ratelimit.Decision:
// unavailable (the store is down and the policy denies), else fallback
// (the store is down and this instance decided, either way), else allowed
// or refused.
func (r *RateLimitMetrics) Record(allowed, fallback, unavailable bool) {
	if r == nil {
		return
	}
	switch {
	case unavailable:
		r.unavailable.Inc()
	case fallback:
		r.fallback.Inc()
	case allowed:
		r.allowed.Inc()
	default:
		r.refused.Inc()
	}
}

// SetDegraded records whether the policy's shared store is failing (for
// ratelimit.FailoverOptions.OnChange).
func (r *RateLimitMetrics) SetDegraded(degraded bool) {
	if r == nil {
		return
	}
	if degraded {
		r.degraded.Set(1)
	} else {
		r.degraded.Set(0)
	}
}

// RetainRateLimits deletes the series of every policy not in policies
// and retires its handle.
func (m *Metrics) RetainRateLimits(policies []string) {
	if m == nil {
		return
	}
	keep := setOf(policies)
	m.mu.Lock()
	defer m.mu.Unlock()
	for name := range m.limits {
		if _, ok := keep[name]; !ok {
			delete(m.limits, name)
			m.rlDecisions.DeletePartialMatch(prometheus.Labels{"policy": name})
			m.rlDegraded.DeleteLabelValues(name)
		}
	}
}
