package config

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// Fragments of a valid file that the cases below complete.
const (
	lis = "listeners:\n  web:\n    address: \":8080\"\n"
	ups = "upstreams:\n  app:\n    targets:\n      - url: http://127.0.0.1:9000\n"
	rts = "routes:\n  - upstream: app\n"
	red = "redis:\n  address: 127.0.0.1:6379\n"
)

// testACMEKey is a valid acme.encryption_key.
const testACMEKey = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA="

// needsACMEKey is the error of cache redis without a key.
const needsACMEKey = "cache redis needs encryption_key (or encryption_key_file): " +
	"32 random bytes in base64 that encrypt the account and certificate keys in Redis, the same on every instance; " +
	"generate one with `openssl rand -base64 32` and set encryption_key: ${RAMPART_ACME_ENCRYPTION_KEY}"

// acmeRedis is a file with a listener whose ACME cache is in Redis, its
// "cache: redis" line marked unless extra (more lines of the acme block)
// marks its own.
func acmeRedis(extra string) string {
	cache := "        cache: redis"
	if !strings.Contains(extra, "# <-") {
		cache += " # <-"
	}
	return "listeners:\n  web:\n    address: \":8443\"\n    tls:\n      acme:\n" + cache + "\n" + extra + ups + rts
}

// markedLine returns the line that holds the marker "# <-", or 0.
func markedLine(src string) int {
	for i, l := range strings.Split(src, "\n") {
		if strings.Contains(l, "# <-") {
			return i + 1
		}
	}
	return 0
}

// parseErrors parses src and returns its errors, failing unless Parse
// returned Errors.
func parseErrors(t *testing.T, src string) Errors {
	t.Helper()
	t.Setenv("RAMPART_TEST_PORT", "8081")
	t.Setenv("RAMPART_TEST_EMPTY", "")
	c, err := Parse([]byte(src), "rampart.yaml")
	if err == nil {
		t.Fatalf("Parse succeeded; want an error\n%s", src)
	}
	if c != nil {
		t.Errorf("Parse returned a Config with an error")
	}
	var errs Errors
	if !errors.As(err, &errs) || len(errs) == 0 {
		t.Fatalf("got error %T %v; want non-empty Errors", err, err)
	}
	return errs
}

