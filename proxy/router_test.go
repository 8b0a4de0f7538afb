package proxy

import (
	"bufio"
	"fmt"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/config"
)

// testRoute builds a route as config would hand it over: defaulted, so
// PathPrefix is never empty.
func testRoute(name string, hosts []string, prefix string, methods []string, headers map[string]string) *config.Route {
	if prefix == "" {
		prefix = "/"
	}
	m := config.Match{PathPrefix: prefix, Methods: methods, Headers: headers}
	if len(hosts) == 1 {
		m.Host = hosts[0]
	} else {
		m.Hosts = hosts
	}
	return &config.Route{Name: name, Match: m, Upstream: "u"}
}

func hosts(h ...string) []string { return h }

// routerTestRoutes is the table most router tests run against. The index
// of each route is what match returns.
func routerTestRoutes() []*config.Route {
	return []*config.Route{
		0:  testRoute("api-v1", hosts("api.example.com"), "/v1/", nil, nil),
		1:  testRoute("api", hosts("api.example.com"), "/api", nil, nil),
		2:  testRoute("wild", hosts("*.example.com"), "/", nil, nil),
		3:  testRoute("wild-deep", hosts("*.b.example.com"), "/b", nil, nil),
		4:  testRoute("any-other", nil, "/other", nil, nil),
		5:  testRoute("any", nil, "/", nil, nil),
		6:  testRoute("canary", hosts("api.example.com"), "/v1/", nil, map[string]string{"X-Canary": "true"}),
		7:  testRoute("post-only", hosts("api.example.com"), "/v1/", []string{"POST"}, nil),
		8:  testRoute("hosts-list", hosts("A.test", "b.test:8080", "c.test."), "/", nil, nil),
		9:  testRoute("ipv6", hosts("[::1]"), "/", nil, nil),
		10: testRoute("ipv4", hosts("127.0.0.1"), "/", nil, nil),
		11: testRoute("order-1", hosts("order.test"), "/x", nil, nil),
		12: testRoute("order-2", hosts("order.test"), "/x", nil, nil),
		13: testRoute("order-most", hosts("order.test"), "/x", []string{"GET"}, map[string]string{"X-A": "1", "x-b": "2"}),
		14: testRoute("mix", hosts("mix.test", "*.mix.test"), "/m", nil, nil),
		15: testRoute("any-other-deeper", nil, "/other/deeper", nil, nil),
	}
}

// testHeader parses raw header lines the way a server with
// DisableHeaderNamesNormalizing does, so names keep their case.
func testHeader(t testing.TB, host string, lines ...string) *fasthttp.RequestHeader {
	t.Helper()
	var h fasthttp.RequestHeader
	h.DisableNormalizing()
	raw := "GET / HTTP/1.1\r\nHost: " + host + "\r\n" + strings.Join(lines, "\r\n")
	if len(lines) > 0 {
		raw += "\r\n"
	}
	raw += "\r\n"
	if err := h.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatalf("parsing test header %q: %v", raw, err)
	}
	return &h
}

type routerCase struct {
	name    string
	host    string
	path    string
	method  string
	headers []string // raw "Name: value" lines
	want    int
}

