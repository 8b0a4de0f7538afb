package metrics

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/rampart-proxy/rampart/compress"
)

// newTest returns Metrics on a fresh registry holding the Go and process
// collectors, as the proxy wires them.
func newTest(t testing.TB) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := NewRegistry()
	m, err := New(reg, "v1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

// recordAll records one sample into every Rampart family.
func recordAll(m *Metrics) {
	m.Route("api").Observe(200, 3*time.Millisecond)
	m.Route("api").Observe(503, time.Second)
	tm := m.Target("api", "10.0.0.1:8080")
	tm.Observe(200)
	tm.SetHealthy(false)
	tm.Ejected()
	tm.Retried(RetryStaleConnection, 2)
	m.Listener("web").Inc()
	w := m.WAF("default")
	w.Inspected()
	w.Blocked()
	w.RuleMatched(942100)
	rl := m.RateLimit("per_ip")
	rl.Record(true, false, false)
	rl.SetDegraded(true)
	m.Auth("admins").Record(AuthDenied)
	m.SetCertificateExpiry("example.com", SourceStatic, time.Unix(2000000000, 0))
	m.ReloadFailed()
	m.Compress("api").Compressed(compress.Gzip, 1000, 300)
	m.Mirror("api").Record(MirrorDropped)
}

// families gathers reg into a map by name.
func families(t *testing.T, reg prometheus.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]*dto.MetricFamily, len(mfs))
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func labelNames(m *dto.Metric) string {
	var names []string
	for _, l := range m.GetLabel() {
		names = append(names, l.GetName())
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

func TestExpositionHasEveryFamily(t *testing.T) {
	m, reg := newTest(t)
	recordAll(m)
	got := families(t, reg)
	tests := []struct {
		name   string
		typ    dto.MetricType
		labels string // sorted label names
	}{
		{"rampart_requests_total", dto.MetricType_COUNTER, "code,route"},
		{"rampart_request_duration_seconds", dto.MetricType_HISTOGRAM, "route"},
		{"rampart_upstream_requests_total", dto.MetricType_COUNTER, "code,target,upstream"},
		{"rampart_upstream_target_healthy", dto.MetricType_GAUGE, "target,upstream"},
		{"rampart_upstream_ejections_total", dto.MetricType_COUNTER, "target,upstream"},
		{"rampart_upstream_retries_total", dto.MetricType_COUNTER, "reason,target,upstream"},
		{"rampart_waf_requests_total", dto.MetricType_COUNTER, "action,policy"},
		{"rampart_waf_rule_matches_total", dto.MetricType_COUNTER, "policy,rule_id"},
		{"rampart_ratelimit_decisions_total", dto.MetricType_COUNTER, "decision,policy"},
		{"rampart_ratelimit_store_degraded", dto.MetricType_GAUGE, "policy"},
		{"rampart_auth_requests_total", dto.MetricType_COUNTER, "policy,result"},
		{"rampart_tls_certificate_expiry_timestamp_seconds", dto.MetricType_GAUGE, "host,source"},
		{"rampart_config_reloads_total", dto.MetricType_COUNTER, "result"},
		{"rampart_config_last_reload_successful", dto.MetricType_GAUGE, ""},
		{"rampart_config_last_reload_success_timestamp_seconds", dto.MetricType_GAUGE, ""},
		{"rampart_active_connections", dto.MetricType_GAUGE, "listener"},
		{"rampart_build_info", dto.MetricType_GAUGE, "version"},
		{"rampart_compressed_responses_total", dto.MetricType_COUNTER, "encoding,route"},
		{"rampart_compression_input_bytes_total", dto.MetricType_COUNTER, "encoding,route"},
		{"rampart_compression_output_bytes_total", dto.MetricType_COUNTER, "encoding,route"},
		{"rampart_mirror_requests_total", dto.MetricType_COUNTER, "result,route"},
		{"go_goroutines", dto.MetricType_GAUGE, ""},
		{"process_start_time_seconds", dto.MetricType_GAUGE, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mf := got[tt.name]
			if mf == nil {
				t.Fatalf("family missing")
			}
			if mf.GetType() != tt.typ {
				t.Errorf("type %v; want %v", mf.GetType(), tt.typ)
			}
			if mf.GetHelp() == "" {
				t.Errorf("no help text")
			}
			for _, s := range mf.GetMetric() {
				if l := labelNames(s); l != tt.labels {
					t.Errorf("labels %q; want %q", l, tt.labels)
				}
			}
		})
	}
}

func TestValues(t *testing.T) {
	m, reg := newTest(t)
	recordAll(m)
	want := `
# HELP rampart_requests_total Downstream requests answered, by route and response status code.
# TYPE rampart_requests_total counter
rampart_requests_total{code="200",route="api"} 1
rampart_requests_total{code="503",route="api"} 1
# HELP rampart_upstream_target_healthy 1 when the target may receive requests (healthy and not ejected), else 0.
# TYPE rampart_upstream_target_healthy gauge
rampart_upstream_target_healthy{target="10.0.0.1:8080",upstream="api"} 0
# HELP rampart_upstream_ejections_total Times passive outlier detection ejected the target.
# TYPE rampart_upstream_ejections_total counter
rampart_upstream_ejections_total{target="10.0.0.1:8080",upstream="api"} 1
# HELP rampart_upstream_retries_total Requests sent again after a failure at the target: on a fresh connection to it, after it dropped a pooled connection (reason "stale_connection"), or on another target (reason "other_target").
# TYPE rampart_upstream_retries_total counter
rampart_upstream_retries_total{reason="other_target",target="10.0.0.1:8080",upstream="api"} 0
rampart_upstream_retries_total{reason="stale_connection",target="10.0.0.1:8080",upstream="api"} 2
# HELP rampart_waf_requests_total Requests seen by a WAF policy: inspected (every one), blocked, detected (matched, let through).
# TYPE rampart_waf_requests_total counter
rampart_waf_requests_total{action="blocked",policy="default"} 1
rampart_waf_requests_total{action="detected",policy="default"} 0
rampart_waf_requests_total{action="inspected",policy="default"} 1
# HELP rampart_waf_rule_matches_total WAF rule matches, by policy and rule id.
# TYPE rampart_waf_rule_matches_total counter
rampart_waf_rule_matches_total{policy="default",rule_id="942100"} 1
# HELP rampart_ratelimit_decisions_total Rate limit decisions: allowed, refused, unavailable (store down, denied), fallback (store down, decided locally).
# TYPE rampart_ratelimit_decisions_total counter
rampart_ratelimit_decisions_total{decision="allowed",policy="per_ip"} 1
rampart_ratelimit_decisions_total{decision="fallback",policy="per_ip"} 0
rampart_ratelimit_decisions_total{decision="refused",policy="per_ip"} 0
rampart_ratelimit_decisions_total{decision="unavailable",policy="per_ip"} 0
# HELP rampart_ratelimit_store_degraded 1 while the policy's shared store is failing and decisions fall back, else 0.
# TYPE rampart_ratelimit_store_degraded gauge
rampart_ratelimit_store_degraded{policy="per_ip"} 1
# HELP rampart_auth_requests_total Requests checked by an authentication policy, by policy and result (ok, denied, error, ratelimited).
# TYPE rampart_auth_requests_total counter
rampart_auth_requests_total{policy="admins",result="denied"} 1
rampart_auth_requests_total{policy="admins",result="error"} 0
rampart_auth_requests_total{policy="admins",result="ok"} 0
rampart_auth_requests_total{policy="admins",result="ratelimited"} 0
# HELP rampart_tls_certificate_expiry_timestamp_seconds Unix time at which the certificate served for the host expires.
# TYPE rampart_tls_certificate_expiry_timestamp_seconds gauge
rampart_tls_certificate_expiry_timestamp_seconds{host="example.com",source="static"} 2e+09
# HELP rampart_config_reloads_total Configuration reload attempts, by result (success or failure).
# TYPE rampart_config_reloads_total counter
rampart_config_reloads_total{result="failure"} 1
rampart_config_reloads_total{result="success"} 0
# HELP rampart_config_last_reload_successful 1 when the last configuration reload (or the initial load) succeeded, else 0.
# TYPE rampart_config_last_reload_successful gauge
rampart_config_last_reload_successful 0
# HELP rampart_active_connections Downstream connections open, by listener.
# TYPE rampart_active_connections gauge
rampart_active_connections{listener="web"} 1
# HELP rampart_build_info Always 1; the label says which Rampart version runs.
# TYPE rampart_build_info gauge
rampart_build_info{version="v1.2.3"} 1
`
	names := []string{
		"rampart_requests_total", "rampart_upstream_target_healthy", "rampart_upstream_ejections_total",
		"rampart_upstream_retries_total", "rampart_waf_requests_total", "rampart_waf_rule_matches_total", "rampart_ratelimit_decisions_total",
		"rampart_ratelimit_store_degraded", "rampart_auth_requests_total", "rampart_tls_certificate_expiry_timestamp_seconds",
		"rampart_config_reloads_total", "rampart_config_last_reload_successful",
		"rampart_active_connections", "rampart_build_info",
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	m.ReloadSucceeded()
	if got := testutil.ToFloat64(m.reloadOK); got != 1 {
		t.Errorf("last reload successful after success = %v; want 1", got)
	}
	if got := testutil.ToFloat64(m.reloadSuccess); got != 1 {
		t.Errorf("reloads success = %v; want 1", got)
	}
	if got := testutil.CollectAndCount(m.duration); got != 1 {
		t.Errorf("duration series = %d; want 1", got)
	}
}

func TestPromlint(t *testing.T) {
	m, reg := newTest(t)
	recordAll(m)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, Namespace+"_") {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
}

// exposition returns reg's text exposition as promhttp serves it.
func exposition(t *testing.T, reg prometheus.Gatherer) []byte {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	return rec.Body.Bytes()
}

// TestPromtool runs the real `promtool check metrics` (Debian package
// prometheus) on the exposition.
func TestPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus)")
	}
	m, reg := newTest(t)
	recordAll(m)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition(t, reg))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestCodes(t *testing.T) {
	m, reg := newTest(t)
	r := m.Route("r")
	// More distinct codes than the cache holds, each a different number of
	// times, plus codes out of range.
	want := map[string]float64{}
	for code := 200; code < 200+codeSlots+8; code++ {
		for range code - 199 {
			r.Observe(code, 0)
		}
		want[codeLabel(code)] = float64(code - 199)
	}
	r.Observe(0, 0)
	r.Observe(-5, 0)
	r.Observe(1000, 0)
	want["0"] = 3
	mf := families(t, reg)["rampart_requests_total"]
	if len(mf.GetMetric()) != len(want) {
		t.Errorf("%d series; want %d", len(mf.GetMetric()), len(want))
	}
	for _, s := range mf.GetMetric() {
		code := ""
		for _, l := range s.GetLabel() {
			if l.GetName() == "code" {
				code = l.GetValue()
			}
		}
		if got := s.GetCounter().GetValue(); got != want[code] {
			t.Errorf("code %s = %v; want %v", code, got, want[code])
		}
	}
}

