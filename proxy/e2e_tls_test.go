package proxy

// End-to-end tests of TLS through the proxy: static certificates chosen by
// SNI, min_version, redirect_https and HSTS, HTTPS and mTLS upstreams,
// client certificate authentication, and ACME against a real ACME server
// (Pebble) whose validations reach the proxy's own listeners.
//
// The certificate and Pebble helpers are adapted from package tls's tests
// (tls/certs_test.go, tls/pebble_test.go), which package proxy cannot import.

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/internal/testcert"
	"github.com/rampart-proxy/rampart/internal/testpebble"
)

// --- TLS clients ---------------------------------------------------------------

// tlsDial connects to addr and completes a handshake with conf.
func tlsDial(addr string, conf *tls.Config) (*tls.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, e2eTimeout)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(e2eTimeout))
	tc := tls.Client(c, conf)
	if err := tc.Handshake(); err != nil {
		_ = c.Close()
		return nil, err
	}
	return tc, nil
}

// tlsGet sends one GET over a new TLS connection and reads the response.
// With TLS 1.3 a server's refusal of the client's certificate arrives after
// the client's handshake has completed: it shows as an error here.
func tlsGet(addr string, conf *tls.Config, host, path string, headers ...string) (*rawMessage, *tls.ConnectionState, error) {
	tc, err := tlsDial(addr, conf)
	if err != nil {
		return nil, nil, err
	}
	defer tc.Close()
	var b strings.Builder
	b.WriteString("GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n")
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(tc, b.String()); err != nil {
		return nil, nil, err
	}
	resp, err := readRawResponse(bufio.NewReader(tc), "GET")
	if err != nil {
		return nil, nil, err
	}
	cs := tc.ConnectionState()
	return resp, &cs, nil
}

// staticTLSYAML is a listener tls block with the given certificate files
// and extra lines.
func staticTLSYAML(extra string, pairs ...[2]string) string {
	var b strings.Builder
	b.WriteString("tls:\n  certificates:\n")
	for _, p := range pairs {
		fmt.Fprintf(&b, "    - cert_file: %s\n      key_file: %s\n", p[0], p[1])
	}
	if extra != "" {
		b.WriteString(indent(extra, 2) + "\n")
	}
	return b.String()
}

// --- static certificates ---------------------------------------------------------

// TestE2ETLSStaticSNI: the certificate the client sees per SNI (exact SAN,
// wildcard SAN, the first as default), ALPN, and the request reaching the
// upstream marked as https.
func TestE2ETLSStaticSNI(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t, "Static CA")
	exact := ca.Issue(t, "exact", time.Time{}, false, "api.example.com", "www.example.com")
	wild := ca.Issue(t, "wildcard", time.Time{}, false, "*.example.net")
	ecf, ekf := exact.Write(t, dir, "exact")
	wcf, wkf := wild.Write(t, dir, "wild")
	up := okUpstream(t)
	p := startProxy(t, oneUpstreamConfig(up.addr(), staticTLSYAML("", [2]string{ecf, ekf}, [2]string{wcf, wkf}), "", ""))

	roots := testcert.Pool(ca.PEM)
	for _, tc := range []struct {
		name, sni string
		want      testcert.Leaf
		verify    bool // the name is one of the certificate's
	}{
		{"exact SAN", "api.example.com", exact, true},
		{"second SAN of the first", "www.example.com", exact, true},
		{"exact, upper case", "API.Example.COM", exact, true},
		{"wildcard SAN", "shop.example.net", wild, true},
		{"wildcard, another label", "x-1.example.net", wild, true},
		{"wildcard covers one label only", "a.b.example.net", exact, false},
		{"wildcard does not cover the apex", "example.net", exact, false},
		{"unknown name: the default", "other.example.org", exact, false},
		{"no SNI: the default", "", exact, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf := &tls.Config{ServerName: tc.sni, RootCAs: roots, NextProtos: []string{"http/1.1"}}
			if !tc.verify {
				conf.InsecureSkipVerify = true
			}
			// By default the listener prefers h2 by ALPN.
			h2conf := conf.Clone()
			h2conf.NextProtos = []string{"http/1.1", "h2"}
			if c, err := tlsDial(p.addr, h2conf); err != nil {
				t.Errorf("handshake offering h2: %v", err)
			} else {
				if got := c.ConnectionState().NegotiatedProtocol; got != "h2" {
					t.Errorf("got ALPN %q; want h2", got)
				}
				c.Close()
			}
			host := tc.sni
			if host == "" {
				host = "127.0.0.1"
			}
			resp, cs, err := tlsGet(p.addr, conf, host, "/sni")
			if err != nil {
				t.Fatalf("GET: %v", err)
			}
			if got := cs.PeerCertificates[0].SerialNumber; got.Cmp(tc.want.Cert.SerialNumber) != 0 {
				t.Errorf("got certificate %q (serial %v); want %q", cs.PeerCertificates[0].Subject.CommonName, got, tc.want.Cert.Subject.CommonName)
			}
			if cs.NegotiatedProtocol != "http/1.1" {
				t.Errorf("got ALPN %q; want http/1.1", cs.NegotiatedProtocol)
			}
			if resp.status() != 200 || string(resp.body) != "ok" {
				t.Errorf("got %d %q; want 200 ok", resp.status(), resp.body)
			}
			if got, _ := up.last().get("X-Forwarded-Proto"); got != "https" {
				t.Errorf("upstream got X-Forwarded-Proto %q; want https", got)
			}
		})
	}
	t.Run("default min_version 1.2 accepts TLS 1.2", func(t *testing.T) {
		tc, err := tlsDial(p.addr, &tls.Config{ServerName: "api.example.com", RootCAs: roots, MaxVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatalf("TLS 1.2 handshake: %v", err)
		}
		defer tc.Close()
		if v := tc.ConnectionState().Version; v != tls.VersionTLS12 {
			t.Errorf("got version %x; want TLS 1.2", v)
		}
	})
	t.Run("TLS 1.1 refused", func(t *testing.T) {
		if tc, err := tlsDial(p.addr, &tls.Config{ServerName: "api.example.com", RootCAs: roots,
			MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}); err == nil {
			tc.Close()
			t.Fatal("a TLS 1.1 handshake succeeded")
		}
	})
}

