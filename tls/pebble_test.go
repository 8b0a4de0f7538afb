package tls

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/internal/testcert"
)

// The end-to-end tests run Pebble, a small ACME server (Debian package
// pebble; make test installs it), with pebble-challtestsrv as its DNS
// server, which answers every A query with 127.0.0.1 and no AAAA, so each
// test name resolves to the test's own servers. Pebble validates for real:
// HTTP-01 at name:httpPort, TLS-ALPN-01 at name:tlsPort, both on loopback
// ports of the test. It issues from a root of its own, served by its
// management API at /roots/0.

// pebble is one Pebble process and its DNS server.
type pebble struct {
	dirURL  string // ACME directory
	mgmtURL string
	caFile  string // the CA of Pebble's own HTTPS certificate: acme.ca_file
	client  *http.Client
	log     *logBuffer
}

// pebbleOptions configure one Pebble.
type pebbleOptions struct {
	httpPort, tlsPort int      // where its validation authority connects
	alwaysValid       bool     // PEBBLE_VA_ALWAYS_VALID: no validation (speed; never for challenge tests)
	blocklist         []string // names it refuses to order
}

// startPebble starts Pebble and its DNS for t, and stops them when t ends.
// It skips t when the binaries are missing.
func startPebble(t testing.TB, o pebbleOptions) *pebble {
	t.Helper()
	for _, bin := range []string{"pebble", "pebble-challtestsrv"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (apt-get install pebble; make test installs it)", bin)
		}
	}
	dir := t.TempDir()
	logs := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Pebble's log:\n%s", logs.String())
		}
	})

	dnsAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	start(t, logs, nil, "pebble-challtestsrv", "-dns01", dnsAddr, "-http01", "", "-https01", "",
		"-tlsalpn01", "", "-management", "127.0.0.1:"+strconv.Itoa(freePort(t)),
		"-defaultIPv4", "127.0.0.1", "-defaultIPv6", "")
	waitDNS(t, dnsAddr)

	ca := testcert.NewCA(t, "Pebble HTTPS CA")
	certFile, keyFile := ca.Issue(t, "127.0.0.1", time.Now().Add(time.Hour), false, "127.0.0.1", "localhost").Write(t, dir, "pebble")
	caFile := filepath.Join(dir, "pebble-ca.pem")
	testcert.WriteFile(t, caFile, ca.PEM)
	listen := "127.0.0.1:" + strconv.Itoa(freePort(t))
	mgmt := "127.0.0.1:" + strconv.Itoa(freePort(t))
	cfg, _ := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress":           listen,
		"managementListenAddress": mgmt,
		"certificate":             certFile,
		"privateKey":              keyFile,
		"httpPort":                o.httpPort,
		"tlsPort":                 o.tlsPort,
		"ocspResponderURL":        "",
		"domainBlocklist":         o.blocklist,
	}})
	cfgFile := filepath.Join(dir, "pebble.json")
	testcert.WriteFile(t, cfgFile, cfg)
	env := []string{
		"PEBBLE_VA_NOSLEEP=1",      // validate at once, not after up to 15 s
		"PEBBLE_WFE_NONCEREJECT=0", // no random badNonce answers
		"PEBBLE_AUTHZREUSE=0",      // every order validates
	}
	if o.alwaysValid {
		env = append(env, "PEBBLE_VA_ALWAYS_VALID=1")
	}
	start(t, logs, env, "pebble", "-config", cfgFile, "-dnsserver", dnsAddr)

	p := &pebble{
		dirURL:  "https://" + listen + "/dir",
		mgmtURL: "https://" + mgmt,
		caFile:  caFile,
		client:  &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: testcert.Pool(ca.PEM)}}},
		log:     logs,
	}
	for i := 0; ; i++ {
		resp, err := p.client.Get(p.dirURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if i == 200 {
			t.Fatalf("Pebble did not serve its directory: %v", err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// start runs a process with its output in logs until t ends.
func start(t testing.TB, logs *logBuffer, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
}

// waitDNS waits until the DNS server at addr answers.
func waitDNS(t testing.TB, addr string) {
	t.Helper()
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", addr)
	}}
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		ips, err := r.LookupHost(ctx, "probe.rampart.test")
		cancel()
		if err == nil && len(ips) > 0 && ips[0] == "127.0.0.1" {
			return
		}
		if i == 100 {
			t.Fatalf("pebble-challtestsrv on %s did not answer: %v %v", addr, ips, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// orders counts the orders Pebble has created.
func (p *pebble) orders() int {
	return strings.Count(p.log.String(), "Added order")
}

// root returns the PEM of Pebble's issuing root, written to a file too (for
// curl).
func (p *pebble) root(t testing.TB) (pemBytes []byte, file string) {
	t.Helper()
	resp, err := p.client.Get(p.mgmtURL + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("Pebble root: %d %v", resp.StatusCode, err)
	}
	file = filepath.Join(t.TempDir(), "pebble-root.pem")
	testcert.WriteFile(t, file, b)
	return b, file
}

// serveTLS serves HTTP on a TLS listener configured by m, at addr ("" for a
// free port), answering "ok from NAME". It returns the address.
func serveTLS(t testing.TB, m *Manager, addr string) string {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "ok from %s", r.TLS.ServerName)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          nullLogger(),
	}
	go srv.Serve(tls.NewListener(ln, m.TLSConfig()))
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func nullLogger() *log.Logger { return log.New(io.Discard, "", 0) }

// httpsGet fetches https://host/ from the server at addr, verifying it
// against roots, with the deadline a test allows one issuance.
func httpsGet(t testing.TB, addr, host string, roots []byte) (string, *tls.ConnectionState, error) {
	t.Helper()
	c := &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: testcert.Pool(roots)},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			},
		},
	}
	resp, err := c.Get("https://" + host + "/")
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), resp.TLS, err
}

// curlVerifies checks with curl, when installed, that the server at addr
// presents a certificate for host that verifies against the root file.
func curlVerifies(t testing.TB, addr, host, rootFile string) {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Log("curl not installed: checked with crypto/tls only")
		return
	}
	_, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "curl", "-sS", "--cacert", rootFile,
		"--resolve", host+":"+port+":127.0.0.1", "https://"+host+":"+port+"/").CombinedOutput()
	if err != nil || string(out) != "ok from "+host {
		t.Fatalf("curl: %v: %s", err, out)
	}
}