func TestConcurrentObserve(t *testing.T) {
	m, _ := newTest(t)
	const workers, per = 8, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := m.Route("r")
			tg := m.Target("u", "t")
			for i := range per {
				code := 200 + (i+w)%40 // races on filling the same slots
				r.Observe(code, time.Millisecond)
				tg.Observe(code)
			}
		}()
	}
	wg.Wait()
	if got := testutil.CollectAndCount(m.requests); got != 40 {
		t.Errorf("series = %d; want 40", got)
	}
	var sum float64
	for code := 200; code < 240; code++ {
		sum += testutil.ToFloat64(m.requests.WithLabelValues("r", codeLabel(code)))
	}
	if sum != workers*per {
		t.Errorf("total = %v; want %d", sum, workers*per)
	}
}

func TestAllocs(t *testing.T) {
	m, _ := newTest(t)
	r := m.Route("api")
	tg := m.Target("api", "10.0.0.1:80")
	l := m.Listener("web")
	w := m.WAF("default")
	rl := m.RateLimit("per_ip")
	// Warm the caches: the first use of a code resolves its child.
	for _, code := range []int{200, 404, 502} {
		r.Observe(code, time.Millisecond)
		tg.Observe(code)
	}
	w.RuleMatched(942100)
	var nilRoute *RouteMetrics
	var nilTarget *TargetMetrics
	tests := []struct {
		name string
		f    func()
	}{
		{"route", func() { r.Observe(200, time.Millisecond); r.Observe(404, 2*time.Second) }},
		{"target", func() { tg.Observe(502); tg.SetHealthy(true); tg.Ejected() }},
		{"listener", func() { l.Inc(); l.Dec(); l.Request(ProtocolHTTP1); l.Request(ProtocolHTTP2) }},
		{"waf", func() { w.Inspected(); w.Blocked(); w.Detected(); w.RuleMatched(942100) }},
		{"ratelimit", func() { rl.Record(true, false, false); rl.Record(false, true, false); rl.SetDegraded(false) }},
		{"nil", func() { nilRoute.Observe(200, 0); nilTarget.Observe(200) }},
	}
	for _, tt := range tests {
		if got := testing.AllocsPerRun(100, tt.f); got != 0 {
			t.Errorf("%s: %v allocs per run; want 0", tt.name, got)
		}
	}
}

