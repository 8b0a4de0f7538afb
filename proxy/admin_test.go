package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/internal/testlog"
	"github.com/rampart-proxy/rampart/metrics"
)

// adminTestTimeout bounds every network wait of the admin tests.
const adminTestTimeout = 10 * time.Second

// fakeAdminBackend is an adminBackend whose answers the test sets.
type fakeAdminBackend struct {
	ready atomic.Bool

	mu        sync.Mutex // guards the fields below
	cfg       *config.Config
	ups       []UpstreamStatus
	changed   bool
	reloadErr error
	reloads   int
}

func (f *fakeAdminBackend) RunningConfig() *config.Config {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cfg
}

func (f *fakeAdminBackend) UpstreamStatus() []UpstreamStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ups
}

func (f *fakeAdminBackend) ReloadFromFile() (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reloads++
	return f.changed, f.reloadErr
}

func (f *fakeAdminBackend) Ready() bool { return f.ready.Load() }

func (f *fakeAdminBackend) setReload(changed bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.changed, f.reloadErr = changed, err
}

func (f *fakeAdminBackend) reloadCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reloads
}

// adminTestYAML carries a secret in every place one may hide.
const adminTestYAML = `
admin:
  address: 127.0.0.1:0
  token: admintoken-s3cret
listeners:
  web:
    address: 127.0.0.1:0
upstreams:
  api:
    targets:
      - url: http://127.0.0.1:9001
    health_check: {path: /health}
routes:
  - name: api
    match:
      headers: {Authorization: "Bearer hdr-s3cret", X-Canary: "true"}
    upstream: api
rate_limits:
  per_ip: {rate: 100/s, store: redis}
redis:
  address: 127.0.0.1:6379
  username: bob
  password: redis-s3cret
`

func newFakeAdminBackend(t *testing.T) *fakeAdminBackend {
	t.Helper()
	cfg, err := config.Parse([]byte(adminTestYAML), "admin.yaml")
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	// Validation may refuse userinfo in a target URL; the redaction must
	// hide it anyway, should one get there through ${NAME}.
	cfg.Upstreams["api"].Targets = append(cfg.Upstreams["api"].Targets,
		config.Target{URL: "http://user:url-s3cret@127.0.0.1:9002", Weight: 2})
	b := &fakeAdminBackend{
		cfg: cfg,
		ups: []UpstreamStatus{{
			Name: "api", Balancer: "round_robin",
			Targets: []TargetStatus{
				{Address: "127.0.0.1:9001", URL: "http://127.0.0.1:9001", Weight: 1, Healthy: true, Inflight: 3, Ejections: 1},
				{Address: "127.0.0.1:9002", Healthy: true, Ejected: true, Ejections: 2},
			},
		}},
	}
	b.ready.Store(true)
	return b
}

// startAdmin starts an admin server on a loopback port with Rampart's
// metrics on a fresh registry, and stops it when the test ends.
func startAdmin(t *testing.T, token string, b adminBackend) (*adminServer, *metrics.Metrics) {
	t.Helper()
	reg := metrics.NewRegistry()
	m, err := metrics.New(reg, "v9.9.9-test")
	if err != nil {
		t.Fatal(err)
	}
	a, err := newAdminServer(&config.Admin{Address: "127.0.0.1:0", Token: token}, b, reg, e2eLogger())
	if err != nil {
		t.Fatalf("newAdminServer: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return a, m
}

type adminResponse struct {
	status int
	header http.Header
	body   string
}

// adminDo sends one request; auth is the Authorization header ("" for
// none), header more header names and values in pairs. A POST without a
// Content-Type in header is sent as application/json, as an API client does.
func adminDo(t *testing.T, method, rawURL, auth string, header ...string) adminResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), adminTestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" {
			req.Host = header[i+1]
			continue
		}
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return adminResponse{resp.StatusCode, resp.Header, string(body)}
}