// TestE2ETLSMinVersion13: min_version "1.3" refuses a client that speaks TLS
// 1.2 at most, and serves a TLS 1.3 client.
func TestE2ETLSMinVersion13(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t, "Static CA")
	cf, kf := ca.Issue(t, "v13", time.Time{}, false, "v13.example.com").Write(t, dir, "v13")
	up := okUpstream(t)
	p := startProxy(t, oneUpstreamConfig(up.addr(), staticTLSYAML(`min_version: "1.3"`, [2]string{cf, kf}), "", ""))
	roots := testcert.Pool(ca.PEM)

	if tc, err := tlsDial(p.addr, &tls.Config{ServerName: "v13.example.com", RootCAs: roots, MaxVersion: tls.VersionTLS12}); err == nil {
		tc.Close()
		t.Fatal("a TLS 1.2-only client completed a handshake with min_version 1.3")
	} else if !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("got %v; want a protocol version alert", err)
	}
	if n := up.count(); n != 0 {
		t.Errorf("upstream got %d requests from a refused client", n)
	}
	resp, cs, err := tlsGet(p.addr, &tls.Config{ServerName: "v13.example.com", RootCAs: roots}, "v13.example.com", "/")
	if err != nil {
		t.Fatalf("TLS 1.3 GET: %v", err)
	}
	if cs.Version != tls.VersionTLS13 || resp.status() != 200 {
		t.Errorf("got version %x status %d; want TLS 1.3, 200", cs.Version, resp.status())
	}
}

// --- redirect_https and HSTS ---------------------------------------------------------

// TestE2ETLSRedirectAndHSTS: a plain-listener route with redirect_https
// answers 308 to the https URL on the TLS listener's port, without reaching
// the upstream; the same route on the TLS listener is proxied with HSTS.
func TestE2ETLSRedirectAndHSTS(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t, "Static CA")
	cf, kf := ca.Issue(t, "app", time.Time{}, false, "app.example.com", "plain.example.com", "answer.example.com").Write(t, dir, "app")
	up := okUpstream(t)
	tlsAddr := freeAddr(t)
	_, tlsPort, _ := net.SplitHostPort(tlsAddr)
	p := startProxy(t, fmt.Sprintf(`
listeners:
  web:
    address: 127.0.0.1:0
  websecure:
    address: %s
%s
upstreams:
  app:
    targets:
      - url: http://%s
routes:
  - name: secure
    match: {host: app.example.com}
    upstream: app
    redirect_https: true
    hsts: true
  - name: plain
    match: {host: plain.example.com}
    upstream: app
  - name: answered
    listeners: [websecure]
    match: {host: answer.example.com}
    respond: {status: 200, body: "answered"}
    hsts: true
access_log: {path: "off"}
`, tlsAddr, indent(staticTLSYAML("", [2]string{cf, kf}), 4), up.addr()))

	for _, tc := range []struct {
		name, method, host, target, want string
	}{
		{"path and query", "GET", "app.example.com", "/a/b?x=1&y=%20z", "https://app.example.com:" + tlsPort + "/a/b?x=1&y=%20z"},
		{"root", "GET", "app.example.com", "/", "https://app.example.com:" + tlsPort + "/"},
		{"host with the plain port", "GET", "app.example.com:8080", "/p", "https://app.example.com:" + tlsPort + "/p"},
		{"host lower-cased, empty query dropped", "GET", "APP.example.com", "/q?", "https://app.example.com:" + tlsPort + "/q"},
		{"POST keeps its method (308)", "POST", "app.example.com", "/form", "https://app.example.com:" + tlsPort + "/form"},
		{"absolute-form target", "GET", "app.example.com", "http://app.example.com/abs?k=v", "https://app.example.com:" + tlsPort + "/abs?k=v"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, p.addr)
			req := tc.method + " " + tc.target + " HTTP/1.1\r\nHost: " + tc.host + "\r\n"
			if tc.method == "POST" {
				req += "Content-Length: 2\r\n\r\nhi"
			} else {
				req += "\r\n"
			}
			resp := c.roundTrip(req)
			if resp.status() != 308 {
				t.Fatalf("got status %d; want 308", resp.status())
			}
			if got, _ := resp.get("Location"); got != tc.want {
				t.Errorf("got Location %q; want %q", got, tc.want)
			}
			if got, n := resp.get("Strict-Transport-Security"); n != 0 {
				t.Errorf("plain listener sent Strict-Transport-Security %q", got)
			}
		})
	}
	if n := up.count(); n != 0 {
		t.Errorf("upstream got %d requests from redirected ones; want 0", n)
	}

	t.Run("route without redirect on the plain listener", func(t *testing.T) {
		resp := rawGet(t, p.addr, "plain.example.com", "/x")
		if resp.status() != 200 {
			t.Errorf("got %d; want 200", resp.status())
		}
	})
	roots := testcert.Pool(ca.PEM)
	// The header is set before the round trip, and reading the target's
	// response header resets ctx.Response: HSTS must survive that.
	t.Run("hsts on a proxied response", func(t *testing.T) {
		resp, _, err := tlsGet(p.srv.Addr("websecure"), &tls.Config{ServerName: "app.example.com", RootCAs: roots}, "app.example.com", "/s")
		if err != nil {
			t.Fatal(err)
		}
		if resp.status() != 200 {
			t.Errorf("got %d; want 200 (no redirect on TLS)", resp.status())
		}
		if got, _ := resp.get("Strict-Transport-Security"); !strings.HasPrefix(got, "max-age=") {
			t.Errorf("got Strict-Transport-Security %q; want max-age=...", got)
		}
	})
	t.Run("hsts on a response the proxy makes", func(t *testing.T) {
		resp, _, err := tlsGet(p.srv.Addr("websecure"), &tls.Config{ServerName: "answer.example.com", RootCAs: roots}, "answer.example.com", "/")
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := resp.get("Strict-Transport-Security"); resp.status() != 200 || !strings.HasPrefix(got, "max-age=") {
			t.Errorf("got %d, Strict-Transport-Security %q; want 200, max-age=...", resp.status(), got)
		}
	})
	t.Run("no hsts on a route without it", func(t *testing.T) {
		resp, _, err := tlsGet(p.srv.Addr("websecure"), &tls.Config{ServerName: "plain.example.com", RootCAs: roots}, "plain.example.com", "/s")
		if err != nil {
			t.Fatal(err)
		}
		if got, n := resp.get("Strict-Transport-Security"); n != 0 {
			t.Errorf("got Strict-Transport-Security %q; want none", got)
		}
	})
}

