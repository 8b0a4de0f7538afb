package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/http2"

	"github.com/rampart-proxy/rampart/config"
)

// accessUpstream is a raw upstream that answers 200 and says, in the CORS
// fields a target may set of its own, that it allows everything: a CORS
// route must replace them.
func accessUpstream(t *testing.T) *rawUpstream {
	return startRawUpstream(t, func(*rawMessage) (string, bool) {
		body := "ok"
		return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nVary: Accept-Encoding\r\n" +
			"Access-Control-Allow-Origin: *\r\naccess-control-allow-methods: DELETE\r\n" +
			"X-Total: 3\r\nContent-Length: 2\r\n\r\n" + body, false
	})
}

// TestE2EAccessIPLists: allow and deny against the client address, which
// is the peer (127.0.0.1) unless trusted_proxies lets X-Forwarded-For name
// another; deny wins over allow; a refusal is 403 with a short body,
// never reaches the upstream, and is counted by route and reason.
func TestE2EAccessIPLists(t *testing.T) {
	up := accessUpstream(t)
	p := startProxy(t, fmt.Sprintf(`
listeners:
  web: {address: "127.0.0.1:0"}
  direct: {address: "127.0.0.1:0"}
upstreams:
  app: {targets: [{url: "http://%s"}]}
trusted_proxies: [127.0.0.1]
routes:
  - name: allow
    match: {path_prefix: /allow/}
    listeners: [web]
    upstream: app
    allow: [10.0.0.0/8, "2001:db8::/32"]
  - name: both
    match: {path_prefix: /both/}
    listeners: [web]
    upstream: app
    allow: [10.0.0.0/8]
    deny: [10.9.0.0/16, 10.1.1.1]
  - name: deny
    match: {path_prefix: /deny/}
    listeners: [web]
    upstream: app
    deny: [192.0.2.0/24]
  - name: local
    match: {path_prefix: /local/}
    upstream: app
    allow: [127.0.0.1]
access_log: {path: "off"}
admin: {address: "127.0.0.1:0"}
`, up.addr()))
	cases := []struct {
		name, path, xff string
		want            int
	}{
		{"allowed by CIDR", "/allow/x", "10.1.2.3", 200},
		{"allowed IPv6", "/allow/x", "2001:db8::1", 200},
		{"not in allow", "/allow/x", "192.0.2.1", 403},
		{"no X-Forwarded-For: the peer is not in allow", "/allow/x", "", 403},
		{"allow and not deny", "/both/x", "10.2.3.4", 200},
		{"deny wins over allow", "/both/x", "10.9.1.1", 403},
		{"deny by a bare address", "/both/x", "10.1.1.1", 403},
		{"next to a bare address", "/both/x", "10.1.1.2", 200},
		{"deny only: denied", "/deny/x", "192.0.2.5", 403},
		{"deny only: others pass", "/deny/x", "198.51.100.1", 200},
		{"the right-most untrusted hop counts", "/deny/x", "192.0.2.5, 198.51.100.1", 200},
		{"a trusted hop is skipped", "/deny/x", "192.0.2.5, 127.0.0.1", 403},
		{"mapped IPv4 is IPv4", "/deny/x", "::ffff:192.0.2.9", 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := up.count()
			var hdrs []string
			if tc.xff != "" {
				hdrs = append(hdrs, "X-Forwarded-For: "+tc.xff)
			}
			resp := rawGet(t, p.addr, "app.test", tc.path, hdrs...)
			if got := resp.status(); got != tc.want {
				t.Fatalf("got %d; want %d", got, tc.want)
			}
			reached := up.count() - before
			if tc.want == 403 {
				if got, want := string(resp.body), "403 Forbidden\n"; got != want {
					t.Errorf("body: got %q; want %q", got, want)
				}
				if reached != 0 {
					t.Errorf("the upstream got %d requests; want 0", reached)
				}
			} else if reached != 1 {
				t.Errorf("the upstream got %d requests; want 1", reached)
			}
		})
	}

	// Without trusted_proxies the client's word is not taken: on the
	// "direct" listener too, 127.0.0.1 is the trusted proxy itself, and
	// when it sends no X-Forwarded-For it is the client.
	if got := rawGet(t, p.srv.Addr("direct"), "app.test", "/local/x").status(); got != 200 {
		t.Errorf("the peer itself in allow: got %d; want 200", got)
	}

	text := scrapeMetrics(t, p)
	for _, m := range []struct {
		route, reason string
		want          float64
	}{
		{"allow", "not_allowed", 2},
		{"both", "deny_list", 2},
		{"deny", "deny_list", 3},
		{"deny", "not_allowed", 0},
	} {
		got, _ := metricSum(text, "rampart_access_denied_total", map[string]string{"route": m.route, "reason": m.reason})
		if got != m.want {
			t.Errorf("rampart_access_denied_total{route=%q,reason=%q}: got %v; want %v", m.route, m.reason, got, m.want)
		}
	}
}

