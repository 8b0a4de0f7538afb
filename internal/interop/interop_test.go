package interop

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/internal/testcert"
	"github.com/rampart-proxy/rampart/internal/testport"
)

const serverName = "interop.rampart.test"

// testCerts writes a CA and a server certificate it signed, for serverName
// and 127.0.0.1, and returns the CA file, the certificate and the key.
func testCerts(t *testing.T) (caFile, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	ca := testcert.NewCA(t, "interop test CA")
	leaf := ca.Issue(t, serverName, time.Time{}, false, serverName, "127.0.0.1")
	certFile, keyFile = leaf.Write(t, dir, "server")
	return ca.WriteCA(t, dir, "ca"), certFile, keyFile
}

// TestCasesDirect runs the 14 cases against the interop server itself, with
// no proxy between: the baseline that proves the binaries and RunCases,
// over h2c and over TLS.
func TestCasesDirect(t *testing.T) {
	caFile, certFile, keyFile := testCerts(t)
	t.Run("h2c", func(t *testing.T) {
		RunCases(t, StartServer(t, ServerOptions{}), Options{})
	})
	t.Run("tls", func(t *testing.T) {
		addr := StartServer(t, ServerOptions{CertFile: certFile, KeyFile: keyFile})
		RunCases(t, addr, Options{TLS: true, CAFile: caFile, ServerName: serverName})
	})
}

