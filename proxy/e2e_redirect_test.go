package proxy

// redirect_https sends a client to a TLS listener that serves what it asked
// for, never to one that would answer 404.

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/internal/testcert"
)

// TestE2ERedirectHTTPSToServingListener has two TLS listeners, "a-tls"
// first by name and "b-tls", and routes bound to one or both: each plain
// request is redirected to the port of a TLS listener that serves its
// route, and following the redirect reaches the upstream.
func TestE2ERedirectHTTPSToServingListener(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t, "Redirect CA")
	cf, kf := ca.Issue(t, "app", time.Time{}, false, "only-b.test", "order.test", "every.test", "b-app.test", "nothing.test").Write(t, dir, "app")
	up := okUpstream(t)
	aAddr, bAddr := freeAddr(t), freeAddr(t)
	_, aPort, _ := net.SplitHostPort(aAddr)
	_, bPort, _ := net.SplitHostPort(bAddr)
	tlsBlock := indent(staticTLSYAML("", [2]string{cf, kf}), 4)
	p := startProxy(t, fmt.Sprintf(`
listeners:
  web:
    address: 127.0.0.1:0
  a-tls:
    address: %s
%s
  b-tls:
    address: %s
%s
upstreams:
  app:
    targets: [{url: "http://%s"}]
routes:
  - name: only-b
    listeners: [web, b-tls]
    match: {host: only-b.test}
    upstream: app
    redirect_https: true
  - name: order
    listeners: [web, b-tls, a-tls]
    match: {host: order.test}
    upstream: app
    redirect_https: true
  - name: everywhere
    match: {host: every.test}
    upstream: app
    redirect_https: true
  - name: b-app
    listeners: [b-tls]
    match: {host: b-app.test}
    upstream: app
  - name: catch-all
    listeners: [web]
    redirect_https: true
    respond: {status: 404, body: "nothing here"}
access_log: {path: "off"}
`, aAddr, tlsBlock, bAddr, tlsBlock, up.addr()))

	roots := testcert.Pool(ca.PEM)
	tests := []struct {
		name, host string
		wantPort   string // "" for no redirect: 404
	}{
		{"route only on the second TLS listener", "only-b.test", bPort},
		{"both: the first in the route's listeners", "order.test", bPort},
		{"every listener: the first TLS listener by name", "every.test", aPort},
		{"plain-only catch-all: the TLS listener whose routes match", "b-app.test", bPort},
		{"plain-only catch-all, no TLS route matches: 404", "nothing.test", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := rawGet(t, p.addr, tt.host, "/p?q=1")
			if tt.wantPort == "" {
				if resp.status() != 404 {
					loc, _ := resp.get("Location")
					t.Errorf("got %d (Location %q); want 404: no TLS listener serves %s", resp.status(), loc, tt.host)
				}
				return
			}
			loc, _ := resp.get("Location")
			if want := "https://" + tt.host + ":" + tt.wantPort + "/p?q=1"; resp.status() != 308 || loc != want {
				t.Fatalf("got %d, Location %q; want 308, %q", resp.status(), loc, want)
			}
			u, err := url.Parse(loc)
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := tlsGet("127.0.0.1:"+u.Port(), &tls.Config{ServerName: tt.host, RootCAs: roots}, tt.host, u.RequestURI())
			if err != nil {
				t.Fatalf("following the redirect: %v", err)
			}
			if got.status() != 200 || string(got.body) != "ok" {
				t.Errorf("following the redirect to %s: got %d %q; want 200 from the upstream", loc, got.status(), got.body)
			}
		})
	}
}