func TestAdminEndpoints(t *testing.T) {
	b := newFakeAdminBackend(t)
	b.setReload(true, nil)
	a, _ := startAdmin(t, "", b)
	base := "http://" + a.Addr()
	tests := []struct {
		name, method, path string
		status             int
		contains           string
		contentType        string
	}{
		{"healthz", "GET", "/healthz", 200, "ok", "text/plain"},
		{"healthz head", "HEAD", "/healthz", 200, "", "text/plain"},
		{"readyz", "GET", "/readyz", 200, "ready", "text/plain"},
		{"metrics", "GET", "/metrics", 200, `rampart_build_info{version="v9.9.9-test"} 1`, "text/plain"},
		{"metrics go collector", "GET", "/metrics", 200, "go_goroutines ", "text/plain"},
		{"metrics process collector", "GET", "/metrics", 200, "process_start_time_seconds ", "text/plain"},
		{"config", "GET", "/api/v1/config", 200, `"listeners": {`, "application/json"},
		{"upstreams", "GET", "/api/v1/upstreams", 200, `"address": "127.0.0.1:9001"`, "application/json"},
		{"reload", "POST", "/api/v1/reload", 200, `"changed": true`, "application/json"},
		{"unknown path", "GET", "/nope", 404, "", ""},
		{"api prefix only", "GET", "/api/v1/", 404, "", ""},
		{"trailing slash", "GET", "/healthz/", 404, "", ""},
		{"post healthz", "POST", "/healthz", 405, "", ""},
		{"get reload", "GET", "/api/v1/reload", 405, "", ""},
		{"delete config", "DELETE", "/api/v1/config", 405, "", ""},
		{"put upstreams", "PUT", "/api/v1/upstreams", 405, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := adminDo(t, tt.method, base+tt.path, "")
			if r.status != tt.status {
				t.Fatalf("status %d; want %d (body %q)", r.status, tt.status, r.body)
			}
			if !strings.Contains(r.body, tt.contains) {
				t.Errorf("body does not contain %q:\n%s", tt.contains, r.body)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, tt.contentType) {
				t.Errorf("Content-Type %q; want %q", ct, tt.contentType)
			}
			if tt.status == 405 && r.header.Get("Allow") == "" {
				t.Errorf("405 without Allow")
			}
		})
	}
	if got := b.reloadCount(); got != 1 {
		t.Errorf("backend reloads = %d; want 1", got)
	}
}

func TestAdminUpstreamsJSON(t *testing.T) {
	b := newFakeAdminBackend(t)
	a, _ := startAdmin(t, "", b)
	r := adminDo(t, "GET", "http://"+a.Addr()+"/api/v1/upstreams", "")
	var got struct {
		Upstreams []UpstreamStatus `json:"upstreams"`
	}
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatalf("%v\n%s", err, r.body)
	}
	if !reflect.DeepEqual(got.Upstreams, b.ups) {
		t.Errorf("got %+v; want %+v", got.Upstreams, b.ups)
	}
	for _, field := range []string{`"name"`, `"balancer"`, `"healthy"`, `"ejected"`, `"inflight"`, `"ejections"`} {
		if !strings.Contains(r.body, field) {
			t.Errorf("no %s in %s", field, r.body)
		}
	}
	// No upstream at all is an empty list, not null.
	b.mu.Lock()
	b.ups = nil
	b.mu.Unlock()
	if r := adminDo(t, "GET", "http://"+a.Addr()+"/api/v1/upstreams", ""); !strings.Contains(r.body, `"upstreams": []`) {
		t.Errorf("no upstreams: %s", r.body)
	}
}

