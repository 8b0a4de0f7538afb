package examples

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// exportedMetrics are the metric names Rampart exports (the metrics
// package), the contract of the dashboard and the alerts.
var exportedMetrics = map[string]string{
	"rampart_requests_total":                           "counter",
	"rampart_request_duration_seconds":                 "histogram",
	"rampart_upstream_requests_total":                  "counter",
	"rampart_upstream_target_healthy":                  "gauge",
	"rampart_upstream_ejections_total":                 "counter",
	"rampart_upstream_retries_total":                   "counter",
	"rampart_waf_requests_total":                       "counter",
	"rampart_waf_rule_matches_total":                   "counter",
	"rampart_ratelimit_decisions_total":                "counter",
	"rampart_ratelimit_store_degraded":                 "gauge",
	"rampart_tls_certificate_expiry_timestamp_seconds": "gauge",
	"rampart_config_reloads_total":                     "counter",
	"rampart_config_last_reload_successful":            "gauge",
	"rampart_active_connections":                       "gauge",
	"rampart_build_info":                               "gauge",
}

// metricRe finds the Rampart metric names in a PromQL expression.
var metricRe = regexp.MustCompile(`\brampart_[a-z0-9_]+`)

// metricNames returns the metric families that expr uses: a histogram's
// _bucket, _sum and _count series count as the histogram.
func metricNames(expr string) []string {
	var out []string
	for _, m := range metricRe.FindAllString(expr, -1) {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(m, suffix); ok && exportedMetrics[base] == "histogram" {
				m = base
			}
		}
		out = append(out, m)
	}
	return out
}

// dashboardQuery is one PromQL expression of the dashboard and where it is.
type dashboardQuery struct{ where, expr string }

// dashboardQueries returns every PromQL expression of the dashboard:
// panel targets, template variable queries and annotations.
func dashboardQueries(t *testing.T) []dashboardQuery {
	t.Helper()
	var d struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Annotations struct {
			List []struct {
				Name string `json:"name"`
				Expr string `json:"expr"`
			} `json:"list"`
		} `json:"annotations"`
	}
	if err := json.Unmarshal(readFile(t, "grafana/rampart.json"), &d); err != nil {
		t.Fatalf("grafana/rampart.json: %v", err)
	}
	var out []dashboardQuery
	for _, p := range d.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			out = append(out, dashboardQuery{"panel " + p.Title, tg.Expr})
		}
	}
	for _, v := range d.Templating.List {
		var q struct {
			Query string `json:"query"`
		}
		if json.Unmarshal(v.Query, &q) == nil && q.Query != "" {
			out = append(out, dashboardQuery{"variable " + v.Name, q.Query})
		}
	}
	for _, a := range d.Annotations.List {
		out = append(out, dashboardQuery{"annotation " + a.Name, a.Expr})
	}
	return out
}

// TestDashboard checks that every metric the dashboard queries is one
// Rampart exports, and that it shows each subject the issue asks for.
func TestDashboard(t *testing.T) {
	used := map[string]bool{}
	for _, q := range dashboardQueries(t) {
		if strings.TrimSpace(q.expr) == "" {
			t.Errorf("%s: empty query", q.where)
		}
		for _, m := range metricNames(q.expr) {
			if _, ok := exportedMetrics[m]; !ok {
				t.Errorf("%s: metric %s is not exported by Rampart", q.where, m)
			}
			used[m] = true
		}
	}
	for _, m := range []string{
		"rampart_requests_total",                           // requests/s by route and code
		"rampart_request_duration_seconds",                 // p50/p95/p99
		"rampart_upstream_target_healthy",                  // target health
		"rampart_waf_rule_matches_total",                   // WAF blocks by rule
		"rampart_ratelimit_decisions_total",                // refusals
		"rampart_config_reloads_total",                     // reloads
		"rampart_tls_certificate_expiry_timestamp_seconds", // certificate expiry
	} {
		if !used[m] {
			t.Errorf("the dashboard does not use %s", m)
		}
	}
}

// TestDashboardQueriesParse has promtool parse every dashboard query, with
// Grafana's variables replaced as Grafana would.
func TestDashboardQueriesParse(t *testing.T) {
	promtool := lookPath(t, "promtool", "prometheus")
	repl := strings.NewReplacer(
		"$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h",
		"$instance", ".*", "$route", ".*",
	)
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	for i, q := range dashboardQueries(t) {
		if strings.HasPrefix(q.expr, "label_values(") {
			continue // a Grafana function, not PromQL
		}
		rules = append(rules, rule{Record: fmt.Sprintf("dashboard:query_%d", i), Expr: repl.Replace(q.expr)})
	}
	b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "dashboard-rules.yaml")
	writeFile(t, f, b)
	run(t, promtool, "check", "rules", f)
}

func TestAlertRules(t *testing.T) {
	promtool := lookPath(t, "promtool", "prometheus")
	run(t, promtool, "check", "rules", "prometheus/alerts.yaml")
	run(t, promtool, "test", "rules", "prometheus/alerts_test.yaml")
}

// TestAlertsUseExportedMetrics checks the alerts' metric names, and that
// every alert has a test that fires it and one where it stays silent.
func TestAlertsUseExportedMetrics(t *testing.T) {
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(readFile(t, "prometheus/alerts.yaml"), &rules); err != nil {
		t.Fatal(err)
	}
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(readFile(t, "prometheus/alerts_test.yaml"), &tests); err != nil {
		t.Fatal(err)
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
	}
	var names []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Alert)
			for _, m := range metricNames(r.Expr) {
				if _, ok := exportedMetrics[m]; !ok {
					t.Errorf("alert %s: metric %s is not exported by Rampart", r.Alert, m)
				}
			}
			if !fires[r.Alert] || !silent[r.Alert] {
				t.Errorf("alert %s: want a test where it fires (%v) and one where it stays silent (%v)", r.Alert, fires[r.Alert], silent[r.Alert])
			}
		}
	}
	sort.Strings(names)
	want := []string{
		"RampartCertificateExpiringSoon", "RampartConfigReloadFailed", "RampartHighErrorRate",
		"RampartRateLimitStoreDegraded", "RampartUpstreamAllTargetsDown", "RampartUpstreamTargetDown",
		"RampartWAFBlockSpike",
	}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("alerts %v; want %v", names, want)
	}
}

// TestPrometheusConfig checks the compose setup's prometheus.yml, with its
// container paths pointed at the files of this directory.
func TestPrometheusConfig(t *testing.T) {
	promtool := lookPath(t, "promtool", "prometheus")
	dir := t.TempDir()
	alerts, err := filepath.Abs("prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(dir, "token")
	writeFile(t, token, []byte("test-token"))
	conf := strings.NewReplacer(
		"/etc/prometheus/alerts.yaml", alerts,
		"/run/secrets/rampart_admin_token", token,
	).Replace(string(readFile(t, "prometheus/prometheus.yml")))
	f := filepath.Join(dir, "prometheus.yml")
	writeFile(t, f, []byte(conf))
	run(t, promtool, "check", "config", f)
}

// lookPath finds a tool or skips the test, naming the Debian package that
// provides it.
func lookPath(t *testing.T, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Skipf("%s not found (Debian package %s); skipping", tool, pkg)
	}
	return p
}

// run runs a command and fails the test with its output when it fails.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}
