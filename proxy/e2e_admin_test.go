package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/config"
)

// TestE2EAdminAndMetrics runs a proxy with an admin listener: requests show
// up in /metrics under their route, target and rate limit, the upstreams API
// reports the targets, a reload through POST /api/v1/reload applies the file
// and counts, a broken file is refused with its errors, and /readyz turns 503
// when shutdown begins.
func TestE2EAdminAndMetrics(t *testing.T) {
	up := startRawUpstream(t, func(*rawMessage) (string, bool) { return okResponse("ok"), true })
	dir := t.TempDir()
	file := filepath.Join(dir, "rampart.yaml")
	body := func(route string) string {
		return fmt.Sprintf(`
admin:
  address: 127.0.0.1:0
  token: s3cret
listeners:
  web: {address: "127.0.0.1:0"}
upstreams:
  app: {targets: [{url: "http://%s"}]}
rate_limits:
  roomy: {rate: 1000/s}
routes:
  - name: %s
    upstream: app
    rate_limit: roomy
access_log: {path: "off"}
`, up.addr(), route)
	}
	if err := os.WriteFile(file, []byte(body("first")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(cfg, e2eLogger(), WithVersion("test"))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	shut := false
	t.Cleanup(func() {
		if !shut {
			_ = srv.Shutdown(context.Background())
		}
	})
	web, admin := srv.Addr("web"), srv.AdminAddr()
	for i := 0; i < 3; i++ {
		if got := rawGet(t, web, "x", "/").status(); got != 200 {
			t.Fatalf("request %d: got %d; want 200", i, got)
		}
	}
	rawGet(t, web, "x", "/") // a fourth, for the counts below

	get := func(path, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+admin+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/metrics", ""); code != http.StatusUnauthorized {
		t.Errorf("/metrics without the token: got %d; want 401", code)
	}
	code, text := get("/metrics", "s3cret")
	if code != 200 {
		t.Fatalf("/metrics: got %d", code)
	}
	for _, want := range []string{
		`rampart_requests_total{code="200",route="first"} 4`,
		fmt.Sprintf(`rampart_upstream_requests_total{code="200",target="http://%s",upstream="app"} 4`, up.addr()),
		`rampart_ratelimit_decisions_total{decision="allowed",policy="roomy"} 4`,
		fmt.Sprintf(`rampart_upstream_target_healthy{target="http://%s",upstream="app"} 1`, up.addr()),
		fmt.Sprintf(`rampart_upstream_retries_total{reason="other_target",target="http://%s",upstream="app"} 0`, up.addr()),
		`rampart_build_info{version="test"} 1`,
		`rampart_request_duration_seconds_count{route="first"} 4`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics: missing %s", want)
		}
	}
	if code, _ := get("/healthz", ""); code != 200 {
		t.Errorf("/healthz: got %d; want 200", code)
	}
	if code, _ := get("/readyz", ""); code != 200 {
		t.Errorf("/readyz: got %d; want 200", code)
	}
	code, text = get("/api/v1/upstreams", "s3cret")
	var ups struct {
		Upstreams []UpstreamStatus `json:"upstreams"`
	}
	if err := json.Unmarshal([]byte(text), &ups); err != nil || code != 200 {
		t.Fatalf("/api/v1/upstreams: %d %v %s", code, err, text)
	}
	if len(ups.Upstreams) != 1 || len(ups.Upstreams[0].Targets) != 1 || !ups.Upstreams[0].Targets[0].Healthy {
		t.Errorf("/api/v1/upstreams: got %+v; want app with one healthy target", ups.Upstreams)
	}
	if _, text := get("/api/v1/config", "s3cret"); strings.Contains(text, "s3cret") {
		t.Errorf("/api/v1/config leaks the admin token: %s", text)
	}

	post := func() (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://"+admin+"/api/v1/reload", nil)
		req.Header.Set("Authorization", "Bearer s3cret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if err := os.WriteFile(file, []byte(body("second")), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, text := post(); code != 200 || !strings.Contains(strings.ReplaceAll(text, " ", ""), `"changed":true`) {
		t.Fatalf("reload: got %d %s; want 200 and a change", code, text)
	}
	rawGet(t, web, "x", "/")
	if err := os.WriteFile(file, []byte("listeners: {web: {address: x}}\nroutes: [{upstream: nope}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, text := post(); code != 422 || !strings.Contains(text, "nope") {
		t.Errorf("broken file: got %d %s; want 422 naming the problem", code, text)
	}
	_, text = get("/metrics", "s3cret")
	for _, want := range []string{
		`rampart_requests_total{code="200",route="second"} 1`,
		`rampart_config_reloads_total{result="success"} 1`,
		`rampart_config_reloads_total{result="failure"} 1`,
		`rampart_config_last_reload_successful 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics after reloads: missing %s", want)
		}
	}
	if strings.Contains(text, `route="first"`) {
		t.Errorf("/metrics after reloads: the removed route's series are still there")
	}

	shut = true
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if srv.Ready() {
		t.Errorf("Ready after Shutdown: got true; want false")
	}
}

// TestE2EReadyzWhileDraining: once shutdown begins, /readyz answers 503
// (so that Kubernetes stops sending) while an in-flight request finishes.
func TestE2EReadyzWhileDraining(t *testing.T) {
	release := make(chan struct{})
	up := startHTTPUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		_, _ = io.WriteString(w, "late")
	}))
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
admin: {address: "127.0.0.1:0"}
listeners: {web: {address: "127.0.0.1:0"}}
upstreams: {app: {targets: [{url: "http://%s"}]}}
routes: [{upstream: app}]
access_log: {path: "off"}
`, up.addr())), "ready.yaml")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(cfg, e2eLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	readyz := func() int {
		resp, err := http.Get("http://" + srv.AdminAddr() + "/readyz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := readyz(); got != 200 {
		t.Fatalf("/readyz before shutdown: got %d; want 200", got)
	}
	inflight := make(chan int, 1)
	go func() {
		resp, err := http.Get("http://" + srv.Addr("web") + "/")
		if err != nil {
			inflight <- 0
			return
		}
		resp.Body.Close()
		inflight <- resp.StatusCode
	}()
	if !waitFor(5*time.Second, func() bool { return srv.UpstreamStatus()[0].Targets[0].Inflight == 1 }) {
		t.Fatal("the request never reached the upstream")
	}
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(context.Background()) }()
	if !waitFor(5*time.Second, func() bool { return readyz() == 503 }) {
		t.Errorf("/readyz while draining: got %d; want 503", readyz())
	}
	close(release)
	if got := <-inflight; got != 200 {
		t.Errorf("in-flight request: got %d; want 200", got)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}