func routerCases() []routerCase {
	return []routerCase{
		{name: "exact host longest prefix", host: "api.example.com", path: "/v1/users", want: 0},
		{name: "exact host method matcher", host: "api.example.com", path: "/v1/users", method: "POST", want: 7},
		{name: "exact host header matcher", host: "api.example.com", path: "/v1/users", headers: []string{"X-Canary: true"}, want: 6},
		{name: "header name any case", host: "api.example.com", path: "/v1/users", headers: []string{"x-CANARY: true"}, want: 6},
		{name: "header value exact", host: "api.example.com", path: "/v1/users", headers: []string{"X-Canary: True"}, want: 0},
		{name: "repeated header any value matches", host: "api.example.com", path: "/v1/", headers: []string{"X-Canary: no", "x-canary: true"}, want: 6},
		{name: "equal specificity file order", host: "api.example.com", path: "/v1/", method: "POST", headers: []string{"X-Canary: true"}, want: 6},
		{name: "upper case host and port", host: "API.Example.COM:8443", path: "/api/x", want: 1},
		{name: "trailing dot", host: "api.example.com.", path: "/api", want: 1},
		{name: "plain byte prefix", host: "api.example.com", path: "/apix", want: 1},
		{name: "exact falls to wildcard", host: "api.example.com", path: "/v1", want: 2},
		{name: "wildcard one label", host: "a.example.com", path: "/", want: 2},
		{name: "wildcard longest suffix first", host: "a.b.example.com", path: "/b/c", want: 3},
		{name: "wildcard several labels", host: "x.y.b.example.com:80", path: "/b", want: 3},
		{name: "longer wildcard falls to shorter", host: "a.b.example.com", path: "/c", want: 2},
		{name: "wildcard needs a label", host: "b.example.com", path: "/b", want: 2},
		{name: "wildcard not the bare domain", host: "example.com", path: "/b", want: 5},
		{name: "wildcard empty label", host: ".example.com", path: "/", want: 5},
		{name: "wildcard empty inner label", host: "a..example.com", path: "/", want: 5},
		{name: "wildcard needs the dot", host: "evil-example.com", path: "/", want: 5},
		{name: "wildcard upper case", host: "A.B.EXAMPLE.COM", path: "/b", want: 3},
		{name: "hosts list upper case config", host: "a.test", path: "/", want: 8},
		{name: "hosts list config port ignored", host: "B.test", path: "/", want: 8},
		{name: "hosts list config trailing dot", host: "c.test:1", path: "/", want: 8},
		{name: "only one trailing dot", host: "c.test..", path: "/", want: 5},
		{name: "ipv6 with port", host: "[::1]:8080", path: "/", want: 9},
		{name: "ipv6 bracketed", host: "[::1]", path: "/", want: 9},
		{name: "ipv6 bare", host: "::1", path: "/", want: 9},
		{name: "ipv4 with port", host: "127.0.0.1:80", path: "/", want: 10},
		{name: "file order on tie", host: "order.test", path: "/x", want: 11},
		{name: "more matchers first", host: "order.test", path: "/x/y", headers: []string{"x-a: 1", "X-B: 2"}, want: 13},
		{name: "all header matchers needed", host: "order.test", path: "/x", headers: []string{"X-A: 1"}, want: 11},
		{name: "method and headers", host: "order.test", path: "/x", method: "PUT", headers: []string{"X-A: 1", "X-B: 2"}, want: 11},
		{name: "exact falls to any host", host: "order.test", path: "/other", want: 4},
		{name: "any host longest prefix", host: "order.test", path: "/other/deeper/x", want: 15},
		{name: "any host default", host: "order.test", path: "/zzz", want: 5},
		{name: "exact and wildcard of one route exact", host: "mix.test", path: "/m", want: 14},
		{name: "exact and wildcard of one route wildcard", host: "a.mix.test", path: "/m", want: 14},
		{name: "exact and wildcard of one route fall", host: "a.mix.test", path: "/n", want: 5},
		{name: "no host", host: "", path: "/v1/", want: 5},
		{name: "port only", host: ":8080", path: "/api", want: 5},
		{name: "unknown host", host: "unknown.test", path: "/other", want: 4},
	}
}

func TestRouterMatch(t *testing.T) {
	routes := routerTestRoutes()
	r := newRouter(routes)
	for _, tc := range routerCases() {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = "GET"
			}
			h := testHeader(t, "h.test", tc.headers...)
			got := r.match([]byte(tc.host), []byte(tc.path), []byte(method), h)
			if got != tc.want {
				t.Errorf("match(%q, %q, %q, %q) = %d (%s); want %d (%s)",
					tc.host, tc.path, method, tc.headers, got, routeName(routes, got), tc.want, routeName(routes, tc.want))
			}
		})
	}
}

func routeName(routes []*config.Route, i int) string {
	if i < 0 || i >= len(routes) {
		return "none"
	}
	return routes[i].Name
}

