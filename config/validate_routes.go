package config

import (
	"fmt"
	"strconv"
	"strings"
)

// routeErrorf records an error about route i found at its field; the
// message names the field, the error shows the route's index and name:
// `routes[2] "api": upstream "missing" is not defined`.
func (v *validator) routeErrorf(i int, r *Route, field, format string, args ...any) {
	item := "routes[" + strconv.Itoa(i) + "]"
	v.add(&Error{Path: item, Name: r.Name, Msg: fmt.Sprintf(format, args...), at: joinPath(item, field)})
}

// routes checks each route and its references.
func (v *validator) routes() {
	names := map[string]int{}
	for i, r := range v.c.Routes {
		if r == nil {
			v.errorf("routes["+strconv.Itoa(i)+"]", "is empty; upstream, split or respond is required")
			continue
		}
		if j, dup := names[r.Name]; dup && r.Name != "" {
			v.routeErrorf(i, r, "name", "name %q is already used by routes[%d]", r.Name, j)
		} else {
			names[r.Name] = i
		}
		for j, l := range r.Listeners {
			if _, ok := v.c.Listeners[l]; !ok {
				v.routeErrorf(i, r, "listeners["+strconv.Itoa(j)+"]", "listener %q is not defined", l)
			}
		}
		v.routeAction(i, r)
		if r.RedirectHTTPS && len(v.c.RedirectCandidates()) == 0 {
			v.routeErrorf(i, r, "redirect_https", "redirect_https needs a TLS listener; no listener has tls")
		}
		if _, ok := v.c.WAF[r.WAF]; r.WAF != "" && !ok {
			v.routeErrorf(i, r, "waf", "waf policy %q is not defined", r.WAF)
		}
		if _, ok := v.c.RateLimits[r.RateLimit]; r.RateLimit != "" && !ok {
			v.routeErrorf(i, r, "rate_limit", "rate_limit policy %q is not defined", r.RateLimit)
		}
		v.match(i, r)
	}
}

// routeAction checks that route i does exactly one thing, and that what
// it names exists.
func (v *validator) routeAction(i int, r *Route) {
	switch n := btoi(r.Upstream != "") + btoi(len(r.Split) > 0) + btoi(r.Respond != nil); {
	case n == 0:
		v.routeErrorf(i, r, "", "one of upstream, split or respond is required")
	case n > 1:
		v.routeErrorf(i, r, "", "only one of upstream, split or respond may be set")
	}
	if _, ok := v.c.Upstreams[r.Upstream]; r.Upstream != "" && !ok {
		v.routeErrorf(i, r, "upstream", "upstream %q is not defined", r.Upstream)
	}
	for j, s := range r.Split {
		sp := "split[" + strconv.Itoa(j) + "]"
		if _, ok := v.c.Upstreams[s.Upstream]; !ok {
			v.routeErrorf(i, r, sp+".upstream", "%s upstream %q is not defined", sp, s.Upstream)
		}
		if s.Weight <= 0 {
			v.routeErrorf(i, r, sp+".weight", "%s weight %d must be positive", sp, s.Weight)
		}
	}
	if rs := r.Respond; rs != nil && (rs.Status < 100 || rs.Status > 599) {
		v.routeErrorf(i, r, "respond.status", "respond status %d is not from 100 to 599", rs.Status)
	}
}

// match checks the matchers of route i.
func (v *validator) match(i int, r *Route) {
	m := &r.Match
	if m.Host != "" && len(m.Hosts) > 0 {
		v.routeErrorf(i, r, "match.hosts", "set match host or hosts, not both")
	}
	if m.Host != "" && !validHostPattern(m.Host) {
		v.routeErrorf(i, r, "match.host", `invalid host %q (want a DNS name, an IP or "*.domain")`, m.Host)
	}
	for j, h := range m.Hosts {
		if !validHostPattern(h) {
			v.routeErrorf(i, r, "match.hosts["+strconv.Itoa(j)+"]", `invalid host %q (want a DNS name, an IP or "*.domain")`, h)
		}
	}
	if !strings.HasPrefix(m.PathPrefix, "/") {
		v.routeErrorf(i, r, "match.path_prefix", `path_prefix %q must start with "/"`, m.PathPrefix)
	}
	for j, meth := range m.Methods {
		if !validToken(meth) {
			v.routeErrorf(i, r, "match.methods["+strconv.Itoa(j)+"]", "invalid method %q", meth)
		}
	}
	for _, name := range sortedKeys(m.Headers) {
		if !validToken(name) {
			v.routeErrorf(i, r, "match.headers."+name, "invalid header name %q", name)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