func TestAdminToken(t *testing.T) {
	const token = "tok-3f9a"
	b := newFakeAdminBackend(t)
	a, _ := startAdmin(t, token, b)
	base := "http://" + a.Addr()
	tests := []struct {
		name, method, path, auth string
		status                   int
	}{
		{"healthz open", "GET", "/healthz", "", 200},
		{"readyz open", "GET", "/readyz", "", 200},
		{"metrics without token", "GET", "/metrics", "", 401},
		{"metrics wrong token", "GET", "/metrics", "Bearer tok-3f9b", 401},
		{"metrics longer token", "GET", "/metrics", "Bearer " + token + "x", 401},
		{"metrics token prefix", "GET", "/metrics", "Bearer tok", 401},
		{"metrics basic scheme", "GET", "/metrics", "Basic " + token, 401},
		{"metrics bare token", "GET", "/metrics", token, 401},
		{"metrics token", "GET", "/metrics", "Bearer " + token, 200},
		{"scheme case-insensitive", "GET", "/metrics", "bearer " + token, 200},
		{"config without token", "GET", "/api/v1/config", "", 401},
		{"config token", "GET", "/api/v1/config", "Bearer " + token, 200},
		{"upstreams without token", "GET", "/api/v1/upstreams", "", 401},
		{"reload without token", "POST", "/api/v1/reload", "", 401},
		{"unknown path without token", "GET", "/nope", "", 401},
		{"unknown path token", "GET", "/nope", "Bearer " + token, 404},
		{"dot segments", "GET", "/healthz/../metrics", "", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := adminDo(t, tt.method, base+tt.path, tt.auth)
			if r.status != tt.status {
				t.Fatalf("status %d; want %d (body %q)", r.status, tt.status, r.body)
			}
			if tt.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate %q; want a Bearer challenge", r.header.Get("WWW-Authenticate"))
			}
		})
	}
	if got := b.reloadCount(); got != 0 {
		t.Errorf("an unauthenticated reload reached the backend (%d)", got)
	}

	// A reload that changes admin.token takes effect without a rebind.
	if err := a.SetConfig(&config.Admin{Address: a.Addr(), Token: "new-token"}); err != nil {
		t.Fatal(err)
	}
	if r := adminDo(t, "GET", base+"/metrics", "Bearer "+token); r.status != 401 {
		t.Errorf("old token after SetToken: status %d; want 401", r.status)
	}
	if r := adminDo(t, "GET", base+"/metrics", "Bearer new-token"); r.status != 200 {
		t.Errorf("new token: status %d; want 200", r.status)
	}
	if err := a.SetConfig(&config.Admin{Address: a.Addr()}); err != nil {
		t.Fatal(err)
	}
	if r := adminDo(t, "GET", base+"/metrics", ""); r.status != 200 {
		t.Errorf("token removed: status %d; want 200", r.status)
	}
}

func TestAdminConfigRedacted(t *testing.T) {
	b := newFakeAdminBackend(t)
	a, _ := startAdmin(t, "", b)
	r := adminDo(t, "GET", "http://"+a.Addr()+"/api/v1/config", "")
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if strings.Contains(r.body, "s3cret") {
		t.Fatalf("a secret leaked:\n%s", r.body)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatalf("%v\n%s", err, r.body)
	}
	path := func(keys ...any) any {
		var v any = got
		for _, k := range keys {
			switch k := k.(type) {
			case string:
				m, _ := v.(map[string]any)
				v = m[k]
			case int:
				l, _ := v.([]any)
				if k >= len(l) {
					return nil
				}
				v = l[k]
			}
		}
		return v
	}
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"admin token", path("admin", "token"), redactedValue},
		{"redis password", path("redis", "password"), redactedValue},
		{"redis address kept", path("redis", "address"), "127.0.0.1:6379"},
		{"authorization matcher", path("routes", 0, "match", "headers", "Authorization"), redactedValue},
		{"every matcher value", path("routes", 0, "match", "headers", "X-Canary"), redactedValue},
		{"redis username", path("redis", "username"), redactedValue},
		{"url user info", path("upstreams", "api", "targets", 1, "url"), "http://[redacted]@127.0.0.1:9002"},
		{"url kept", path("upstreams", "api", "targets", 0, "url"), "http://127.0.0.1:9001"},
		{"duration as written", path("listeners", "web", "limits", "idle_timeout"), "1m0s"},
		{"size as written", path("listeners", "web", "limits", "max_header_bytes"), "16KiB"},
		{"rate as written", path("rate_limits", "per_ip", "rate"), "100/s"},
		{"yaml names", path("routes", 0, "name"), "api"},
		{"unset pointer", path("listeners", "web", "tls"), nil},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s: got %#v; want %#v", tt.name, tt.got, tt.want)
		}
	}
	// Keys keep the file's order, so the answer reads like the file.
	if i, j := strings.Index(r.body, `"admin"`), strings.Index(r.body, `"listeners"`); i < 0 || j < i {
		t.Errorf("admin (%d) should come before listeners (%d)", i, j)
	}
	if _, ok := got["File"]; ok {
		t.Error("the yaml:\"-\" field File is exposed")
	}
}

