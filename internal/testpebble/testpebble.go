// Package testpebble runs Pebble, a small ACME server (Debian package
// pebble; make test installs it), for tests, with pebble-challtestsrv as
// its DNS server, which answers every A query with 127.0.0.1 and no AAAA,
// so that each test name resolves to the test's own servers. Pebble
// validates for real: HTTP-01 at name:HTTPPort, TLS-ALPN-01 at
// name:TLSPort, both loopback ports of the test. It issues from a root of
// its own, served by its management API at /roots/0.
package testpebble

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/internal/testcert"
	"github.com/rampart-proxy/rampart/internal/testport"
)

// Pebble is one Pebble process and its DNS server.
type Pebble struct {
	DirURL  string       // the ACME directory
	MgmtURL string       // the management API
	CAFile  string       // the CA of Pebble's own HTTPS certificate (acme.ca_file)
	Client  *http.Client // trusts that CA
	log     *logBuffer
}

// Options configure one Pebble.
type Options struct {
	HTTPPort, TLSPort int           // where its validation authority connects
	AlwaysValid       bool          // PEBBLE_VA_ALWAYS_VALID: no validation (speed; never for challenge tests)
	Validity          time.Duration // the certificates' lifetime, whole seconds (zero: Pebble's default, years)
	Blocklist         []string      // names it refuses to order
}

// Start starts Pebble and its DNS for t, and stops them when t ends; their
// output is logged when t fails. It skips t when the binaries are missing.
func Start(t testing.TB, o Options) *Pebble {
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

	// A port testport gives can still be taken before the process binds it
	// (by another test process); the process then exits, and Start tries
	// again on other ports.
	for attempt := 1; ; attempt++ {
		p, err := launch(t, o, dir, logs)
		if err == nil {
			return p
		}
		if !errors.Is(err, errExited) || attempt == 3 {
			t.Fatal(err)
		}
		t.Logf("testpebble, attempt %d: %v; trying other ports", attempt, err)
	}
}

// errExited reports a process that ended before it served.
var errExited = errors.New("exited before serving")

// launch starts Pebble and its DNS once. When either exits before it
// serves, launch stops the other and returns an error wrapping errExited.
func launch(t testing.TB, o Options, dir string, logs *logBuffer) (*Pebble, error) {
	t.Helper()
	dnsAddr := testport.Addr(t)
	dns := start(t, logs, nil, "pebble-challtestsrv", "-dns01", dnsAddr, "-http01", "", "-https01", "",
		"-tlsalpn01", "", "-management", testport.Addr(t), "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "")
	if err := waitDNS(dnsAddr, dns); err != nil {
		dns.stop()
		return nil, err
	}

	ca := testcert.NewCA(t, "Pebble HTTPS CA")
	certFile, keyFile := ca.Issue(t, "127.0.0.1", time.Time{}, false, "127.0.0.1", "localhost").Write(t, dir, "pebble")
	caFile := ca.WriteCA(t, dir, "pebble-ca")
	listen, mgmt := testport.Addr(t), testport.Addr(t)
	settings := map[string]any{
		"listenAddress":           listen,
		"managementListenAddress": mgmt,
		"certificate":             certFile,
		"privateKey":              keyFile,
		"httpPort":                o.HTTPPort,
		"tlsPort":                 o.TLSPort,
		"ocspResponderURL":        "",
		"domainBlocklist":         o.Blocklist,
	}
	if o.Validity > 0 {
		settings["certificateValidityPeriod"] = uint64(o.Validity / time.Second)
	}
	cfg, _ := json.Marshal(map[string]any{"pebble": settings})
	cfgFile := filepath.Join(dir, "pebble.json")
	testcert.WriteFile(t, cfgFile, cfg)
	env := []string{
		"PEBBLE_VA_NOSLEEP=1",      // validate at once, not after up to 15 s
		"PEBBLE_WFE_NONCEREJECT=0", // no random badNonce answers
		"PEBBLE_AUTHZREUSE=0",      // every order validates
	}
	if o.AlwaysValid {
		env = append(env, "PEBBLE_VA_ALWAYS_VALID=1")
	}
	pebble := start(t, logs, env, "pebble", "-config", cfgFile, "-dnsserver", dnsAddr)

	p := &Pebble{
		DirURL:  "https://" + listen + "/dir",
		MgmtURL: "https://" + mgmt,
		CAFile:  caFile,
		Client:  &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: testcert.Pool(ca.PEM)}}},
		log:     logs,
	}
	for i := 0; ; i++ {
		// Ready when both of Pebble's listeners serve and the DNS server
		// still runs (it binds its management port after its DNS one).
		err := p.serves(p.DirURL)
		if err == nil {
			err = p.serves(p.MgmtURL + "/roots/0")
		}
		if err == nil && !dns.exited() {
			return p, nil
		}
		if pebble.exited() || dns.exited() {
			pebble.stop()
			dns.stop()
			return nil, fmt.Errorf("pebble or pebble-challtestsrv %w (%v)", errExited, err)
		}
		if i == 400 {
			return nil, fmt.Errorf("Pebble did not serve: %v", err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// serves reports whether url answers 200.
func (p *Pebble) serves(url string) error {
	resp, err := p.Client.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

// Orders counts the orders Pebble has created.
func (p *Pebble) Orders() int { return strings.Count(p.log.String(), "Added order") }

// Issued counts the certificates Pebble has issued so far.
func (p *Pebble) Issued() int { return strings.Count(p.log.String(), "Issued certificate serial") }

// Log returns what Pebble and its DNS have printed so far.
func (p *Pebble) Log() string { return p.log.String() }

// Root returns the PEM of Pebble's issuing root, and a file holding it (for
// curl).
func (p *Pebble) Root(t testing.TB) (pemBytes []byte, file string) {
	t.Helper()
	resp, err := p.Client.Get(p.MgmtURL + "/roots/0")
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

// process is one started process.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited
}

// start runs a process with its output in logs until t ends.
func start(t testing.TB, logs io.Writer, env []string, name string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.stop)
	return p
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop kills the process and waits for it to end.
func (p *process) stop() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// waitDNS waits until the DNS server at addr, run by dns, resolves test
// names.
func waitDNS(addr string, dns *process) error {
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", addr)
	}}
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		ips, err := r.LookupHost(ctx, "probe.rampart.test")
		cancel()
		if err == nil && len(ips) > 0 && ips[0] == "127.0.0.1" {
			return nil
		}
		if dns.exited() {
			return fmt.Errorf("pebble-challtestsrv %w (DNS on %s)", errExited, addr)
		}
		if i == 100 {
			return fmt.Errorf("pebble-challtestsrv on %s did not answer: %v %v", addr, ips, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logBuffer collects a process's output; safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
