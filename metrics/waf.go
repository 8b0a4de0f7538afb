package metrics

import (
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// WAFMetrics records one WAF policy: rampart_waf_requests_total,
// rampart_waf_rule_matches_total and rampart_waf_buffer_exhausted_total. A
// nil *WAFMetrics records nothing.
type WAFMetrics struct {
	policy                       string
	inspected, blocked, detected prometheus.Counter
	exhausted                    prometheus.Counter

	vec   *prometheus.CounterVec // rule matches
	rules atomic.Pointer[map[int]prometheus.Counter]

	mu      sync.Mutex // serializes additions to rules, and guards retired
	retired bool       // the series were deleted; RuleMatched must not recreate them
}

// WAF returns the handle of the policy, creating it on first use.
func (m *Metrics) WAF(policy string) *WAFMetrics {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if w := m.wafs[policy]; w != nil {
		return w
	}
	w := &WAFMetrics{
		policy:    policy,
		inspected: m.wafRequests.WithLabelValues(policy, "inspected"),
		blocked:   m.wafRequests.WithLabelValues(policy, "blocked"),
		detected:  m.wafRequests.WithLabelValues(policy, "detected"),
		exhausted: m.wafExhausted.WithLabelValues(policy),
		vec:       m.wafMatches,
	}
	w.rules.Store(&map[int]prometheus.Counter{})
	m.wafs[policy] = w
	return w
}

// Inspected counts a request the policy inspected (every one, blocked or
// not).
func (w *WAFMetrics) Inspected() {
	if w != nil {
		w.inspected.Inc()
	}
}

// Blocked counts a request the policy refused.
func (w *WAFMetrics) Blocked() {
	if w != nil {
		w.blocked.Inc()
	}
}

// Detected counts a request that matched but was let through (detect
// mode).
func (w *WAFMetrics) Detected() {
	if w != nil {
		w.detected.Inc()
	}
}

// OverBudget counts a body the policy could not hold for inspection within
// the WAF buffer budget.
func (w *WAFMetrics) OverBudget() {
	if w != nil {
		w.exhausted.Inc()
	}
}

// RuleMatched counts one match of rule id. The rules are few and fixed by
// the policy, so the children live in a map replaced on each new id: a
// lookup takes no lock and allocates nothing.
func (w *WAFMetrics) RuleMatched(id int) {
	if w == nil {
		return
	}
	if c, ok := (*w.rules.Load())[id]; ok {
		c.Inc()
		return
	}
	w.addRule(id).Inc()
}

// addRule resolves the child of rule id and publishes a new map with it.
func (w *WAFMetrics) addRule(id int) prometheus.Counter {
	w.mu.Lock()
	defer w.mu.Unlock()
	old := *w.rules.Load()
	if c, ok := old[id]; ok {
		return c
	}
	if w.retired {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "retired", Help: "retired"})
	}
	c := w.vec.WithLabelValues(w.policy, strconv.Itoa(id))
	next := make(map[int]prometheus.Counter, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[id] = c
	w.rules.Store(&next)
	return c
}

// RetainWAF deletes the series of every policy not in policies and
// retires its handle.
func (m *Metrics) RetainWAF(policies []string) {
	if m == nil {
		return
	}
	keep := setOf(policies)
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, w := range m.wafs {
		if _, ok := keep[name]; ok {
			continue
		}
		delete(m.wafs, name)
		w.mu.Lock()
		w.retired = true
		m.wafMatches.DeletePartialMatch(prometheus.Labels{"policy": name})
		w.mu.Unlock()
		m.wafRequests.DeletePartialMatch(prometheus.Labels{"policy": name})
		m.wafExhausted.DeletePartialMatch(prometheus.Labels{"policy": name})
	}
}

// WAFBufferUsed makes rampart_waf_buffer_bytes report used(): the bytes of
// bodies held for WAF inspection now, process-wide.
func (m *Metrics) WAFBufferUsed(used func() int64) {
	if m != nil {
		m.wafBufferUsed.Store(&used)
	}
}

// wafBufferGauge reads the function given to WAFBufferUsed (0 before).
func (m *Metrics) wafBufferGauge() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "waf_buffer_bytes",
		Help: "Bytes of request and response bodies held in memory for WAF inspection now (bounded by waf_buffer_limit).",
	}, func() float64 {
		if f := m.wafBufferUsed.Load(); f != nil {
			return float64((*f)())
		}
		return 0
	})
}