// TestCasesThroughNginx runs the 14 cases through nginx's grpc_pass, over
// an h2c listener and a TLS+h2 one: nginx 1.22 passes all of them, so the
// harness is known to judge a real proxy correctly.
func TestCasesThroughNginx(t *testing.T) {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		if _, err := os.Stat("/usr/sbin/nginx"); err != nil {
			t.Skip("nginx not installed (make deps installs it)")
		}
		nginx = "/usr/sbin/nginx"
	}
	upstream := StartServer(t, ServerOptions{})
	caFile, certFile, keyFile := testCerts(t)
	h2c, tlsAddr := testport.Addr(t), testport.Addr(t)
	dir := t.TempDir()
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    client_max_body_size 0;
    server {
        listen %[2]s http2;
        location / { grpc_pass grpc://%[4]s; }
    }
    server {
        listen %[3]s ssl http2;
        ssl_certificate %[5]s;
        ssl_certificate_key %[6]s;
        location / { grpc_pass grpc://%[4]s; }
    }
}
`, dir, h2c, tlsAddr, upstream, certFile, keyFile)
	confFile := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginx, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", confFile)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("nginx: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	for _, a := range []string{h2c, tlsAddr} {
		if err := waitListening(a, exited, 10*time.Second); err != nil {
			errLog, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx on %s: %v; output:\n%s%s", a, err, out.String(), errLog)
		}
	}
	t.Run("h2c", func(t *testing.T) { RunCases(t, h2c, Options{}) })
	t.Run("tls", func(t *testing.T) {
		RunCases(t, tlsAddr, Options{TLS: true, CAFile: caFile, ServerName: serverName})
	})
}

// TestRunCasesReportsFailure checks that a case that cannot pass fails
// its subtest: TLS against a plaintext server fails at the handshake.
// It runs the failing case in a child test process, so that the failure
// it provokes does not fail this test.
func TestRunCasesReportsFailure(t *testing.T) {
	if os.Getenv("INTEROP_CHILD") == "1" {
		addr := StartServer(t, ServerOptions{})
		caFile, _, _ := testCerts(t)
		RunCases(t, addr, Options{TLS: true, CAFile: caFile, Cases: []string{"empty_unary"}, CaseTimeout: 10 * time.Second})
		return
	}
	tool(t, "grpc-interop-client/client") // skip as the child would
	tool(t, "grpc-interop-server/server")
	cmd := exec.Command(os.Args[0], "-test.run=^TestRunCasesReportsFailure$", "-test.v")
	cmd.Env = append(os.Environ(), "INTEROP_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the child passed; want empty_unary to fail over TLS against a plaintext server; output:\n%s", out)
	}
	for _, want := range []string{"--- FAIL: TestRunCasesReportsFailure/empty_unary", "authentication handshake failed"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("child output lacks %q; got:\n%s", want, out)
		}
	}
}

// TestH2specAgainstGoServer runs two sections of h2spec against Go's own
// HTTP/2 server (net/http over TLS), which passes them.
func TestH2specAgainstGoServer(t *testing.T) {
	tool(t, "h2spec")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "Hello, World!")
	}))
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // h2spec provokes errors on purpose
	srv.StartTLS()
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	if _, _, err := net.SplitHostPort(addr); err != nil {
		t.Fatal(err)
	}
	// generic/1: the connection preface (1 test); http2/6.5.2: defined
	// SETTINGS parameters (5 tests).
	got := H2spec(t, addr, "generic/1", "http2/6.5.2")
	if got.Total != 6 || got.Passed != 6 || len(got.Failed) != 0 || len(got.Skipped) != 0 {
		t.Errorf("got %d tests, %d passed, failed %q, skipped %q; want 6 tests, 6 passed", got.Total, got.Passed, got.Failed, got.Skipped)
	}
}

func TestParseJUnit(t *testing.T) {
	const head = `<?xml version="1.0" encoding="UTF-8"?><testsuites>`
	tests := []struct {
		name    string
		xml     string
		want    H2specResult
		wantErr bool
	}{
		{
			name: "all passed",
			xml: head + `<testsuite name="1. Starting HTTP/2" package="generic/1" tests="1">
  <testcase package="generic/1" classname="Sends a client connection preface" time="0.0004"></testcase>
</testsuite></testsuites>`,
			want: H2specResult{Total: 1, Passed: 1},
		},
		{
			name: "error and failure fail, skipped is neither",
			xml: head + `<testsuite name="8.1.2.2" package="http2/8.1.2.2" tests="2">
  <testcase package="http2/8.1.2.2" classname="Sends a HEADERS frame that contains the connection-specific header field" time="0.0010">
    <error>GOAWAY Frame (Error Code: PROTOCOL_ERROR)
RST_STREAM Frame (Error Code: PROTOCOL_ERROR)</error>
  </testcase>
  <testcase package="http2/8.1.2.2" classname="Sends a HEADERS frame that contains the TE header field with any value other than &#34;trailers&#34;" time="0.0010">
    <failure>DATA Frame</failure>
  </testcase>
</testsuite>
<testsuite name="6.9" package="http2/6.9" tests="2">
  <testcase package="http2/6.9" classname="Sends a WINDOW_UPDATE frame" time="0.0010"></testcase>
  <testcase package="http2/6.9" classname="Sends a SETTINGS frame" time="0.0010"><skipped>strict</skipped></testcase>
</testsuite></testsuites>`,
			want: H2specResult{
				Total: 4, Passed: 1,
				Failed: []string{
					"http2/8.1.2.2: Sends a HEADERS frame that contains the connection-specific header field",
					`http2/8.1.2.2: Sends a HEADERS frame that contains the TE header field with any value other than "trailers"`,
				},
				Skipped: []string{"http2/6.9: Sends a SETTINGS frame"},
			},
		},
		{name: "not XML", xml: "145 tests, 120 passed", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseJUnit(strings.NewReader(tt.xml))
			if (err != nil) != tt.wantErr {
				t.Fatalf("got error %v; want error %v", err, tt.wantErr)
			}
			if got.Total != tt.want.Total || got.Passed != tt.want.Passed ||
				!slices.Equal(got.Failed, tt.want.Failed) || !slices.Equal(got.Skipped, tt.want.Skipped) {
				t.Errorf("got %+v; want %+v", got, tt.want)
			}
		})
	}
}