// --- HTTPS upstreams -------------------------------------------------------------

// tlsUpstream is an HTTPS server of one test that records the SNI and the
// client certificate of each request.
type tlsUpstream struct {
	*httptest.Server
	port string

	mu      sync.Mutex // guards the fields below
	sni     []string
	clients []string // the client certificate's CN, "" for none
}

// startTLSUpstream serves HTTPS with leaf; when clientCA is not nil, it
// requires a client certificate verified against it.
func startTLSUpstream(t *testing.T, leaf testcert.Leaf, clientCA *testcert.CA) *tlsUpstream {
	t.Helper()
	u := &tlsUpstream{}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cn := ""
		if len(r.TLS.PeerCertificates) > 0 {
			cn = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		u.mu.Lock()
		u.sni = append(u.sni, r.TLS.ServerName)
		u.clients = append(u.clients, cn)
		u.mu.Unlock()
		io.WriteString(w, "secure")
	}))
	u.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLSCert(t)}}
	if clientCA != nil {
		u.TLS.ClientCAs = testcert.Pool(clientCA.PEM)
		u.TLS.ClientAuth = tls.RequireAndVerifyClientCert
	}
	u.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	u.StartTLS()
	t.Cleanup(u.Close)
	_, u.port, _ = net.SplitHostPort(u.Listener.Addr().String())
	return u
}

// last returns the SNI and client CN of the last request ("", "" and false
// when there was none).
func (u *tlsUpstream) last() (sni, client string, ok bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.sni) == 0 {
		return "", "", false
	}
	return u.sni[len(u.sni)-1], u.clients[len(u.clients)-1], true
}

func (u *tlsUpstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.sni)
}

// httpsUpstreamConfig is a plain listener "web" and a catch-all route to
// the https target url, with tlsYAML under the upstream.
func httpsUpstreamConfig(url, tlsYAML string) string {
	return httpsUpstreamConfigAt("127.0.0.1:0", url, tlsYAML)
}

// httpsUpstreamConfigAt is httpsUpstreamConfig with "web" at listen.
func httpsUpstreamConfigAt(listen, url, tlsYAML string) string {
	return fmt.Sprintf(`
listeners:
  web:
    address: %s
upstreams:
  app:
    targets:
      - url: %s
%s
routes:
  - name: all
    upstream: app
access_log: {path: "off"}
`, listen, url, indent(tlsYAML, 4))
}

// TestE2ETLSUpstreamHTTPS: an https:// target is verified against the
// system roots (fails: a private CA), or ca_file; insecure_skip_verify
// skips it; the SNI is the target's host or server_name.
func TestE2ETLSUpstreamHTTPS(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t, "Upstream CA")
	caFile := ca.WriteCA(t, dir, "upstream-ca")
	otherFile := testcert.NewCA(t, "Other CA").WriteCA(t, dir, "other-ca")
	u := startTLSUpstream(t, ca.Issue(t, "upstream", time.Time{}, false, "localhost", "alt.internal", "127.0.0.1"), nil)
	url := "https://localhost:" + u.port

	for _, tc := range []struct {
		name, tls string
		status    int
		sni       string
	}{
		{"system roots: unknown authority", "", 502, ""},
		{"ca_file", "tls:\n  ca_file: " + caFile, 200, "localhost"},
		{"ca_file of another CA", "tls:\n  ca_file: " + otherFile, 502, ""},
		{"insecure_skip_verify", "tls:\n  insecure_skip_verify: true", 200, "localhost"},
		{"server_name", "tls:\n  ca_file: " + caFile + "\n  server_name: alt.internal", 200, "alt.internal"},
		{"server_name the certificate lacks", "tls:\n  ca_file: " + caFile + "\n  server_name: nope.internal", 502, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := u.count()
			p := startProxy(t, httpsUpstreamConfig(url, tc.tls))
			resp := rawGet(t, p.addr, "app.test", "/")
			if resp.status() != tc.status {
				t.Fatalf("got status %d %q; want %d", resp.status(), resp.body, tc.status)
			}
			if tc.status != 200 {
				if u.count() != before {
					t.Errorf("the upstream served a request over an unverified connection")
				}
				return
			}
			if string(resp.body) != "secure" {
				t.Errorf("got body %q; want secure", resp.body)
			}
			if sni, _, _ := u.last(); sni != tc.sni {
				t.Errorf("upstream saw SNI %q; want %q", sni, tc.sni)
			}
		})
	}
}

// TestE2ETLSUpstreamIP: a target written as an IP is verified against the
// certificate's IP SAN (and sends no SNI, as RFC 6066 requires).
func TestE2ETLSUpstreamIP(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t, "Upstream CA")
	u := startTLSUpstream(t, ca.Issue(t, "upstream", time.Time{}, false, "127.0.0.1"), nil)
	p := startProxy(t, httpsUpstreamConfig("https://127.0.0.1:"+u.port, "tls:\n  ca_file: "+ca.WriteCA(t, dir, "ca")))
	resp := rawGet(t, p.addr, "app.test", "/")
	if resp.status() != 200 {
		t.Fatalf("got %d %q; want 200", resp.status(), resp.body)
	}
	if sni, _, _ := u.last(); sni != "" {
		t.Errorf("got SNI %q for an IP target; want none", sni)
	}
}