// TestE2EAccessIPListsUntrustedXFF: without trusted_proxies, an
// X-Forwarded-For naming an allowed address does not get a client in.
func TestE2EAccessIPListsUntrustedXFF(t *testing.T) {
	up := accessUpstream(t)
	p := startProxy(t, fmt.Sprintf(`
listeners:
  web: {address: "127.0.0.1:0"}
upstreams:
  app: {targets: [{url: "http://%s"}]}
routes:
  - upstream: app
    allow: [10.0.0.0/8]
access_log: {path: "off"}
`, up.addr()))
	if got := rawGet(t, p.addr, "app.test", "/", "X-Forwarded-For: 10.1.1.1").status(); got != 403 {
		t.Errorf("got %d; want 403", got)
	}
	if up.count() != 0 {
		t.Errorf("the upstream got %d requests; want 0", up.count())
	}
}

// corsConfig has a route with a credentialed policy, one with "*", and one
// whose IP list refuses everyone (the proxy's own answer).
func corsConfig(target, origins string) string {
	return fmt.Sprintf(`
listeners:
  web: {address: "127.0.0.1:0"}
upstreams:
  app: {targets: [{url: "http://%s"}]}
cors:
  web:
    allow_origins: %s
    allow_methods: [GET, PUT]
    allow_headers: [Content-Type, X-Token]
    expose_headers: [X-Total]
    allow_credentials: true
    max_age: 10m
  open:
    allow_origins: ["*"]
    allow_headers: ["*"]
routes:
  - name: public
    match: {path_prefix: /public/}
    upstream: app
    cors: open
  - name: closed
    match: {path_prefix: /closed/}
    upstream: app
    cors: web
    deny: [0.0.0.0/0]
  - name: api
    upstream: app
    cors: web
access_log: {path: "off"}
admin: {address: "127.0.0.1:0"}
`, target, origins)
}

// corsFields returns the values of resp's Access-Control-* fields by
// lower-case name, each field's values joined by "|".
func corsFields(resp *rawMessage) map[string]string {
	out := map[string]string{}
	for _, f := range resp.fields {
		name := strings.ToLower(f[0])
		if strings.HasPrefix(name, "access-control-") {
			if v, ok := out[name]; ok {
				out[name] = v + "|" + f[1]
			} else {
				out[name] = f[1]
			}
		}
	}
	return out
}

