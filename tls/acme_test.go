package tls

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/internal/testcert"
	"github.com/rampart-proxy/rampart/internal/testlog"
)

// acmeConfig is an ACME block with a cache in a new directory and a
// directory URL that nothing answers.
func acmeConfig(t testing.TB, hosts ...string) *config.ACME {
	return &config.ACME{
		DirectoryURL: "http://127.0.0.1:1/directory",
		Cache:        config.StoreDir,
		CacheDir:     filepath.Join(t.TempDir(), "acme"),
		Hosts:        hosts,
	}
}

func TestACMEHosts(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t, "CA")
	cf, kf := ca.Issue(t, "static", time.Now().Add(time.Hour), false, "static.test", "*.wild.test").Write(t, dir, "s")
	static := []config.Certificate{{CertFile: cf, KeyFile: kf}}
	routes := []string{"api.test", "API.test", "*.x.test", "localhost", "10.0.0.1", "static.test", "a.wild.test", "www.test."}
	tests := []struct {
		name       string
		configured []string
		static     []config.Certificate
		want       []string
	}{
		{"configured hosts win over the routes'", []string{"one.test", "Two.test"}, static, []string{"one.test", "two.test"}},
		{"routes: exact DNS names only, not covered by a static certificate", nil, static, []string{"api.test", "www.test"}},
		{"routes without static certificates", nil, nil, []string{"api.test", "static.test", "a.wild.test", "www.test"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := acmeConfig(t, tt.configured...)
			m, err := New(&config.ListenerTLS{Certificates: tt.static, ACME: a}, Options{RouteHosts: routes})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			var got []string
			for h := range m.acme {
				got = append(got, h)
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tt.want))
			if !slices.Equal(got, want) {
				t.Fatalf("got ACME hosts %q; want %q", got, want)
			}
			if got := m.TLSConfig().NextProtos; !slices.Equal(got, []string{"http/1.1", "acme-tls/1"}) {
				t.Errorf("got ALPN %q; want http/1.1, acme-tls/1", got)
			}
		})
	}
	t.Run("no host and no certificate", func(t *testing.T) {
		_, err := New(&config.ListenerTLS{ACME: acmeConfig(t)}, Options{Name: "websecure", RouteHosts: []string{"*.x.test"}})
		if err == nil || !strings.Contains(err.Error(), "listeners.websecure.tls.acme") {
			t.Fatalf("got %v; want an error naming listeners.websecure.tls.acme", err)
		}
	})
}