// TestE2ETLSUpstreamMTLS: an upstream that requires a client certificate is
// served when cert_file and key_file are set, refused otherwise.
func TestE2ETLSUpstreamMTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t, "Upstream CA")
	clientCA := testcert.NewCA(t, "Client CA")
	caFile := ca.WriteCA(t, dir, "upstream-ca")
	u := startTLSUpstream(t, ca.Issue(t, "upstream", time.Time{}, false, "localhost"), clientCA)
	url := "https://localhost:" + u.port
	ccf, ckf := clientCA.Issue(t, "rampart-edge", time.Time{}, true).Write(t, dir, "client")
	wcf, wkf := testcert.NewCA(t, "Stranger CA").Issue(t, "stranger", time.Time{}, true).Write(t, dir, "stranger")

	for _, tc := range []struct {
		name, tls string
		status    int
	}{
		{"client certificate", fmt.Sprintf("tls:\n  ca_file: %s\n  cert_file: %s\n  key_file: %s", caFile, ccf, ckf), 200},
		{"no client certificate", "tls:\n  ca_file: " + caFile, 502},
		// crypto/tls sends no certificate that the upstream's list of
		// acceptable CAs rules out: the upstream sees none.
		{"a certificate of another CA", fmt.Sprintf("tls:\n  ca_file: %s\n  cert_file: %s\n  key_file: %s", caFile, wcf, wkf), 502},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := u.count()
			p := startProxy(t, httpsUpstreamConfig(url, tc.tls))
			resp := rawGet(t, p.addr, "app.test", "/")
			if resp.status() != tc.status {
				t.Fatalf("got status %d %q; want %d", resp.status(), resp.body, tc.status)
			}
			if tc.status != 200 {
				if u.count() != before {
					t.Error("the upstream served a request without a verified client certificate")
				}
				return
			}
			if _, cn, _ := u.last(); cn != "rampart-edge" {
				t.Errorf("upstream saw client certificate %q; want rampart-edge", cn)
			}
		})
	}
}

// TestE2ETLSUpstreamReloadTLS: a reload that changes only an upstream's tls
// block (not the target's address) takes effect: adding ca_file makes the
// target reachable, and removing insecure_skip_verify makes the proxy verify
// again.
func TestE2ETLSUpstreamReloadTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t, "Upstream CA")
	caFile := ca.WriteCA(t, dir, "upstream-ca")
	otherFile := testcert.NewCA(t, "Other CA").WriteCA(t, dir, "other-ca")
	u := startTLSUpstream(t, ca.Issue(t, "upstream", time.Time{}, false, "localhost"), nil)
	url := "https://localhost:" + u.port
	listen := freeAddr(t)
	p := startProxy(t, httpsUpstreamConfigAt(listen, url, "tls:\n  insecure_skip_verify: true"))
	reload := func(tlsYAML string) {
		t.Helper()
		cfg, err := config.Parse([]byte(httpsUpstreamConfigAt(listen, url, tlsYAML)), "test.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.srv.Reload(cfg); err != nil {
			t.Fatalf("Reload: %v", err)
		}
	}
	steps := []struct {
		name, tls string
		status    int
	}{
		{"insecure_skip_verify", "tls:\n  insecure_skip_verify: true", 200},
		{"insecure_skip_verify removed: the system roots", "", 502},
		{"ca_file of another CA", "tls:\n  ca_file: " + otherFile, 502},
		{"ca_file", "tls:\n  ca_file: " + caFile, 200},
	}
	for i, s := range steps {
		if i > 0 {
			reload(s.tls)
		}
		// A fresh connection each time, so that no pooled connection of the
		// previous settings is reused.
		resp := rawGet(t, p.addr, "app.test", "/", "Connection: close")
		if resp.status() != s.status {
			t.Errorf("step %d (%s): got status %d; want %d", i, s.name, resp.status(), s.status)
		}
		u.CloseClientConnections()
	}
}

// --- client certificates ---------------------------------------------------------

// TestE2ETLSClientCertRequire: client_auth require refuses a client without
// a certificate (or with one of another CA) and forwards the verified
// subject, never the client's own X-Client-Cert-Subject.
func TestE2ETLSClientCertRequire(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t, "Server CA")
	clientCA := testcert.NewCA(t, "Client CA")
	cf, kf := ca.Issue(t, "mtls", time.Time{}, false, "mtls.example.com").Write(t, dir, "server")
	clientCAFile := clientCA.WriteCA(t, dir, "client-ca")
	alice := clientCA.Issue(t, "alice", time.Time{}, true).TLSCert(t)
	stranger := testcert.NewCA(t, "Stranger CA").Issue(t, "mallory", time.Time{}, true).TLSCert(t)
	up := okUpstream(t)
	p := startProxy(t, oneUpstreamConfig(up.addr(),
		staticTLSYAML("client_ca_file: "+clientCAFile+"\nclient_auth: require", [2]string{cf, kf}), "", ""))
	roots := testcert.Pool(ca.PEM)
	conf := func(certs ...tls.Certificate) *tls.Config {
		return &tls.Config{ServerName: "mtls.example.com", RootCAs: roots, Certificates: certs}
	}
	// crypto/tls would not send a certificate that the server's list of
	// acceptable CAs rules out: force it.
	forced := func(c tls.Certificate) *tls.Config {
		return &tls.Config{ServerName: "mtls.example.com", RootCAs: roots,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil }}
	}

	for _, tc := range []struct {
		name string
		conf *tls.Config
	}{
		{"no certificate", conf()},
		{"no certificate, TLS 1.2", &tls.Config{ServerName: "mtls.example.com", RootCAs: roots, MaxVersion: tls.VersionTLS12}},
		{"certificate of another CA", forced(stranger)},
		{"certificate of another CA, TLS 1.2", func() *tls.Config { c := forced(stranger); c.MaxVersion = tls.VersionTLS12; return c }()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, _, err := tlsGet(p.addr, tc.conf, "mtls.example.com", "/", clientSubjectHeader+": CN=forged")
			if err == nil {
				t.Fatalf("got status %d; want the handshake refused", resp.status())
			}
		})
	}
	if n := up.count(); n != 0 {
		t.Errorf("upstream got %d requests from refused clients; want 0", n)
	}

	want := "CN=alice,O=Rampart tests"
	for _, tc := range []struct {
		name    string
		headers []string
	}{
		{"verified subject", nil},
		{"client-sent value replaced", []string{clientSubjectHeader + ": CN=admin"}},
		{"client-sent values in any case replaced", []string{"x-client-cert-subject: CN=admin", "X-CLIENT-CERT-SUBJECT: CN=root"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, _, err := tlsGet(p.addr, conf(alice), "mtls.example.com", "/", tc.headers...)
			if err != nil {
				t.Fatal(err)
			}
			if resp.status() != 200 {
				t.Fatalf("got %d; want 200", resp.status())
			}
			if got := up.last().values(clientSubjectHeader); len(got) != 1 || got[0] != want {
				t.Errorf("upstream got %s %q; want [%q]", clientSubjectHeader, got, want)
			}
		})
	}
	t.Run("keep-alive: every request carries the subject", func(t *testing.T) {
		tc, err := tlsDial(p.addr, conf(alice))
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		br := bufio.NewReader(tc)
		for i := range 3 {
			io.WriteString(tc, "GET /k HTTP/1.1\r\nHost: mtls.example.com\r\nX-Client-Cert-Subject: CN=x\r\n\r\n")
			resp, err := readRawResponse(br, "GET")
			if err != nil || resp.status() != 200 {
				t.Fatalf("request %d: %v", i, err)
			}
			if got := up.last().values(clientSubjectHeader); len(got) != 1 || got[0] != want {
				t.Errorf("request %d: upstream got %q; want [%q]", i, got, want)
			}
		}
	})
}

