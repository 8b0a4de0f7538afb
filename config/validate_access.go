package config

import (
	"net/netip"
	"strconv"
	"strings"
)

// access checks IP lists, CORS policies and the PROXY protocol (issue 22).
func (v *validator) access() {
	for _, name := range sortedKeys(v.c.Listeners) {
		if l := v.c.Listeners[name]; l != nil && l.ProxyProtocol != nil {
			v.proxyProtocol("listeners."+name+".proxy_protocol", l.ProxyProtocol)
		}
	}
	for _, name := range sortedKeys(v.c.CORS) {
		v.cors("cors."+name, v.c.CORS[name])
	}
	for i, r := range v.c.Routes {
		if r == nil {
			continue
		}
		p := "routes[" + strconv.Itoa(i) + "]"
		v.prefixList(p+".allow", r.Allow)
		v.prefixList(p+".deny", r.Deny)
		if r.CORS != "" {
			if _, ok := v.c.CORS[r.CORS]; !ok {
				v.routeErrorf(i, r, "cors", "CORS policy %q is not defined", r.CORS)
			}
		}
	}
}

// proxyProtocol checks a listener's proxy_protocol at p.
func (v *validator) proxyProtocol(p string, pp *ProxyProtocol) {
	if len(pp.Trusted) == 0 {
		v.fieldf(p, "trusted", "trusted is required: the peers (addresses or CIDRs) that send the PROXY header")
		return
	}
	v.prefixList(p+".trusted", pp.Trusted)
}

// prefixList checks a list of addresses and CIDR prefixes at p.
func (v *validator) prefixList(p string, list []string) {
	for i, s := range list {
		if _, err := parseProxy(s); err != nil {
			v.errorf(p+"["+strconv.Itoa(i)+"]", "%q is neither a CIDR nor an IP address", s)
		}
	}
}

// ParsePrefixes returns list (addresses and CIDR prefixes) as prefixes, as
// TrustedProxyPrefixes does: a single address becomes a /32 or /128, a CIDR
// is masked, IPv4-mapped addresses are unmapped. Entries that do not parse
// are skipped: Validate reports them.
func ParsePrefixes(list []string) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		if p, err := parseProxy(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// cors checks a CORS policy at p.
func (v *validator) cors(p string, c *CORS) {
	if c == nil {
		v.errorf(p, "is empty; allow_origins is required")
		return
	}
	if len(c.AllowOrigins) == 0 {
		v.fieldf(p, "allow_origins", "allow_origins is required")
	}
	for i, o := range c.AllowOrigins {
		at := p + ".allow_origins[" + strconv.Itoa(i) + "]"
		if o == "*" {
			if c.AllowCredentials {
				v.errorf(at, `"*" is not allowed with allow_credentials: list the origins`)
			}
			continue
		}
		if _, _, err := ParseOrigin(o); err != "" {
			v.errorf(at, "%q is not an origin: %s", o, err)
		}
	}
	for i, m := range c.AllowMethods {
		if !validToken(m) || m == "*" {
			v.errorf(p+".allow_methods["+strconv.Itoa(i)+"]", "%q is not a method", m)
		}
	}
	for i, h := range c.AllowHeaders {
		if !validToken(h) || (h == "*" && len(c.AllowHeaders) > 1) {
			v.errorf(p+".allow_headers["+strconv.Itoa(i)+"]", `%q is not a header field name (or "*" alone)`, h)
		}
	}
	for i, h := range c.ExposeHeaders {
		if !validToken(h) || h == "*" {
			v.errorf(p+".expose_headers["+strconv.Itoa(i)+"]", "%q is not a header field name", h)
		}
	}
	if c.MaxAge < 0 {
		v.fieldf(p, "max_age", "max_age must not be negative")
	}
}

// ParseOrigin parses an allowed origin, "scheme://host[:port]" or
// "scheme://*.domain[:port]", and returns it in lower case with wildcard
// reporting the "*." form (origin is then "scheme://.domain[:port]" for a
// suffix match on the host). err is "" when it parses, else why not.
func ParseOrigin(s string) (origin string, wildcard bool, err string) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme == "" {
		return "", false, "want scheme://host[:port]"
	}
	for i := 0; i < len(scheme); i++ {
		c := scheme[i] | 0x20
		if !(c >= 'a' && c <= 'z' || i > 0 && (scheme[i] >= '0' && scheme[i] <= '9' || strings.IndexByte("+-.", scheme[i]) >= 0)) {
			return "", false, "invalid scheme"
		}
	}
	if strings.ContainsAny(rest, "/?#@ ") {
		return "", false, "an origin has no path, query, user or trailing slash"
	}
	host, port := rest, ""
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.HasSuffix(rest, "]") {
		host, port = rest[:i], rest[i+1:]
		if n, perr := parsePort(port); perr != nil || n == 0 {
			return "", false, "invalid port"
		}
	}
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		if !validDNSName(rest) {
			return "", false, "invalid wildcard domain"
		}
		wildcard = true
	} else if !validHost(host) {
		return "", false, "invalid host"
	}
	origin = strings.ToLower(scheme + "://" + strings.TrimPrefix(host, "*"))
	if port != "" {
		origin += ":" + port
	}
	return origin, wildcard, ""
}
