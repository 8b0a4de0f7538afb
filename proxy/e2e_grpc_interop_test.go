package proxy

// grpc-go's own interop suite through Rampart (issue 18's "Done when"): the
// interop client's 14 cases against Rampart's h2c and TLS listeners, which
// forward to grpc-go's interop server over h2c or TLS (protocol: http2).
// The tools come from make deps (build/tools, or $RAMPART_TOOLS); the test
// skips when they are not built.

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/internal/interop"
	"github.com/rampart-proxy/rampart/internal/testcert"
)

// interopRoutes is an upstream "interop" speaking HTTP/2 to target (with
// tlsBlock under it, for an https target), and a route to it behind the
// CRS in block mode: the WAF sees every call's method and metadata, and
// must neither read nor hold up the streaming bodies.
func interopRoutes(target, tlsBlock string) string {
	return fmt.Sprintf(`
waf:
  crs:
    mode: block
upstreams:
  interop:
    protocol: http2
    targets:
      - url: %s
%s
routes:
  - name: grpc
    upstream: interop
    waf: crs
access_log:
  path: "off"
`, target, indent(tlsBlock, 4))
}

// TestGRPCInteropThroughRampart runs grpc-go's 14 interop cases through
// Rampart: client over h2c and over TLS (h2 by ALPN), Rampart to the
// interop server over h2c and over TLS.
func TestGRPCInteropThroughRampart(t *testing.T) {
	if testing.Short() {
		t.Skip("the interop suite runs 56 client processes; run without -short")
	}
	plainUp := interop.StartServer(t, interop.ServerOptions{})
	dir := t.TempDir()
	upCA := testcert.NewCA(t, "interop upstream CA")
	cf, kf := upCA.Issue(t, "interop", time.Time{}, false, "interop.test", "127.0.0.1").Write(t, dir, "up")
	tlsUp := interop.StartServer(t, interop.ServerOptions{CertFile: cf, KeyFile: kf})
	upCAFile := filepath.Join(dir, "up-ca.pem")
	testcert.WriteFile(t, upCAFile, upCA.PEM)

	upstreams := []struct {
		name, target, tls string
	}{
		{"to h2c", "http://" + plainUp, ""},
		{"to tls", "https://" + tlsUp, "tls:\n  ca_file: " + upCAFile + "\n  server_name: interop.test"},
	}
	for _, up := range upstreams {
		t.Run(up.name, func(t *testing.T) {
			e := startH2Proxy(t, "", "", interopRoutes(up.target, up.tls))
			caFile := filepath.Join(e.dir, "ca.pem")
			testcert.WriteFile(t, caFile, e.ca.PEM)
			t.Run("from h2c", func(t *testing.T) {
				interop.RunCases(t, e.h2cAddr, interop.Options{})
			})
			t.Run("from tls", func(t *testing.T) {
				interop.RunCases(t, e.tlsAddr, interop.Options{TLS: true, CAFile: caFile, ServerName: "example.com"})
			})
		})
	}
}
