package proxy

import (
	"slices"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/config"
)

// router picks the route that serves a request: the most specific match
// wins. Candidates are tried in tiers by host: routes naming the exact host,
// then routes with a wildcard host ("*.example.com"), longest suffix first,
// then routes with no host matcher. When no route of a tier matches the
// rest of the request (path, method, headers), the next tier is tried.
// Within a tier the longest path_prefix wins, then the route with more
// matchers (a methods list counts as one, each header as one), then file
// order. A host of "*" matches any non-empty host, after the named
// wildcards and before the routes with no host matcher. Methods are
// compared exactly (a GET route does not serve HEAD).
//
// A router is immutable after newRouter returns, so any number of
// goroutines may call match without a lock, and match does not allocate.
type router struct {
	routes []routeMatcher // parallel to the routes given to newRouter

	// exact holds the groups of routes naming an exact host, keyed by
	// hashFold of the lower-case host; a key may hold several groups
	// when hashes collide, and each group's host is compared in full.
	exact map[uint64][]*hostGroup
	// wild holds the groups of routes naming a wildcard host, keyed by
	// hashFold of the suffix including its leading dot (".example.com").
	wild map[uint64][]*hostGroup
	// wildLens are the distinct suffix lengths in wild, longest first, so
	// the most specific wildcard is tried first and the work done per
	// request is bounded by the configuration, not by the Host header.
	wildLens []int
	// anyHost are the routes with no host matcher, in match order.
	anyHost []int32
}

// hostGroup is the routes sharing one host (or wildcard suffix), in match
// order.
type hostGroup struct {
	host   string  // lower case, no port, no trailing dot
	routes []int32 // indexes into router.routes
}

// routeMatcher is one route's matchers besides the host, parsed once.
type routeMatcher struct {
	prefix  string
	methods []string // as configured (upper case); empty: any method
	headers []headerMatcher
}

// headerMatcher requires a header named name (compared without regard to
// case) whose value is exactly value.
type headerMatcher struct {
	name  string // lower case
	value string
}

// specificity counts the matchers besides host and path; more wins a tie
// on path_prefix length.
func (m *routeMatcher) specificity() int {
	n := len(m.headers)
	if len(m.methods) > 0 {
		n++
	}
	return n
}

// newRouter builds a router over routes, which are already defaulted and
// validated and are all bound to one listener. match returns indexes into
// routes.
func newRouter(routes []*config.Route) *router {
	r := &router{
		routes: make([]routeMatcher, len(routes)),
		exact:  make(map[uint64][]*hostGroup),
		wild:   make(map[uint64][]*hostGroup),
	}
	exact := make(map[string]*hostGroup)
	wild := make(map[string]*hostGroup)
	add := func(groups map[string]*hostGroup, host string, i int32) {
		g := groups[host]
		if g == nil {
			g = &hostGroup{host: host}
			groups[host] = g
		}
		g.routes = append(g.routes, i) // routeHosts removed duplicates
	}
	for i, rt := range routes {
		r.routes[i] = newRouteMatcher(&rt.Match)
		hosts := routeHosts(&rt.Match)
		if len(hosts) == 0 {
			r.anyHost = append(r.anyHost, int32(i))
			continue
		}
		for _, h := range hosts {
			switch {
			case h == "*":
				add(wild, "", int32(i)) // any host, but after named wildcards
			case strings.HasPrefix(h, "*."):
				add(wild, h[1:], int32(i))
			default:
				add(exact, h, int32(i))
			}
		}
	}
	for _, g := range exact {
		r.sortRoutes(g.routes)
		k := hashFold(g.host)
		r.exact[k] = append(r.exact[k], g)
	}
	for _, g := range wild {
		r.sortRoutes(g.routes)
		k := hashFold(g.host)
		r.wild[k] = append(r.wild[k], g)
		if !slices.Contains(r.wildLens, len(g.host)) {
			r.wildLens = append(r.wildLens, len(g.host))
		}
	}
	slices.SortFunc(r.wildLens, func(a, b int) int { return b - a })
	r.sortRoutes(r.anyHost)
	return r
}

