package proxy

// End-to-end tests of the authentication policies (auth.go) over real
// sockets: a proxy on loopback, a recording upstream, a JWKS issuer, an
// authentication service, net/http as the client.

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/rampart-proxy/rampart/auth"
	"github.com/rampart-proxy/rampart/auth/authtest"
	"github.com/rampart-proxy/rampart/config"
)

// authConfig is a proxy with a route "protected" (/p/) under policy "pol"
// and an open route "open" (everything else), to upstream, and extra at
// the top level.
func authConfig(upstream, policy, extra string) string {
	return fmt.Sprintf(`
listeners:
  web:
    address: 127.0.0.1:0
upstreams:
  app:
    targets:
      - url: http://%s
routes:
  - name: protected
    match: {path_prefix: /p/}
    upstream: app
    auth: pol
  - name: open
    upstream: app
auth:
  pol:
%s
access_log:
  path: "off"
%s
`, upstream, indent(policy, 4), extra)
}

// authGet sends a GET to the proxy with the header fields given (a name
// may repeat) and returns the response with its body read.
func authGet(t *testing.T, client *http.Client, addr, path string, fields ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(fields); i += 2 {
		req.Header.Add(fields[i], fields[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func noRedirects() *http.Client {
	return &http.Client{Timeout: e2eTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

const (
	e2eIss = "https://issuer.example/"
	e2eAud = "my-api"
)

func TestAuthJWTEndToEnd(t *testing.T) {
	key, ecKey := authtest.NewKey("k1", "RS256"), authtest.NewKey("k2", "ES256")
	is := authtest.Start(t, key, ecKey)
	up := okUpstream(t)
	p := startProxy(t, authConfig(up.addr(), fmt.Sprintf(`jwt:
  jwks_url: %s
  issuer: %s
  audience: %s
  claims_to_headers: {sub: X-User, groups: X-Groups}
  cookie: access_token
  min_refresh_interval: 1s`, is.URL, e2eIss, e2eAud), ""))
	client := noRedirects()

	good := func() jwt.MapClaims {
		c := authtest.Claims("alice", e2eIss, e2eAud, time.Minute)
		c["groups"] = []string{"admins", "ops"}
		return c
	}
	with := func(k string, v any) jwt.MapClaims { c := good(); c[k] = v; return c }
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, good()).SignedString(jwt.UnsafeAllowNoneSignatureType)
	der, _ := x509.MarshalPKIXPublicKey(key.Signer.Public())
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, good())
	hs.Header["kid"] = "k1"
	hsTok, _ := hs.SignedString(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))

	tests := []struct {
		name   string
		token  string
		status int
	}{
		{"valid RS256", key.Sign(good()), 200},
		{"valid ES256", ecKey.Sign(good()), 200},
		{"expired", key.Sign(with("exp", time.Now().Add(-time.Hour).Unix())), 401},
		{"wrong audience", key.Sign(with("aud", "other")), 401},
		{"wrong issuer", key.Sign(with("iss", "https://evil.example/")), 401},
		{"unknown key", authtest.NewKey("k9", "RS256").Sign(good()), 401},
		{"alg none", none, 401},
		{"HS256 keyed with the public key", hsTok, 401},
		{"not a token", "abc", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := up.count()
			resp, _ := authGet(t, client, p.addr, "/p/x", "Authorization", "Bearer "+tt.token,
				"X-User", "mallory", "X-User", "eve", "X-Groups", "root")
			if resp.StatusCode != tt.status {
				t.Fatalf("status: got %d; want %d", resp.StatusCode, tt.status)
			}
			if tt.status != 200 {
				if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_token"`) {
					t.Errorf("WWW-Authenticate: got %q; want Bearer error=\"invalid_token\"", got)
				}
				if up.count() != before {
					t.Error("a refused request reached the upstream")
				}
				return
			}
			got := up.last()
			if v := got.values("X-User"); !slices.Equal(v, []string{"alice"}) {
				t.Errorf("X-User upstream: got %q; want [alice] (the client's copies removed)", v)
			}
			if v := got.values("X-Groups"); !slices.Equal(v, []string{"admins, ops"}) {
				t.Errorf("X-Groups upstream: got %q; want [admins, ops]", v)
			}
			if v, n := got.get("Authorization"); n != 0 {
				t.Errorf("Authorization upstream: got %q; want none", v)
			}
		})
	}

	t.Run("no token", func(t *testing.T) {
		resp, _ := authGet(t, client, p.addr, "/p/x")
		if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("got %d %q; want 401 with a Bearer challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	})
	t.Run("token in the cookie", func(t *testing.T) {
		resp, _ := authGet(t, client, p.addr, "/p/x", "Cookie", "theme=dark; access_token="+key.Sign(good()))
		if resp.StatusCode != 200 {
			t.Fatalf("status: got %d; want 200", resp.StatusCode)
		}
		if v := up.last().values("X-User"); !slices.Equal(v, []string{"alice"}) {
			t.Errorf("X-User upstream: got %q; want [alice]", v)
		}
		bad, _ := authGet(t, client, p.addr, "/p/x", "Cookie", "access_token="+key.Sign(with("aud", "other")))
		if bad.StatusCode != 401 {
			t.Errorf("a bad token in the cookie: got %d; want 401", bad.StatusCode)
		}
	})
	t.Run("open route untouched", func(t *testing.T) {
		resp, _ := authGet(t, client, p.addr, "/open", "X-User", "mallory")
		if resp.StatusCode != 200 {
			t.Fatalf("status: got %d; want 200", resp.StatusCode)
		}
		if v := up.last().values("X-User"); !slices.Equal(v, []string{"mallory"}) {
			t.Errorf("X-User on an open route: got %q; want the client's", v)
		}
	})
	rotated := authtest.NewKey("k3", "EdDSA")
	t.Run("key rotation", func(t *testing.T) {
		time.Sleep(1100 * time.Millisecond) // past min_refresh_interval, which the unknown key above used
		is.SetKeys(key, rotated)
		fetches := is.Fetches()
		resp, _ := authGet(t, client, p.addr, "/p/x", "Authorization", "Bearer "+rotated.Sign(good()))
		if resp.StatusCode != 200 {
			t.Errorf("a token of the rotated key: got %d; want 200", resp.StatusCode)
		}
		if got := is.Fetches() - fetches; got != 1 {
			t.Errorf("JWKS fetches for the new kid: got %d; want 1", got)
		}
	})
	t.Run("issuer briefly down", func(t *testing.T) {
		is.SetDown(true)
		defer is.SetDown(false)
		time.Sleep(1100 * time.Millisecond) // past min_refresh_interval: an unknown kid fetches (and fails)
		if resp, _ := authGet(t, client, p.addr, "/p/x", "Authorization", "Bearer "+authtest.NewKey("k8", "RS256").Sign(good())); resp.StatusCode != 401 {
			t.Errorf("unknown kid while down: got %d; want 401", resp.StatusCode)
		}
		for _, k := range []*authtest.Key{key, rotated} {
			if resp, _ := authGet(t, client, p.addr, "/p/x", "Authorization", "Bearer "+k.Sign(good())); resp.StatusCode != 200 {
				t.Errorf("key %s while the issuer is down: got %d; want 200", k.KID, resp.StatusCode)
			}
		}
	})
}

// TestAuthJWTIssuerDownKeepsKeys: the keys fetched at start keep serving
// while the issuer fails.
func TestAuthJWTIssuerDownKeepsKeys(t *testing.T) {
	key := authtest.NewKey("k1", "RS256")
	is := authtest.Start(t, key)
	up := okUpstream(t)
	p := startProxy(t, authConfig(up.addr(), fmt.Sprintf("jwt:\n  jwks_url: %s\n  refresh_interval: 100ms\n  min_refresh_interval: 100ms", is.URL), ""))
	tok := key.Sign(authtest.Claims("alice", e2eIss, e2eAud, time.Minute))
	is.SetDown(true)
	start := is.Fetches()
	deadline := time.Now().Add(e2eTimeout)
	for is.Fetches()-start < 3 && time.Now().Before(deadline) { // refreshes that fail
		time.Sleep(50 * time.Millisecond)
	}
	if is.Fetches()-start < 3 {
		t.Fatal("the JWKS was not refreshed while the issuer was down")
	}
	if resp, _ := authGet(t, noRedirects(), p.addr, "/p/", "Authorization", "Bearer "+tok); resp.StatusCode != 200 {
		t.Errorf("a known key while the issuer is down: got %d; want 200", resp.StatusCode)
	}
}

// authService is a forward authentication service: session=good passes as
// alice, session=slow stalls, anything else is sent to log in.
func authService(t *testing.T) (*httptest.Server, *atomic.Pointer[http.Request]) {
	var last atomic.Pointer[http.Request]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		last.Store(r)
		c, _ := r.Cookie("session")
		switch {
		case c != nil && c.Value == "good":
			w.Header().Set("Remote-User", "alice")
			w.Header().Add("Remote-Groups", "admins")
			w.Header().Set("X-Secret", "not copied")
			w.WriteHeader(200)
		case c != nil && c.Value == "slow":
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
			}
		case c != nil && c.Value == "fail":
			w.WriteHeader(500)
		default:
			w.Header().Set("Location", "https://login.example/?rd="+r.Header.Get("X-Forwarded-Uri"))
			w.Header().Set("Set-Cookie", "flow=1; Path=/")
			w.Header().Set("X-Internal", "not relayed")
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(302)
			_, _ = io.WriteString(w, "<a>log in</a>")
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &last
}

func TestAuthForwardEndToEnd(t *testing.T) {
	svc, last := authService(t)
	up := okUpstream(t)
	p := startProxy(t, authConfig(up.addr(), fmt.Sprintf(`forward:
  url: %s/verify
  copy_headers: [Remote-User, Remote-Groups]
  timeout: 300ms`, svc.URL), ""))
	client := noRedirects()

	t.Run("pass", func(t *testing.T) {
		resp, _ := authGet(t, client, p.addr, "/p/items?id=7", "Cookie", "session=good", "Remote-User", "mallory",
			"Authorization", "Basic Zm9vOmJhcg==")
		if resp.StatusCode != 200 {
			t.Fatalf("status: got %d; want 200", resp.StatusCode)
		}
		got := up.last()
		if v := got.values("Remote-User"); !slices.Equal(v, []string{"alice"}) {
			t.Errorf("Remote-User upstream: got %q; want [alice]", v)
		}
		if v := got.values("Remote-Groups"); !slices.Equal(v, []string{"admins"}) {
			t.Errorf("Remote-Groups upstream: got %q; want [admins]", v)
		}
		if _, n := got.get("X-Secret"); n != 0 {
			t.Error("a field not in copy_headers reached the upstream")
		}
		if _, n := got.get("Authorization"); n != 0 {
			t.Error("Authorization reached the upstream")
		}
		r := last.Load()
		for name, want := range map[string]string{"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/p/items?id=7",
			"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http", "Authorization": "Basic Zm9vOmJhcg=="} {
			if v := r.Header.Get(name); v != want {
				t.Errorf("service got %s %q; want %q", name, v, want)
			}
		}
	})
	t.Run("deny relayed", func(t *testing.T) {
		before := up.count()
		resp, body := authGet(t, client, p.addr, "/p/items", "Cookie", "session=bad")
		if resp.StatusCode != 302 || body != "<a>log in</a>" {
			t.Errorf("got %d %q; want the service's 302 and body", resp.StatusCode, body)
		}
		if got := resp.Header.Get("Location"); got != "https://login.example/?rd=/p/items" {
			t.Errorf("Location: got %q", got)
		}
		if got := resp.Header.Get("Set-Cookie"); !strings.HasPrefix(got, "flow=1") {
			t.Errorf("Set-Cookie: got %q; want flow=1", got)
		}
		if got := resp.Header.Get("X-Internal"); got != "" {
			t.Errorf("X-Internal relayed: %q", got)
		}
		if up.count() != before {
			t.Error("a refused request reached the upstream")
		}
	})
	for _, tt := range []struct{ name, cookie string }{{"service slow", "session=slow"}, {"service failing", "session=fail"}} {
		t.Run(tt.name, func(t *testing.T) {
			before := up.count()
			resp, _ := authGet(t, client, p.addr, "/p/items", "Cookie", tt.cookie)
			if resp.StatusCode != 503 {
				t.Errorf("status: got %d; want 503", resp.StatusCode)
			}
			if up.count() != before {
				t.Error("the request reached the upstream")
			}
		})
	}
	t.Run("service down", func(t *testing.T) {
		down := startProxy(t, authConfig(up.addr(), fmt.Sprintf("forward:\n  url: http://%s/verify\n  failure_status: 502", freeAddr(t)), ""))
		resp, _ := authGet(t, client, down.addr, "/p/items", "Cookie", "session=good")
		if resp.StatusCode != 502 {
			t.Errorf("status: got %d; want the configured 502", resp.StatusCode)
		}
	})
}

func bcryptHash(t testing.TB, pw string, cost int) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func basicAuth(user, pw string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
}

func TestAuthBasicEndToEnd(t *testing.T) {
	up := okUpstream(t)
	p := startProxy(t, authConfig(up.addr(), fmt.Sprintf("basic:\n  users: {alice: %q}\n  realm: Staff", bcryptHash(t, "wonderland", bcrypt.MinCost)),
		"admin:\n  address: 127.0.0.1:0"))
	client := noRedirects()
	tests := []struct {
		name   string
		authz  string
		status int
	}{
		{"good", basicAuth("alice", "wonderland"), 200},
		{"wrong password", basicAuth("alice", "looking-glass"), 401},
		{"unknown user", basicAuth("bob", "wonderland"), 401},
		{"none", "", 401},
		{"bearer", "Bearer abc", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var fields []string
			if tt.authz != "" {
				fields = []string{"Authorization", tt.authz}
			}
			resp, _ := authGet(t, client, p.addr, "/p/x", fields...)
			if resp.StatusCode != tt.status {
				t.Fatalf("status: got %d; want %d", resp.StatusCode, tt.status)
			}
			if tt.status == 401 {
				if got, want := resp.Header.Get("WWW-Authenticate"), `Basic realm="Staff", charset="UTF-8"`; got != want {
					t.Errorf("WWW-Authenticate: got %q; want %q", got, want)
				}
				return
			}
			if v, n := up.last().get("Authorization"); n != 0 {
				t.Errorf("Authorization upstream: got %q; want none", v)
			}
		})
	}
	t.Run("Authorization sent twice", func(t *testing.T) {
		// Repeated fields make the forwarding restore their order: the
		// client's Authorization must not come back with them.
		resp, _ := authGet(t, client, p.addr, "/p/x", "Authorization", basicAuth("alice", "wonderland"), "X-A", "1", "X-A", "2")
		if resp.StatusCode != 200 {
			t.Fatalf("status: got %d; want 200", resp.StatusCode)
		}
		if v, n := up.last().get("Authorization"); n != 0 {
			t.Errorf("Authorization upstream: got %q; want none", v)
		}
	})
	text := scrapeMetrics(t, p)
	for result, want := range map[string]float64{"ok": 2, "denied": 4, "error": 0, "ratelimited": 0} {
		got, found := metricSum(text, "rampart_auth_requests_total", map[string]string{"policy": "pol", "result": result})
		if !found || got != want {
			t.Errorf("rampart_auth_requests_total{result=%q}: got %v (found %v); want %v", result, got, found, want)
		}
	}
}

func TestAuthBasicForwardAuthorization(t *testing.T) {
	up := okUpstream(t)
	p := startProxy(t, authConfig(up.addr(), fmt.Sprintf("basic:\n  users: {alice: %q}\n  forward_authorization: true", bcryptHash(t, "pw", bcrypt.MinCost)), ""))
	if resp, _ := authGet(t, noRedirects(), p.addr, "/p/x", "Authorization", basicAuth("alice", "pw")); resp.StatusCode != 200 {
		t.Fatalf("status: got %d; want 200", resp.StatusCode)
	}
	if v, _ := up.last().get("Authorization"); v != basicAuth("alice", "pw") {
		t.Errorf("Authorization upstream: got %q; want the client's", v)
	}
}

// openLatencies measures sequential GETs of the open route on keep-alive
// connections until stop is closed (at least min, at most 20000), and
// returns them sorted.
func openLatencies(t *testing.T, client *http.Client, addr string, min int, stop <-chan struct{}) []time.Duration {
	var out []time.Duration
	for len(out) < 20000 {
		if len(out) >= min {
			select {
			case <-stop:
				slices.Sort(out)
				return out
			default:
			}
		}
		start := time.Now()
		resp, err := client.Get("http://" + addr + "/open")
		if err != nil {
			t.Errorf("open route: %v", err)
			break
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		out = append(out, time.Since(start))
		if resp.StatusCode != 200 {
			t.Errorf("open route: got %d; want 200", resp.StatusCode)
			break
		}
	}
	slices.Sort(out)
	return out
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

// basicFlood sends rounds wrong guesses from each of 8 workers, worker w's
// round i from the client address addr(w, i) (X-Forwarded-For from a
// trusted peer), and counts the answers by status.
func basicFlood(proxyAddr string, rounds int, addr func(w, i int) string) map[int]int {
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fc := &http.Client{Timeout: e2eTimeout}
			for i := range rounds {
				req, _ := http.NewRequest("GET", "http://"+proxyAddr+"/p/x", nil)
				req.Header.Set("Authorization", basicAuth("alice", fmt.Sprintf("guess%d", i)))
				req.Header.Set("X-Forwarded-For", addr(w, i))
				resp, err := fc.Do(req)
				status := 0
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
				}
				mu.Lock()
				statuses[status]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return statuses
}

// TestAuthBasicFlood: a flood of wrong passwords costs bcrypt at most
// failure_limit times per client address and never more than the bcrypt
// slots at once, and the other route keeps answering. The open route's
// latency percentiles, without and during the flood, go to the test log
// (docs/auth.md quotes them); they are not asserted.
func TestAuthBasicFlood(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("a flood of bcrypt comparisons, timed: not in -short nor under the race detector")
	}
	up := okUpstream(t)
	const limit = 5
	p := startProxy(t, authConfig(up.addr(), fmt.Sprintf("basic:\n  users: {alice: %q}\n  failure_limit: %d", bcryptHash(t, "pw", bcrypt.DefaultCost), limit),
		"trusted_proxies: [127.0.0.1]"))
	pol := p.srv.snap.Load().auths["pol"]
	client := &http.Client{Timeout: e2eTimeout}
	closed := make(chan struct{})
	close(closed)
	base := openLatencies(t, client, p.addr, 2000, closed)
	t.Logf("open route without a flood: p50 %v p90 %v p99 %v (%d requests)", pct(base, .5), pct(base, .9), pct(base, .99), len(base))

	during := func(flood func() map[int]int) ([]time.Duration, map[int]int) {
		stop := make(chan struct{})
		got := make(chan []time.Duration)
		go func() { got <- openLatencies(t, client, p.addr, 1, stop) }()
		statuses := flood()
		close(stop)
		return <-got, statuses
	}

	// One address per worker, 30 guesses each: bcrypt runs limit times
	// per address, the rest is refused 429 unchecked.
	runs := pol.basic.BcryptRuns()
	lat, statuses := during(func() map[int]int {
		return basicFlood(p.addr, 30, func(w, _ int) string { return fmt.Sprintf("10.0.%d.1", w) })
	})
	ran := pol.basic.BcryptRuns() - runs
	t.Logf("open route during a flood from 8 addresses: p50 %v p90 %v p99 %v (%d requests); flood answers %v; bcrypt runs %d",
		pct(lat, .5), pct(lat, .9), pct(lat, .99), len(lat), statuses, ran)
	if ran > 8*limit {
		t.Errorf("bcrypt runs during a flood from 8 addresses: got %d; want at most %d", ran, 8*limit)
	}
	if statuses[429] < 8*(30-limit)-statuses[503] || statuses[200] != 0 {
		t.Errorf("flood answers: got %v; want at least %d 429s, no 200", statuses, 8*(30-limit)-statuses[503])
	}

	// A new address for every guess: each one costs bcrypt, bounded by
	// the slots; the guesses beyond them wait, then get 503.
	runs = pol.basic.BcryptRuns()
	lat, statuses = during(func() map[int]int {
		return basicFlood(p.addr, 4, func(w, i int) string { return fmt.Sprintf("10.1.%d.%d", w, i+1) })
	})
	ran = pol.basic.BcryptRuns() - runs
	t.Logf("open route during a flood from 32 addresses (under the limit): p50 %v p90 %v p99 %v (%d requests); flood answers %v; bcrypt runs %d",
		pct(lat, .5), pct(lat, .9), pct(lat, .99), len(lat), statuses, ran)
	if statuses[200] != 0 || statuses[401]+statuses[503] != 32 {
		t.Errorf("flood answers: got %v; want 32 of 401 or 503", statuses)
	}
	if peak, slots := auth.BcryptPeak(), auth.BcryptSlots(); peak > slots {
		t.Errorf("bcrypt comparisons at once: got %d; want at most %d", peak, slots)
	}
}

// TestAuthReload: an unchanged policy survives a reload (its JWKS is not
// fetched again); a changed one is rebuilt and the old one stopped.
func TestAuthReload(t *testing.T) {
	key := authtest.NewKey("k1", "RS256")
	is := authtest.Start(t, key)
	up := okUpstream(t)
	policy := func(aud string) string {
		return fmt.Sprintf("jwt:\n  jwks_url: %s\n  audience: %s", is.URL, aud)
	}
	addr := freeAddr(t)
	cfgAt := func(policy string) string {
		return strings.Replace(authConfig(up.addr(), policy, ""), "address: 127.0.0.1:0", "address: "+addr, 1)
	}
	src := cfgAt(policy(e2eAud))
	p := startProxy(t, src)
	first := p.srv.snap.Load().auths["pol"]
	fetches := is.Fetches()
	reload := func(src string) {
		t.Helper()
		cfg, err := config.Parse([]byte(src), "test.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.srv.Reload(cfg); err != nil {
			t.Fatal(err)
		}
	}
	reload(src + "\n# a comment changes nothing\n")
	reload(strings.Replace(src, "name: open", "name: open2", 1))
	if got := p.srv.snap.Load().auths["pol"]; got != first {
		t.Error("an unchanged policy was rebuilt by a reload")
	}
	if got := is.Fetches() - fetches; got != 0 {
		t.Errorf("JWKS fetches by reloads of an unchanged policy: got %d; want 0", got)
	}
	reload(cfgAt(policy("new-api")))
	if got := p.srv.snap.Load().auths["pol"]; got == first {
		t.Fatal("a changed policy was kept")
	}
	tok := func(aud string) string { return "Bearer " + key.Sign(authtest.Claims("a", e2eIss, aud, time.Minute)) }
	if resp, _ := authGet(t, noRedirects(), p.addr, "/p/", "Authorization", tok("new-api")); resp.StatusCode != 200 {
		t.Errorf("the new audience after the reload: got %d; want 200", resp.StatusCode)
	}
	if resp, _ := authGet(t, noRedirects(), p.addr, "/p/", "Authorization", tok(e2eAud)); resp.StatusCode != 401 {
		t.Errorf("the old audience after the reload: got %d; want 401", resp.StatusCode)
	}
}

// TestAuthBasicAllocs: a request with remembered basic credentials
// allocates nothing more than one to an open route.
func TestAuthBasicAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	cfg := authConfig(benchUpstream(t), fmt.Sprintf("basic:\n  users: {alice: %q}", bcryptHash(t, "pw", bcrypt.MinCost)), "")
	p := startProxy(t, cfg)
	n := requestAllocs(t, p.addr, "GET /p/hello HTTP/1.1\r\nHost: bench.local\r\nAuthorization: "+basicAuth("alice", "pw")+"\r\n\r\n")
	if n > 0 {
		t.Errorf("got %v allocations per request with remembered credentials; want 0", n)
	}
}

// TestAdminConfigRedactsAuth: the admin config view shows the policies
// without the users' hashes (the names stay).
func TestAdminConfigRedactsAuth(t *testing.T) {
	hash := bcryptHash(t, "pw", bcrypt.MinCost)
	cfg := &config.Config{Auth: map[string]*config.Auth{
		"staff": {Basic: &config.BasicAuth{Users: map[string]string{"alice": hash}, Realm: "Staff"}},
		"sso":   {Forward: &config.ForwardAuth{URL: "http://svc:s3cret@auth:9091/verify", CopyHeaders: []string{"Remote-User"}}},
	}}
	body, err := json.Marshal(redactConfig(cfg))
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{hash, "s3cret"} {
		if strings.Contains(string(body), leak) {
			t.Errorf("the config view shows %q:\n%s", leak, body)
		}
	}
	for _, want := range []string{`"alice":"` + redactedValue + `"`, `"realm":"Staff"`, `"copy_headers":["Remote-User"]`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("the config view lacks %s:\n%s", want, body)
		}
	}
}

// TestAuthBasicUsersFile: users come from an htpasswd file, read again on
// reload; a file with another kind of hash stops the start, naming the line.
func TestAuthBasicUsersFile(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/users.htpasswd"
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("# staff\nalice:" + bcryptHash(t, "a-pw", bcrypt.MinCost) + "\n")
	up := okUpstream(t)
	addr := freeAddr(t)
	src := strings.Replace(authConfig(up.addr(), "basic:\n  users_file: "+file, ""), "address: 127.0.0.1:0", "address: "+addr, 1)
	p := startProxy(t, src)
	client := noRedirects()
	if resp, _ := authGet(t, client, p.addr, "/p/", "Authorization", basicAuth("alice", "a-pw")); resp.StatusCode != 200 {
		t.Fatalf("alice from the file: got %d; want 200", resp.StatusCode)
	}
	if resp, _ := authGet(t, client, p.addr, "/p/", "Authorization", basicAuth("bob", "b-pw")); resp.StatusCode != 401 {
		t.Fatalf("bob before he is in the file: got %d; want 401", resp.StatusCode)
	}
	write("alice:" + bcryptHash(t, "a-pw", bcrypt.MinCost) + "\nbob:" + bcryptHash(t, "b-pw", bcrypt.MinCost) + "\n")
	cfg, err := config.Parse([]byte(src), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	for _, u := range [][2]string{{"alice", "a-pw"}, {"bob", "b-pw"}} {
		if resp, _ := authGet(t, client, p.addr, "/p/", "Authorization", basicAuth(u[0], u[1])); resp.StatusCode != 200 {
			t.Errorf("%s after the reload: got %d; want 200", u[0], resp.StatusCode)
		}
	}

	write("alice:" + bcryptHash(t, "a-pw", bcrypt.MinCost) + "\nbob:$apr1$abc$def\n")
	cfg, err = config.Parse([]byte(src), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.srv.Reload(cfg)
	if err == nil || !strings.Contains(err.Error(), "users_file") || !strings.Contains(err.Error(), `line 2: user "bob": an MD5 ($apr1$) hash`) {
		t.Errorf("reload with an MD5 hash: got %v; want an error naming users_file and line 2", err)
	}
	if resp, _ := authGet(t, client, p.addr, "/p/", "Authorization", basicAuth("bob", "b-pw")); resp.StatusCode != 200 {
		t.Errorf("bob after the refused reload: got %d; want 200 (the running config stays)", resp.StatusCode)
	}
}

// TestAuthHTTP2: the policies work the same for an HTTP/2 client (h2c).
func TestAuthHTTP2(t *testing.T) {
	key := authtest.NewKey("k1", "ES256")
	is := authtest.Start(t, key)
	up := okUpstream(t)
	src := authConfig(up.addr(), fmt.Sprintf("jwt:\n  jwks_url: %s\n  claims_to_headers: {sub: X-User}", is.URL), "")
	src = strings.Replace(src, "    address: 127.0.0.1:0\n", "    address: 127.0.0.1:0\n    protocols: [h2c, http1]\n", 1)
	p := startProxy(t, src)
	tr := h2cTransport(p.addr)
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: e2eTimeout}
	tests := []struct {
		name   string
		token  string
		status int
	}{
		{"valid", key.Sign(authtest.Claims("alice", e2eIss, e2eAud, time.Minute)), 200},
		{"expired", key.Sign(authtest.Claims("alice", e2eIss, e2eAud, -time.Hour)), 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := authGet(t, client, p.addr, "/p/x", "Authorization", "Bearer "+tt.token, "X-User", "mallory")
			if resp.ProtoMajor != 2 {
				t.Fatalf("protocol: got %s; want HTTP/2", resp.Proto)
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status: got %d; want %d", resp.StatusCode, tt.status)
			}
			if tt.status != 200 {
				return
			}
			got := up.last()
			if v := got.values("X-User"); !slices.Equal(v, []string{"alice"}) {
				t.Errorf("X-User upstream: got %q; want [alice]", v)
			}
			if _, n := got.get("Authorization"); n != 0 {
				t.Error("Authorization reached the upstream")
			}
		})
	}
}

// TestAuthJWTOptional: without a token the request goes on, stripped of
// the claim headers; a bad token is still refused.
func TestAuthJWTOptional(t *testing.T) {
	key := authtest.NewKey("k1", "RS256")
	is := authtest.Start(t, key)
	up := okUpstream(t)
	p := startProxy(t, authConfig(up.addr(), fmt.Sprintf("jwt:\n  jwks_url: %s\n  optional: true\n  claims_to_headers: {sub: X-User}", is.URL), ""))
	client := noRedirects()
	resp, _ := authGet(t, client, p.addr, "/p/x", "X-User", "mallory")
	if resp.StatusCode != 200 {
		t.Fatalf("no token: got %d; want 200", resp.StatusCode)
	}
	if v, n := up.last().get("X-User"); n != 0 {
		t.Errorf("X-User upstream without a token: got %q; want none", v)
	}
	if resp, _ := authGet(t, client, p.addr, "/p/x", "Authorization", "Bearer not-a-token"); resp.StatusCode != 401 {
		t.Errorf("a bad token: got %d; want 401", resp.StatusCode)
	}
}

// TestCheckAuth: `rampart validate` (Check) reads the users file but
// fetches no JWKS.
func TestCheckAuth(t *testing.T) {
	key := authtest.NewKey("k1", "RS256")
	is := authtest.Start(t, key)
	tests := []struct {
		name    string
		policy  string
		wantErr string
	}{
		{"jwt", fmt.Sprintf("jwt:\n  jwks_url: %s", is.URL), ""},
		{"missing users file", "basic:\n  users_file: " + t.TempDir() + "/nope", "auth.pol.basic.users_file"},
		{"forward", "forward:\n  url: http://127.0.0.1:1/verify", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(authConfig("127.0.0.1:9", tt.policy, "")), "test.yaml")
			if err != nil {
				t.Fatal(err)
			}
			err = Check(cfg)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("got %v; want %q", err, tt.wantErr)
			}
		})
	}
	if n := is.Fetches(); n != 0 {
		t.Errorf("JWKS fetches by Check: got %d; want 0", n)
	}
}