func TestRouterMatchSpecial(t *testing.T) {
	tests := []struct {
		name   string
		routes []*config.Route
		host   string
		path   string
		want   int
	}{
		{name: "no routes", routes: nil, host: "a.test", path: "/", want: -1},
		{name: "no route matches", routes: []*config.Route{testRoute("a", hosts("a.test"), "/", nil, nil)}, host: "b.test", path: "/", want: -1},
		{name: "prefix longer than path", routes: []*config.Route{testRoute("a", nil, "/abc", nil, nil)}, host: "", path: "/ab", want: -1},
		{name: "longest prefix wins over file order", routes: []*config.Route{
			testRoute("short", nil, "/", nil, nil),
			testRoute("long", nil, "/a/b", nil, nil),
			testRoute("mid", nil, "/a", nil, nil),
		}, host: "x", path: "/a/b/c", want: 1},
		{name: "catch-all star after named wildcard", routes: []*config.Route{
			testRoute("any", nil, "/", nil, nil),
			testRoute("star", hosts("*"), "/", nil, nil),
			testRoute("wild", hosts("*.a.test"), "/", nil, nil),
		}, host: "x.a.test", path: "/", want: 2},
		{name: "catch-all star before any host", routes: []*config.Route{
			testRoute("any", nil, "/", nil, nil),
			testRoute("star", hosts("*"), "/", nil, nil),
		}, host: "b.test", path: "/", want: 1},
		{name: "catch-all star needs a host", routes: []*config.Route{
			testRoute("any", nil, "/", nil, nil),
			testRoute("star", hosts("*"), "/", nil, nil),
		}, host: "", path: "/", want: 0},
		{name: "host listed twice", routes: []*config.Route{
			testRoute("twice", hosts("a.test", "A.TEST"), "/", nil, nil),
		}, host: "a.test", path: "/", want: 0},
		{name: "wildcard config trailing dot and case", routes: []*config.Route{
			testRoute("wild", hosts("*.Example.COM."), "/", nil, nil),
		}, host: "x.example.com", path: "/", want: 0},
		{name: "header matcher with nil header", routes: []*config.Route{
			testRoute("h", nil, "/", nil, map[string]string{"X-A": "1"}),
		}, host: "a", path: "/", want: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRouter(tc.routes)
			if got := r.match([]byte(tc.host), []byte(tc.path), []byte("GET"), nil); got != tc.want {
				t.Errorf("match(%q, %q) = %d; want %d", tc.host, tc.path, got, tc.want)
			}
		})
	}
}

// TestRouterMatchHashCollision forces every host into one hash bucket to
// check that lookups compare hosts in full.
func TestRouterMatchHashCollision(t *testing.T) {
	routes := []*config.Route{
		testRoute("a", hosts("a.test"), "/", nil, nil),
		testRoute("b", hosts("b.test"), "/", nil, nil),
		testRoute("any", nil, "/", nil, nil),
	}
	r := newRouter(routes)
	var all []*hostGroup
	for k, gs := range r.exact {
		all = append(all, gs...)
		delete(r.exact, k)
	}
	for _, name := range []string{"a.test", "b.test", "c.test"} {
		r.exact[hashFold(name)] = all
	}
	for _, tc := range []struct {
		host string
		want int
	}{{"a.test", 0}, {"B.TEST", 1}, {"c.test", 2}} {
		if got := r.match([]byte(tc.host), []byte("/"), []byte("GET"), nil); got != tc.want {
			t.Errorf("match(%q) = %d; want %d", tc.host, got, tc.want)
		}
	}
}

// TestRouterMatchDoesNotModifyInput checks that match leaves the caller's
// buffers alone (they belong to fasthttp).
func TestRouterMatchDoesNotModifyInput(t *testing.T) {
	r := newRouter(routerTestRoutes())
	host, path, method := []byte("A.B.Example.COM.:80"), []byte("/B/c"), []byte("get")
	r.match(host, path, method, nil)
	if string(host) != "A.B.Example.COM.:80" || string(path) != "/B/c" || string(method) != "get" {
		t.Errorf("inputs changed to %q %q %q; want them unchanged", host, path, method)
	}
}