// routeHosts returns m's hosts (Host and Hosts together), lower case,
// without port or trailing dot.
func routeHosts(m *config.Match) []string {
	var hosts []string
	for _, h := range append([]string{m.Host}, m.Hosts...) {
		if h == "" {
			continue
		}
		h = lowerASCII(string(hostWithoutPort([]byte(h))))
		if h != "" && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

func newRouteMatcher(m *config.Match) routeMatcher {
	rm := routeMatcher{prefix: m.PathPrefix, methods: slices.Clone(m.Methods)}
	for name, value := range m.Headers {
		rm.headers = append(rm.headers, headerMatcher{name: lowerASCII(name), value: value})
	}
	// Map order is random; fix one so that match costs the same each run.
	slices.SortFunc(rm.headers, func(a, b headerMatcher) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		return strings.Compare(a.value, b.value)
	})
	return rm
}

// sortRoutes orders idx (indexes into r.routes) most specific first:
// longest path prefix, then most matchers, then file order.
func (r *router) sortRoutes(idx []int32) {
	slices.SortFunc(idx, func(a, b int32) int {
		ma, mb := &r.routes[a], &r.routes[b]
		if d := len(mb.prefix) - len(ma.prefix); d != 0 {
			return d
		}
		if d := mb.specificity() - ma.specificity(); d != 0 {
			return d
		}
		return int(a - b)
	})
}

// match returns the index, in the routes given to newRouter, of the route
// that serves the request, or -1 when none does. host is the Host as
// received (any case, maybe a port, brackets or a trailing dot); path is the
// normalized path; h gives the headers for header matchers and may be nil
// when no route has one.
func (r *router) match(host, path, method []byte, h *fasthttp.RequestHeader) int {
	name := hostWithoutPort(host)
	if len(name) > 0 && len(r.exact) > 0 {
		if g := lookupGroup(r.exact, name); g != nil {
			if i := r.matchList(g.routes, path, method, h); i >= 0 {
				return i
			}
		}
	}
	for _, n := range r.wildLens {
		// The suffix starts with its dot; the label before it must not
		// be empty. n == 0 is the catch-all "*".
		if len(name) <= n || (n > 0 && name[len(name)-n-1] == '.') {
			continue
		}
		if g := lookupGroup(r.wild, name[len(name)-n:]); g != nil {
			if i := r.matchList(g.routes, path, method, h); i >= 0 {
				return i
			}
		}
	}
	return r.matchList(r.anyHost, path, method, h)
}

// lookupGroup returns the group of groups whose host equals name without
// regard to ASCII case, or nil.
func lookupGroup(groups map[uint64][]*hostGroup, name []byte) *hostGroup {
	for _, g := range groups[hashFold(name)] {
		if equalFold(name, g.host) {
			return g
		}
	}
	return nil
}

// matchList returns the first route of idx that matches, or -1.
func (r *router) matchList(idx []int32, path, method []byte, h *fasthttp.RequestHeader) int {
	for _, i := range idx {
		if r.routes[i].matches(path, method, h) {
			return int(i)
		}
	}
	return -1
}

// matches reports whether path, method and headers satisfy m.
func (m *routeMatcher) matches(path, method []byte, h *fasthttp.RequestHeader) bool {
	if len(path) < len(m.prefix) || string(path[:len(m.prefix)]) != m.prefix {
		return false
	}
	if len(m.methods) > 0 && !containsMethod(m.methods, method) {
		return false
	}
	for i := range m.headers {
		if !hasHeader(h, &m.headers[i]) {
			return false
		}
	}
	return true
}

func containsMethod(methods []string, method []byte) bool {
	for _, m := range methods {
		if string(method) == m {
			return true
		}
	}
	return false
}

// hasHeader reports whether h holds a header named hm.name (any case) with
// exactly the value hm.value. Any one of repeated headers may match. It
// walks the headers rather than calling Peek because the server may run
// with header name normalizing disabled, where Peek is case-sensitive. A
// parsed header is walked as received (AllInOrder): All would gather the
// Cookie fields into one, rewritten on their way upstream.
func hasHeader(h *fasthttp.RequestHeader, hm *headerMatcher) bool {
	if h == nil {
		return false
	}
	if len(h.RawHeaders()) > 0 {
		for k, v := range h.AllInOrder() {
			if string(v) == hm.value && equalFold(k, hm.name) {
				return true
			}
		}
		return false
	}
	for k, v := range h.All() { // a header built in code
		if string(v) == hm.value && equalFold(k, hm.name) {
			return true
		}
	}
	return false
}

// hashFold is 64-bit FNV-1a over b with ASCII letters folded to lower
// case. It only narrows a lookup; equalFold decides.
func hashFold[T string | []byte](b T) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(b); i++ {
		h ^= uint64(lower(b[i]))
		h *= 1099511628211
	}
	return h
}

// equalFold reports whether b equals lowerS, which is lower case, without
// regard to ASCII case in b.
func equalFold(b []byte, lowerS string) bool {
	if len(b) != len(lowerS) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if lower(b[i]) != lowerS[i] {
			return false
		}
	}
	return true
}

// lowerASCII folds only ASCII letters, as lower and equalFold do on the
// request side (strings.ToLower would also fold non-ASCII letters).
func lowerASCII(s string) string {
	b := []byte(s)
	for i := range b {
		b[i] = lower(b[i])
	}
	return string(b)
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