func TestNilMetrics(t *testing.T) {
	var m *Metrics
	// Every handle of a nil *Metrics is nil, and every method is a no-op.
	m.Route("r").Observe(200, time.Second)
	tg := m.Target("u", "t")
	tg.Observe(200)
	tg.SetHealthy(false)
	tg.Ejected()
	tg.Track(nil)
	m.Listener("l").Inc()
	m.Listener("l").Dec()
	m.Listener("l").Request(ProtocolHTTP2)
	m.WAF("w").Inspected()
	m.WAF("w").Blocked()
	m.WAF("w").Detected()
	m.WAF("w").RuleMatched(1)
	m.RateLimit("p").Record(true, false, false)
	m.RateLimit("p").SetDegraded(true)
	m.ReloadSucceeded()
	m.ReloadFailed()
	m.SetCertificateExpiry("h", SourceACME, time.Now())
	m.RetainCertificates(nil)
	m.RetainRoutes(nil)
	m.RetainTargets(nil)
	m.RetainListeners(nil)
	m.RetainWAF(nil)
	m.RetainRateLimits(nil)
	if m.Route("r") != nil {
		t.Error("nil Metrics returned a route handle")
	}
}

func TestHandlesShared(t *testing.T) {
	m, _ := newTest(t)
	if m.Route("a") != m.Route("a") {
		t.Error("Route: two handles for one name")
	}
	if m.Target("u", "t") != m.Target("u", "t") {
		t.Error("Target: two handles for one key")
	}
	if m.Listener("l") != m.Listener("l") || m.WAF("w") != m.WAF("w") || m.RateLimit("p") != m.RateLimit("p") {
		t.Error("policy or listener: two handles for one name")
	}
}

