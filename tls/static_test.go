package tls

import (
	"crypto/tls"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/internal/testcert"
)

// handshake runs a TLS handshake between m and a client configured by cc
// over an in-memory pipe, and returns the client's view and both errors.
func handshake(t testing.TB, m *Manager, cc *tls.Config) (tls.ConnectionState, tls.ConnectionState, error, error) {
	t.Helper()
	c1, c2 := net.Pipe()
	deadline := time.Now().Add(5 * time.Second)
	c1.SetDeadline(deadline)
	c2.SetDeadline(deadline)
	srv := tls.Server(c1, m.TLSConfig())
	srvErr := make(chan error, 1)
	go func() {
		err := srv.Handshake()
		if err == nil {
			// Lets a TLS 1.3 client learn that its certificate was refused.
			_, err = srv.Write([]byte("x"))
		}
		srvErr <- err
		c1.Close()
	}()
	cli := tls.Client(c2, cc)
	err := cli.Handshake()
	if err == nil {
		_, err = cli.Read(make([]byte, 1))
	}
	c2.Close()
	sErr := <-srvErr
	return cli.ConnectionState(), srv.ConnectionState(), err, sErr
}

// servedSerial returns the serial of the certificate the server presented.
func servedSerial(cs tls.ConnectionState) string {
	if len(cs.PeerCertificates) == 0 {
		return ""
	}
	return cs.PeerCertificates[0].SerialNumber.String()
}

func TestSNISelection(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t, "SNI CA")
	exp := time.Now().Add(time.Hour)
	certs := map[string]testcert.Leaf{
		"default":   ca.Issue(t, "default", exp, false, "default.test"),
		"wildcard":  ca.Issue(t, "wildcard", exp, false, "*.example.com"),
		"exact":     ca.Issue(t, "exact", exp, false, "api.example.com", "www.example.com"),
		"duplicate": ca.Issue(t, "duplicate", exp, false, "api.example.com", "only.dup.test"),
		"noSAN":     ca.Issue(t, "noSAN", exp, false),
	}
	var list []config.Certificate
	for _, name := range []string{"default", "wildcard", "exact", "duplicate", "noSAN"} {
		cf, kf := certs[name].Write(t, dir, name)
		list = append(list, config.Certificate{CertFile: cf, KeyFile: kf})
	}
	m, err := New(&config.ListenerTLS{MinVersion: "1.2", Certificates: list}, Options{Name: "websecure"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tests := []struct {
		name, sni, want string
	}{
		{"exact SAN", "api.example.com", "exact"},
		{"second SAN of a certificate", "www.example.com", "exact"},
		{"exact beats a wildcard listed before it", "api.example.com", "exact"},
		{"wildcard", "foo.example.com", "wildcard"},
		{"wildcard covers one label only", "a.b.example.com", "default"},
		{"wildcard does not cover the bare domain", "example.com", "default"},
		{"SNI is case-insensitive", "API.Example.COM", "exact"},
		{"duplicate SAN: the first certificate listed wins", "api.example.com", "exact"},
		{"SAN of a later certificate", "only.dup.test", "duplicate"},
		{"unknown name gets the default", "nope.test", "default"},
		{"no SNI gets the default", "", "default"},
		{"a certificate's common name is not a SAN", "noSAN", "default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs, _, err, serr := handshake(t, m, &tls.Config{ServerName: tt.sni, InsecureSkipVerify: true})
			if err != nil || serr != nil {
				t.Fatalf("handshake: client %v, server %v", err, serr)
			}
			if got, want := servedSerial(cs), certs[tt.want].Cert.SerialNumber.String(); got != want {
				t.Fatalf("SNI %q: got certificate %q; want %q", tt.sni, cs.PeerCertificates[0].Subject.CommonName, tt.want)
			}
		})
	}
	t.Run("no allocation", func(t *testing.T) {
		for _, sni := range []string{"api.example.com", "foo.example.com", "nope.test", ""} {
			hello := &tls.ClientHelloInfo{ServerName: sni}
			if n := testing.AllocsPerRun(100, func() { m.getCertificate(hello) }); n != 0 {
				t.Errorf("SNI %q: got %v allocations; want 0", sni, n)
			}
		}
	})
	t.Run("verifies against the CA", func(t *testing.T) {
		_, _, err, serr := handshake(t, m, &tls.Config{ServerName: "foo.example.com", RootCAs: testcert.Pool(ca.PEM)})
		if err != nil || serr != nil {
			t.Fatalf("handshake: client %v, server %v", err, serr)
		}
	})
}