func TestRouterMatchAllocs(t *testing.T) {
	r := newRouter(routerTestRoutes())
	type input struct {
		host, path, method []byte
		h                  *fasthttp.RequestHeader
		want               int
	}
	var inputs []input
	for _, tc := range routerCases() {
		method := tc.method
		if method == "" {
			method = "GET"
		}
		h := testHeader(t, "h.test", append(tc.headers, "Cookie: a=b", "User-Agent: test")...)
		inputs = append(inputs, input{[]byte(tc.host), []byte(tc.path), []byte(method), h, tc.want})
	}
	for _, in := range inputs {
		t.Run(fmt.Sprintf("%s%s", in.host, in.path), func(t *testing.T) {
			got := -2
			n := testing.AllocsPerRun(100, func() {
				got = r.match(in.host, in.path, in.method, in.h)
			})
			if n != 0 {
				t.Errorf("match(%q, %q) allocates %v times per run; want 0", in.host, in.path, n)
			}
			if got != in.want {
				t.Errorf("match(%q, %q) = %d; want %d", in.host, in.path, got, in.want)
			}
		})
	}
}

// benchRoutes returns 50 routes: exact hosts with a few prefixes each,
// wildcards, header and method routes, and any-host routes.
func benchRoutes() []*config.Route {
	var routes []*config.Route
	for i := range 10 {
		h := fmt.Sprintf("svc%d.example.com", i)
		routes = append(routes,
			testRoute("", hosts(h), "/", nil, nil),
			testRoute("", hosts(h), "/api/", nil, nil),
			testRoute("", hosts(h), "/api/v2/", []string{"GET", "POST"}, nil),
		)
	}
	for i := range 8 {
		routes = append(routes, testRoute("", hosts(fmt.Sprintf("*.zone%d.example.com", i)), "/", nil, nil))
	}
	routes = append(routes,
		testRoute("", hosts("*.example.com"), "/", nil, nil),
		testRoute("", hosts("canary.example.com"), "/", nil, map[string]string{"X-Canary": "true"}),
	)
	for i := range 9 {
		routes = append(routes, testRoute("", nil, fmt.Sprintf("/static%d/", i), nil, nil))
	}
	routes = append(routes, testRoute("", nil, "/", nil, nil))
	return routes
}

func BenchmarkRouterMatch(b *testing.B) {
	routes := benchRoutes()
	if len(routes) != 50 {
		b.Fatalf("got %d bench routes; want 50", len(routes))
	}
	r := newRouter(routes)
	bench := []struct {
		name, host, path, method string
		headers                  []string
	}{
		{name: "exact", host: "svc7.example.com", path: "/api/v2/items", method: "GET"},
		{name: "exact-upper-port", host: "SVC7.Example.com:8443", path: "/api/items", method: "GET"},
		{name: "wildcard", host: "a.zone3.example.com", path: "/x", method: "GET"},
		{name: "default", host: "other.test", path: "/nothing/here", method: "GET"},
		{name: "header", host: "canary.example.com", path: "/", method: "GET", headers: []string{"Accept: */*", "X-Canary: true"}},
	}
	for _, bc := range bench {
		b.Run(bc.name, func(b *testing.B) {
			h := testHeader(b, bc.host, bc.headers...)
			host, path, method := []byte(bc.host), []byte(bc.path), []byte(bc.method)
			if got := r.match(host, path, method, h); got < 0 {
				b.Fatalf("match(%q, %q) = %d; want a route", bc.host, bc.path, got)
			}
			b.ReportAllocs()
			for b.Loop() {
				r.match(host, path, method, h)
			}
		})
	}
}

// TestRouterMatchConcurrent shares one router between goroutines, as the
// server does; run with -race.
func TestRouterMatchConcurrent(t *testing.T) {
	r := newRouter(routerTestRoutes())
	cases := routerCases()
	// Headers are per request; each goroutine gets its own, parsed here
	// because testHeader may call t.Fatalf.
	headers := make([][]*fasthttp.RequestHeader, 4)
	for g := range headers {
		for _, tc := range cases {
			headers[g] = append(headers[g], testHeader(t, "h.test", tc.headers...))
		}
	}
	errs := make(chan string, 4)
	for g := range 4 {
		go func() {
			var bad string
			for i, tc := range cases {
				method := tc.method
				if method == "" {
					method = "GET"
				}
				h := headers[g][i]
				for range 20 {
					if got := r.match([]byte(tc.host), []byte(tc.path), []byte(method), h); got != tc.want && bad == "" {
						bad = fmt.Sprintf("%s: got %d; want %d", tc.name, got, tc.want)
					}
				}
			}
			errs <- bad
		}()
	}
	for range 4 {
		if e := <-errs; e != "" {
			t.Error(e)
		}
	}
}