func TestRedactEmptySecretStaysEmpty(t *testing.T) {
	cfg := &config.Config{Admin: &config.Admin{Address: "127.0.0.1:9901"}, Redis: &config.Redis{Address: "r:6379"}}
	body, err := json.Marshal(redactConfig(cfg))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"token":""`, `"password":""`} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("no %s in %s", want, body)
		}
	}
}

func TestAdminReload(t *testing.T) {
	rejected := config.Errors{
		{File: "rampart.yaml", Line: 14, Path: "routes[2]", Name: "api", Msg: `upstream "missing" is not defined`},
		{File: "rampart.yaml", Line: 20, Path: "waf.default.mode", Msg: `invalid mode "x"`},
	}
	tests := []struct {
		name    string
		changed bool
		err     error
		status  int
		want    reloadResult
	}{
		{"applied", true, nil, 200, reloadResult{Changed: true}},
		{"identical", false, nil, 200, reloadResult{Changed: false}},
		{"rejected config", false, fmt.Errorf("reload: %w", rejected), 422, reloadResult{
			Error:  "reload: " + rejected.Error(),
			Errors: []string{rejected[0].Error(), rejected[1].Error()},
		}},
		{"build failure", false, errors.New("listener web: address in use"), 422, reloadResult{
			Error: "listener web: address in use",
		}},
	}
	b := newFakeAdminBackend(t)
	a, _ := startAdmin(t, "", b)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b.setReload(tt.changed, tt.err)
			r := adminDo(t, "POST", "http://"+a.Addr()+"/api/v1/reload", "")
			if r.status != tt.status {
				t.Fatalf("status %d; want %d", r.status, tt.status)
			}
			var got reloadResult
			if err := json.Unmarshal([]byte(r.body), &got); err != nil {
				t.Fatalf("%v\n%s", err, r.body)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v; want %+v", got, tt.want)
			}
			if !strings.Contains(r.body, `"changed"`) {
				t.Errorf("no changed field: %s", r.body)
			}
		})
	}
}

func TestAdminReadiness(t *testing.T) {
	b := newFakeAdminBackend(t)
	a, _ := startAdmin(t, "secret-token", b)
	readyz := "http://" + a.Addr() + "/readyz"
	for i, ready := range []bool{true, false, true, false} {
		b.ready.Store(ready)
		want := 503
		if ready {
			want = 200
		}
		if r := adminDo(t, "GET", readyz, ""); r.status != want {
			t.Errorf("step %d: ready=%v: status %d; want %d", i, ready, r.status, want)
		}
		// Liveness does not follow readiness.
		if r := adminDo(t, "GET", "http://"+a.Addr()+"/healthz", ""); r.status != 200 {
			t.Errorf("step %d: healthz status %d; want 200", i, r.status)
		}
	}
}

func TestAdminNoConfigNoRegistry(t *testing.T) {
	b := &fakeAdminBackend{}
	a, err := newAdminServer(&config.Admin{Address: "127.0.0.1:0"}, b, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	if r := adminDo(t, "GET", "http://"+a.Addr()+"/api/v1/config", ""); r.status != 503 {
		t.Errorf("config without one: status %d; want 503", r.status)
	}
	if r := adminDo(t, "GET", "http://"+a.Addr()+"/metrics", ""); r.status != 404 {
		t.Errorf("metrics without a registry: status %d; want 404", r.status)
	}
}

func TestAdminBindAndShutdown(t *testing.T) {
	b := newFakeAdminBackend(t)
	a, _ := startAdmin(t, "", b)
	if _, err := newAdminServer(&config.Admin{Address: a.Addr()}, b, nil, nil); err == nil {
		t.Error("second bind of one address succeeded; want an error")
	}
	if _, err := newAdminServer(&config.Admin{}, b, nil, nil); err == nil {
		t.Error("empty address accepted; want an error")
	}
	addr := a.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("admin listener still accepts after Shutdown")
	}
}

// adminMetricsText fetches /metrics from a with token.
func adminMetricsText(t *testing.T, a *adminServer, token string) []byte {
	t.Helper()
	r := adminDo(t, "GET", "http://"+a.Addr()+"/metrics", "Bearer "+token)
	if r.status != 200 {
		t.Fatalf("GET /metrics: status %d", r.status)
	}
	return []byte(r.body)
}

// recordEveryFamily puts a sample in each Rampart family, so that the
// checks below see all of them.
func recordEveryFamily(m *metrics.Metrics) {
	m.Route("api").Observe(200, 2*time.Millisecond)
	tg := m.Target("api", "127.0.0.1:9001")
	tg.Observe(200)
	tg.Ejected()
	m.Listener("web").Inc()
	m.WAF("default").Blocked()
	m.WAF("default").RuleMatched(942100)
	m.RateLimit("per_ip").Record(true, false, false)
	m.Auth("admins").Record(metrics.AuthDenied)
	m.SetCertificateExpiry("example.com", metrics.SourceStatic, time.Now().Add(90*24*time.Hour))
	m.ReloadSucceeded()
}

// TestAdminMetricsPromtool runs `promtool check metrics` (Debian package
// prometheus) on what the admin listener serves.
func TestAdminMetricsPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus)")
	}
	const token = "scrape-token"
	a, m := startAdmin(t, token, newFakeAdminBackend(t))
	recordEveryFamily(m)
	text := adminMetricsText(t, a, token)
	ctx, cancel := context.WithTimeout(context.Background(), adminTestTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// freeLoopbackAddr returns a loopback address with a port free a moment
// ago, for a child process that must be told its port.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// promQuery runs an instant query against a Prometheus server and returns
// the label sets of the result.
func promQuery(ctx context.Context, promAddr, query string) ([]map[string]string, error) {
	u := "http://" + promAddr + "/api/v1/query?query=" + url.QueryEscape(query)
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	if out.Status != "success" {
		return nil, fmt.Errorf("query %q: %s %s", query, out.Status, out.Error)
	}
	labels := make([]map[string]string, len(out.Data.Result))
	for i, r := range out.Data.Result {
		labels[i] = r.Metric
	}
	return labels, nil
}

// TestAdminPrometheusScrape has a real Prometheus server (Debian package
// prometheus) scrape the admin listener, bearer token included, and reads
// the Rampart series back through its HTTP API.
func TestAdminPrometheusScrape(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed (Debian package prometheus)")
	}
	const token = "scrape-token"
	a, m := startAdmin(t, token, newFakeAdminBackend(t))
	recordEveryFamily(m)

	dir := t.TempDir()
	promAddr := freeLoopbackAddr(t)
	cfgFile := filepath.Join(dir, "prometheus.yml")
	promCfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: rampart
    authorization:
      credentials: %s
    static_configs:
      - targets: [%q]
`, token, a.Addr())
	if err := os.WriteFile(cfgFile, []byte(promCfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var out testlog.Buffer
	cmd := exec.Command(bin,
		"--config.file="+cfgFile,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr,
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()

	var last error
	for {
		series, err := promQuery(ctx, promAddr, "rampart_build_info")
		if err == nil && len(series) > 0 {
			if got := series[0]["version"]; got != "v9.9.9-test" {
				t.Fatalf("rampart_build_info version %q; want v9.9.9-test", got)
			}
			if got := series[0]["job"]; got != "rampart" {
				t.Errorf("job %q; want rampart", got)
			}
			break
		}
		if err == nil {
			err = errors.New("no rampart_build_info series yet")
		}
		last = err
		select {
		case err := <-exited:
			t.Fatalf("prometheus exited: %v\n%s", err, out.String())
		case <-ctx.Done():
			targets, _ := promQuery(context.Background(), promAddr, "up")
			t.Fatalf("no scrape within the bound: %v (up: %v)\n%s", last, targets, out.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
	// The same scrape brought every Rampart family.
	series, err := promQuery(ctx, promAddr, `{__name__=~"rampart_.+"}`)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, s := range series {
		have[s["__name__"]] = true
	}
	for _, name := range []string{
		"rampart_requests_total", "rampart_request_duration_seconds_bucket",
		"rampart_upstream_requests_total", "rampart_upstream_target_healthy",
		"rampart_upstream_ejections_total", "rampart_upstream_retries_total", "rampart_waf_requests_total",
		"rampart_waf_rule_matches_total", "rampart_ratelimit_decisions_total",
		"rampart_ratelimit_store_degraded", "rampart_tls_certificate_expiry_timestamp_seconds",
		"rampart_config_reloads_total", "rampart_config_last_reload_successful",
		"rampart_active_connections", "rampart_build_info",
	} {
		if !have[name] {
			t.Errorf("Prometheus has no %s", name)
		}
	}
}

func TestRedactUserinfo(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"url user and password", "http://user:pw@127.0.0.1:9002", "http://[redacted]@127.0.0.1:9002"},
		{"url user only", "https://tok3n@api.example", "https://[redacted]@api.example"},
		{"redis url", "rediss://default:pw@redis:6380/0", "rediss://[redacted]@redis:6380/0"},
		{"address with user info", "user:pw@redis:6379", "[redacted]@redis:6379"},
		{"password with @", "redis://u:p@ss@r:6379", "redis://[redacted]@r:6379"},
		{"url without user info", "http://127.0.0.1:9001", "http://127.0.0.1:9001"},
		{"@ in the path", "http://a:1/x@y", "http://a:1/x@y"},
		{"@ in the query", "http://a:1/?m=a@b", "http://a:1/?m=a@b"},
		{"e-mail address", "ops@example.com", "ops@example.com"},
		{"prose", "Contact: ops@example.com", "Contact: ops@example.com"},
		{"plain", "127.0.0.1:6379", "127.0.0.1:6379"},
	}
	for _, tt := range tests {
		if got := redactUserinfo(tt.in); got != tt.want {
			t.Errorf("%s: redactUserinfo(%q) = %q; want %q", tt.name, tt.in, got, tt.want)
		}
	}
}

// TestRedactEveryMarkedField fills every field of a Config reflectively, a
// marked one (config.Secret, or under one) with a distinct secret and the
// others with distinct plain values, and checks that the dump shows every
// plain value and no secret: a field marked in config/types.go is hidden
// whatever its type (string, list, map, struct).
func TestRedactEveryMarkedField(t *testing.T) {
	var secrets, plain []string
	var fill func(v reflect.Value, secret bool, depth int)
	fill = func(v reflect.Value, secret bool, depth int) {
		if depth > 8 {
			return
		}
		switch v.Kind() {
		case reflect.String:
			s := fmt.Sprintf("plain-%03d", len(plain))
			if secret {
				s = fmt.Sprintf("secret-%03d", len(secrets))
				secrets = append(secrets, s)
			} else {
				plain = append(plain, s)
			}
			v.SetString(s)
		case reflect.Pointer:
			v.Set(reflect.New(v.Type().Elem()))
			fill(v.Elem(), secret, depth+1)
		case reflect.Slice:
			v.Set(reflect.MakeSlice(v.Type(), 1, 1))
			fill(v.Index(0), secret, depth+1)
		case reflect.Map:
			v.Set(reflect.MakeMap(v.Type()))
			k := reflect.New(v.Type().Key()).Elem()
			if k.Kind() == reflect.String {
				k.SetString(fmt.Sprintf("key%03d", len(plain)))
				plain = append(plain, k.String())
			}
			e := reflect.New(v.Type().Elem()).Elem()
			fill(e, secret, depth+1)
			v.SetMapIndex(k, e)
		case reflect.Struct:
			for i := range v.NumField() {
				f := v.Type().Field(i)
				if f.IsExported() && f.Tag.Get("yaml") != "-" {
					fill(v.Field(i), secret || config.Secret(f), depth+1)
				}
			}
		}
	}
	var cfg config.Config
	fill(reflect.ValueOf(&cfg).Elem(), false, 0)
	if len(secrets) < 5 {
		t.Fatalf("filled %d secrets; want at least the 5 marked fields", len(secrets))
	}
	body, err := json.Marshal(redactConfig(&cfg))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if bytes.Contains(body, []byte(s)) {
			t.Errorf("the dump shows %s", s)
		}
	}
	for _, s := range plain {
		if !bytes.Contains(body, []byte(s)) {
			t.Errorf("the dump lacks the plain value %s", s)
		}
	}
}

func TestAdminAccessHost(t *testing.T) {
	acc := newAdminAccess(&config.Admin{Address: "admin.internal:9901", Hosts: []string{"Scrape.Example.", "10.0.0.9"}})
	tests := []struct {
		host string
		want bool
	}{
		{"", true}, {":9901", true}, {"127.0.0.1", true}, {"127.0.0.1:9901", true}, {"[::1]:9901", true}, {"[::1]", true},
		{"10.1.2.3:9901", true}, {"[fd00::1]:9901", true}, {"localhost", true}, {"LocalHost.:9901", true},
		{"admin.internal:9901", true}, {"ADMIN.INTERNAL", true}, {"scrape.example", true}, {"scrape.example.:1", true},
		{"evil.example", false}, {"evil.example:9901", false}, {"localhost.evil.example", false}, {"a.localhost", false},
		{"admin.internal.evil.example", false}, {"scrape.example.evil", false}, {"[evil.example]:1", false},
	}
	for _, tt := range tests {
		if got := acc.hostAllowed(tt.host); got != tt.want {
			t.Errorf("hostAllowed(%q) = %v; want %v", tt.host, got, tt.want)
		}
	}
}

// TestAdminOptOutIsLoud: allow_unauthenticated on a non-loopback address
// is logged as a warning each time it is applied; a non-loopback address
// with neither a token nor the opt-out is refused, keeping what was in
// force.
func TestAdminOptOutIsLoud(t *testing.T) {
	var logs testlog.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	a, err := newAdminServer(&config.Admin{Address: "127.0.0.1:0", Token: "t"}, newFakeAdminBackend(t), nil, log)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	if strings.Contains(logs.String(), "UNAUTHENTICATED") {
		t.Errorf("a token on loopback logged the opt-out warning: %s", logs.String())
	}
	if err := a.SetConfig(&config.Admin{Address: "0.0.0.0:9901"}); err == nil {
		t.Errorf("SetConfig of a non-loopback address without a token: got no error")
	}
	if r := adminDo(t, "GET", "http://"+a.Addr()+"/api/v1/config", ""); r.status != 401 {
		t.Errorf("after the refused SetConfig: got %d; want 401 (the token still in force)", r.status)
	}
	if err := a.SetConfig(&config.Admin{Address: "0.0.0.0:9901", AllowUnauthenticated: true}); err != nil {
		t.Fatal(err)
	}
	if got := logs.String(); !strings.Contains(got, "level=WARN") || !strings.Contains(got, "UNAUTHENTICATED") || !strings.Contains(got, "0.0.0.0:9901") {
		t.Errorf("log: got %q; want a warning naming the address", got)
	}
}
