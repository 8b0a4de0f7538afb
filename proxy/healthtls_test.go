package proxy

import (
	"fmt"
	"testing"
)

// TestHealthTLSServerName: health checks of https targets verify each
// target by its own host (an empty ServerName, which the checker fills from
// the target's URL), not by the first target's; tls.server_name, when
// written, names the server for all.
func TestHealthTLSServerName(t *testing.T) {
	tests := []struct {
		name       string
		tlsBlock   string
		wantServer string
	}{
		{"each target its own host", "", ""},
		{"tls.server_name for all", "tls: {server_name: api.internal}", "api.internal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := inMemoryPipeline(t, fmt.Sprintf(`
listeners:
  web: {address: 127.0.0.1:0}
upstreams:
  app:
    targets: [{url: "https://a.test:8443"}, {url: "https://b.test:8443"}]
    %s
routes:
  - {name: all, upstream: app}
access_log: {path: "off"}
`, tt.tlsBlock), "web")
			p := h.(*listener).srv.snap.Load().pools["app"]
			conf := p.healthTLS()
			if conf == nil {
				t.Fatal("healthTLS: nil; want a TLS configuration")
			}
			if conf.ServerName != tt.wantServer {
				t.Errorf("ServerName: got %q; want %q", conf.ServerName, tt.wantServer)
			}
			if got := p.transports[0].tlsConfig.ServerName; got != "a.test" && tt.wantServer == "" {
				t.Errorf("the first transport's own ServerName: got %q; want a.test (unchanged)", got)
			}
		})
	}
}
