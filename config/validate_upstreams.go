package config

import (
	"strconv"
	"strings"
)

// upstreams checks each pool.
func (v *validator) upstreams() {
	for _, name := range sortedKeys(v.c.Upstreams) {
		p := "upstreams." + name
		u := v.c.Upstreams[name]
		if u == nil {
			v.errorf(p, "is empty; at least one target is required")
			continue
		}
		v.upstream(p, u)
	}
}

// upstream checks one pool at p.
func (v *validator) upstream(p string, u *Upstream) {
	if !oneOf(u.Balancer, Balancers...) {
		v.errorf(p+".balancer", "unknown balancer %q (want %s)", u.Balancer, quoteList(Balancers...))
	}
	if u.HashKey != "" && !validKey(u.HashKey, []string{KeyClientIP, KeyPath},
		[]string{KeyHeaderPrefix, KeyCookiePrefix, KeyQueryPrefix}) {
		v.errorf(p+".hash_key", "invalid hash_key %q (want client_ip, header:NAME, cookie:NAME, query:NAME or path)", u.HashKey)
	}
	if u.Sticky != nil && !validToken(u.Sticky.Cookie) {
		v.errorf(p+".sticky.cookie", "invalid cookie name %q", u.Sticky.Cookie)
	}
	if !oneOf(u.Protocol, UpstreamHTTP1, UpstreamHTTP2) {
		v.errorf(p+".protocol", "%q must be %s or %s", u.Protocol, UpstreamHTTP1, UpstreamHTTP2)
	}
	v.targets(p, u.Targets)
	if u.HealthCheck != nil {
		v.healthCheck(p+".health_check", u.HealthCheck, u.Protocol)
	}
	if u.Passive != nil {
		v.passive(p+".passive", u.Passive)
	}
	v.upstreamTimeouts(p+".timeouts", &u.Timeouts)
	if u.Retries < 0 {
		v.errorf(p+".retries", "%d must not be negative", u.Retries)
	}
	if u.ConnectRetries != nil && *u.ConnectRetries < 0 {
		v.errorf(p+".connect_retries", "%d must not be negative", *u.ConnectRetries)
	}
	if u.MaxConnsPerTarget < 0 {
		v.errorf(p+".max_conns_per_target", "%d must not be negative", u.MaxConnsPerTarget)
	}
	if t := u.TLS; t != nil && (t.CertFile == "") != (t.KeyFile == "") {
		v.fieldf(p+".tls", "key_file", "cert_file and key_file go together")
	}
}

// targets checks a pool's members at p.
func (v *validator) targets(p string, targets []Target) {
	if len(targets) == 0 {
		v.fieldf(p, "targets", "at least one target is required")
	}
	seen := map[string]int{}
	for i, t := range targets {
		tp := p + ".targets[" + strconv.Itoa(i) + "]"
		if t.URL == "" {
			v.fieldf(tp, "url", "url is required")
		} else if err := checkTargetURL(t.URL); err != nil {
			v.errorf(tp+".url", "invalid target %q: %v", hideUserinfo(t.URL), err)
		} else if j, dup := seen[strings.ToLower(t.URL)]; dup {
			v.errorf(tp+".url", "target %q is already targets[%d]", t.URL, j)
		} else {
			seen[strings.ToLower(t.URL)] = i
		}
		if t.Weight < 0 {
			v.errorf(tp+".weight", "weight %d must not be negative", t.Weight)
		}
	}
}

// healthCheck checks an active health check at p, of an upstream that
// speaks protocol.
func (v *validator) healthCheck(p string, h *HealthCheck, protocol string) {
	switch h.Type {
	case HealthCheckHTTP:
		if !strings.HasPrefix(h.Path, "/") {
			v.errorf(p+".path", `%q must start with "/"`, h.Path)
		}
		if h.Service != "" {
			v.errorf(p+".service", "applies to type grpc only")
		}
	case HealthCheckGRPC:
		if protocol != UpstreamHTTP2 {
			v.errorf(p+".type", "grpc needs the upstream's protocol to be http2 (gRPC runs over HTTP/2)")
		}
		if h.Path != "" {
			v.errorf(p+".path", "applies to type http only (a grpc check calls grpc.health.v1.Health/Check)")
		}
		if len(h.ExpectedStatuses) > 0 {
			v.errorf(p+".expected_statuses", "applies to type http only (a grpc check passes on SERVING)")
		}
	default:
		v.errorf(p+".type", "%q must be %s or %s", h.Type, HealthCheckHTTP, HealthCheckGRPC)
	}
	if h.Interval <= 0 {
		v.errorf(p+".interval", "must be positive")
	}
	switch {
	case h.Timeout <= 0:
		v.errorf(p+".timeout", "must be positive")
	case h.Interval > 0 && h.Timeout > h.Interval:
		v.errorf(p+".timeout", "%s must not exceed interval %s", h.Timeout, h.Interval)
	}
	if h.HealthyThreshold < 1 {
		v.errorf(p+".healthy_threshold", "%d must be at least 1", h.HealthyThreshold)
	}
	if h.UnhealthyThreshold < 1 {
		v.errorf(p+".unhealthy_threshold", "%d must be at least 1", h.UnhealthyThreshold)
	}
	for i, s := range h.ExpectedStatuses {
		if err := checkStatusRange(s); err != nil {
			v.errorf(p+".expected_statuses["+strconv.Itoa(i)+"]", "%v", err)
		}
	}
}

// passive checks outlier detection at p.
func (v *validator) passive(p string, ps *Passive) {
	if ps.MaxFailures < 1 {
		v.errorf(p+".max_failures", "%d must be at least 1", ps.MaxFailures)
	}
	if ps.Ejection <= 0 {
		v.errorf(p+".ejection", "must be positive")
	}
	if ps.MaxEjection < ps.Ejection {
		v.errorf(p+".max_ejection", "%s must not be below ejection %s", ps.MaxEjection, ps.Ejection)
	}
	if ps.MaxEjectionPercent < 0 || ps.MaxEjectionPercent > 100 {
		v.errorf(p+".max_ejection_percent", "%d must be from 0 to 100", ps.MaxEjectionPercent)
	}
}

// upstreamTimeouts refuses timeouts that are zero or negative (only
// possible in code: ApplyDefaults fills zeros, YAML refuses negatives).
func (v *validator) upstreamTimeouts(p string, t *UpstreamTimeouts) {
	for _, f := range []struct {
		field string
		d     Duration
	}{{"connect", t.Connect}, {"read", t.Read}, {"write", t.Write}, {"idle", t.Idle}} {
		if f.d <= 0 {
			v.errorf(p+"."+f.field, "must be positive")
		}
	}
}