// TestParseErrorClasses has one case per kind of error: each file has
// exactly one problem, on the line marked "# <-" (none: line unknown).
func TestParseErrorClasses(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string // the message after "rampart.yaml:LINE: "
	}{
		// Decoding.
		{"yaml syntax in flow", lis + "routes: [ # <-\n  upstream: app\n", `invalid YAML: did not find expected ',' or ']'`},
		{"yaml syntax in block", lis + "routes:\n  - upstream: app\n - x # <-\n", `invalid YAML: did not find expected key`},
		{"yaml bad indent", lis + "routes:\n  - upstream: app\n      name: x # <-\n", `invalid YAML: mapping values are not allowed in this context`},
		{"yaml unknown anchor", lis + ups + "routes:\n  - upstream: *app\n", `invalid YAML: unknown anchor 'app' referenced`},
		{"empty file", "", "the file is empty"},
		{"not a mapping", "- a # <-\n", "the top level must be a mapping of sections (listeners:, routes:, ...)"},
		{"two documents", lis + ups + rts + "--- # <-\n" + lis, `only one YAML document is allowed (found a second "---")`},
		{"unknown field", lis + ups + "routes:\n  - upstream: app\n    matchh: {} # <-\n", `routes[0].matchh: unknown field (did you mean "match"?)`},
		{"unknown top-level field", lis + ups + rts + "listener: {} # <-\n", `listener: unknown field (did you mean "listeners"?)`},
		{"unknown field in flow mapping", lis + ups + "routes:\n  - {upstream: app, hots: x} # <-\n", `routes[0].hots: unknown field (did you mean "hsts"?)`},
		{"unknown field without suggestion", lis + ups + "routes:\n  - upstream: app\n    match:\n      zzz: 1 # <-\n", "routes[0].match.zzz: unknown field"},
		{"duplicate key", "listeners:\n  web:\n    address: \":8080\"\n    address: \":8081\" # <-\n" + ups + rts, "listeners.web.address: duplicate key, first defined at line 3"},
		{"string for int", "listeners:\n  web:\n    address: \":8080\"\n    limits:\n      max_connections: lots # <-\n" + ups + rts, `listeners.web.limits.max_connections: invalid value "lots": want an integer`},
		{"long string for int", lis + ups + "routes:\n  - respond: {status: twohundred} # <-\n", `routes[0].respond.status: invalid value "twohundred": want an integer`},
		{"list for mapping", "listeners:\n  web:\n    address: \":8080\"\n    limits: [1] # <-\n" + ups + rts, "listeners.web.limits: got a list; want a mapping"},
		{"mapping for list", lis + ups + "routes:\n  - upstream: app\n    listeners: {web: 1} # <-\n", "routes[0].listeners: got a mapping; want a list of strings"},
		{"invalid duration", "listeners:\n  web:\n    address: \":8080\"\n    limits: {idle_timeout: abc} # <-\n" + ups + rts, `listeners.web.limits.idle_timeout: invalid duration "abc" (want e.g. "10s", "1m30s", "250ms")`},
		{"duration without unit", lis + ups + rts + "shutdown:\n  grace_period: 30 # <-\n", `shutdown.grace_period: invalid duration "30": missing unit (e.g. "30s")`},
		{"negative duration", lis + ups + rts + "shutdown:\n  grace_period: -5s # <-\n", `shutdown.grace_period: invalid duration "-5s": negative`},
		{"duration as mapping", lis + ups + rts + "shutdown:\n  grace_period: {s: 1} # <-\n", `shutdown.grace_period: got a mapping; want a duration such as "10s"`},
		{"invalid size", "listeners:\n  web:\n    address: \":8080\"\n    limits:\n      max_body_size: 10XB # <-\n" + ups + rts, `listeners.web.limits.max_body_size: invalid size "10XB" (want bytes, or a number with a unit: B, KB, MB, GB, KiB, MiB, GiB)`},
		{"invalid rate", lis + ups + rts + "rate_limits:\n  r:\n    rate: 100/d # <-\n", `rate_limits.r.rate: invalid rate "100/d": period must be s, m or h`},
		{"undefined env var", "listeners:\n  web:\n    address: ${RAMPART_TEST_UNDEFINED} # <-\n" + ups + rts, `listeners.web.address: environment variable "RAMPART_TEST_UNDEFINED" is not defined`},
		{"unterminated env var", lis + ups + rts + "access_log:\n  path: /var/${HOME # <-\n", `access_log.path: unterminated "${" in "/var/${HOME"`},

		// Listeners and admin.
		{"no listener", ups + rts, "listeners: at least one listener is required"},
		{"listener port out of range", "listeners:\n  web:\n    address: \":99999\" # <-\n" + ups + rts, `listeners.web.address: invalid address ":99999": port "99999" is not a number from 0 to 65535`},
		{"listener without port", "listeners:\n  web:\n    address: localhost # <-\n" + ups + rts, `listeners.web.address: invalid address "localhost": want host:port or :port`},
		{"listener bad host", "listeners:\n  web:\n    address: \"bad_host!:80\" # <-\n" + ups + rts, `listeners.web.address: invalid address "bad_host!:80": invalid host "bad_host!"`},
		{"listener without address", "listeners:\n  web: # <-\n    limits: {}\n" + ups + rts, "listeners.web: address is required"},
		{"two listeners on one address", lis + "  web2:\n    address: \"0.0.0.0:8080\" # <-\n" + ups + rts, `listeners.web2.address: "0.0.0.0:8080" is already used by listeners.web`},
		{"admin on a listener's address", "admin:\n  address: \":8080\"\n  token: t\nlisteners:\n  web:\n    address: \":8080\" # <-\n" + ups + rts, `listeners.web.address: ":8080" is already used by admin`},
		{"admin bad address", "admin:\n  address: nope # <-\n" + lis + ups + rts, `admin.address: invalid address "nope": want host:port or :port`},
		{"listener path_handling", "listeners:\n  web:\n    address: \":8080\"\n    path_handling: decode # <-\n" + ups + rts, `listeners.web.path_handling: "decode" must be normalize, reject or raw`},
		{"negative max_connections", "listeners:\n  web:\n    address: \":8080\"\n    limits: {max_connections: -1} # <-\n" + ups + rts, "listeners.web.limits.max_connections: -1 must not be negative"},

		// TLS.
		{"tls min_version", "listeners:\n  web:\n    address: \":8443\"\n    tls:\n      min_version: \"1.1\" # <-\n      certificates: [{cert_file: a, key_file: b}]\n" + ups + rts, `listeners.web.tls.min_version: "1.1" must be "1.2" or "1.3"`},
		{"tls certificate without key", "listeners:\n  web:\n    address: \":8443\"\n    tls:\n      certificates:\n        - cert_file: a # <-\n" + ups + rts, `listeners.web.tls.certificates[0]: key_file is required`},
		{"tls without certificates or acme", "listeners:\n  web:\n    address: \":8443\"\n    tls: # <-\n      min_version: \"1.2\"\n" + ups + rts, "listeners.web.tls: certificates or acme is required"},
		{"tls client_auth", "listeners:\n  web:\n    address: \":8443\"\n    tls:\n      certificates: [{cert_file: a, key_file: b}]\n      client_ca_file: ca.pem\n      client_auth: maybe # <-\n" + ups + rts, `listeners.web.tls.client_auth: "maybe" must be require or verify_if_given`},
		{"tls client_auth without ca", "listeners:\n  web:\n    address: \":8443\"\n    tls:\n      certificates: [{cert_file: a, key_file: b}]\n      client_auth: require # <-\n" + ups + rts, `listeners.web.tls: client_auth needs client_ca_file`},
		{"acme cache", "listeners:\n  web:\n    address: \":8443\"\n    tls:\n      acme:\n        cache: s3 # <-\n" + ups + rts, `listeners.web.tls.acme.cache: "s3" must be dir or redis`},
		{"acme redis cache without redis", "listeners:\n  web:\n    address: \":8443\"\n    tls:\n      acme:\n        cache: redis # <-\n        encryption_key: " + testACMEKey + "\n" + ups + rts, `listeners.web.tls.acme.cache: "redis" needs the top-level redis section`},
		{"acme redis cache without a key", acmeRedis("") + red, "listeners.web.tls.acme: " + needsACMEKey},
		{"acme redis key from an empty variable", acmeRedis("        encryption_key: ${RAMPART_TEST_EMPTY}\n") + red, "listeners.web.tls.acme: " + needsACMEKey},
		{"acme key not base64", acmeRedis("        encryption_key: \"not a key!\" # <-\n") + red, "listeners.web.tls.acme.encryption_key: is not base64 (generate a key with `openssl rand -base64 32`)"},
		{"acme key too short", acmeRedis("        encryption_key: c2hvcnQ= # <-\n") + red, "listeners.web.tls.acme.encryption_key: decodes to 5 bytes; want 32 (generate a key with `openssl rand -base64 32`)"},
		{"acme key a placeholder", acmeRedis("        encryption_key: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= # <-\n") + red, "listeners.web.tls.acme.encryption_key: is one byte repeated, a placeholder rather than a key (generate one with `openssl rand -base64 32`)"},
		{"acme key and key file", acmeRedis("        encryption_key: "+testACMEKey+"\n        encryption_key_file: /etc/rampart/acme.key # <-\n") + red, "listeners.web.tls.acme: set encryption_key or encryption_key_file, not both"},
		{"acme bad previous key", acmeRedis("        encryption_key: "+testACMEKey+"\n        previous_encryption_keys:\n          - "+testACMEKey+"\n          - c2hvcnQ= # <-\n") + red, "listeners.web.tls.acme.previous_encryption_keys[1]: decodes to 5 bytes; want 32 (generate a key with `openssl rand -base64 32`)"},
		{"acme key with cache dir", "listeners:\n  web:\n    address: \":8443\"\n    tls:\n      acme:\n        cache: dir\n        encryption_key: " + testACMEKey + " # <-\n" + ups + rts, "listeners.web.tls.acme.encryption_key: applies to cache redis only (cache dir is protected by the directory's mode)"},
		{"acme migration with cache dir", "listeners:\n  web:\n    address: \":8443\"\n    tls:\n      acme:\n        insecure_migrate_cleartext: true # <-\n" + ups + rts, "listeners.web.tls.acme.insecure_migrate_cleartext: applies to cache redis only (cache dir is protected by the directory's mode)"},
		{"acme wildcard host", "listeners:\n  web:\n    address: \":8443\"\n    tls:\n      acme:\n        hosts: [\"*.example.com\"] # <-\n" + ups + rts, `listeners.web.tls.acme.hosts[0]: "*.example.com" is not a DNS name (ACME cannot order wildcards or IPs here)`},

		// Upstreams.
		{"unknown balancer", "upstreams:\n  app:\n    balancer: fastest # <-\n    targets: [{url: \"http://a:1\"}]\n" + lis + rts, `upstreams.app.balancer: unknown balancer "fastest" (want round_robin, weighted_round_robin, least_conn, random, p2c, ip_hash or consistent_hash)`},
		{"hash_key", "upstreams:\n  app:\n    balancer: consistent_hash\n    hash_key: \"header:\" # <-\n    targets: [{url: \"http://a:1\"}]\n" + lis + rts, `upstreams.app.hash_key: invalid hash_key "header:" (want client_ip, header:NAME, cookie:NAME, query:NAME or path)`},
		{"no targets", "upstreams:\n  app: # <-\n    balancer: random\n" + lis + rts, "upstreams.app: at least one target is required"},
		{"target scheme", "upstreams:\n  app:\n    targets:\n      - url: ftp://a:21 # <-\n" + lis + rts, `upstreams.app.targets[0].url: invalid target "ftp://a:21": scheme must be http or https`},
		{"target without host", "upstreams:\n  app:\n    targets:\n      - url: \"http://:8080\" # <-\n" + lis + rts, `upstreams.app.targets[0].url: invalid target "http://:8080": invalid host ""`},
		{"target path", "upstreams:\n  app:\n    targets:\n      - url: http://a:1/api # <-\n" + lis + rts, `upstreams.app.targets[0].url: invalid target "http://a:1/api": a path is not allowed (the request's path is sent as is)`},
		{"target query", "upstreams:\n  app:\n    targets:\n      - url: http://a:1/?x=1 # <-\n" + lis + rts, `upstreams.app.targets[0].url: invalid target "http://a:1/?x=1": a query or fragment is not allowed`},
		{"target userinfo", "upstreams:\n  app:\n    targets:\n      - url: http://u:p@a:1 # <-\n" + lis + rts, `upstreams.app.targets[0].url: invalid target "http://REDACTED@a:1": user info is not allowed`},
		{"target userinfo unparsable", "upstreams:\n  app:\n    targets:\n      - url: http://user:s3cr%zz@a:1/x # <-\n" + lis + rts, `upstreams.app.targets[0].url: invalid target "http://REDACTED@a:1/x": not a URL`},
		{"target port", "upstreams:\n  app:\n    targets:\n      - url: http://a:0 # <-\n" + lis + rts, `upstreams.app.targets[0].url: invalid target "http://a:0": port "0" is not a number from 1 to 65535`},
		{"target weight", "upstreams:\n  app:\n    targets:\n      - url: http://a:1\n        weight: -2 # <-\n" + lis + rts, "upstreams.app.targets[0].weight: weight -2 must not be negative"},
		{"health threshold", "upstreams:\n  app:\n    targets: [{url: \"http://a:1\"}]\n    health_check:\n      healthy_threshold: -1 # <-\n" + lis + rts, "upstreams.app.health_check.healthy_threshold: -1 must be at least 1"},
		{"health timeout above interval", "upstreams:\n  app:\n    targets: [{url: \"http://a:1\"}]\n    health_check:\n      interval: 1s\n      timeout: 2s # <-\n" + lis + rts, "upstreams.app.health_check.timeout: 2s must not exceed interval 1s"},
		{"health expected status", "upstreams:\n  app:\n    targets: [{url: \"http://a:1\"}]\n    health_check:\n      expected_statuses: [\"200-600\"] # <-\n" + lis + rts, `upstreams.app.health_check.expected_statuses[0]: invalid status "200-600" (want e.g. "200" or "200-399", within 100-599)`},
		{"upstream protocol", "upstreams:\n  app:\n    targets: [{url: \"http://a:1\"}]\n    protocol: h2 # <-\n" + lis + rts, `upstreams.app.protocol: "h2" must be http1 or http2`},
		{"health check type", "upstreams:\n  app:\n    targets: [{url: \"http://a:1\"}]\n    health_check:\n      type: tcp # <-\n" + lis + rts, `upstreams.app.health_check.type: "tcp" must be http or grpc`},
		{"grpc health check over http1", "upstreams:\n  app:\n    targets: [{url: \"http://a:1\"}]\n    health_check:\n      type: grpc # <-\n" + lis + rts, "upstreams.app.health_check.type: grpc needs the upstream's protocol to be http2 (gRPC runs over HTTP/2)"},
		{"grpc health check with a path", "upstreams:\n  app:\n    protocol: http2\n    targets: [{url: \"http://a:1\"}]\n    health_check:\n      type: grpc\n      path: /health # <-\n" + lis + rts, "upstreams.app.health_check.path: applies to type http only (a grpc check calls grpc.health.v1.Health/Check)"},
		{"grpc health check with statuses", "upstreams:\n  app:\n    protocol: http2\n    targets: [{url: \"http://a:1\"}]\n    health_check:\n      type: grpc\n      expected_statuses: [\"200\"] # <-\n" + lis + rts, "upstreams.app.health_check.expected_statuses: applies to type http only (a grpc check passes on SERVING)"},
		{"http health check with a service", "upstreams:\n  app:\n    targets: [{url: \"http://a:1\"}]\n    health_check:\n      service: app.Users # <-\n" + lis + rts, "upstreams.app.health_check.service: applies to type grpc only"},
		{"passive max_failures", "upstreams:\n  app:\n    targets: [{url: \"http://a:1\"}]\n    passive:\n      max_failures: -1 # <-\n" + lis + rts, "upstreams.app.passive.max_failures: -1 must be at least 1"},
		{"passive max_ejection_percent", "upstreams:\n  app:\n    targets: [{url: \"http://a:1\"}]\n    passive:\n      max_ejection_percent: 101 # <-\n" + lis + rts, "upstreams.app.passive.max_ejection_percent: 101 must be from 0 to 100"},
		{"retries", "upstreams:\n  app:\n    targets: [{url: \"http://a:1\"}]\n    retries: -1 # <-\n" + lis + rts, "upstreams.app.retries: -1 must not be negative"},
		{"connect_retries", "upstreams:\n  app:\n    targets: [{url: \"http://a:1\"}]\n    connect_retries: -2 # <-\n" + lis + rts, "upstreams.app.connect_retries: -2 must not be negative"},

		// Routes.
		{"route listener undefined", lis + ups + "routes:\n  - name: api\n    listeners: [web, webz] # <-\n    upstream: app\n", `routes[0] "api": listener "webz" is not defined`},
		{"route without action", lis + ups + "routes:\n  - name: api # <-\n    match: {path_prefix: /}\n", `routes[0] "api": one of upstream, split or respond is required`},
		{"route with two actions", lis + ups + "routes:\n  - name: api # <-\n    upstream: app\n    respond: {status: 204}\n", `routes[0] "api": only one of upstream, split or respond may be set`},
		{"route upstream undefined", lis + ups + "routes:\n  - name: ok\n    upstream: app\n  - name: api\n    upstream: missing # <-\n", `routes[1] "api": upstream "missing" is not defined`},
		{"split upstream undefined", lis + ups + "routes:\n  - split:\n      - {upstream: app, weight: 1}\n      - {upstream: nope, weight: 1} # <-\n", `routes[0] "route-0": split[1] upstream "nope" is not defined`},
		{"split weight", lis + ups + "routes:\n  - split:\n      - upstream: app\n        weight: 0 # <-\n", `routes[0] "route-0": split[0] weight 0 must be positive`},
		{"waf undefined", lis + ups + "routes:\n  - upstream: app\n    waf: strict # <-\n", `routes[0] "route-0": waf policy "strict" is not defined`},
		{"rate_limit undefined", lis + ups + "routes:\n  - upstream: app\n    rate_limit: per_ip # <-\n", `routes[0] "route-0": rate_limit policy "per_ip" is not defined`},
		{"duplicate route name", lis + ups + "routes:\n  - {name: api, upstream: app}\n  - {name: api, upstream: app} # <-\n", `routes[1] "api": name "api" is already used by routes[0]`},
		{"invalid host", lis + ups + "routes:\n  - upstream: app\n    match:\n      host: \"api example.com\" # <-\n", `routes[0] "route-0": invalid host "api example.com" (want a DNS name, an IP or "*.domain")`},
		{"wildcard inside host", lis + ups + "routes:\n  - upstream: app\n    match:\n      hosts: [a.com, \"api.*.com\"] # <-\n", `routes[0] "route-0": invalid host "api.*.com" (want a DNS name, an IP or "*.domain")`},
		{"host and hosts", lis + ups + "routes:\n  - upstream: app\n    match:\n      host: a.com\n      hosts: [b.com] # <-\n", `routes[0] "route-0": set match host or hosts, not both`},
		{"path_prefix", lis + ups + "routes:\n  - upstream: app\n    match:\n      path_prefix: v1/ # <-\n", `routes[0] "route-0": path_prefix "v1/" must start with "/"`},
		{"method", lis + ups + "routes:\n  - upstream: app\n    match:\n      methods: [GET, \"PO ST\"] # <-\n", `routes[0] "route-0": invalid method "PO ST"`},
		{"header name", lis + ups + "routes:\n  - upstream: app\n    match:\n      headers:\n        \"X Bad\": v # <-\n", `routes[0] "route-0": invalid header name "X Bad"`},
		{"redirect_https without a TLS listener", lis + ups + "routes:\n  - upstream: app\n    redirect_https: true # <-\n", `routes[0] "route-0": redirect_https needs a TLS listener; no listener has tls`},
		{"redact_query name", lis + ups + rts + "access_log:\n  redact_query: [token, \"a=b\"] # <-\n", `access_log.redact_query[1]: "a=b" is not a query parameter name`},
		{"respond status", lis + ups + "routes:\n  - respond:\n      status: 600 # <-\n", `routes[0] "route-0": respond status 600 is not from 100 to 599`},
		{"tracing endpoint missing", lis + ups + rts + "tracing: # <-\n  protocol: http\n", `tracing: endpoint is required (host:port, or a URL)`},
		{"tracing protocol", lis + ups + rts + "tracing:\n  endpoint: c:4318\n  protocol: zipkin # <-\n", `tracing.protocol: "zipkin" must be http or grpc`},
		{"tracing endpoint", lis + ups + rts + "tracing:\n  endpoint: collector # <-\n", `tracing.endpoint: "collector" is not host:port or a URL`},
		{"tracing endpoint scheme", lis + ups + rts + "tracing:\n  endpoint: ftp://c:4318 # <-\n", `tracing.endpoint: "ftp://c:4318": the scheme must be http or https`},
		{"tracing insecure with a URL", lis + ups + rts + "tracing:\n  endpoint: https://c:4318/v1/traces\n  insecure: true # <-\n", `tracing.insecure: the endpoint's scheme says whether TLS is used; insecure goes with host:port only`},
		{"tracing sample_ratio", lis + ups + rts + "tracing:\n  endpoint: c:4318\n  sample_ratio: 1.5 # <-\n", `tracing.sample_ratio: 1.5 must be from 0 to 1`},
		{"tracing header name", lis + ups + rts + "tracing:\n  endpoint: c:4318\n  headers: # <-\n    \"x key\": v\n", `tracing.headers: invalid header name "x key"`},
		{"access_log format", lis + ups + rts + "access_log:\n  format: clf # <-\n", `access_log.format: "clf" must be json or combined`},
		{"access_log unknown field", lis + ups + rts + "access_log:\n  fields: [status, latency] # <-\n", `access_log.fields[1]: unknown field "latency" (the fields are listed in docs/logs.md)`},
		{"access_log field misspelt", lis + ups + rts + "access_log:\n  fields: [stauts] # <-\n", `access_log.fields[0]: unknown field "stauts", did you mean "status"? (the fields are listed in docs/logs.md)`},
		{"access_log duplicate field", lis + ups + rts + "access_log:\n  fields: [status, status] # <-\n", `access_log.fields[1]: "status" is already fields[0]`},
		{"access_log fields with combined", lis + ups + rts + "access_log:\n  format: combined\n  fields: [status] # <-\n", `access_log.fields: fields choose the fields of json lines; combined has its own`},

		// WAF.
		{"waf mode", lis + ups + rts + "waf:\n  default:\n    mode: on # <-\n", `waf.default.mode: "on" must be off, detect or block`},
		{"waf paranoia", lis + ups + rts + "waf:\n  default:\n    paranoia_level: 5 # <-\n", "waf.default.paranoia_level: 5 must be from 1 to 4"},
		{"waf anomaly threshold", lis + ups + rts + "waf:\n  default:\n    anomaly_threshold: -3 # <-\n", "waf.default.anomaly_threshold: -3 must be at least 1"},
		{"waf body limit action", lis + ups + rts + "waf:\n  default:\n    request_body_limit_action: drop # <-\n", `waf.default.request_body_limit_action: "drop" must be reject or partial`},
		{"exclusion without rule ids", lis + ups + rts + "waf:\n  default:\n    exclusions:\n      - path_prefix: /search # <-\n", "waf.default.exclusions[0]: rule_ids is required"},
		{"exclusion rule id", lis + ups + rts + "waf:\n  default:\n    exclusions:\n      - rule_ids: [0] # <-\n", "waf.default.exclusions[0].rule_ids[0]: rule id 0 must be positive"},
		{"exclusion of blocking evaluation", lis + ups + rts + "waf:\n  default:\n    exclusions:\n      - rule_ids: [942100, 949110] # <-\n", "waf.default.exclusions[0].rule_ids[1]: excluding rule 949110 would switch off the CRS blocking evaluation"},
		{"exclusion of 959100", lis + ups + rts + "waf:\n  default:\n    exclusions:\n      - rule_ids:\n          - 959100 # <-\n", "waf.default.exclusions[0].rule_ids[0]: excluding rule 959100 would switch off the CRS blocking evaluation"},
		{"exclusion target injecting an action", lis + ups + rts + "waf:\n  default:\n    exclusions:\n      - rule_ids: [942100]\n        targets: [\"ARGS:a,ctl:ruleEngine=Off\"] # <-\n", "waf.default.exclusions[0].targets[0]: invalid target \"ARGS:a,ctl:ruleEngine=Off\": the key holds white space, a control or non-ASCII character, or one of , \" ' ` |"},
		{"exclusion target with a quote", lis + ups + rts + "waf:\n  default:\n    exclusions:\n      - rule_ids: [942100]\n        targets: ['ARGS:a\"b'] # <-\n", "waf.default.exclusions[0].targets[0]: invalid target \"ARGS:a\\\"b\": the key holds white space, a control or non-ASCII character, or one of , \" ' ` |"},
		{"exclusion target without a variable", lis + ups + rts + "waf:\n  default:\n    exclusions:\n      - rule_ids: [942100]\n        targets: [\":q\"] # <-\n", "waf.default.exclusions[0].targets[0]: invalid target \":q\": the variable name is missing (e.g. ARGS:q)"},
		{"exclusion of 980 range", lis + ups + rts + "waf:\n  default:\n    exclusions:\n      - rule_ids: [980170] # <-\n", "waf.default.exclusions[0].rule_ids[0]: excluding rule 980170 would switch off the CRS blocking evaluation"},
		{"exclusion of argument limit", lis + ups + rts + "waf:\n  default:\n    exclusions:\n      - rule_ids: [200005] # <-\n", "waf.default.exclusions[0].rule_ids[0]: excluding rule 200005 would let arguments past max_arguments go uninspected; raise max_arguments instead"},
		{"waf max arguments", lis + ups + rts + "waf:\n  default:\n    max_arguments: -1 # <-\n", "waf.default.max_arguments: must not be negative"},
		{"waf limit status", lis + ups + rts + "waf:\n  default:\n    limit_status: 413 # <-\n", "waf.default.limit_status: 413 must be 400 or 403"},
		{"waf rampart rule group", lis + ups + rts + "waf:\n  default:\n    rampart_rules_disabled: [xxe, sqlx] # <-\n", `waf.default.rampart_rules_disabled[1]: "sqlx" is not a group of Rampart's rules (decode, headers, path, uploads, graphql, prose, api, libinjection, xxe, ssti, nosql, ldap, cmdi, sqli, redirect, traversal)`},
		{"waf rampart rules not a switch", lis + ups + rts + "waf:\n  default:\n    rampart_rules: maybe # <-\n", `waf.default.rampart_rules: invalid value "maybe": want true or false`},
		{"waf response body limit action", lis + ups + rts + "waf:\n  default:\n    response_body_limit_action: stream # <-\n", `waf.default.response_body_limit_action: "stream" must be reject or partial`},
		{"waf body limit over buffer", lis + ups + rts + "waf_buffer_limit: 1MiB\nwaf:\n  default:\n    request_body_limit: 1MiB # <-\n", "waf.default.request_body_limit: 1MiB must be below waf_buffer_limit (1MiB), which bounds the bodies held for inspection at once"},
		{"waf response limit over buffer", lis + ups + rts + "waf_buffer_limit: 2MiB\nwaf:\n  default:\n    inspect_response: true\n    response_body_limit: 3MiB # <-\n", "waf.default.response_body_limit: 3MiB must not exceed waf_buffer_limit (2MiB), which bounds the bodies held for inspection at once"},

		// Rate limits and Redis.
		{"rate missing", lis + ups + rts + "rate_limits:\n  r: # <-\n    key: client_ip\n", `rate_limits.r: rate is required (e.g. "100/s")`},
		{"burst", lis + ups + rts + "rate_limits:\n  r:\n    rate: 10/s\n    burst: -1 # <-\n", "rate_limits.r.burst: -1 must be at least 1"},
		{"rate limit key", lis + ups + rts + "rate_limits:\n  r:\n    rate: 10/s\n    key: cookie:sid # <-\n", `rate_limits.r.key: invalid key "cookie:sid" (want client_ip, header:NAME or route)`},
		{"rate limit store", lis + ups + rts + "rate_limits:\n  r:\n    rate: 10/s\n    store: disk # <-\n", `rate_limits.r.store: "disk" must be memory or redis`},
		{"redis store without redis", lis + ups + rts + "rate_limits:\n  r:\n    rate: 10/s\n    store: redis # <-\n", `rate_limits.r.store: "redis" needs the top-level redis section`},
		{"on_store_error", lis + ups + rts + red + "rate_limits:\n  r:\n    rate: 10/s\n    store: redis\n    on_store_error: retry # <-\n", `rate_limits.r.on_store_error: "retry" must be allow or deny`},
		{"redis without address", lis + ups + rts + "redis: # <-\n  db: 1\n", "redis: address or addresses is required"},
		{"redis address and addresses", lis + ups + rts + "redis:\n  address: a:6379\n  addresses: [b:6379] # <-\n", "redis: set address or addresses, not both"},
		{"redis bad address", lis + ups + rts + "redis:\n  addresses: [b] # <-\n", `redis.addresses[0]: invalid address "b": want host:port or :port`},

		// The rest.
		{"trusted proxy", lis + ups + rts + "trusted_proxies:\n  - 10.0.0.0/8\n  - 10.0.0.0/33 # <-\n", `trusted_proxies[1]: "10.0.0.0/33" is neither a CIDR nor an IP address`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := parseErrors(t, tt.src)
			line := markedLine(tt.src)
			want := "rampart.yaml: " + tt.want
			if line > 0 {
				want = "rampart.yaml:" + strconv.Itoa(line) + ": " + tt.want
			}
			if len(errs) != 1 || errs[0].Error() != want {
				t.Errorf("got %d errors:\n%v\nwant 1:\n%s", len(errs), errs, want)
			}
			if errs[0].Line != line {
				t.Errorf("got line %d; want %d", errs[0].Line, line)
			}
		})
	}
}