// staticManager builds a Manager with one certificate for "a.test" and the
// given TLS fields.
func staticManager(t testing.TB, tc config.ListenerTLS) (*Manager, *testcert.CA) {
	t.Helper()
	ca := testcert.NewCA(t, "CA")
	cf, kf := ca.Issue(t, "a", time.Now().Add(time.Hour), false, "a.test").Write(t, t.TempDir(), "a")
	tc.Certificates = []config.Certificate{{CertFile: cf, KeyFile: kf}}
	m, err := New(&tc, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m, ca
}

func TestMinVersion(t *testing.T) {
	tests := []struct {
		name       string
		minVersion string
		clientMax  uint16
		want       uint16 // 0: the handshake fails
	}{
		{"default 1.2 accepts 1.2", "", tls.VersionTLS12, tls.VersionTLS12},
		{"default 1.2 refuses 1.1", "", tls.VersionTLS11, 0},
		{"1.2 negotiates 1.3", "1.2", tls.VersionTLS13, tls.VersionTLS13},
		{"1.3 refuses 1.2", "1.3", tls.VersionTLS12, 0},
		{"1.3 accepts 1.3", "1.3", tls.VersionTLS13, tls.VersionTLS13},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, ca := staticManager(t, config.ListenerTLS{MinVersion: tt.minVersion})
			cs, _, err, serr := handshake(t, m, &tls.Config{ServerName: "a.test", RootCAs: testcert.Pool(ca.PEM),
				MinVersion: tls.VersionTLS10, MaxVersion: tt.clientMax})
			if tt.want == 0 {
				if err == nil || serr == nil {
					t.Fatalf("handshake at most %x: got version %x; want a failure", tt.clientMax, cs.Version)
				}
				return
			}
			if err != nil || serr != nil {
				t.Fatalf("handshake: client %v, server %v", err, serr)
			}
			if cs.Version != tt.want {
				t.Fatalf("got version %x; want %x", cs.Version, tt.want)
			}
		})
	}
	t.Run("bad value", func(t *testing.T) {
		_, err := New(&config.ListenerTLS{MinVersion: "1.1"}, Options{Name: "web"})
		if err == nil || !strings.Contains(err.Error(), "listeners.web.tls.min_version") {
			t.Fatalf("got %v; want an error naming listeners.web.tls.min_version", err)
		}
	})
}

func TestModernDefaults(t *testing.T) {
	m, _ := staticManager(t, config.ListenerTLS{})
	cfg := m.TLSConfig()
	if cfg.CipherSuites != nil || cfg.CurvePreferences != nil {
		t.Errorf("got cipher suites %v, curves %v; want nil (Go's defaults)", cfg.CipherSuites, cfg.CurvePreferences)
	}
	if got := strings.Join(cfg.NextProtos, ","); got != "http/1.1" {
		t.Errorf("got ALPN %q; want http/1.1", got)
	}
	cs, _, err, serr := handshake(t, m, &tls.Config{ServerName: "a.test", InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil || serr != nil {
		t.Fatalf("handshake: client %v, server %v", err, serr)
	}
	if cs.NegotiatedProtocol != "http/1.1" {
		t.Errorf("negotiated %q; want http/1.1", cs.NegotiatedProtocol)
	}
}

func TestBrokenPair(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t, "CA")
	exp := time.Now().Add(time.Hour)
	goodCert, goodKey := ca.Issue(t, "good", exp, false, "good.test").Write(t, dir, "good")
	otherCert, otherKey := ca.Issue(t, "other", exp, false, "other.test").Write(t, dir, "other")
	garbage := dir + "/garbage.pem"
	testcert.WriteFile(t, garbage, []byte("not PEM"))
	tests := []struct {
		name       string
		cert, key  string
		wantInErrs []string
	}{
		{"key of another certificate", goodCert, otherKey, []string{"listeners.websecure.tls.certificates[1]", goodCert, otherKey, "private key does not match"}},
		{"missing key file", otherCert, dir + "/missing-key.pem", []string{"certificates[1]", "missing-key.pem"}},
		{"not PEM", garbage, goodKey, []string{"certificates[1]", garbage}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(&config.ListenerTLS{Certificates: []config.Certificate{
				{CertFile: goodCert, KeyFile: goodKey},
				{CertFile: tt.cert, KeyFile: tt.key},
			}}, Options{Name: "websecure"})
			if err == nil {
				t.Fatal("got no error")
			}
			for _, want := range tt.wantInErrs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("got %q; want it to contain %q", err, want)
				}
			}
		})
	}
}

