package proxy

import (
	"net/netip"

	"github.com/gaissmai/bart"
	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/metrics"
)

// bodyForbidden answers a client the route's allow/deny lists refuse.
var bodyForbidden = []byte("403 Forbidden\n")

// ipAccess is a route's allow and deny lists, compiled once per reload.
// The sets are bart.Lite tables (prefix sets in a multibit trie): a lookup
// costs a few nanoseconds whatever the size of the list and allocates
// nothing, where a scan of a []netip.Prefix grows with it; bart is faster
// even for one prefix (BenchmarkIPSet, docs/access.md).
type ipAccess struct {
	allow   *bart.Lite // nil: every client
	deny    *bart.Lite // nil: none
	metrics *metrics.AccessMetrics
}

// prefixSet compiles list (addresses and CIDRs, validated) into a set; nil
// for an empty list.
func prefixSet(list []string) *bart.Lite {
	if len(list) == 0 {
		return nil
	}
	t := new(bart.Lite)
	for _, p := range config.ParsePrefixes(list) {
		t.Insert(p)
	}
	return t
}

func (s *Server) buildAccess(e *edgeBuild, r *route) error {
	if r.access != nil || (len(r.cfg.Allow) == 0 && len(r.cfg.Deny) == 0) {
		return nil // none, or built already for another listener
	}
	r.access = &ipAccess{allow: prefixSet(r.cfg.Allow), deny: prefixSet(r.cfg.Deny)}
	if !e.dryRun {
		r.access.metrics = s.metrics.Access(r.name)
	}
	return nil
}

// verdict returns the reason the client at ip is refused
// (metrics.Denied*), or -1 when it is admitted: deny wins over allow.
func (a *ipAccess) verdict(x *exchange) int {
	ip := x.clientIP.Unmap().WithZone("")
	if a.deny != nil && a.deny.Contains(ip) {
		return metrics.DeniedDenyList
	}
	if a.allow != nil && !a.allow.Contains(ip) {
		return metrics.DeniedNotAllowed
	}
	return -1
}

// admit reports whether the client may use the route; when not, it has
// answered 403. The client is x.clientIP: the peer (the PROXY protocol's
// source address on a listener that reads it), or the address
// trusted_proxies let X-Forwarded-For name.
func (x *exchange) admit() bool {
	a := x.rt.access
	reason := a.verdict(x)
	if reason < 0 {
		return true
	}
	a.metrics.Denied(reason)
	x.l.srv.log.Info("access denied", "request_id", string(x.reqID), "route", x.rt.name,
		"client", string(x.client), "reason", deniedReason(reason))
	x.finish(fasthttp.StatusForbidden, bodyForbidden)
	return false
}

// deniedReason names a metrics.Denied* reason for the log.
func deniedReason(reason int) string {
	switch reason {
	case metrics.DeniedDenyList:
		return "deny_list"
	case metrics.DeniedNotAllowed:
		return "not_allowed"
	}
	return "cors_preflight"
}

// proxyProtocolTrusted is the peers a listener reads the PROXY protocol
// from (wire/http1 reads it, at accept); nil: the listener does not.
func proxyProtocolTrusted(lc *config.Listener) []netip.Prefix {
	if lc.ProxyProtocol == nil {
		return nil
	}
	return config.ParsePrefixes(lc.ProxyProtocol.Trusted)
}
