package config

import (
	"net"
	"net/url"
	"strings"
)

// tracing checks the tracing section (issue 23) and the access log's format
// and fields.
func (v *validator) tracing() {
	v.accessLog()
	t := v.c.Tracing
	if t == nil {
		return
	}
	if !oneOf(t.Protocol, TraceHTTP, TraceGRPC) {
		v.errorf("tracing.protocol", "%q must be %s or %s", t.Protocol, TraceHTTP, TraceGRPC)
	}
	switch {
	case t.Endpoint == "":
		v.fieldf("tracing", "endpoint", "endpoint is required (host:port, or a URL)")
	case strings.Contains(t.Endpoint, "://"):
		u, err := url.Parse(t.Endpoint)
		switch {
		case err != nil || u.Host == "":
			v.errorf("tracing.endpoint", "%q is not a URL with a host", t.Endpoint)
		case u.Scheme != "http" && u.Scheme != "https":
			v.errorf("tracing.endpoint", "%q: the scheme must be http or https", t.Endpoint)
		case t.Insecure:
			v.errorf("tracing.insecure", "the endpoint's scheme says whether TLS is used; insecure goes with host:port only")
		case u.User != nil:
			v.errorf("tracing.endpoint", "credentials in the URL are refused; use headers")
		}
	default:
		if _, port, err := net.SplitHostPort(t.Endpoint); err != nil || port == "" {
			v.errorf("tracing.endpoint", "%q is not host:port or a URL", t.Endpoint)
		}
	}
	if r := t.SampleRatio; r != nil && (*r < 0 || *r > 1) {
		v.errorf("tracing.sample_ratio", "%v must be from 0 to 1", *r)
	}
	for name := range t.Headers {
		if !validToken(name) {
			v.errorf("tracing.headers", "invalid header name %q", name)
		}
	}
	if t.Timeout < 0 {
		v.errorf("tracing.timeout", "must not be negative")
	}
}
