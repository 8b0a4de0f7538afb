package proxy

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestE2ERouting checks route precedence as seen by a client of the proxy:
// exact host over wildcard over any host, the longest path_prefix, method
// and header matchers, Host with a port and in upper case, direct answers,
// and the 404 when nothing matches.
func TestE2ERouting(t *testing.T) {
	up := startHTTPUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "upstream %s %s host=%s body=%s", r.Method, r.URL.RequestURI(), r.Host, body)
	}))
	yaml := fmt.Sprintf(`
listeners:
  web:
    address: 127.0.0.1:0
upstreams:
  app:
    targets:
      - url: http://%s
routes:
  - name: exact
    match: {host: api.example.com}
    respond: {body: exact}
  - name: exact-v1
    match: {host: api.example.com, path_prefix: /v1/}
    respond: {body: exact-v1}
  - name: exact-v1-admin
    match: {host: api.example.com, path_prefix: /v1/admin/}
    respond: {body: exact-v1-admin}
  - name: wild
    match: {host: "*.example.com"}
    respond: {body: wild}
  - name: deep-wild
    match: {host: "*.eu.example.com"}
    respond: {body: deep-wild}
  - name: any
    match: {path_prefix: /any/}
    respond: {body: any}
  - name: m-write
    match: {host: methods.test, path_prefix: /m, methods: [POST, PUT]}
    respond: {body: m-write}
  - name: m-other
    match: {host: methods.test, path_prefix: /m}
    respond: {body: m-other}
  - name: canary
    match: {host: headers.test, headers: {X-Canary: "true"}}
    respond: {body: canary}
  - name: stable
    match: {host: headers.test}
    respond: {body: stable}
  - name: teapot
    match: {host: respond.test}
    respond: {status: 418, body: '{"tea":true}', content_type: application/json}
  - name: plain
    match: {host: plain.test}
    respond: {body: hi}
  - name: forwarded
    match: {hosts: [up.test, Other.Up.Test]}
    upstream: app
access_log:
  path: "off"
`, up.addr())
	p := startProxy(t, yaml)

	const ctPlain = "text/plain; charset=utf-8"
	cases := []struct {
		name     string
		method   string
		host     string
		path     string
		headers  []string
		body     string
		status   int
		wantBody string
		wantCT   string // "" = not checked
	}{
		{name: "exact host root", host: "api.example.com", path: "/", status: 200, wantBody: "exact", wantCT: ctPlain},
		{name: "exact host longest prefix", host: "api.example.com", path: "/v1/users", status: 200, wantBody: "exact-v1"},
		{name: "exact host longer prefix", host: "api.example.com", path: "/v1/admin/x", status: 200, wantBody: "exact-v1-admin"},
		{name: "prefix needs its slash", host: "api.example.com", path: "/v1", status: 200, wantBody: "exact"},
		{name: "host upper case with port", host: "API.Example.COM:8080", path: "/v1/x", status: 200, wantBody: "exact-v1"},
		{name: "host with trailing dot", host: "api.example.com.", path: "/v1/x", status: 200, wantBody: "exact-v1"},
		{name: "exact beats wildcard and any", host: "api.example.com", path: "/any/x", status: 200, wantBody: "exact"},
		{name: "wildcard one label", host: "www.example.com", path: "/", status: 200, wantBody: "wild"},
		{name: "wildcard several labels", host: "a.b.example.com", path: "/", status: 200, wantBody: "wild"},
		{name: "wildcard upper case with port", host: "WWW.EXAMPLE.COM:443", path: "/", status: 200, wantBody: "wild"},
		{name: "longest wildcard wins", host: "x.eu.example.com", path: "/", status: 200, wantBody: "deep-wild"},
		{name: "wildcard beats any host", host: "www.example.com", path: "/any/x", status: 200, wantBody: "wild"},
		{name: "bare domain is not the wildcard", host: "example.com", path: "/any/x", status: 200, wantBody: "any"},
		{name: "any host", host: "unknown.test", path: "/any/x", status: 200, wantBody: "any"},
		{name: "no route", host: "unknown.test", path: "/", status: 404, wantBody: string(bodyNotFound), wantCT: ctPlain},
		{name: "no route on bare domain", host: "example.com", path: "/", status: 404, wantBody: string(bodyNotFound)},
		{name: "method matched POST", method: "POST", host: "methods.test", path: "/m", body: "x", status: 200, wantBody: "m-write"},
		{name: "method matched PUT", method: "PUT", host: "methods.test", path: "/mx", body: "x", status: 200, wantBody: "m-write"},
		{name: "method not matched", method: "GET", host: "methods.test", path: "/m", status: 200, wantBody: "m-other"},
		{name: "method not matched DELETE", method: "DELETE", host: "methods.test", path: "/m/1", status: 200, wantBody: "m-other"},
		{name: "header matched", host: "headers.test", path: "/", headers: []string{"X-Canary: true"}, status: 200, wantBody: "canary"},
		{name: "header name any case", host: "headers.test", path: "/", headers: []string{"x-canary: true"}, status: 200, wantBody: "canary"},
		{name: "header other value", host: "headers.test", path: "/", headers: []string{"X-Canary: false"}, status: 200, wantBody: "stable"},
		{name: "header absent", host: "headers.test", path: "/", status: 200, wantBody: "stable"},
		{name: "respond status body type", host: "respond.test", path: "/", status: 418, wantBody: `{"tea":true}`, wantCT: "application/json"},
		{name: "respond defaults", host: "plain.test", path: "/x", status: 200, wantBody: "hi", wantCT: ctPlain},
		{name: "forwarded with query", host: "up.test", path: "/p/q?x=1&y=%20", status: 200, wantBody: "upstream GET /p/q?x=1&y=%20 host=up.test body="},
		{name: "forwarded POST body", method: "POST", host: "up.test", path: "/form", body: "a=1", status: 200, wantBody: "upstream POST /form host=up.test body=a=1"},
		{name: "forwarded second host any case", host: "other.up.test", path: "/", status: 200, wantBody: "upstream GET / host=other.up.test body="},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = "GET"
			}
			var req strings.Builder
			fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, tc.path, tc.host)
			for _, h := range tc.headers {
				req.WriteString(h + "\r\n")
			}
			if tc.body != "" || method == "POST" || method == "PUT" {
				fmt.Fprintf(&req, "Content-Length: %d\r\n", len(tc.body))
			}
			req.WriteString("\r\n" + tc.body)
			resp := dialRaw(t, p.addr).roundTrip(req.String())
			if got := resp.status(); got != tc.status {
				t.Errorf("status: got %d; want %d (body %q)", got, tc.status, resp.body)
			}
			if got := string(resp.body); got != tc.wantBody {
				t.Errorf("body: got %q; want %q", got, tc.wantBody)
			}
			if tc.wantCT != "" {
				if got, _ := resp.get("Content-Type"); got != tc.wantCT {
					t.Errorf("Content-Type: got %q; want %q", got, tc.wantCT)
				}
			}
		})
	}
}

// TestE2ERoutingListeners checks that a route bound to one listener is not
// served on another.
func TestE2ERoutingListeners(t *testing.T) {
	p := startProxy(t, `
listeners:
  web:
    address: 127.0.0.1:0
  internal:
    address: 127.0.0.1:0
routes:
  - name: public
    respond: {body: public}
  - name: private
    listeners: [internal]
    match: {path_prefix: /private/}
    respond: {body: private}
access_log:
  path: "off"
`)
	internal := p.srv.Addr("internal")
	cases := []struct {
		name, addr, path, want string
	}{
		{"web does not serve the internal route", p.addr, "/private/x", "public"},
		{"internal serves its route", internal, "/private/x", "private"},
		{"internal serves unbound routes", internal, "/", "public"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := rawGet(t, tc.addr, "h.test", tc.path)
			if got := string(resp.body); resp.status() != 200 || got != tc.want {
				t.Errorf("got %d %q; want 200 %q", resp.status(), got, tc.want)
			}
		})
	}
}
