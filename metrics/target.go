package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TargetKey identifies a target within an upstream.
type TargetKey struct {
	Upstream string
	Target   string
}

// TargetState is a target's live state, read when Prometheus scrapes.
// *balancer.State implements it; Track connects the two, so the health
// gauge follows ejections that end by time alone without anyone pushing a
// value.
type TargetState interface {
	// Healthy reports whether active health checks consider the target up.
	Healthy() bool
	// Ejected reports whether passive outlier detection has ejected the
	// target at now.
	Ejected(now time.Time) bool
	// Ejections counts the target's ejections so far.
	Ejections() uint64
}

// TargetMetrics records one target of one upstream:
// rampart_upstream_requests_total, and the state behind
// rampart_upstream_target_healthy, rampart_upstream_ejections_total and
// rampart_upstream_retries_total. A nil *TargetMetrics records nothing.
type TargetMetrics struct {
	key   TargetKey
	codes codeTable

	// retries counts requests sent again after a failure here, by reason.
	retries [len(retryReasons)]atomic.Uint64

	// Either state is tracked, or the fields after it are pushed.
	state     atomic.Pointer[trackedState]
	down      atomic.Bool // pushed by SetHealthy; a target starts healthy
	ejections atomic.Uint64
}

// trackedState boxes a TargetState for atomic.Pointer.
type trackedState struct{ s TargetState }

// Target returns the handle of the target (by its address or URL, as the
// caller labels targets) in the upstream, creating it on first use. Call
// it when building a snapshot, not per request.
func (m *Metrics) Target(upstream, target string) *TargetMetrics {
	if m == nil {
		return nil
	}
	k := TargetKey{Upstream: upstream, Target: target}
	m.mu.Lock()
	defer m.mu.Unlock()
	if t := m.targets[k]; t != nil {
		return t
	}
	t := &TargetMetrics{key: k}
	t.codes.init(m.upRequests, []string{"upstream", "target"}, []string{upstream, target})
	m.targets[k] = t
	return t
}

// Observe records one request sent to the target and the status code it
// answered; 0 means no response (connect error, timeout). It does not
// allocate once the code has been seen on this target.
func (t *TargetMetrics) Observe(code int) {
	if t == nil {
		return
	}
	t.codes.counter(code).Inc()
}

// Reasons a request is sent again after a failure at a target: the label
// "reason" of rampart_upstream_retries_total.
const (
	// RetryStaleConnection: on a fresh connection to the same target, after
	// the target dropped the pooled connection the request was sent on.
	RetryStaleConnection = iota
	// RetryOtherTarget: on another target of the upstream.
	RetryOtherTarget
)

var retryReasons = [...]string{"stale_connection", "other_target"}

// Retried counts n requests sent again, for reason, after they failed at
// the target.
func (t *TargetMetrics) Retried(reason, n int) {
	if t == nil {
		return
	}
	t.retries[reason].Add(uint64(n))
}

// Track makes scrapes read the target's health and ejections from s
// instead of the values pushed with SetHealthy and Ejected. Calling it
// again replaces s (a reload that rebuilt the target's state).
func (t *TargetMetrics) Track(s TargetState) {
	if t == nil {
		return
	}
	if s == nil {
		t.state.Store(nil)
		return
	}
	t.state.Store(&trackedState{s: s})
}

// SetHealthy records whether the target may receive requests, when its
// state is not tracked.
func (t *TargetMetrics) SetHealthy(ok bool) {
	if t == nil {
		return
	}
	t.down.Store(!ok)
}

// Ejected counts one ejection of the target, when its state is not
// tracked.
func (t *TargetMetrics) Ejected() {
	if t == nil {
		return
	}
	t.ejections.Add(1)
}

// read returns the target's health and ejection count now.
func (t *TargetMetrics) read(now time.Time) (healthy bool, ejections uint64) {
	if p := t.state.Load(); p != nil {
		return p.s.Healthy() && !p.s.Ejected(now), p.s.Ejections()
	}
	return !t.down.Load(), t.ejections.Load()
}

// RetainTargets deletes the series of every target not in keep and
// retires its handle. Call it after a snapshot swap with the targets now
// serving.
func (m *Metrics) RetainTargets(keep []TargetKey) {
	if m == nil {
		return
	}
	set := setOf(keep)
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, t := range m.targets {
		if _, ok := set[k]; !ok {
			delete(m.targets, k)
			t.codes.retire()
		}
	}
}

// targetCollector reports the health, ejections and retries of every live
// target handle at scrape time.
type targetCollector struct {
	m         *Metrics
	healthy   *prometheus.Desc
	ejections *prometheus.Desc
	retries   *prometheus.Desc
	now       func() time.Time
}

func newTargetCollector(m *Metrics) *targetCollector {
	return &targetCollector{
		m: m,
		healthy: prometheus.NewDesc(Namespace+"_upstream_target_healthy",
			"1 when the target may receive requests (healthy and not ejected), else 0.",
			[]string{"upstream", "target"}, nil),
		ejections: prometheus.NewDesc(Namespace+"_upstream_ejections_total",
			"Times passive outlier detection ejected the target.",
			[]string{"upstream", "target"}, nil),
		retries: prometheus.NewDesc(Namespace+"_upstream_retries_total",
			`Requests sent again after a failure at the target: on a fresh connection to it, after it dropped a pooled connection (reason "stale_connection"), or on another target (reason "other_target").`,
			[]string{"upstream", "target", "reason"}, nil),
		now: time.Now,
	}
}

// Describe implements prometheus.Collector.
func (c *targetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.healthy
	ch <- c.ejections
	ch <- c.retries
}

// Collect implements prometheus.Collector.
func (c *targetCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	ts := make([]*TargetMetrics, 0, len(c.m.targets))
	for _, t := range c.m.targets {
		ts = append(ts, t)
	}
	c.m.mu.Unlock()
	now := c.now()
	for _, t := range ts {
		healthy, ejections := t.read(now)
		h := 0.0
		if healthy {
			h = 1
		}
		ch <- prometheus.MustNewConstMetric(c.healthy, prometheus.GaugeValue, h, t.key.Upstream, t.key.Target)
		ch <- prometheus.MustNewConstMetric(c.ejections, prometheus.CounterValue, float64(ejections), t.key.Upstream, t.key.Target)
		for r, name := range retryReasons {
			ch <- prometheus.MustNewConstMetric(c.retries, prometheus.CounterValue, float64(t.retries[r].Load()), t.key.Upstream, t.key.Target, name)
		}
	}
}
