package examples

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/internal/testport"
	"github.com/rampart-proxy/rampart/proxy"
)

// scrapeConfig exercises every feature with a metric: a route with a WAF
// policy and a rate limit whose Redis is down (so it falls back), a TLS
// listener with a static certificate, and a health-checked upstream.
const scrapeConfig = `
admin:
  address: 127.0.0.1:0
  token: scrape-token
listeners:
  web:
    address: 127.0.0.1:0
  websecure:
    address: 127.0.0.1:0
    tls:
      certificates:
        - cert_file: %[1]s
          key_file: %[2]s
upstreams:
  app:
    targets:
      - url: %[3]s
    health_check:
      path: /health
      interval: 1s
    passive: {}
routes:
  - name: app
    upstream: app
    waf: default
    rate_limit: per_ip
waf:
  default:
    mode: block
    rules: |
      SecRule REQUEST_URI "@beginsWith /attack" "id:10001,phase:1,deny,status:403,log,msg:'test'"
rate_limits:
  per_ip:
    rate: 100/s
    store: redis
    on_store_error: allow
redis:
  address: %[4]s
  timeout: 50ms
access_log:
  path: off
`

// TestDashboardAgainstScrape starts Rampart with an admin listener, sends
// it some traffic, and checks every metric the dashboard and the alerts use
// against a real scrape of /metrics. Metrics of a feature not yet on the
// request path (the WAF, until it is wired) are reported and skipped.
func TestDashboardAgainstScrape(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	}))
	defer upstream.Close()
	dir := t.TempDir()
	cert, key := writeCertificate(t, dir, "localhost")
	path := filepath.Join(dir, "rampart.yaml")
	good := fmt.Sprintf(scrapeConfig, cert, key, upstream.URL, closedAddr(t))
	writeFile(t, path, []byte(good))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := proxy.New(cfg, slog.New(slog.DiscardHandler), proxy.WithVersion("scrape-test"))
	if err != nil {
		t.Fatalf("proxy.New: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	admin := "http://" + srv.AdminAddr()
	client := &http.Client{Timeout: 5 * time.Second}

	// The kubelet's probes carry no token.
	for _, p := range []string{"/healthz", "/readyz"} {
		if code := get(t, client, admin+p, ""); code != http.StatusOK {
			t.Errorf("GET %s without a token: %d; want 200", p, code)
		}
	}
	if code := get(t, client, admin+"/metrics", ""); code == http.StatusNotFound {
		t.Skip("the admin listener serves no /metrics yet; skipping the scrape")
	} else if code != http.StatusUnauthorized {
		t.Errorf("GET /metrics without the token: %d; want 401", code)
	}

	web := "http://" + srv.Addr("web")
	for i := 0; i < 3; i++ {
		if code := get(t, client, web+"/", ""); code != http.StatusOK {
			t.Errorf("GET / through Rampart: %d; want 200", code)
		}
	}
	wafWired := get(t, client, web+"/attack", "") == http.StatusForbidden
	tlsClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the test's self-signed certificate
	}}
	resp, err := tlsClient.Get("https://" + srv.Addr("websecure") + "/")
	tlsWired := err == nil
	if err == nil {
		resp.Body.Close()
	}
	// A refused reload, then a good one.
	writeFile(t, path, []byte("listeners: {}\n"))
	if _, err := srv.ReloadFromFile(); err == nil {
		t.Errorf("ReloadFromFile of a broken file: no error")
	}
	writeFile(t, path, []byte(good))

	families := scrape(t, client, admin+"/metrics", "scrape-token")
	for m, typ := range exportedMetrics {
		got, ok := families[m]
		switch {
		case ok && got != typ:
			t.Errorf("%s is a %s; want %s", m, got, typ)
		case ok:
		case !wafWired && strings.HasPrefix(m, "rampart_waf_"):
			t.Logf("%s: not exported yet (the WAF is not on the request path: /attack was not refused)", m)
		case !tlsWired && strings.HasPrefix(m, "rampart_tls_"):
			t.Logf("%s: not exported yet (the TLS listener did not handshake)", m)
		default:
			t.Errorf("%s is not in the scrape", m)
		}
	}
	// And the other way round: a rampart_ family that the contract does not
	// list is worth a look (a rename breaks dashboards).
	for m := range families {
		if _, ok := exportedMetrics[m]; !ok && strings.HasPrefix(m, "rampart_") {
			t.Logf("%s is exported but not used by the dashboard or the alerts", m)
		}
	}
}

// closedAddr returns a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	return testport.Addr(t)
}

func get(t *testing.T, c *http.Client, url, token string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// scrape returns the metric families of a Prometheus text exposition: name
// to type, from the "# TYPE" lines.
func scrape(t *testing.T, c *http.Client, url, token string) map[string]string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			out[f[2]] = f[3]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if os.Getenv("RAMPART_SCRAPE_DUMP") != "" {
		t.Logf("families: %v", out)
	}
	return out
}
