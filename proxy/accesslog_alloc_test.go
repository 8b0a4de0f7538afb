package proxy

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/rampart-proxy/rampart/config"
)

// startLoggedProxy is benchProxy with an access log (accessLog: the YAML
// of the access_log section) and, in extraTop, more top-level YAML.
func startLoggedProxy(tb testing.TB, upstream, accessLog, extraTop string) string {
	tb.Helper()
	yaml := fmt.Sprintf(`
listeners:
  web: {address: "127.0.0.1:0"}
upstreams:
  u:
    targets: [{url: "http://%s"}]
routes:
  - upstream: u
access_log: %s
%s
`, upstream, accessLog, extraTop)
	cfg, err := config.Parse([]byte(yaml), "bench.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = srv.Shutdown(tb.Context()) })
	return srv.Addr("web")
}

// TestAccessLogAllocs: writing the access log, every field of the JSON
// format or the combined format, allocates nothing per request (the line
// is built in the exchange's buffer and copied into the sink's).
func TestAccessLogAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	up := benchUpstream(t)
	for _, tc := range []struct{ name, accessLog string }{
		{"json, every field", "{path: %q}"},
		{"combined", "{path: %q, format: combined}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := startLoggedProxy(t, up, fmt.Sprintf(tc.accessLog, filepath.Join(t.TempDir(), "access.log")), "")
			n := requestAllocs(t, addr, "GET /hello?a=1&token=x HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: alloc/1\r\nReferer: http://r/\r\n\r\n")
			if n > 0 {
				t.Errorf("got %v allocations per logged request; want 0", n)
			}
		})
	}
}