// TestE2ETLSClientCertVerifyIfGiven: verify_if_given serves a client without
// a certificate (and strips its claimed subject), forwards the subject of a
// verified one, and refuses a certificate it cannot verify.
func TestE2ETLSClientCertVerifyIfGiven(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t, "Server CA")
	clientCA := testcert.NewCA(t, "Client CA")
	cf, kf := ca.Issue(t, "mtls", time.Time{}, false, "mtls.example.com").Write(t, dir, "server")
	clientCAFile := clientCA.WriteCA(t, dir, "client-ca")
	bob := clientCA.Issue(t, "bob", time.Time{}, true).TLSCert(t)
	stranger := testcert.NewCA(t, "Stranger CA").Issue(t, "mallory", time.Time{}, true).TLSCert(t)
	up := okUpstream(t)
	p := startProxy(t, oneUpstreamConfig(up.addr(),
		staticTLSYAML("client_ca_file: "+clientCAFile+"\nclient_auth: verify_if_given", [2]string{cf, kf}), "", ""))
	roots := testcert.Pool(ca.PEM)

	resp, _, err := tlsGet(p.addr, &tls.Config{ServerName: "mtls.example.com", RootCAs: roots}, "mtls.example.com", "/",
		clientSubjectHeader+": CN=admin")
	if err != nil || resp.status() != 200 {
		t.Fatalf("without a certificate: %v; want 200", err)
	}
	if got := up.last().values(clientSubjectHeader); len(got) != 0 {
		t.Errorf("without a certificate: upstream got %s %q; want none", clientSubjectHeader, got)
	}

	resp, _, err = tlsGet(p.addr, &tls.Config{ServerName: "mtls.example.com", RootCAs: roots, Certificates: []tls.Certificate{bob}},
		"mtls.example.com", "/", clientSubjectHeader+": CN=admin")
	if err != nil || resp.status() != 200 {
		t.Fatalf("with a certificate: %v; want 200", err)
	}
	if got := up.last().values(clientSubjectHeader); len(got) != 1 || got[0] != "CN=bob,O=Rampart tests" {
		t.Errorf("with a certificate: upstream got %q; want [CN=bob,O=Rampart tests]", got)
	}

	n := up.count()
	forced := &tls.Config{ServerName: "mtls.example.com", RootCAs: roots,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &stranger, nil }}
	if _, _, err := tlsGet(p.addr, forced, "mtls.example.com", "/"); err == nil {
		t.Error("a certificate of another CA was accepted")
	}
	if up.count() != n {
		t.Error("upstream got a request from a client with an unverified certificate")
	}
}

// --- ACME through the proxy (Pebble) --------------------------------------------

// startPebble starts Pebble, validating HTTP-01 at httpPort and
// TLS-ALPN-01 at tlsPort, refusing the names in blocklist. It skips t when
// the binaries are missing.
func startPebble(t *testing.T, httpPort, tlsPort string, blocklist ...string) *testpebble.Pebble {
	t.Helper()
	hp, _ := strconv.Atoi(httpPort)
	tp, _ := strconv.Atoi(tlsPort)
	return testpebble.Start(t, testpebble.Options{HTTPPort: hp, TLSPort: tp, Blocklist: blocklist})
}

// acmeProxyConfig: a plain listener "web" and a TLS listener "websecure"
// with ACME from p (cache in cacheDir, or Redis when redisAddr is set), an
// admin listener, and a route per host to an upstream at target.
func acmeProxyConfig(p *testpebble.Pebble, webAddr, tlsAddr, cacheDir, redisAddr, target string, hosts ...string) string {
	cache := "cache: dir\n        cache_dir: " + cacheDir
	top := ""
	if redisAddr != "" {
		cache = "cache: redis\n        encryption_key: " + e2eACMEKey
		top = redisConfig(redisAddr)
	}
	var routes strings.Builder
	for i, h := range hosts {
		fmt.Fprintf(&routes, "  - name: r%d\n    match: {host: %s}\n    upstream: app\n", i, h)
	}
	return fmt.Sprintf(`
admin:
  address: 127.0.0.1:0
listeners:
  web:
    address: %s
  websecure:
    address: %s
    tls:
      acme:
        email: ops@rampart.test
        directory_url: %s
        ca_file: %s
        %s
upstreams:
  app:
    targets:
      - url: http://%s
routes:
%saccess_log: {path: "off"}
%s`, webAddr, tlsAddr, p.DirURL, p.CAFile, cache, target, routes.String(), top)
}

// servedSerial is the serial of the certificate a connection was served.
func servedSerial(cs *tls.ConnectionState) string {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return ""
	}
	return cs.PeerCertificates[0].SerialNumber.String()
}

// acmeGet fetches https://host/path from the TLS listener at addr,
// verifying the certificate against roots. The first handshake of a host
// waits for its order.
func acmeGet(t *testing.T, addr, host string, roots []byte) (*rawMessage, *tls.ConnectionState) {
	t.Helper()
	resp, cs, err := tlsGet(addr, &tls.Config{ServerName: host, RootCAs: testcert.Pool(roots)}, host, "/acme")
	if err != nil {
		t.Fatalf("GET https://%s/ at %s: %v", host, addr, err)
	}
	if len(cs.VerifiedChains) == 0 {
		t.Fatalf("%s: certificate not verified against Pebble's root", host)
	}
	if leaf := cs.PeerCertificates[0]; len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != host {
		t.Errorf("got SANs %q; want [%s]", leaf.DNSNames, host)
	}
	return resp, cs
}

