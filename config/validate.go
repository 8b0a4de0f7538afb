package config

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Validate checks c as a whole: cross references, value ranges and the
// syntax of every field. It reports every problem, not the first. On a
// Config built in code the errors carry no line; Parse calls the same
// checks with the file's lines. Call ApplyDefaults first: Validate judges
// the effective values, and an empty field with a default is no error.
func (c *Config) Validate() error {
	errs := c.validate(nil)
	if len(errs) == 0 {
		return nil
	}
	for _, e := range errs {
		e.File = c.File
	}
	errs.sortByLine()
	return errs
}

// validate runs every check; idx gives lines and may be nil.
func (c *Config) validate(idx *lineIndex) Errors {
	v := &validator{c: c, idx: idx}
	v.admin()
	v.listeners()
	v.upstreams()
	v.routes()
	v.wafs()
	v.rateLimits()
	v.redis()
	v.misc()

	v.caches() // validate_cache.go

	v.edges() // validate_edge.go

	v.access() // validate_access.go

	v.auths() // validate_auth.go

	v.tracing() // validate_trace.go
	return v.errs
}

// validator gathers the errors of one Validate call.
type validator struct {
	c    *Config
	idx  *lineIndex // nil for a Config built in code
	errs Errors
}

// errorf records an error about the field or item at path.
func (v *validator) errorf(path, format string, args ...any) {
	v.add(&Error{Path: path, Msg: fmt.Sprintf(format, args...), at: path})
}

// fieldf records an error about item's field, worded by the message
// ("key_file is required"); the line is the field's when the file has it.
func (v *validator) fieldf(item, field, format string, args ...any) {
	v.add(&Error{Path: item, Msg: fmt.Sprintf(format, args...), at: joinPath(item, field)})
}

func (v *validator) add(e *Error) {
	e.Line = v.idx.line(e.at)
	v.errs = append(v.errs, e)
}

// sortedKeys gives map keys in a stable order, so that errors without a
// line come out in the same order every time.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// oneOf reports whether s is one of allowed.
func oneOf(s string, allowed ...string) bool {
	return slices.Contains(allowed, s)
}

// quoteList formats allowed for a message: "a, b or c".
func quoteList(allowed ...string) string {
	if len(allowed) == 1 {
		return allowed[0]
	}
	return strings.Join(allowed[:len(allowed)-1], ", ") + " or " + allowed[len(allowed)-1]
}

// address checks a listen address at path.
func (v *validator) address(path, addr string) {
	if addr == "" {
		v.fieldf(parentPath(path), "address", "address is required")
		return
	}
	if err := checkHostPort(addr); err != nil {
		v.errorf(path, "invalid address %q: %v", addr, err)
	}
}

// listeners checks each listener and that no two share an address.
func (v *validator) listeners() {
	if len(v.c.Listeners) == 0 {
		v.errorf("listeners", "at least one listener is required")
	}
	used := map[string]string{} // listen key -> user
	if a := v.c.Admin; a != nil {
		if k, ok := listenKey(a.Address); ok {
			used[k] = "admin"
		}
	}
	for _, name := range sortedKeys(v.c.Listeners) {
		p := "listeners." + name
		l := v.c.Listeners[name]
		if l == nil {
			v.errorf(p, "is empty; address is required")
			continue
		}
		v.address(p+".address", l.Address)
		if k, ok := listenKey(l.Address); ok {
			if other, dup := used[k]; dup {
				v.errorf(p+".address", "%q is already used by %s", l.Address, other)
			}
			used[k] = p
		}
		v.limits(p+".limits", &l.Limits)
		if !oneOf(l.PathHandling, PathNormalize, PathReject, PathRaw) {
			v.errorf(p+".path_handling", "%q must be normalize, reject or raw", l.PathHandling)
		}
		if l.TLS != nil {
			v.listenerTLS(p+".tls", l.TLS)
		}
		v.protocols(p, l)
		v.http2(p+".http2", &l.HTTP2)
	}
}

// protocols checks listeners.NAME.protocols: known names, once each, h2
// on TLS listeners and h2c on plain ones.
func (v *validator) protocols(p string, l *Listener) {
	if l.Protocols != nil && len(l.Protocols) == 0 {
		v.errorf(p+".protocols", "at least one protocol is required (http1, h2 or h2c)")
		return
	}
	seen := map[string]bool{}
	for i, proto := range l.Protocols {
		ip := p + ".protocols[" + strconv.Itoa(i) + "]"
		switch {
		case !oneOf(proto, ProtocolHTTP1, ProtocolH2, ProtocolH2C):
			v.errorf(ip, "unknown protocol %q (want http1, h2 or h2c)", proto)
		case seen[proto]:
			v.errorf(ip, "%q is listed twice", proto)
		case proto == ProtocolH2 && l.TLS == nil:
			v.errorf(ip, `"h2" needs tls (HTTP/2 in cleartext is "h2c")`)
		case proto == ProtocolH2C && l.TLS != nil:
			v.errorf(ip, `"h2c" is for listeners without tls (over TLS, HTTP/2 is "h2")`)
		}
		seen[proto] = true
	}
}

