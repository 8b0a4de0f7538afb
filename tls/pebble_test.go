package tls

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os/exec"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/internal/testcert"
	"github.com/rampart-proxy/rampart/internal/testport"
)

// The end-to-end tests run Pebble through internal/testpebble.

// freePort returns a loopback TCP port that was free a moment ago, never
// one given out before in this process (Pebble's and Redis's ports
// included).
func freePort(t testing.TB) int {
	t.Helper()
	return testport.Port(t)
}

// listen opens a loopback listener on a free port. A test that must tell
// Pebble its port before serving opens it first: a port only reported free
// (freePort) can be taken meanwhile by one of Pebble's own listeners.
func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// port is ln's port.
func port(ln net.Listener) int { return ln.Addr().(*net.TCPAddr).Port }

// serveTLS serves HTTP over TLS configured by m on ln (nil: a new listener
// on a free port), answering "ok from NAME". It returns the address.
func serveTLS(t testing.TB, m *Manager, ln net.Listener) string {
	t.Helper()
	if ln == nil {
		ln = listen(t)
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