// e2eCurlVerifies checks with curl, when installed, that the TLS listener at
// addr serves host with a certificate that verifies against rootFile, and
// proxies the request.
func e2eCurlVerifies(t *testing.T, addr, host, rootFile string) {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Log("curl not installed: checked with crypto/tls only")
		return
	}
	_, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "curl", "-sS", "--cacert", rootFile,
		"--resolve", host+":"+port+":127.0.0.1", "https://"+host+":"+port+"/").CombinedOutput()
	if err != nil || string(out) != "ok" {
		t.Fatalf("curl: %v: %s", err, out)
	}
}

// metricLine returns the line of the admin listener's /metrics that starts
// with prefix, "" when there is none.
func metricLine(t *testing.T, adminAddr, prefix string) string {
	t.Helper()
	c := &http.Client{Timeout: e2eTimeout}
	resp, err := c.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// TestE2EACMETLSALPN01: a client's handshake for a route's host makes the
// proxy order a certificate from Pebble, which validates TLS-ALPN-01 at the
// proxy's own TLS listener; the certificate verifies against Pebble's root
// (crypto/tls and curl). A restarted proxy (a new Server, the same
// cache_dir) serves the same certificate without a new order.
func TestE2EACMETLSALPN01(t *testing.T) {
	webAddr, tlsAddr := freeAddr(t), freeAddr(t)
	_, webPort, _ := net.SplitHostPort(webAddr)
	_, tlsPort, _ := net.SplitHostPort(tlsAddr)
	pb := startPebble(t, webPort, tlsPort)
	up := okUpstream(t)
	const host = "alpn.rampart.test"
	yaml := acmeProxyConfig(pb, webAddr, tlsAddr, filepath.Join(t.TempDir(), "acme"), "", up.addr(), host)
	root, rootFile := pb.Root(t)

	p := startProxy(t, yaml)
	resp, cs := acmeGet(t, p.srv.Addr("websecure"), host, root)
	if resp.status() != 200 || string(resp.body) != "ok" {
		t.Fatalf("got %d %q; want 200 ok", resp.status(), resp.body)
	}
	if n := pb.Orders(); n != 1 {
		t.Errorf("got %d orders; want 1 (TLS-ALPN-01 at the proxy's TLS listener)", n)
	}
	if strings.Contains(pb.Log(), "http-01") && !strings.Contains(pb.Log(), "tls-alpn-01") {
		t.Errorf("the order was not validated with TLS-ALPN-01")
	}
	e2eCurlVerifies(t, p.srv.Addr("websecure"), host, rootFile)
	first := servedSerial(cs)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	p2 := startProxy(t, yaml)
	_, cs2 := acmeGet(t, p2.srv.Addr("websecure"), host, root)
	if got := servedSerial(cs2); got != first {
		t.Errorf("after a restart: serial %s; want the cached %s", got, first)
	}
	if n := pb.Orders(); n != 1 {
		t.Errorf("after a restart: %d orders; want still 1", n)
	}
}

// TestE2EACMEHTTP01: Pebble's TLS-ALPN-01 port has nothing behind it, so
// the first authorization fails and the proxy orders again with HTTP-01,
// which its plain listener answers before routing (no route matches
// /.well-known/acme-challenge/ there: the catch-all goes to the upstream).
func TestE2EACMEHTTP01(t *testing.T) {
	webAddr, tlsAddr := freeAddr(t), freeAddr(t)
	_, webPort, _ := net.SplitHostPort(webAddr)
	_, deadPort, _ := net.SplitHostPort(freeAddr(t))
	pb := startPebble(t, webPort, deadPort)
	up := okUpstream(t)
	const host = "http01.rampart.test"
	p := startProxy(t, acmeProxyConfig(pb, webAddr, tlsAddr, filepath.Join(t.TempDir(), "acme"), "", up.addr(), host))
	root, rootFile := pb.Root(t)

	resp, _ := acmeGet(t, p.srv.Addr("websecure"), host, root)
	if resp.status() != 200 {
		t.Fatalf("got %d; want 200", resp.status())
	}
	if n := pb.Orders(); n != 2 {
		t.Errorf("got %d orders; want 2 (TLS-ALPN-01, then HTTP-01)", n)
	}
	up.mu.Lock()
	for _, r := range up.reqs {
		if strings.Contains(r.first, "acme-challenge") {
			t.Errorf("a challenge reached the upstream: %q", r.first)
		}
	}
	up.mu.Unlock()
	e2eCurlVerifies(t, p.srv.Addr("websecure"), host, rootFile)

	// An unknown token on the plain listener is not answered by ACME: it
	// goes to the route like any path.
	if r := rawGet(t, p.addr, host, "/.well-known/acme-challenge/unknown-token"); r.status() != 200 || string(r.body) != "ok" {
		t.Errorf("unknown token: got %d %q; want the route's 200 ok", r.status(), r.body)
	}
}

// TestE2EACMEMetric: the ACME certificate's expiry appears in
// rampart_tls_certificate_expiry_timestamp_seconds on the admin listener
// once a handshake got it, with source="acme".
func TestE2EACMEMetric(t *testing.T) {
	webAddr, tlsAddr := freeAddr(t), freeAddr(t)
	_, webPort, _ := net.SplitHostPort(webAddr)
	_, tlsPort, _ := net.SplitHostPort(tlsAddr)
	pb := startPebble(t, webPort, tlsPort)
	up := okUpstream(t)
	const host = "metric.rampart.test"
	p := startProxy(t, acmeProxyConfig(pb, webAddr, tlsAddr, filepath.Join(t.TempDir(), "acme"), "", up.addr(), host))
	root, _ := pb.Root(t)
	_, cs := acmeGet(t, p.srv.Addr("websecure"), host, root)

	admin := p.srv.AdminAddr()
	if admin == "" {
		t.Fatal("no admin listener")
	}
	prefix := `rampart_tls_certificate_expiry_timestamp_seconds{host="` + host + `",source="acme"} `
	var line string
	waitFor(5*time.Second, func() bool {
		line = metricLine(t, admin, prefix)
		return line != ""
	})
	if line == "" {
		t.Fatalf("no %s...} series on /metrics 5 s after the certificate was served", prefix)
	}
	v, err := strconv.ParseFloat(strings.TrimPrefix(line, prefix), 64)
	if err != nil || int64(v) != cs.PeerCertificates[0].NotAfter.Unix() {
		t.Errorf("got %q; want %d", line, cs.PeerCertificates[0].NotAfter.Unix())
	}
}

// TestE2EACMEStaticMetric: static certificates are on /metrics from the
// start, source="static".
func TestE2EACMEStaticMetric(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t, "Static CA")
	leaf := ca.Issue(t, "m", time.Time{}, false, "m.example.com")
	cf, kf := leaf.Write(t, dir, "m")
	up := okUpstream(t)
	p := startProxy(t, oneUpstreamConfig(up.addr(), staticTLSYAML("", [2]string{cf, kf}), "", "admin:\n  address: 127.0.0.1:0\n"))
	prefix := `rampart_tls_certificate_expiry_timestamp_seconds{host="m.example.com",source="static"} `
	line := metricLine(t, p.srv.AdminAddr(), prefix)
	if line == "" {
		t.Fatalf("no %s...} series on /metrics", prefix)
	}
	if v, err := strconv.ParseFloat(strings.TrimPrefix(line, prefix), 64); err != nil || int64(v) != leaf.Cert.NotAfter.Unix() {
		t.Errorf("got %q; want %d", line, leaf.Cert.NotAfter.Unix())
	}
}