func TestRebuildRereadsFiles(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t, "CA")
	first := ca.Issue(t, "first", time.Now().Add(time.Hour), false, "a.test")
	cf, kf := first.Write(t, dir, "a")
	tc := &config.ListenerTLS{Certificates: []config.Certificate{{CertFile: cf, KeyFile: kf}}}
	m1, err := New(tc, Options{})
	if err != nil {
		t.Fatal(err)
	}
	second := ca.Issue(t, "second", time.Now().Add(2*time.Hour), false, "a.test")
	second.Write(t, dir, "a")
	m2, err := New(tc, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		m    *Manager
		want testcert.Leaf
	}{{"old manager", m1, first}, {"rebuilt manager", m2, second}} {
		cs, _, err, serr := handshake(t, c.m, &tls.Config{ServerName: "a.test", RootCAs: testcert.Pool(ca.PEM)})
		if err != nil || serr != nil {
			t.Fatalf("%s: handshake: client %v, server %v", c.name, err, serr)
		}
		if got := servedSerial(cs); got != c.want.Cert.SerialNumber.String() {
			t.Errorf("%s: got serial %s; want %s", c.name, got, c.want.Cert.SerialNumber)
		}
	}
}

func TestClientAuth(t *testing.T) {
	dir := t.TempDir()
	clientCA := testcert.NewCA(t, "client CA")
	stranger := testcert.NewCA(t, "stranger CA")
	caFile := dir + "/client-ca.pem"
	testcert.WriteFile(t, caFile, clientCA.PEM)
	exp := time.Now().Add(time.Hour)
	alice := clientCA.Issue(t, "alice", exp, true).TLSCert(t)
	mallory := stranger.Issue(t, "mallory", exp, true).TLSCert(t)
	tests := []struct {
		name        string
		mode        string
		cert        *tls.Certificate
		wantOK      bool
		wantSubject string
	}{
		{"require: verified", config.ClientAuthRequire, &alice, true, "CN=alice,O=Rampart tests"},
		{"require: none", config.ClientAuthRequire, nil, false, ""},
		{"require: unknown CA", config.ClientAuthRequire, &mallory, false, ""},
		{"default is require", "", nil, false, ""},
		{"verify_if_given: verified", config.ClientAuthVerifyIfGiven, &alice, true, "CN=alice,O=Rampart tests"},
		{"verify_if_given: none", config.ClientAuthVerifyIfGiven, nil, true, ""},
		{"verify_if_given: unknown CA", config.ClientAuthVerifyIfGiven, &mallory, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, ca := staticManager(t, config.ListenerTLS{ClientCAFile: caFile, ClientAuth: tt.mode})
			cc := &tls.Config{ServerName: "a.test", RootCAs: testcert.Pool(ca.PEM)}
			if tt.cert != nil { // sent even when its CA is not among those the server asks for
				cc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return tt.cert, nil }
			}
			_, ss, err, serr := handshake(t, m, cc)
			if ok := err == nil && serr == nil; ok != tt.wantOK {
				t.Fatalf("got handshake ok %v (client %v, server %v); want %v", ok, err, serr, tt.wantOK)
			}
			if !tt.wantOK {
				return
			}
			subject, ok := ClientSubject(&ss)
			if subject != tt.wantSubject || ok != (tt.wantSubject != "") {
				t.Fatalf("got subject %q, %v; want %q", subject, ok, tt.wantSubject)
			}
		})
	}
	t.Run("CA file without a certificate", func(t *testing.T) {
		bad := dir + "/empty.pem"
		testcert.WriteFile(t, bad, nil)
		_, err := New(&config.ListenerTLS{ClientCAFile: bad}, Options{Name: "web"})
		if err == nil || !strings.Contains(err.Error(), "listeners.web.tls.client_ca_file") || !strings.Contains(err.Error(), bad) {
			t.Fatalf("got %v; want an error naming client_ca_file and %s", err, bad)
		}
	})
}