func TestRetain(t *testing.T) {
	m, reg := newTest(t)
	recordAll(m)
	oldRoute := m.Route("old")
	oldRoute.Observe(200, 0)
	oldTarget := m.Target("api", "10.0.0.9:80")
	oldTarget.Observe(200)
	oldWAF := m.WAF("old")
	oldWAF.RuleMatched(1)
	m.Listener("old").Inc()
	m.Listener("old").Request(ProtocolHTTP2)
	m.RateLimit("old").Record(false, false, false)
	m.SetCertificateExpiry("old.example.com", SourceACME, time.Now())

	m.RetainRoutes([]string{"api"})
	m.RetainTargets([]TargetKey{{"api", "10.0.0.1:8080"}})
	m.RetainWAF([]string{"default"})
	m.RetainListeners([]string{"web"})
	m.RetainRateLimits([]string{"per_ip"})
	m.RetainCertificates([]CertificateKey{{"example.com", SourceStatic}})

	// In-flight requests of the old snapshot record into retired handles,
	// new codes and rules included; no series comes back.
	oldRoute.Observe(200, 0)
	oldRoute.Observe(418, 0)
	oldTarget.Observe(504)
	oldWAF.RuleMatched(2)

	text := string(exposition(t, reg))
	for _, gone := range []string{`route="old"`, `target="10.0.0.9:80"`, `policy="old"`, `listener="old"`, `host="old.example.com"`} {
		if strings.Contains(text, gone) {
			t.Errorf("series with %s still exposed", gone)
		}
	}
	for _, kept := range []string{`route="api"`, `target="10.0.0.1:8080"`, `policy="default"`, `listener="web"`, `policy="per_ip"`, `host="example.com"`} {
		if !strings.Contains(text, kept) {
			t.Errorf("series with %s gone", kept)
		}
	}
	// A name dropped and added again gets a fresh handle that records.
	if r := m.Route("old"); r == oldRoute {
		t.Error("retired route handle handed out again")
	} else {
		r.Observe(200, 0)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("old", "200")); got != 1 {
		t.Errorf("re-added route count = %v; want 1", got)
	}
}