// TestE2EACMERefusedHost: a name outside the routes' hosts fails its
// handshake without an order; a name Pebble refuses fails its own
// handshake; a route's host is served meanwhile.
func TestE2EACMERefusedHost(t *testing.T) {
	webAddr, tlsAddr := freeAddr(t), freeAddr(t)
	_, webPort, _ := net.SplitHostPort(webAddr)
	_, tlsPort, _ := net.SplitHostPort(tlsAddr)
	const ok, blocked, other = "ok.rampart.test", "blocked.rampart.test", "other.rampart.test"
	pb := startPebble(t, webPort, tlsPort, blocked)
	up := okUpstream(t)
	p := startProxy(t, acmeProxyConfig(pb, webAddr, tlsAddr, filepath.Join(t.TempDir(), "acme"), "", up.addr(), ok, blocked))
	root, _ := pb.Root(t)
	addr := p.srv.Addr("websecure")

	if _, _, err := tlsGet(addr, &tls.Config{ServerName: other, RootCAs: testcert.Pool(root)}, other, "/"); err == nil {
		t.Errorf("%s (no route): served; want the handshake refused", other)
	}
	if n := pb.Orders(); n != 0 {
		t.Fatalf("a name outside the routes made %d orders; want 0", n)
	}
	if _, _, err := tlsGet(addr, &tls.Config{ServerName: blocked, RootCAs: testcert.Pool(root)}, blocked, "/"); err == nil {
		t.Errorf("%s (refused by the CA): served; want the handshake refused", blocked)
	}
	resp, _ := acmeGet(t, addr, ok, root)
	if resp.status() != 200 {
		t.Errorf("%s: got %d; want 200", ok, resp.status())
	}
}

// TestE2EACMERedisTwoInstances: two proxies share ACME state through one
// Redis. Both get a client's handshake for a new host at once; Pebble
// validates TLS-ALPN-01 at instance B only. One order, one certificate,
// served by both.
func TestE2EACMERedisTwoInstances(t *testing.T) {
	rd := startE2ERedis(t)
	webA, tlsA, webB, tlsB := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	_, webPortB, _ := net.SplitHostPort(webB)
	_, tlsPortB, _ := net.SplitHostPort(tlsB)
	pb := startPebble(t, webPortB, tlsPortB)
	up := okUpstream(t)
	const host = "shared.rampart.test"
	pA := startProxy(t, acmeProxyConfig(pb, webA, tlsA, "", rd.Addr, up.addr(), host))
	pB := startProxy(t, acmeProxyConfig(pb, webB, tlsB, "", rd.Addr, up.addr(), host))
	root, _ := pb.Root(t)

	serials := make([]string, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, addr := range []string{pA.srv.Addr("websecure"), pB.srv.Addr("websecure")} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, cs, err := tlsGet(addr, &tls.Config{ServerName: host, RootCAs: testcert.Pool(root)}, host, "/")
			serials[i], errs[i] = servedSerial(cs), err
		}()
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("handshakes: A %v, B %v", errs[0], errs[1])
	}
	if n := pb.Orders(); n != 1 {
		t.Errorf("got %d orders; want 1", n)
	}
	if serials[0] != serials[1] {
		t.Errorf("A serves serial %s, B %s; want one certificate", serials[0], serials[1])
	}
}

// TestE2ETLSResumeAcrossReload: a client that resumes its session skips
// the full handshake, and a reload (which builds new TLS settings) does
// not take that away: the session ticket keys belong to the listener, not
// to one configuration.
func TestE2ETLSResumeAcrossReload(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t, "Resume CA")
	cf, kf := ca.Issue(t, "resume", time.Time{}, false, "resume.example.com").Write(t, dir, "resume")
	up := okUpstream(t)
	yaml := func(balancer string) string {
		return oneUpstreamConfig(up.addr(), staticTLSYAML("", [2]string{cf, kf}), "balancer: "+balancer, "")
	}
	p := startProxy(t, yaml("round_robin"))
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			conf := &tls.Config{ServerName: "resume.example.com", RootCAs: testcert.Pool(ca.PEM),
				MinVersion: version, MaxVersion: version, ClientSessionCache: tls.NewLRUClientSessionCache(4)}
			get := func(step string) bool {
				t.Helper()
				// A GET reads the response, which makes the client take in
				// a TLS 1.3 ticket sent after the handshake.
				resp, cs, err := tlsGet(p.addr, conf, "resume.example.com", "/")
				if err != nil || resp.status() != 200 {
					t.Fatalf("%s: GET: %v", step, err)
				}
				return cs.DidResume
			}
			if get("first connection") {
				t.Fatal("the first connection resumed a session")
			}
			if !get("second connection") {
				t.Fatal("the second connection did not resume its session")
			}
			for i, b := range []string{"random", "round_robin"} {
				cfg, err := config.Parse([]byte(yaml(b)), "test.yaml")
				if err != nil {
					t.Fatal(err)
				}
				if changed, err := p.srv.Reload(cfg); err != nil || !changed {
					t.Fatalf("Reload %d: changed %v, %v", i, changed, err)
				}
				if !get("after reload " + strconv.Itoa(i+1)) {
					t.Errorf("after reload %d the session was not resumed: a full handshake", i+1)
				}
			}
		})
	}
}