func TestStaticCertificates(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t, "CA")
	exp1 := time.Now().Add(time.Hour).Truncate(time.Second)
	exp2 := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	c1, k1 := ca.Issue(t, "one", exp1, false, "b.test", "*.a.test").Write(t, dir, "one")
	c2, k2 := ca.Issue(t, "two", exp2, false, "b.test", "c.test").Write(t, dir, "two")
	m, err := New(&config.ListenerTLS{Certificates: []config.Certificate{{CertFile: c1, KeyFile: k1}, {CertFile: c2, KeyFile: k2}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := m.Certificates()
	want := []CertificateInfo{
		{"*.a.test", SourceStatic, exp1},
		{"b.test", SourceStatic, exp1},
		{"c.test", SourceStatic, exp2},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v; want %v", got, want)
	}
	for i := range want {
		if got[i].Host != want[i].Host || got[i].Source != want[i].Source || !got[i].NotAfter.Equal(want[i].NotAfter) {
			t.Errorf("[%d]: got %+v; want %+v", i, got[i], want[i])
		}
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t, "CA")
	cf, kf := ca.Issue(t, "a", time.Now().Add(time.Hour), false, "a.test").Write(t, dir, "a")
	_, otherKey := ca.Issue(t, "b", time.Now().Add(time.Hour), false, "b.test").Write(t, dir, "b")
	caFile := dir + "/ca.pem"
	testcert.WriteFile(t, caFile, ca.PEM)
	cacheDir := dir + "/never-created"
	tests := []struct {
		name    string
		tls     config.ListenerTLS
		wantErr string // "": none
	}{
		{"good", config.ListenerTLS{Certificates: []config.Certificate{{CertFile: cf, KeyFile: kf}}, ClientCAFile: caFile,
			ACME: &config.ACME{CAFile: caFile, Cache: config.StoreDir, CacheDir: cacheDir}}, ""},
		{"broken pair", config.ListenerTLS{Certificates: []config.Certificate{{CertFile: cf, KeyFile: otherKey}}},
			"listeners.websecure.tls.certificates[0]"},
		{"missing client CA", config.ListenerTLS{ClientCAFile: dir + "/nope.pem"}, "listeners.websecure.tls.client_ca_file"},
		{"ACME CA file not PEM", config.ListenerTLS{ACME: &config.ACME{CAFile: kf}}, "listeners.websecure.tls.acme.ca_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check("websecure", &tt.tls)
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("got %v; want an error naming %q", err, tt.wantErr)
			}
		})
	}
	if _, err := os.Stat(cacheDir); err == nil {
		t.Error("Check created the cache directory")
	}
}

// TestNextProtos: Options.NextProtos is what ALPN offers, in the server's
// order of preference, and what a client gets.
func TestNextProtos(t *testing.T) {
	ca := testcert.NewCA(t, "CA")
	cf, kf := ca.Issue(t, "a", time.Now().Add(time.Hour), false, "a.test").Write(t, t.TempDir(), "a")
	certs := []config.Certificate{{CertFile: cf, KeyFile: kf}}
	tests := []struct {
		name   string
		offer  []string // Options.NextProtos
		client []string
		want   string // negotiated
	}{
		{"default: http/1.1 only", nil, []string{"h2", "http/1.1"}, "http/1.1"},
		{"h2 first wins", []string{ALPNH2, ALPNHTTP1}, []string{"http/1.1", "h2"}, "h2"},
		{"http/1.1 first wins", []string{ALPNHTTP1, ALPNH2}, []string{"h2", "http/1.1"}, "http/1.1"},
		{"h2 offered, client has http/1.1 only", []string{ALPNH2, ALPNHTTP1}, []string{"http/1.1"}, "http/1.1"},
		{"client without ALPN", []string{ALPNH2}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := New(&config.ListenerTLS{Certificates: certs}, Options{NextProtos: tt.offer})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			want := tt.offer
			if want == nil {
				want = []string{ALPNHTTP1}
			}
			if got := m.TLSConfig().NextProtos; strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("got NextProtos %q; want %q", got, want)
			}
			cs, _, err, serr := handshake(t, m, &tls.Config{ServerName: "a.test", InsecureSkipVerify: true, NextProtos: tt.client})
			if err != nil || serr != nil {
				t.Fatalf("handshake: client %v, server %v", err, serr)
			}
			if cs.NegotiatedProtocol != tt.want {
				t.Errorf("negotiated %q; want %q", cs.NegotiatedProtocol, tt.want)
			}
		})
	}
	t.Run("no protocol in common", func(t *testing.T) {
		m, err := New(&config.ListenerTLS{Certificates: certs}, Options{NextProtos: []string{ALPNH2}})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		_, _, err, serr := handshake(t, m, &tls.Config{ServerName: "a.test", InsecureSkipVerify: true, NextProtos: []string{"h3"}})
		if err == nil && serr == nil {
			t.Error("a client offering only h3 completed a handshake with an h2-only server")
		}
		// crypto/tls lets a client that offers http/1.1 alone through
		// with no protocol, as one without ALPN: the listener refuses
		// HTTP/1.1 on it (proxy's TestE2EHTTP2Protocols).
		cs, _, err, serr := handshake(t, m, &tls.Config{ServerName: "a.test", InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		if err != nil || serr != nil {
			t.Fatalf("handshake: client %v, server %v", err, serr)
		}
		if cs.NegotiatedProtocol != "" {
			t.Errorf("negotiated %q; want none", cs.NegotiatedProtocol)
		}
	})
}
