// Package metrics holds Rampart's Prometheus collectors, registered on a
// registry the caller injects (never the global default registry).
//
// Recording is built for the request path. The proxy resolves a handle per
// route, target, listener and policy once, when it builds a runtime
// snapshot (Route, Target, Listener, WAF, RateLimit), and records into it
// per request without locking and without allocating: label children are
// looked up when the handle is made, and the per-status-code children of a
// route or target are cached in the handle on first use.
//
// A nil *Metrics is valid and records nothing: its handle constructors
// return nil handles, and every method of a nil handle returns at once. That
// is how the proxy runs with metrics switched off at no cost.
//
// Handles are shared: asking twice for the same route name returns the same
// handle, so a reload that keeps a route keeps its cached children. When a
// reload drops a route, target, listener or policy, the Retain* methods
// delete its series and retire its handle; a request of the old snapshot
// still in flight may record into a retired handle, which counts into
// children no longer exposed instead of bringing the series back.
package metrics

// docs/metrics.md's reference table is generated from the collectors New
// registers; a test in internal/metricsdoc fails when it is stale.
//go:generate go run ./internal/metricsdoc -doc ../docs/metrics.md

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Namespace prefixes every metric name.
const Namespace = "rampart"

// DurationBuckets are the upper bounds, in seconds, of
// rampart_request_duration_seconds: from half a millisecond (a direct
// response, a cached upstream connection on loopback) to 30 s (a slow
// upstream near the default read timeout).
var DurationBuckets = []float64{
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
}

// Values of the label "source" of rampart_tls_certificate_expiry_timestamp_seconds.
const (
	SourceStatic = "static" // a certificate file of the config
	SourceACME   = "acme"   // obtained automatically
)

// Metrics holds every Rampart collector. Create it with New; a nil
// *Metrics records nothing.
type Metrics struct {
	requests       *prometheus.CounterVec   // route, code
	duration       *prometheus.HistogramVec // route
	upRequests     *prometheus.CounterVec   // upstream, target, code
	targetState    *targetCollector         // upstream, target: health, ejections
	wafRequests    *prometheus.CounterVec   // policy, action
	wafMatches     *prometheus.CounterVec   // policy, rule_id
	wafExhausted   *prometheus.CounterVec   // policy
	traceErrors    prometheus.Counter       // tracing.go
	rlDecisions    *prometheus.CounterVec   // policy, decision
	rlDegraded     *prometheus.GaugeVec     // policy
	accessDenied   *prometheus.CounterVec   // route, reason (access.go)
	authRequests   *prometheus.CounterVec   // policy, result (auth.go)
	certExpiry     *prometheus.GaugeVec     // host, source
	reloads        *prometheus.CounterVec   // result
	reloadOK       prometheus.Gauge
	reloadOKTime   prometheus.Gauge
	activeConns    *prometheus.GaugeVec   // listener
	connsRefused   *prometheus.CounterVec // listener, reason
	timeouts       *prometheus.CounterVec // listener, kind
	protoRequests  *prometheus.CounterVec // listener, protocol
	buildInfo      *prometheus.GaugeVec   // version
	reloadSuccess  prometheus.Counter
	reloadFailures prometheus.Counter

	// wafBufferUsed reports rampart_waf_buffer_bytes (WAFBufferUsed).
	wafBufferUsed atomic.Pointer[func() int64]

	mu        sync.Mutex // guards the handle maps below
	routes    map[string]*RouteMetrics
	targets   map[TargetKey]*TargetMetrics
	listeners map[string]*ListenerMetrics
	wafs      map[string]*WAFMetrics
	limits    map[string]*RateLimitMetrics
	access    map[string]*AccessMetrics
	auths     map[string]*AuthMetrics
	certs     map[CertificateKey]struct{} // the expiry series set

	edge  edgeMetrics    // edge.go
	cache *cacheFamilies // cache.go
}

