package config

import (
	"fmt"
	"strings"
)

// LogField is one field of the access log's JSON lines. AccessLogFields is
// the list the proxy writes from and docs/logs.md is generated from (a test
// fails when either drifts).
type LogField struct {
	// Name is the JSON key, and the name in access_log.fields.
	Name string
	// Type is the JSON type: string, integer, number, array, or one of
	// them "or null".
	Type string
	// Doc says what the field holds.
	Doc string
}

// AccessLogFields are the fields of a JSON access log line, in the order a
// line has them. Durations are milliseconds, a number with three decimals
// (microseconds), and their names end in _ms; sizes are bytes.
var AccessLogFields = []LogField{
	{Name: "time", Type: "string", Doc: "When the request's header had been read: RFC 3339 in UTC with nanoseconds, as the WAF audit events write theirs."},
	{Name: "request_id", Type: "string", Doc: "The X-Request-Id sent upstream and answered: the client's when it sent a valid one, else generated (a UUID)."},
	{Name: "client_ip", Type: "string", Doc: "The client's address: the peer's, or the one a trusted proxy (trusted_proxies) gave in X-Forwarded-For."},
	{Name: "listener", Type: "string", Doc: "The listener's name."},
	{Name: "protocol", Type: "string", Doc: "The client's protocol, as nginx's $server_protocol: HTTP/1.0, HTTP/1.1 or HTTP/2.0."},
	{Name: "tls_version", Type: "string or null", Doc: "The client connection's TLS version (TLSv1.2, TLSv1.3); null without TLS."},
	{Name: "method", Type: "string", Doc: "The request method."},
	{Name: "host", Type: "string", Doc: "The Host header (HTTP/2: :authority) as received."},
	{Name: "path", Type: "string", Doc: "The path the router matched (normalized as path_handling says, without the query)."},
	{Name: "request_uri", Type: "string", Doc: "The request target as received, path and query undecoded, the values of access_log.redact_query parameters replaced by [redacted]."},
	{Name: "query", Type: "string", Doc: "The query as received (without ?), redacted as request_uri; \"\" for none."},
	{Name: "user_agent", Type: "string", Doc: "The User-Agent header; \"\" when absent."},
	{Name: "referer", Type: "string", Doc: "The Referer header; \"\" when absent."},
	{Name: "status", Type: "integer", Doc: "The status answered to the client (499: the client went away before the answer)."},
	{Name: "route", Type: "string or null", Doc: "The route's name; null when no route matched."},
	{Name: "upstream", Type: "string", Doc: "The upstream chosen; \"\" when none was (an answer of the proxy's own)."},
	{Name: "target", Type: "string", Doc: "The target last sent to (scheme://host:port); \"\" when none."},
	{Name: "upstream_status", Type: "integer or null", Doc: "The status the target answered, before the WAF's response inspection; null when no target answered (connect failure, timeout, or an answer of the proxy's own)."},
	{Name: "upstream_tries", Type: "integer", Doc: "How many targets were tried (1 plus the retries on other targets: connect_retries, retries); 0 when none was."},
	{Name: "upstream_connect_ms", Type: "number or null", Doc: "For HTTP/1.1 upstreams, how long the last try waited for its connection: about 0 for a pooled one, the dial (and TLS handshake) for a new one. null for HTTP/2 upstreams (connections are shared by streams) and when no target was tried."},
	{Name: "upstream_response_ms", Type: "number or null", Doc: "From the start of the last try (connecting included) to the target's response header; null when no target answered."},
	{Name: "waf", Type: "string or null", Doc: "The WAF's verdict on the request: pass, detected (rules matched without blocking: detect mode, or a score under the threshold) or blocked; null when the route has no WAF policy."},
	{Name: "waf_rules", Type: "array", Doc: "The ids of the WAF rules that matched and log (the first 16; the audit event has them all), [] for none."},
	{Name: "cache", Type: "string or null", Doc: "The response cache's outcome (hit, miss, ...); null when the route has no cache."},
	{Name: "bytes_in", Type: "integer", Doc: "The request body's size: its Content-Length, or the bytes of a chunked body read whole; 0 for none (a streamed chunked body is not counted)."},
	{Name: "bytes_out", Type: "integer", Doc: "The response body's bytes sent to the client (not the header)."},
	{Name: "duration_ms", Type: "number", Doc: "From the request's header read to the response's last byte sent."},
}

// accessLog checks the access log's format and fields.
func (v *validator) accessLog() {
	a := &v.c.AccessLog
	if !oneOf(a.Format, "", AccessLogJSON, AccessLogCombined) {
		v.errorf("access_log.format", "%q must be %s or %s", a.Format, AccessLogJSON, AccessLogCombined)
	}
	if len(a.Fields) > 0 && a.Format == AccessLogCombined {
		v.errorf("access_log.fields", "fields choose the fields of json lines; combined has its own")
	}
	seen := map[string]int{}
	for i, f := range a.Fields {
		p := fmt.Sprintf("access_log.fields[%d]", i)
		if j, dup := seen[f]; dup {
			v.errorf(p, "%q is already fields[%d]", f, j)
			continue
		}
		seen[f] = i
		if LogFieldIndex(f) < 0 {
			v.errorf(p, "unknown field %q%s (the fields are listed in docs/logs.md)", f, closestLogField(f))
		}
	}
}

// LogFieldIndex is the index of the field named name in AccessLogFields,
// or -1.
func LogFieldIndex(name string) int {
	for i, f := range AccessLogFields {
		if f.Name == name {
			return i
		}
	}
	return -1
}

// closestLogField suggests the field name nearest to name: `, did you
// mean "x"?`, or "" when none is near.
func closestLogField(name string) string {
	best, bestD := "", 3
	for _, f := range AccessLogFields {
		if d := editDistance(name, f.Name); d < bestD || strings.Contains(f.Name, name) && len(name) > 2 && best == "" {
			best, bestD = f.Name, min(d, bestD)
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(", did you mean %q?", best)
}