// http2 checks listeners.NAME.http2 after defaults: no negative count,
// and sizes HTTP/2's 32-bit settings can carry.
func (v *validator) http2(p string, h *HTTP2) {
	counts := []struct {
		field string
		n     int
	}{
		{"max_concurrent_streams", h.MaxConcurrentStreams}, {"max_streams_per_connection", h.MaxStreamsPerConnection},
		{"max_streams_per_ip", h.MaxStreamsPerIP}, {"max_resets_per_second", h.MaxResetsPerSecond},
		{"max_control_frames_per_second", h.MaxControlFramesPerSecond},
	}
	for _, f := range counts {
		if f.n < 0 {
			v.errorf(p+"."+f.field, "%d must not be negative", f.n)
		}
	}
	if h.MaxConcurrentStreams > 1<<31-1 {
		v.errorf(p+".max_concurrent_streams", "%d is more than HTTP/2 can announce (2147483647)", h.MaxConcurrentStreams)
	}
	if s := h.MaxHeaderListSize; s < 1<<10 || s > 1<<30 {
		v.errorf(p+".max_header_list_size", "%d bytes must be from 1KiB to 1GiB", s)
	}
}

// limits refuses negative limits (only possible in code: the YAML units
// refuse negative values).
func (v *validator) limits(p string, l *Limits) {
	durations := []struct {
		field string
		d     Duration
	}{
		{"read_header_timeout", l.ReadHeaderTimeout}, {"read_timeout", l.ReadTimeout},
		{"write_timeout", l.WriteTimeout}, {"idle_timeout", l.IdleTimeout},
		{"body_timeout", l.BodyTimeout.Or(0)}, {"send_timeout", l.SendTimeout.Or(0)},
	}
	for _, f := range durations {
		if f.d < 0 {
			v.errorf(p+"."+f.field, "must not be negative")
		}
	}
	counts := []struct {
		field string
		n     int64
	}{
		{"max_header_bytes", int64(l.MaxHeaderBytes)}, {"max_body_size", int64(l.MaxBodySize)},
		{"max_connections", int64(l.MaxConnections)}, {"max_connections_per_ip", int64(l.MaxConnectionsPerIP)},
	}
	for _, f := range counts {
		if f.n < 0 {
			v.errorf(p+"."+f.field, "%d must not be negative", f.n)
		}
	}
}

// redis checks the shared Redis.
func (v *validator) redis() {
	r := v.c.Redis
	if r == nil {
		return
	}
	switch {
	case r.Address == "" && len(r.Addresses) == 0:
		v.fieldf("redis", "address", "address or addresses is required")
	case r.Address != "" && len(r.Addresses) > 0:
		v.fieldf("redis", "addresses", "set address or addresses, not both")
	}
	if r.Address != "" {
		v.serverAddress("redis.address", r.Address)
	}
	for i, a := range r.Addresses {
		v.serverAddress("redis.addresses["+strconv.Itoa(i)+"]", a)
	}
	if r.DB < 0 {
		v.errorf("redis.db", "%d must not be negative", r.DB)
	}
	if r.Timeout <= 0 {
		v.errorf("redis.timeout", "must be positive")
	}
}

// serverAddress checks the host:port of a server to dial.
func (v *validator) serverAddress(path, addr string) {
	err := checkHostPort(addr)
	if err == nil && strings.HasSuffix(addr, ":0") {
		err = fmt.Errorf("port 0 cannot be dialed")
	}
	if err != nil {
		v.errorf(path, "invalid address %q: %v", addr, err)
	}
}

// misc checks the small top-level sections.
func (v *validator) misc() {
	for i, s := range v.c.TrustedProxies {
		if _, err := parseProxy(s); err != nil {
			v.errorf("trusted_proxies["+strconv.Itoa(i)+"]", "%q is neither a CIDR nor an IP address", s)
		}
	}
	if v.c.AccessLog.Path == "" {
		v.fieldf("access_log", "path", "path is required (stdout, stderr, a file or off)")
	}
	for i, name := range v.c.AccessLog.RedactQuery {
		if name == "" || strings.ContainsAny(name, "&=#? ") {
			v.errorf("access_log.redact_query["+strconv.Itoa(i)+"]", "%q is not a query parameter name", name)
		}
	}
	if v.c.Shutdown.GracePeriod < 0 {
		v.errorf("shutdown.grace_period", "must not be negative")
	}
	if v.c.WAFBufferLimit < 0 {
		v.errorf("waf_buffer_limit", "must not be negative")
	}
}

// TrustedProxyPrefixes returns TrustedProxies as prefixes; a single
// address becomes a /32 or /128. Entries that do not parse are skipped:
// Validate reports them.
func (c *Config) TrustedProxyPrefixes() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(c.TrustedProxies))
	for _, s := range c.TrustedProxies {
		if p, err := parseProxy(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// parseProxy parses a CIDR or an address. A CIDR is masked ("10.1.2.3/8"
// means 10.0.0.0/8), and IPv4-mapped IPv6 addresses are unmapped, so that a
// client address compares as it arrives.
func parseProxy(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), nil
}