func TestCacheDirModes(t *testing.T) {
	t.Run("created 0700, files 0600", func(t *testing.T) {
		a := acmeConfig(t, "a.test")
		a.CacheDir = filepath.Join(t.TempDir(), "deep", "acme")
		m, err := New(&config.ListenerTLS{ACME: a}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		checkMode(t, a.CacheDir, 0o700)
		if err := m.issuer.cache.Put(context.Background(), "a.test", []byte("x")); err != nil {
			t.Fatal(err)
		}
		checkMode(t, filepath.Join(a.CacheDir, "a.test"), 0o600)
	})
	t.Run("an open directory is tightened", func(t *testing.T) {
		a := acmeConfig(t, "a.test")
		if err := os.MkdirAll(a.CacheDir, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chmod(a.CacheDir, 0o755)
		var logs testlog.Buffer
		m, err := New(&config.ListenerTLS{ACME: a}, Options{Logger: logs.Logger()})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		checkMode(t, a.CacheDir, 0o700)
		if !strings.Contains(logs.String(), "made it 0700") {
			t.Errorf("got log %q; want a warning", logs.String())
		}
	})
	t.Run("a file in the way", func(t *testing.T) {
		a := acmeConfig(t, "a.test")
		testcert.WriteFile(t, a.CacheDir, nil)
		_, err := New(&config.ListenerTLS{ACME: a}, Options{Name: "web"})
		if err == nil || !strings.Contains(err.Error(), "listeners.web.tls.acme.cache_dir") {
			t.Fatalf("got %v; want an error naming cache_dir", err)
		}
	})
}

func checkMode(t testing.TB, name string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: got mode %v; want %v", name, got, want)
	}
}

func TestHTTPChallenge(t *testing.T) {
	m, err := New(&config.ListenerTLS{ACME: acmeConfig(t, "a.test", "b.test")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	const token = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"
	if err := m.issuer.cache.Put(context.Background(), token+http01Suffix, []byte(token+".thumb")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, host, path string
		want             string // "": not answered
	}{
		{"pending token", "a.test", ChallengePathPrefix + token, token + ".thumb"},
		{"host with a port, upper case", "A.TEST:80", ChallengePathPrefix + token, token + ".thumb"},
		{"another ACME host", "b.test", ChallengePathPrefix + token, token + ".thumb"},
		{"host not ACME's", "c.test", ChallengePathPrefix + token, ""},
		{"unknown token", "a.test", ChallengePathPrefix + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", ""},
		{"token with a slash", "a.test", ChallengePathPrefix + token + "/x", ""},
		{"not a challenge path", "a.test", "/index.html", ""},
		{"IPv6 literal", "[::1]:80", ChallengePathPrefix + token, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, ok := m.HTTPChallenge([]byte(tt.host), []byte(tt.path))
			if ok != (tt.want != "") || string(body) != tt.want {
				t.Fatalf("got %q, %v; want %q", body, ok, tt.want)
			}
		})
	}
	t.Run("deleted token", func(t *testing.T) {
		m.issuer.cache.Delete(context.Background(), token+http01Suffix)
		if body, ok := m.HTTPChallenge([]byte("a.test"), []byte(ChallengePathPrefix+token)); ok {
			t.Fatalf("got %q; want no answer", body)
		}
	})
	t.Run("no allocation", func(t *testing.T) {
		host, path, other := []byte("A.test:8080"), []byte("/api/v1/users"), []byte(ChallengePathPrefix+token)
		for _, p := range [][]byte{path, other} {
			if n := testing.AllocsPerRun(100, func() { m.HTTPChallenge(host, p) }); n != 0 {
				t.Errorf("path %s: got %v allocations; want 0", p, n)
			}
		}
	})
	t.Run("no ACME", func(t *testing.T) {
		s, _ := staticManager(t, config.ListenerTLS{})
		if _, ok := s.HTTPChallenge([]byte("a.test"), []byte(ChallengePathPrefix+token)); ok {
			t.Fatal("a Manager without ACME answered")
		}
	})
}

func TestBackoff(t *testing.T) {
	for _, tt := range []struct {
		failures int
		want     time.Duration
	}{{1, 2 * time.Minute}, {2, 4 * time.Minute}, {3, 8 * time.Minute}, {5, 32 * time.Minute}, {6, time.Hour}, {50, time.Hour}} {
		if got := backoff(tt.failures); got != tt.want {
			t.Errorf("backoff(%d): got %v; want %v", tt.failures, got, tt.want)
		}
	}
}

func TestIssuersAcrossRebuilds(t *testing.T) {
	issuers := NewIssuers()
	a := acmeConfig(t, "a.test")
	m1, err := New(&config.ListenerTLS{ACME: a}, Options{Issuers: issuers})
	if err != nil {
		t.Fatal(err)
	}
	b := *a
	b.Hosts = []string{"b.test"}
	m2, err := New(&config.ListenerTLS{ACME: &b}, Options{Issuers: issuers})
	if err != nil {
		t.Fatal(err)
	}
	if m1.issuer != m2.issuer {
		t.Fatal("same ACME account and cache: got two issuers; want one")
	}
	policy := func(host string) bool { return m1.issuer.hostPolicy(context.Background(), host) == nil }
	if !policy("a.test") || !policy("b.test") || policy("c.test") {
		t.Errorf("host policy with both: a %v, b %v, c %v; want true, true, false", policy("a.test"), policy("b.test"), policy("c.test"))
	}
	m1.Close()
	m1.Close()
	if policy("a.test") || !policy("b.test") {
		t.Errorf("host policy after closing a's Manager: a %v, b %v; want false, true", policy("a.test"), policy("b.test"))
	}
	if m2.issuer.transport.closed.Load() {
		t.Fatal("issuer retired while a Manager holds it")
	}
	c := *a
	c.Email = "other@example.com"
	m3, err := New(&config.ListenerTLS{ACME: &c}, Options{Issuers: issuers})
	if err != nil {
		t.Fatal(err)
	}
	defer m3.Close()
	if m3.issuer == m2.issuer {
		t.Fatal("another account shares the issuer")
	}
	m2.Close()
	if !m2.issuer.transport.closed.Load() {
		t.Fatal("issuer not retired after its last Manager closed")
	}
	m4, err := New(&config.ListenerTLS{ACME: a}, Options{Issuers: issuers})
	if err != nil {
		t.Fatal(err)
	}
	defer m4.Close()
	if m4.issuer == m2.issuer {
		t.Fatal("a retired issuer was reused")
	}
}

// TestFailedOrderFailsOnlyItsHost refuses every ACME request with a
// problem document: the host's handshake fails with the server's reason,
// which is logged; the next one fails at once without asking the server
// again; other names are served.
func TestFailedOrderFailsOnlyItsHost(t *testing.T) {
	var requests atomic.Int32
	acmeSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(`{"type":"urn:ietf:params:acme:error:unauthorized","detail":"test CA refuses everyone"}`))
	}))
	defer acmeSrv.Close()
	dir := t.TempDir()
	ca := testcert.NewCA(t, "CA")
	cf, kf := ca.Issue(t, "static", time.Now().Add(time.Hour), false, "static.test").Write(t, dir, "s")
	a := acmeConfig(t, "fail.test")
	a.DirectoryURL = acmeSrv.URL + "/directory"
	var logs testlog.Buffer
	m, err := New(&config.ListenerTLS{Certificates: []config.Certificate{{CertFile: cf, KeyFile: kf}}, ACME: a},
		Options{Logger: logs.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	_, _, err, serr := handshake(t, m, &tls.Config{ServerName: "fail.test", InsecureSkipVerify: true})
	if err == nil || serr == nil || !strings.Contains(serr.Error(), "test CA refuses everyone") {
		t.Fatalf("first handshake: client %v, server %v; want a failure with the CA's reason", err, serr)
	}
	if !strings.Contains(logs.String(), "test CA refuses everyone") || !strings.Contains(logs.String(), "host=fail.test") {
		t.Errorf("got log %q; want the host and the CA's reason", logs.String())
	}
	n := requests.Load()
	_, _, err, serr = handshake(t, m, &tls.Config{ServerName: "fail.test", InsecureSkipVerify: true})
	if err == nil || serr == nil || !strings.Contains(serr.Error(), "before") || !strings.Contains(serr.Error(), "test CA refuses everyone") {
		t.Fatalf("second handshake: client %v, server %v; want a failure until the retry time", err, serr)
	}
	if got := requests.Load(); got != n {
		t.Errorf("second handshake: the CA got %d more requests; want 0 during the back-off", got-n)
	}
	cs, _, err, serr := handshake(t, m, &tls.Config{ServerName: "static.test", RootCAs: testcert.Pool(ca.PEM)})
	if err != nil || serr != nil {
		t.Fatalf("other host: client %v, server %v; want success", err, serr)
	}
	if cs.PeerCertificates[0].Subject.CommonName != "static" {
		t.Errorf("other host: got %q", cs.PeerCertificates[0].Subject.CommonName)
	}
	// Another name, not an ACME host: the static default, no order.
	if _, _, err, serr := handshake(t, m, &tls.Config{ServerName: "unlisted.test", InsecureSkipVerify: true}); err != nil || serr != nil {
		t.Fatalf("unlisted host: client %v, server %v; want the default certificate", err, serr)
	}
	if got := requests.Load(); got != n {
		t.Errorf("other hosts made %d requests to the CA; want 0", got-n)
	}
}

func TestALPNChallengeOnlyForACMEHosts(t *testing.T) {
	m, err := New(&config.ListenerTLS{ACME: acmeConfig(t, "a.test")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	_, _, err, serr := handshake(t, m, &tls.Config{ServerName: "c.test", InsecureSkipVerify: true, NextProtos: []string{ALPNChallenge}})
	if err == nil || !errors.Is(serr, ErrRefused) {
		t.Fatalf("client %v, server %v; want ErrRefused", err, serr)
	}
	// An ACME host without a pending validation: autocert has no token.
	_, _, err, serr = handshake(t, m, &tls.Config{ServerName: "a.test", InsecureSkipVerify: true, NextProtos: []string{ALPNChallenge}})
	if err == nil || serr == nil || !strings.Contains(serr.Error(), "no token cert") {
		t.Fatalf("client %v, server %v; want autocert's no token", err, serr)
	}
}