func TestUpstreamProtocol(t *testing.T) {
	tests := []struct {
		name      string
		upstream  string
		protocol  string
		checkType string
		path      string
	}{
		{"default", "upstreams:\n  app:\n    targets: [{url: \"http://a:1\"}]\n    health_check: {}\n", "http1", "http", "/health"},
		{"http2 with a grpc check", "upstreams:\n  app:\n    protocol: http2\n    targets: [{url: \"http://a:1\"}, {url: \"https://b\"}]\n" +
			"    health_check:\n      type: grpc\n      service: app.Users\n", "http2", "grpc", ""},
		{"http2 with an http check", "upstreams:\n  app:\n    protocol: http2\n    targets: [{url: \"https://b\"}]\n    health_check: {path: /ready}\n", "http2", "http", "/ready"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(lis+tt.upstream+rts), "rampart.yaml")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			u := c.Upstreams["app"]
			if u.Protocol != tt.protocol || u.HealthCheck.Type != tt.checkType || u.HealthCheck.Path != tt.path {
				t.Errorf("got protocol %q, check type %q, path %q; want %q, %q, %q",
					u.Protocol, u.HealthCheck.Type, u.HealthCheck.Path, tt.protocol, tt.checkType, tt.path)
			}
			if tt.checkType == "grpc" && len(u.HealthCheck.ExpectedStatuses) != 0 {
				t.Errorf("grpc check: got expected_statuses %q; want none", u.HealthCheck.ExpectedStatuses)
			}
		})
	}
}
