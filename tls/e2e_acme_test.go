package tls

import (
	"crypto/tls"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/internal/testcert"
	"github.com/rampart-proxy/rampart/internal/testlog"
	"github.com/rampart-proxy/rampart/internal/testpebble"
)

// pebbleACME is an ACME block for p with a cache directory of t.
func pebbleACME(t testing.TB, p *testpebble.Pebble, hosts ...string) *config.ACME {
	return &config.ACME{
		Email:        "ops@rampart.test",
		DirectoryURL: p.DirURL,
		CAFile:       p.CAFile,
		Cache:        config.StoreDir,
		CacheDir:     filepath.Join(t.TempDir(), "acme"),
		Hosts:        hosts,
	}
}

// checkIssued checks that the certificate of cs was issued for host under
// Pebble's root and that m reports its expiry.
func checkIssued(t testing.TB, m *Manager, cs *tls.ConnectionState, host string) {
	t.Helper()
	leaf := cs.PeerCertificates[0]
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != host {
		t.Errorf("got SANs %q; want [%s]", leaf.DNSNames, host)
	}
	if len(cs.VerifiedChains) == 0 {
		t.Errorf("certificate not verified against Pebble's root")
	}
	for _, c := range m.Certificates() {
		if c.Host == host && c.Source == SourceACME {
			if !c.NotAfter.Equal(leaf.NotAfter.Truncate(time.Second)) {
				t.Errorf("Certificates: expiry %v; want %v", c.NotAfter, leaf.NotAfter)
			}
			return
		}
	}
	t.Errorf("Certificates() = %+v; want %s from acme", m.Certificates(), host)
}