// fakeState is a TargetState for tests.
type fakeState struct {
	healthy   bool
	until     time.Time
	ejections uint64
}

func (f *fakeState) Healthy() bool              { return f.healthy }
func (f *fakeState) Ejected(now time.Time) bool { return now.Before(f.until) }
func (f *fakeState) Ejections() uint64          { return f.ejections }

func TestTargetTrack(t *testing.T) {
	now := time.Unix(1000, 0)
	tests := []struct {
		name          string
		state         *fakeState
		healthy       float64
		wantEjections float64
	}{
		{"healthy", &fakeState{healthy: true, ejections: 2}, 1, 2},
		{"down", &fakeState{healthy: false}, 0, 0},
		{"ejected", &fakeState{healthy: true, until: now.Add(time.Second), ejections: 3}, 0, 3},
		{"ejection over", &fakeState{healthy: true, until: now, ejections: 3}, 1, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := newTest(t)
			m.targetState.now = func() time.Time { return now }
			tg := m.Target("u", "t")
			tg.SetHealthy(false) // ignored once tracked
			tg.Track(tt.state)
			want := `
# HELP rampart_upstream_target_healthy 1 when the target may receive requests (healthy and not ejected), else 0.
# TYPE rampart_upstream_target_healthy gauge
rampart_upstream_target_healthy{target="t",upstream="u"} ` + fmtFloat(tt.healthy) + `
# HELP rampart_upstream_ejections_total Times passive outlier detection ejected the target.
# TYPE rampart_upstream_ejections_total counter
rampart_upstream_ejections_total{target="t",upstream="u"} ` + fmtFloat(tt.wantEjections) + `
# HELP rampart_upstream_retries_total Requests sent again after a failure at the target: on a fresh connection to it, after it dropped a pooled connection (reason "stale_connection"), or on another target (reason "other_target").
# TYPE rampart_upstream_retries_total counter
rampart_upstream_retries_total{reason="other_target",target="t",upstream="u"} 0
rampart_upstream_retries_total{reason="stale_connection",target="t",upstream="u"} 0
`
			if err := testutil.CollectAndCompare(m.targetState, strings.NewReader(want)); err != nil {
				t.Error(err)
			}
		})
	}
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func TestNewTwiceFails(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(reg, "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := New(reg, "x"); err == nil {
		t.Error("second New on one registry succeeded; want an error")
	}
}

func BenchmarkObserve(b *testing.B) {
	m, _ := newTest(b)
	r := m.Route("api")
	r.Observe(200, time.Millisecond)
	b.ReportAllocs()
	for b.Loop() {
		r.Observe(200, time.Millisecond)
	}
}

func BenchmarkObserveParallel(b *testing.B) {
	m, _ := newTest(b)
	r := m.Route("api")
	tg := m.Target("api", "10.0.0.1:80")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Observe(200, time.Millisecond)
			tg.Observe(200)
		}
	})
}

// BenchmarkObserveNil is the metrics-off baseline of BenchmarkObserve.
func BenchmarkObserveNil(b *testing.B) {
	var r *RouteMetrics
	b.ReportAllocs()
	for b.Loop() {
		r.Observe(200, time.Millisecond)
	}
}

// TestPedantic checks the collectors' descriptions against what they
// collect, the custom target collector included.
func TestPedantic(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := New(reg, "v1")
	if err != nil {
		t.Fatal(err)
	}
	recordAll(m)
	m.Target("api", "10.0.0.2:8080").Track(&fakeState{healthy: true})
	if _, err := reg.Gather(); err != nil {
		t.Error(err)
	}
}

// TestRequestsByProtocol: Request counts into
// rampart_requests_by_protocol_total by listener and protocol.
func TestRequestsByProtocol(t *testing.T) {
	m, reg := newTest(t)
	l := m.Listener("web")
	l.Request(ProtocolHTTP1)
	l.Request(ProtocolHTTP2)
	l.Request(ProtocolHTTP2)
	l.Request(-1) // out of range: ignored
	text := string(exposition(t, reg))
	for _, want := range []string{
		`rampart_requests_by_protocol_total{listener="web",protocol="HTTP/1.1"} 1`,
		`rampart_requests_by_protocol_total{listener="web",protocol="HTTP/2.0"} 2`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
}