// TestE2ETLSResumeAfterClientCAChange: session tickets outlive a reload,
// but a session does not outlive the trust it was made under: after
// client_ca_file changes to another CA, a client of the old CA cannot
// resume its way in.
func TestE2ETLSResumeAfterClientCAChange(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t, "Server CA")
	oldCA, newCA := testcert.NewCA(t, "Old client CA"), testcert.NewCA(t, "New client CA")
	cf, kf := ca.Issue(t, "mtls", time.Time{}, false, "mtls.example.com").Write(t, dir, "server")
	oldFile, newFile := oldCA.WriteCA(t, dir, "old-ca"), newCA.WriteCA(t, dir, "new-ca")
	up := okUpstream(t)
	yaml := func(caFile string) string {
		return oneUpstreamConfig(up.addr(), staticTLSYAML("client_ca_file: "+caFile+"\nclient_auth: require", [2]string{cf, kf}), "", "")
	}
	p := startProxy(t, yaml(oldFile))
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			alice := oldCA.Issue(t, "alice", time.Time{}, true).TLSCert(t)
			conf := &tls.Config{ServerName: "mtls.example.com", RootCAs: testcert.Pool(ca.PEM), MinVersion: version, MaxVersion: version,
				ClientSessionCache: tls.NewLRUClientSessionCache(4),
				// Sent whatever CAs the server asks for.
				GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &alice, nil }}
			for i := range 2 {
				if resp, _, err := tlsGet(p.addr, conf, "mtls.example.com", "/"); err != nil || resp.status() != 200 {
					t.Fatalf("GET %d under the old CA: %v", i, err)
				}
			}
			cfg, err := config.Parse([]byte(yaml(newFile)), "test.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.srv.Reload(cfg); err != nil {
				t.Fatal(err)
			}
			defer func() {
				cfg, _ := config.Parse([]byte(yaml(oldFile)), "test.yaml")
				if _, err := p.srv.Reload(cfg); err != nil {
					t.Fatal(err)
				}
			}()
			before := up.count()
			resp, cs, err := tlsGet(p.addr, conf, "mtls.example.com", "/")
			if err == nil {
				t.Errorf("a client of the old CA got %d after the CA changed (resumed: %v); want the connection refused", resp.status(), cs.DidResume)
			}
			if n := up.count() - before; n != 0 {
				t.Errorf("the upstream got %d requests from the refused client", n)
			}
		})
	}
}

// holdConn passes writes through, or keeps them while hold is set.
type holdConn struct {
	net.Conn
	hold bool
	held []byte
}

func (h *holdConn) Write(p []byte) (int, error) {
	if h.hold {
		h.held = append(h.held, p...)
		return len(p), nil
	}
	return h.Conn.Write(p)
}

// TestE2ETLSPipelinedRecords: requests pipelined in separate TLS records
// that reach the proxy in one TCP segment are all answered at once.
// crypto/tls decrypts one record per read and keeps the others; the burst
// must not end while it holds one (the client would wait for the idle
// timeout, 60 s here, for the second answer).
func TestE2ETLSPipelinedRecords(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t, "Static CA")
	cf, kf := ca.Issue(t, "pipe", time.Time{}, false, "pipe.example.com").Write(t, dir, "pipe")
	up := okUpstream(t)
	p := startProxy(t, oneUpstreamConfig(up.addr(), staticTLSYAML("", [2]string{cf, kf}), "", ""))
	conf := &tls.Config{ServerName: "pipe.example.com", RootCAs: testcert.Pool(ca.PEM)}

	for _, n := range []int{2, 3} {
		raw, err := net.DialTimeout("tcp", p.addr, e2eTimeout)
		if err != nil {
			t.Fatal(err)
		}
		hc := &holdConn{Conn: raw}
		tc := tls.Client(hc, conf)
		_ = raw.SetDeadline(time.Now().Add(e2eTimeout))
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		hc.hold = true
		for i := range n {
			fmt.Fprintf(tc, "GET /r%d HTTP/1.1\r\nHost: pipe.example.com\r\n\r\n", i) // one record each
		}
		hc.hold = false
		if _, err := raw.Write(hc.held); err != nil {
			t.Fatal(err)
		}
		// Well under the idle timeout: the answers must not wait for it.
		_ = raw.SetReadDeadline(time.Now().Add(3 * time.Second))
		br := bufio.NewReader(tc)
		for i := range n {
			resp, err := readRawResponse(br, "GET")
			if err != nil {
				t.Fatalf("%d records: answer %d: %v", n, i, err)
			}
			if resp.status() != 200 {
				t.Errorf("%d records: answer %d: status %d", n, i, resp.status())
			}
		}
		_ = tc.Close()
	}
	if got := up.count(); got != 5 {
		t.Errorf("upstream got %d requests; want 5", got)
	}
}

// TestE2ETLSHSTSReplacesTarget: on a route with hsts, the client gets the
// route's Strict-Transport-Security alone, whatever the target sent, in
// whatever case.
func TestE2ETLSHSTSReplacesTarget(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t, "Static CA")
	cf, kf := ca.Issue(t, "hsts", time.Time{}, false, "hsts.example.com").Write(t, dir, "hsts")
	up := startRawUpstream(t, func(*rawMessage) (string, bool) {
		return "HTTP/1.1 200 OK\r\nstrict-transport-security: max-age=1\r\nSTRICT-TRANSPORT-SECURITY: max-age=2\r\n" +
			"Content-Length: 2\r\n\r\nok", false
	})
	yaml := strings.Replace(oneUpstreamConfig(up.addr(), staticTLSYAML("", [2]string{cf, kf}), "", ""),
		"    upstream: app\n", "    upstream: app\n    hsts: true\n", 1)
	p := startProxy(t, yaml)
	resp, _, err := tlsGet(p.addr, &tls.Config{ServerName: "hsts.example.com", RootCAs: testcert.Pool(ca.PEM)}, "hsts.example.com", "/")
	if err != nil {
		t.Fatal(err)
	}
	if vs := resp.values("Strict-Transport-Security"); resp.status() != 200 || len(vs) != 1 || vs[0] != hstsValue {
		t.Errorf("got %d, Strict-Transport-Security %q; want 200 and only %q", resp.status(), vs, hstsValue)
	}
}