// TestE2ECORSPreflight: a preflight is answered by the proxy (the upstream
// never sees it): 204 with the policy's fields for an allowed origin,
// method and header fields; 403 without any allow field otherwise.
func TestE2ECORSPreflight(t *testing.T) {
	up := accessUpstream(t)
	p := startProxy(t, corsConfig(up.addr(), `[https://app.example.com, "https://*.example.net"]`))
	allowed := map[string]string{
		"access-control-allow-origin":      "https://app.example.com",
		"access-control-allow-methods":     "GET, PUT",
		"access-control-allow-headers":     "Content-Type, X-Token",
		"access-control-allow-credentials": "true",
		"access-control-max-age":           "600",
	}
	cases := []struct {
		name, path, origin, method, headers string
		want                                int
		fields                              map[string]string
	}{
		{"allowed", "/a", "https://app.example.com", "PUT", "content-type, x-token", 204, allowed},
		{"origin in another case", "/a", "HTTPS://App.Example.com", "PUT", "", 204, map[string]string{
			"access-control-allow-origin": "HTTPS://App.Example.com", "access-control-allow-methods": "GET, PUT",
			"access-control-allow-headers": "Content-Type, X-Token", "access-control-allow-credentials": "true",
			"access-control-max-age": "600"}},
		{"wildcard subdomain", "/a", "https://a.b.example.net", "GET", "", 204, map[string]string{
			"access-control-allow-origin": "https://a.b.example.net", "access-control-allow-methods": "GET, PUT",
			"access-control-allow-headers": "Content-Type, X-Token", "access-control-allow-credentials": "true",
			"access-control-max-age": "600"}},
		{"the wildcard's apex is not a subdomain", "/a", "https://example.net", "GET", "", 403, map[string]string{}},
		{"another scheme", "/a", "http://app.example.com", "GET", "", 403, map[string]string{}},
		{"another port", "/a", "https://app.example.com:8443", "GET", "", 403, map[string]string{}},
		{"origin not allowed", "/a", "https://evil.example", "GET", "", 403, map[string]string{}},
		{"suffix trick", "/a", "https://evilexample.net", "GET", "", 403, map[string]string{}},
		{"null origin", "/a", "null", "GET", "", 403, map[string]string{}},
		{"method not allowed", "/a", "https://app.example.com", "DELETE", "", 403, map[string]string{}},
		{"header not allowed", "/a", "https://app.example.com", "PUT", "content-type, x-other", 403, map[string]string{}},
		{"any origin, any header", "/public/a", "https://x.example", "POST", "x-anything", 204, map[string]string{
			"access-control-allow-origin": "*", "access-control-allow-methods": "GET, HEAD, POST",
			"access-control-allow-headers": "x-anything"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := "OPTIONS " + tc.path + " HTTP/1.1\r\nHost: api.test\r\nOrigin: " + tc.origin +
				"\r\nAccess-Control-Request-Method: " + tc.method + "\r\n"
			if tc.headers != "" {
				req += "Access-Control-Request-Headers: " + tc.headers + "\r\n"
			}
			resp := dialRaw(t, p.addr).roundTrip(req + "\r\n")
			if got := resp.status(); got != tc.want {
				t.Fatalf("status: got %d; want %d", got, tc.want)
			}
			got := corsFields(resp)
			if fmt.Sprint(got) != fmt.Sprint(tc.fields) {
				t.Errorf("fields: got %v; want %v", got, tc.fields)
			}
			if v, _ := resp.get("Vary"); v != varyPreflight {
				t.Errorf("Vary: got %q; want %q", v, varyPreflight)
			}
			if tc.want == 204 && len(resp.body) != 0 {
				t.Errorf("body: got %q; want none", resp.body)
			}
		})
	}
	if n := up.count(); n != 0 {
		t.Errorf("the upstream got %d requests; want 0 (preflights are the proxy's)", n)
	}
	text := scrapeMetrics(t, p)
	if got, _ := metricSum(text, "rampart_access_denied_total", map[string]string{"route": "api", "reason": "cors_preflight"}); got != 8 {
		t.Errorf("rampart_access_denied_total{route=api,reason=cors_preflight}: got %v; want 8", got)
	}
}

// TestE2ECORSActual: an actual response (the target's, or the proxy's own)
// gets the policy's fields for an allowed origin and none otherwise; the
// target's Access-Control-* fields never pass; Vary names Origin always.
func TestE2ECORSActual(t *testing.T) {
	up := accessUpstream(t)
	p := startProxy(t, corsConfig(up.addr(), `[https://app.example.com]`))
	allowed := map[string]string{
		"access-control-allow-origin":      "https://app.example.com",
		"access-control-allow-credentials": "true",
		"access-control-expose-headers":    "X-Total",
	}
	cases := []struct {
		name, method, path, origin string
		want                       int
		fields                     map[string]string
		vary                       string
	}{
		{"allowed origin", "GET", "/a", "https://app.example.com", 200, allowed, "Accept-Encoding, Origin"},
		{"origin not allowed", "GET", "/a", "https://evil.example", 200, map[string]string{}, "Accept-Encoding, Origin"},
		{"no origin", "GET", "/a", "", 200, map[string]string{}, "Accept-Encoding, Origin"},
		{"OPTIONS without Access-Control-Request-Method is actual", "OPTIONS", "/a", "https://app.example.com", 200, allowed, "Accept-Encoding, Origin"},
		{"the proxy's own refusal", "GET", "/closed/a", "https://app.example.com", 403, allowed, "Origin"},
		{"any origin, no credentials", "GET", "/public/a", "https://x.example", 200, map[string]string{"access-control-allow-origin": "*"}, "Accept-Encoding, Origin"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := up.count()
			req := tc.method + " " + tc.path + " HTTP/1.1\r\nHost: api.test\r\n"
			if tc.origin != "" {
				req += "Origin: " + tc.origin + "\r\n"
			}
			resp := dialRaw(t, p.addr).roundTrip(req + "\r\n")
			if got := resp.status(); got != tc.want {
				t.Fatalf("status: got %d; want %d", got, tc.want)
			}
			if got := corsFields(resp); fmt.Sprint(got) != fmt.Sprint(tc.fields) {
				t.Errorf("fields: got %v; want %v", got, tc.fields)
			}
			if got := strings.Join(resp.values("Vary"), "|"); got != tc.vary {
				t.Errorf("Vary: got %q; want %q", got, tc.vary)
			}
			wantReached := 1
			if tc.want == 403 {
				wantReached = 0
			}
			if got := up.count() - before; got != wantReached {
				t.Errorf("the upstream got %d requests; want %d", got, wantReached)
			}
		})
	}
}