// TestPebbleHTTP01 gets a certificate through HTTP-01: Pebble's TLS-ALPN-01
// port has nothing behind it, so the first authorization fails and autocert
// orders again with HTTP-01, which the plain server answers through
// HTTPChallenge.
func TestPebbleHTTP01(t *testing.T) {
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := testpebble.Start(t, testpebble.Options{HTTPPort: plain.Addr().(*net.TCPAddr).Port, TLSPort: freePort(t)})
	const host = "http01.rampart.test"
	m, err := New(&config.ListenerTLS{ACME: pebbleACME(t, p, host)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var answered atomic.Int32
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if body, ok := m.HTTPChallenge([]byte(r.Host), []byte(r.URL.Path)); ok {
			answered.Add(1)
			w.Header().Set("Content-Type", "text/plain")
			w.Write(body)
			return
		}
		http.NotFound(w, r)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(plain)
	defer srv.Close()
	addr := serveTLS(t, m, nil)
	root, rootFile := p.Root(t)

	body, cs, err := httpsGet(t, addr, host, root)
	if err != nil {
		t.Fatalf("first request: %v", err)
	}
	if body != "ok from "+host {
		t.Fatalf("got body %q", body)
	}
	if answered.Load() == 0 {
		t.Fatal("the plain server answered no HTTP-01 challenge")
	}
	if n := p.Orders(); n != 2 {
		t.Errorf("got %d orders; want 2 (TLS-ALPN-01, then HTTP-01)", n)
	}
	checkIssued(t, m, cs, host)
	curlVerifies(t, addr, host, rootFile)
}

// TestPebbleTLSALPN01 gets a certificate through TLS-ALPN-01, answered by
// the handshake of the listener itself.
func TestPebbleTLSALPN01(t *testing.T) {
	tlsLn := listen(t)
	p := testpebble.Start(t, testpebble.Options{HTTPPort: freePort(t), TLSPort: port(tlsLn)})
	const host = "alpn.rampart.test"
	m, err := New(&config.ListenerTLS{ACME: pebbleACME(t, p, host)}, Options{NoHTTP01: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	addr := serveTLS(t, m, tlsLn)
	root, rootFile := p.Root(t)

	body, cs, err := httpsGet(t, addr, host, root)
	if err != nil {
		t.Fatalf("first request: %v", err)
	}
	if body != "ok from "+host {
		t.Fatalf("got body %q", body)
	}
	if n := p.Orders(); n != 1 {
		t.Errorf("got %d orders; want 1", n)
	}
	checkIssued(t, m, cs, host)
	curlVerifies(t, addr, host, rootFile)
}

// TestPebbleRestartReusesCache: a new Manager, as after a restart, with the
// same cache_dir serves the cached certificate without a new order.
func TestPebbleRestartReusesCache(t *testing.T) {
	p := testpebble.Start(t, testpebble.Options{HTTPPort: freePort(t), TLSPort: freePort(t), AlwaysValid: true})
	const host = "restart.rampart.test"
	a := pebbleACME(t, p, host)
	root, _ := p.Root(t)
	serials := make([]string, 2)
	for i := range serials {
		m, err := New(&config.ListenerTLS{ACME: a}, Options{Issuers: NewIssuers()}) // a new process
		if err != nil {
			t.Fatal(err)
		}
		cs, _, err, serr := handshake(t, m, &tls.Config{ServerName: host, RootCAs: testcert.Pool(root)})
		m.Close()
		if err != nil || serr != nil {
			t.Fatalf("run %d: client %v, server %v", i, err, serr)
		}
		serials[i] = servedSerial(cs)
		if n := p.Orders(); n != 1 {
			t.Fatalf("after run %d: got %d orders; want 1", i, n)
		}
	}
	if serials[0] != serials[1] {
		t.Errorf("got serials %s then %s; want the cached certificate", serials[0], serials[1])
	}
}

// TestPebbleRefusedHost: a name outside the listener's hosts fails its
// handshake without an order, a name the CA refuses fails its own
// handshake with the CA's reason in the log, and an allowed name is served
// meanwhile.
func TestPebbleRefusedHost(t *testing.T) {
	const blocked, ok, other = "blocked.rampart.test", "ok.rampart.test", "other.rampart.test"
	p := testpebble.Start(t, testpebble.Options{HTTPPort: freePort(t), TLSPort: freePort(t), AlwaysValid: true, Blocklist: []string{blocked}})
	var logs testlog.Buffer
	m, err := New(&config.ListenerTLS{ACME: pebbleACME(t, p, ok, blocked)}, Options{Logger: logs.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	root, _ := p.Root(t)

	_, _, err, serr := handshake(t, m, &tls.Config{ServerName: other, RootCAs: testcert.Pool(root)})
	if err == nil || serr == nil || !strings.Contains(serr.Error(), "no certificate") {
		t.Fatalf("%s: client %v, server %v; want no certificate", other, err, serr)
	}
	if n := p.Orders(); n != 0 {
		t.Fatalf("a name outside the hosts made %d orders; want 0", n)
	}

	_, _, err, serr = handshake(t, m, &tls.Config{ServerName: blocked, RootCAs: testcert.Pool(root)})
	if err == nil || serr == nil || !strings.Contains(serr.Error(), "rejectedIdentifier") {
		t.Fatalf("%s: client %v, server %v; want the CA's rejectedIdentifier", blocked, err, serr)
	}
	if !strings.Contains(logs.String(), "host="+blocked) || !strings.Contains(logs.String(), "rejectedIdentifier") {
		t.Errorf("got log %q; want the host and the CA's reason", logs.String())
	}

	var wg sync.WaitGroup
	for _, h := range []string{ok, blocked} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err, serr := handshake(t, m, &tls.Config{ServerName: h, RootCAs: testcert.Pool(root)})
			if h == ok && (err != nil || serr != nil) {
				t.Errorf("%s: client %v, server %v; want success", h, err, serr)
			}
			if h == blocked && serr == nil {
				t.Errorf("%s: succeeded; want the back-off's failure", h)
			}
		}()
	}
	wg.Wait()
}

// TestPebbleFailedValidation: nothing answers either challenge; the
// handshake fails and the log says why Pebble's validation failed, which
// autocert itself does not report.
func TestPebbleFailedValidation(t *testing.T) {
	p := testpebble.Start(t, testpebble.Options{HTTPPort: freePort(t), TLSPort: freePort(t)})
	const host = "unreachable.rampart.test"
	var logs testlog.Buffer
	m, err := New(&config.ListenerTLS{ACME: pebbleACME(t, p, host)}, Options{Logger: logs.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	_, _, err, serr := handshake(t, m, &tls.Config{ServerName: host, InsecureSkipVerify: true})
	if err == nil || serr == nil {
		t.Fatalf("client %v, server %v; want a failure", err, serr)
	}
	for _, want := range []string{"host=" + host, "ACME server:", "tls-alpn-01: urn:ietf:params:acme:error:", "http-01: urn:ietf:params:acme:error:"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("got log %q; want %q in it", logs.String(), want)
		}
	}
}