// NewRegistry returns an empty registry holding only the Go runtime and
// process collectors, ready for New.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// New creates Rampart's collectors and registers them on reg. version is
// the label of rampart_build_info. It fails when reg already holds a
// collector of the same name (New called twice on one registry).
func New(reg prometheus.Registerer, version string) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "requests_total",
			Help: "Downstream requests answered, by route and response status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "request_duration_seconds",
			Help:    "Time from a downstream request's headers read to its response written, by route.",
			Buckets: DurationBuckets,
		}, []string{"route"}),
		upRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "upstream_requests_total",
			Help: `Requests sent to upstream targets, by status code received ("0": no response).`,
		}, []string{"upstream", "target", "code"}),
		wafRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "waf_requests_total",
			Help: "Requests seen by a WAF policy: inspected (every one), blocked, detected (matched, let through).",
		}, []string{"policy", "action"}),
		wafMatches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "waf_rule_matches_total",
			Help: "WAF rule matches, by policy and rule id.",
		}, []string{"policy", "rule_id"}),
		wafExhausted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "waf_buffer_exhausted_total",
			Help: "Request or response bodies a WAF policy could not hold for inspection within waf_buffer_limit: refused with 503 (block mode) or passed uninspected (detect mode).",
		}, []string{"policy"}),
		rlDecisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "ratelimit_decisions_total",
			Help: "Rate limit decisions: allowed, refused, unavailable (store down, denied), fallback (store down, decided locally).",
		}, []string{"policy", "decision"}),
		rlDegraded: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "ratelimit_store_degraded",
			Help: "1 while the policy's shared store is failing and decisions fall back, else 0.",
		}, []string{"policy"}),
		certExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "tls_certificate_expiry_timestamp_seconds",
			Help: "Unix time at which the certificate served for the host expires.",
		}, []string{"host", "source"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "config_reloads_total",
			Help: "Configuration reload attempts, by result (success or failure).",
		}, []string{"result"}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "config_last_reload_successful",
			Help: "1 when the last configuration reload (or the initial load) succeeded, else 0.",
		}),
		reloadOKTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful configuration load or reload.",
		}),
		activeConns: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "active_connections",
			Help: "Downstream connections open, by listener.",
		}, []string{"listener"}),
		connsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "connections_refused_total",
			Help: "Downstream connections closed at accept, by listener and reason (max_connections, max_connections_per_ip, shutdown, proxy_protocol_untrusted, proxy_protocol_header).",
		}, []string{"listener", "reason"}),
		timeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "request_timeouts_total",
			Help: "Downstream requests cut by a timeout, by listener and kind (header: read_header_timeout, body: read_timeout, write: write_timeout, body_stall: body_timeout, send_stall: send_timeout).",
		}, []string{"listener", "kind"}),
		protoRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "requests_by_protocol_total",
			Help: "Downstream requests that reached the request pipeline, by listener and protocol (HTTP/1.1, HTTP/2.0).",
		}, []string{"listener", "protocol"}),
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "build_info",
			Help: "Always 1; the label says which Rampart version runs.",
		}, []string{"version"}),
		authRequests: newAuthRequests(),
		routes:       map[string]*RouteMetrics{},
		targets:      map[TargetKey]*TargetMetrics{},
		listeners:    map[string]*ListenerMetrics{},
		wafs:         map[string]*WAFMetrics{},
		limits:       map[string]*RateLimitMetrics{},
		access:       map[string]*AccessMetrics{},
		auths:        map[string]*AuthMetrics{},
		certs:        map[CertificateKey]struct{}{},
	}
	m.targetState = newTargetCollector(m)
	m.accessDenied = newAccessDenied()
	m.cache = newCacheFamilies()
	m.traceErrors = newTraceErrors()
	for _, c := range []prometheus.Collector{
		m.requests, m.duration, m.upRequests, m.targetState,
		m.wafRequests, m.wafMatches, m.wafExhausted, m.wafBufferGauge(), m.rlDecisions, m.rlDegraded, m.authRequests, m.certExpiry, m.accessDenied,
		m.reloads, m.reloadOK, m.reloadOKTime, m.activeConns, m.connsRefused, m.timeouts, m.protoRequests, m.buildInfo,
		m.traceErrors,
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, c := range m.edge.init() { // edge.go
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, c := range m.cache.collectors() { // cache.go
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m.buildInfo.WithLabelValues(version).Set(1)
	// Both results exist from the start so that rate() and increase() see
	// the first failure.
	m.reloadSuccess = m.reloads.WithLabelValues("success")
	m.reloadFailures = m.reloads.WithLabelValues("failure")
	// The process serves only after its first config loaded.
	m.reloadOK.Set(1)
	m.reloadOKTime.SetToCurrentTime()
	return m, nil
}

// ReloadSucceeded records a reload that was applied (or found identical to
// the running config).
func (m *Metrics) ReloadSucceeded() {
	if m == nil {
		return
	}
	m.reloadSuccess.Inc()
	m.reloadOK.Set(1)
	m.reloadOKTime.SetToCurrentTime()
}

// ReloadFailed records a reload that was refused; the old config serves on.
func (m *Metrics) ReloadFailed() {
	if m == nil {
		return
	}
	m.reloadFailures.Inc()
	m.reloadOK.Set(0)
}

// CertificateKey identifies a certificate expiry series.
type CertificateKey struct {
	Host   string
	Source string // SourceStatic or SourceACME
}

// SetCertificateExpiry records when the certificate served for host
// expires. source is SourceStatic or SourceACME.
func (m *Metrics) SetCertificateExpiry(host, source string, notAfter time.Time) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.certs[CertificateKey{Host: host, Source: source}] = struct{}{}
	m.certExpiry.WithLabelValues(host, source).Set(float64(notAfter.UnixNano()) / 1e9)
}

// RetainCertificates deletes the expiry series of every certificate not in
// keep: call it after a reload with the certificates now served.
func (m *Metrics) RetainCertificates(keep []CertificateKey) {
	if m == nil {
		return
	}
	set := setOf(keep)
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.certs {
		if _, ok := set[k]; !ok {
			delete(m.certs, k)
			m.certExpiry.DeleteLabelValues(k.Host, k.Source)
		}
	}
}