// TestE2EAccessReload: a reload changes the allow/deny lists and the CORS
// policy of a running proxy.
func TestE2EAccessReload(t *testing.T) {
	up := accessUpstream(t)
	yaml := func(deny, origins string) string {
		return strings.Replace(corsConfig(up.addr(), origins), "    cors: web\n    deny: [0.0.0.0/0]",
			"    cors: web\n    deny: "+deny, 1)
	}
	p := startProxy(t, yaml("[0.0.0.0/0]", "[https://one.example]"))
	check := func(step string, wantClosed int, origin, wantACAO string) {
		t.Helper()
		if got := rawGet(t, p.addr, "api.test", "/closed/a").status(); got != wantClosed {
			t.Errorf("%s: /closed/: got %d; want %d", step, got, wantClosed)
		}
		resp := rawGet(t, p.addr, "api.test", "/a", "Origin: "+origin)
		if got, _ := resp.get("Access-Control-Allow-Origin"); got != wantACAO {
			t.Errorf("%s: Access-Control-Allow-Origin for %s: got %q; want %q", step, origin, got, wantACAO)
		}
	}
	check("before", 403, "https://two.example", "")
	cfg, err := config.Parse([]byte(yaml("[192.0.2.0/24]", "[https://two.example]")), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := p.srv.Reload(cfg); err != nil || !changed {
		t.Fatalf("Reload: changed %v, error %v; want true, nil", changed, err)
	}
	check("after", 200, "https://two.example", "https://two.example")
	check("after, the old origin", 200, "https://one.example", "")
}

// TestE2ECORSNetHTTP: a preflight and an actual request from Go's
// net/http client, over HTTP/1.1 and over h2c: the same answers on both
// wires.
func TestE2ECORSNetHTTP(t *testing.T) {
	up := accessUpstream(t)
	yaml := strings.Replace(corsConfig(up.addr(), `[https://app.example.com]`),
		`web: {address: "127.0.0.1:0"}`, `web: {address: "127.0.0.1:0", protocols: [http1, h2c]}`, 1)
	p := startProxy(t, yaml)
	h2c := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	t.Cleanup(h2c.CloseIdleConnections)
	for _, tc := range []struct {
		name  string
		rt    http.RoundTripper
		proto int
	}{
		{"HTTP/1.1", &http.Transport{}, 1},
		{"h2c", h2c, 2},
	} {
		client := &http.Client{Transport: tc.rt, Timeout: e2eTimeout}
		pre, _ := http.NewRequest(http.MethodOptions, "http://"+p.addr+"/a", nil)
		pre.Header.Set("Origin", "https://app.example.com")
		pre.Header.Set("Access-Control-Request-Method", "PUT")
		pre.Header.Set("Access-Control-Request-Headers", "content-type")
		resp, err := client.Do(pre)
		if err != nil {
			t.Fatalf("%s: preflight: %v", tc.name, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != 204 || resp.ProtoMajor != tc.proto {
			t.Errorf("%s: preflight: got %d over %s; want 204 over HTTP/%d", tc.name, resp.StatusCode, resp.Proto, tc.proto)
		}
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://app.example.com" {
			t.Errorf("%s: preflight Access-Control-Allow-Origin: got %q; want the origin", tc.name, got)
		}
		if got := resp.Header.Get("Access-Control-Allow-Methods"); got != "GET, PUT" {
			t.Errorf("%s: preflight Access-Control-Allow-Methods: got %q; want %q", tc.name, got, "GET, PUT")
		}
		get, _ := http.NewRequest(http.MethodGet, "http://"+p.addr+"/a", nil)
		get.Header.Set("Origin", "https://app.example.com")
		resp, err = client.Do(get)
		if err != nil {
			t.Fatalf("%s: GET: %v", tc.name, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if got := resp.Header.Values("Access-Control-Allow-Origin"); len(got) != 1 || got[0] != "https://app.example.com" {
			t.Errorf("%s: GET Access-Control-Allow-Origin: got %q; want the origin once", tc.name, got)
		}
		if got := resp.Header.Get("Access-Control-Allow-Methods"); got != "" {
			t.Errorf("%s: GET: the target's Access-Control-Allow-Methods %q passed; want it removed", tc.name, got)
		}
	}
	if n := up.count(); n != 2 {
		t.Errorf("the upstream got %d requests; want 2 (the GETs, no preflight)", n)
	}
}
