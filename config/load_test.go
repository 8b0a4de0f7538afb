package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestParseReportsAllErrors checks that one run reports every problem of a
// file, in line order, and none twice.
func TestParseReportsAllErrors(t *testing.T) {
	src := `listeners:
  web:
    address: ":99999"
    limits: {idle_timeout: abc, max_header_bytes: [1], max_connections: x}
    adress: ":1"
upstreams:
  app:
    balancer: nope
    targets:
      - url: ftp://x
routes:
  - name: api
    matchh: {}
    upstream: missing
rate_limits:
  r: {rate: abc, store: redis}
waf:
  w: {exclusions: [{rule_ids: [949110]}], paranoia_level: 9}
trusted_proxies: ["${RAMPART_TEST_NOPE}"]
`
	want := []string{
		`rampart.yaml:3: listeners.web.address: invalid address ":99999": port "99999" is not a number from 0 to 65535`,
		`rampart.yaml:4: listeners.web.limits.idle_timeout: invalid duration "abc" (want e.g. "10s", "1m30s", "250ms")`,
		`rampart.yaml:4: listeners.web.limits.max_header_bytes: got a list; want a size such as 1024 or "16KiB"`,
		`rampart.yaml:4: listeners.web.limits.max_connections: invalid value "x": want an integer`,
		`rampart.yaml:5: listeners.web.adress: unknown field (did you mean "address"?)`,
		`rampart.yaml:8: upstreams.app.balancer: unknown balancer "nope" (want round_robin, weighted_round_robin, least_conn, random, p2c, ip_hash or consistent_hash)`,
		`rampart.yaml:10: upstreams.app.targets[0].url: invalid target "ftp://x": scheme must be http or https`,
		`rampart.yaml:13: routes[0].matchh: unknown field (did you mean "match"?)`,
		`rampart.yaml:14: routes[0] "api": upstream "missing" is not defined`,
		`rampart.yaml:16: rate_limits.r.rate: invalid rate "abc" (want N/s, N/m or N/h, e.g. "100/s")`,
		`rampart.yaml:16: rate_limits.r.store: "redis" needs the top-level redis section`,
		`rampart.yaml:18: waf.w.paranoia_level: 9 must be from 1 to 4`,
		`rampart.yaml:18: waf.w.exclusions[0].rule_ids[0]: excluding rule 949110 would switch off the CRS blocking evaluation`,
		`rampart.yaml:19: trusted_proxies[0]: environment variable "RAMPART_TEST_NOPE" is not defined`,
	}
	errs := parseErrors(t, src)
	got := strings.Split(errs.Error(), "\n")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestParseFull parses a file that uses every section of the contract.
func TestParseFull(t *testing.T) {
	c, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	web, sec := c.Listeners["web"], c.Listeners["websecure"]
	api, v2 := c.Upstreams["api"], c.Upstreams["api-v2"]
	w, pip, pu := c.WAF["default"], c.RateLimits["per_ip"], c.RateLimits["per_user"]
	tests := []struct {
		name      string
		got, want any
	}{
		{"file", c.File, "testdata/full.yaml"},
		{"admin", *c.Admin, Admin{Address: "127.0.0.1:9902", Token: "s3cret"}},
		{"web limits", web.Limits, Limits{
			ReadHeaderTimeout: Duration(5 * time.Second), ReadTimeout: Duration(30 * time.Second),
			WriteTimeout: Duration(90 * time.Second), IdleTimeout: Duration(120 * time.Second),
			BodyTimeout: durationPtr(45 * time.Second), SendTimeout: durationPtr(0),
			MaxHeaderBytes: 32 << 10, MaxBodySize: 10e6, MaxConnections: 10000, MaxConnectionsPerIP: 100,
		}},
		{"web tls", web.TLS, (*ListenerTLS)(nil)},
		{"websecure tls", *sec.TLS, ListenerTLS{
			MinVersion:   "1.3",
			Certificates: []Certificate{{CertFile: "/etc/rampart/example.pem", KeyFile: "/etc/rampart/example-key.pem"}},
			ACME: &ACME{
				Email: "ops@example.com", DirectoryURL: "https://localhost:14000/dir",
				CAFile: "/etc/rampart/pebble.minica.pem", Cache: "redis",
				Hosts:                    []string{"example.com", "www.example.com"},
				EncryptionKey:            "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=",
				PreviousEncryptionKeys:   []string{"EjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJCrze8="},
				InsecureMigrateCleartext: true,
			},
			ClientCAFile: "/etc/rampart/clients.pem", ClientAuth: "require",
		}},
		{"api", *api, Upstream{
			Balancer: "consistent_hash", HashKey: "header:X-User", Sticky: &Sticky{Cookie: "pin"},
			Targets: []Target{{URL: "http://10.0.0.1:8080", Weight: 3}, {URL: "https://api.internal", Weight: 1}},
			HealthCheck: &HealthCheck{
				Type: "http", Path: "/healthz", Host: "api.internal", Interval: Duration(10 * time.Second),
				Timeout: Duration(2 * time.Second), HealthyThreshold: 3, UnhealthyThreshold: 4,
				ExpectedStatuses: []string{"200", "204-299"},
			},
			Passive: &Passive{MaxFailures: 7, Ejection: Duration(10 * time.Second),
				MaxEjection: Duration(time.Minute), MaxEjectionPercent: 30},
			Timeouts: UpstreamTimeouts{Connect: Duration(time.Second), Read: Duration(30 * time.Second),
				Write: Duration(20 * time.Second), Idle: Duration(45 * time.Second)},
			Retries: 2, ConnectRetries: new(1), MaxConnsPerTarget: 64, // two targets: one other to try
			TLS: &UpstreamTLS{CAFile: "/etc/rampart/internal-ca.pem", ServerName: "api.internal",
				CertFile: "/etc/rampart/client.pem", KeyFile: "/etc/rampart/client-key.pem"},
			Protocol: "http1",
		}},
		{"api-v2 target", v2.Targets, []Target{{URL: "http://[::1]:9000/", Weight: 1}}},
		{"route 0", *c.Routes[0], Route{
			Name: "api", Listeners: []string{"websecure"},
			Match: Match{Host: "api.example.com", PathPrefix: "/v1/", Methods: []string{"GET", "POST"},
				Headers: map[string]string{"X-Canary": "true"}},
			Upstream: "api", WAF: "default", RateLimit: "per_ip", HSTS: true,
		}},
		{"route 1", *c.Routes[1], Route{
			Name:  "canary",
			Match: Match{Hosts: []string{"*.example.com", "10.1.2.3"}, PathPrefix: "/"},
			Split: []SplitTarget{{Upstream: "api-v2", Weight: 10}, {Upstream: "api", Weight: 90}},
		}},
		{"route 2", *c.Routes[2], Route{
			Name: "route-2", Listeners: []string{"web"}, Match: Match{PathPrefix: "/"},
			Respond:       &Respond{Status: 404, Body: "nothing here", ContentType: DefaultRespondContentType},
			RedirectHTTPS: true,
		}},
		{"waf", *w, WAFPolicy{
			Mode: "detect", ParanoiaLevel: 2, AnomalyThreshold: 10, RequestBodyLimit: 2 << 20,
			RequestBodyLimitAction: "partial", InspectResponse: true,
			MaxArguments: DefaultMaxArguments, LimitStatus: DefaultLimitStatus,
			ResponseBodyLimit: DefaultResponseBodyLimit, ResponseBodyLimitAction: DefaultResponseBodyLimitAction,
			Rules:     "SecRule REQUEST_URI \"@beginsWith /admin\" \"id:10001,phase:1,deny,status:403\"\n",
			rulesLine: 108, // "rules: |" is on line 107
			RuleFiles: []string{"/etc/rampart/extra.conf"},
			Exclusions: []Exclusion{{RuleIDs: []int{942100, 942200}, PathPrefix: "/search",
				Methods: []string{"POST"}, Targets: []string{"ARGS:q"}}},
			AuditLog:     "/var/log/rampart/waf.jsonl",
			RampartRules: ptr(DefaultRampartRules),
		}},
		{"per_ip", *pip, RateLimit{Key: "client_ip", Rate: Rate{N: 100, Per: time.Second}, Burst: 200,
			Store: "redis", OnStoreError: "deny"}},
		{"per_user", *pu, RateLimit{Key: "header:X-User", Rate: Rate{N: 20, Per: time.Minute}, Burst: 20,
			Store: "memory", OnStoreError: "allow"}},
		{"redis", *c.Redis, Redis{Address: "127.0.0.1:6379", Username: "rampart", Password: "pw", DB: 2,
			Timeout: Duration(100 * time.Millisecond), KeyPrefix: "rp:",
			TLS: &RedisTLS{CAFile: "/etc/rampart/redis-ca.pem", ServerName: "redis.internal"}}},
		{"trusted proxies", c.TrustedProxyPrefixes(), []netip.Prefix{
			netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.1/32"), netip.MustParsePrefix("::1/128")}},
		{"access log", c.AccessLog, AccessLog{Path: "/var/log/rampart/access.jsonl", RedactQuery: []string{"token", "X-Amz-Signature"}, Format: AccessLogJSON}},
		{"shutdown", c.Shutdown, Shutdown{GracePeriod: Duration(10 * time.Second)}},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s: got %+v; want %+v", tt.name, tt.got, tt.want)
		}
	}
}

// TestDefaults checks every default ApplyDefaults fills in a minimal file
// with empty blocks.
func TestDefaults(t *testing.T) {
	src := `admin: {}
listeners:
  web:
    address: ":8080"
    tls:
      acme: {}
      client_ca_file: ca.pem
upstreams:
  app:
    targets: [{url: "http://a:1"}]
    sticky: {}
    health_check: {}
    passive: {}
routes:
  - upstream: app
    match: {methods: [get]}
  - respond: {}
waf:
  default:
rate_limits:
  r: {rate: 7/h}
redis: {address: "r:6379"}
`
	c, err := Parse([]byte(src), "defaults.yaml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	l, u := c.Listeners["web"], c.Upstreams["app"]
	tests := []struct {
		name      string
		got, want any
	}{
		{"admin address", c.Admin.Address, DefaultAdminAddress},
		{"read_header_timeout", l.Limits.ReadHeaderTimeout.Std(), DefaultReadHeaderTimeout},
		{"idle_timeout", l.Limits.IdleTimeout.Std(), DefaultIdleTimeout},
		{"body_timeout", l.Limits.BodyTimeout.Or(-1).Std(), DefaultBodyTimeout},
		{"send_timeout", l.Limits.SendTimeout.Or(-1).Std(), DefaultSendTimeout},
		{"max_header_bytes", l.Limits.MaxHeaderBytes, Size(DefaultMaxHeaderBytes)},
		{"max_body_size", l.Limits.MaxBodySize, Size(0)},
		{"tls min_version", l.TLS.MinVersion, DefaultTLSMinVersion},
		{"client_auth", l.TLS.ClientAuth, DefaultClientAuth},
		{"acme directory", l.TLS.ACME.DirectoryURL, DefaultACMEDirectoryURL},
		{"acme cache", l.TLS.ACME.Cache, DefaultACMECache},
		{"acme cache_dir", l.TLS.ACME.CacheDir, DefaultACMECacheDir},
		{"balancer", u.Balancer, DefaultBalancer},
		{"hash_key", u.HashKey, DefaultHashKey},
		{"sticky cookie", u.Sticky.Cookie, DefaultStickyCookie},
		{"target weight", u.Targets[0].Weight, DefaultTargetWeight},
		{"max_conns_per_target", u.MaxConnsPerTarget, DefaultMaxConnsPerTarget},
		{"health path", u.HealthCheck.Path, DefaultHealthCheckPath},
		{"health interval", u.HealthCheck.Interval.Std(), DefaultHealthCheckInterval},
		{"health timeout", u.HealthCheck.Timeout.Std(), DefaultHealthCheckTimeout},
		{"healthy_threshold", u.HealthCheck.HealthyThreshold, DefaultHealthyThreshold},
		{"unhealthy_threshold", u.HealthCheck.UnhealthyThreshold, DefaultUnhealthyThreshold},
		{"expected_statuses", u.HealthCheck.ExpectedStatuses, []string{DefaultExpectedStatuses}},
		{"passive max_failures", u.Passive.MaxFailures, DefaultPassiveMaxFailures},
		{"passive ejection", u.Passive.Ejection.Std(), DefaultPassiveEjection},
		{"passive max_ejection", u.Passive.MaxEjection.Std(), DefaultPassiveMaxEjection},
		{"max_ejection_percent", u.Passive.MaxEjectionPercent, DefaultMaxEjectionPercent},
		{"connect", u.Timeouts.Connect.Std(), DefaultConnectTimeout},
		{"read", u.Timeouts.Read.Std(), DefaultUpstreamReadTimeout},
		{"write", u.Timeouts.Write.Std(), DefaultUpstreamWriteTimeout},
		{"idle", u.Timeouts.Idle.Std(), DefaultUpstreamIdleTimeout},
		{"retries", u.Retries, 0},
		{"route name", c.Routes[0].Name, "route-0"},
		{"route path_prefix", c.Routes[0].Match.PathPrefix, DefaultPathPrefix},
		{"route methods upper-cased", c.Routes[0].Match.Methods, []string{"GET"}},
		{"route 1 name", c.Routes[1].Name, "route-1"},
		{"respond status", c.Routes[1].Respond.Status, DefaultRespondStatus},
		{"respond content type", c.Routes[1].Respond.ContentType, DefaultRespondContentType},
		{"waf mode", c.WAF["default"].Mode, DefaultWAFMode},
		{"waf paranoia", c.WAF["default"].ParanoiaLevel, DefaultParanoiaLevel},
		{"waf anomaly", c.WAF["default"].AnomalyThreshold, DefaultAnomalyThreshold},
		{"waf body limit", c.WAF["default"].RequestBodyLimit, Size(DefaultRequestBodyLimit)},
		{"waf body action", c.WAF["default"].RequestBodyLimitAction, DefaultRequestBodyLimitAction},
		{"waf max arguments", c.WAF["default"].MaxArguments, DefaultMaxArguments},
		{"waf limit status", c.WAF["default"].LimitStatus, DefaultLimitStatus},
		{"waf response body limit", c.WAF["default"].ResponseBodyLimit, Size(DefaultResponseBodyLimit)},
		{"waf response body action", c.WAF["default"].ResponseBodyLimitAction, DefaultResponseBodyLimitAction},
		{"waf buffer limit", c.WAFBufferLimit, Size(DefaultWAFBufferLimit)},
		{"rate key", c.RateLimits["r"].Key, DefaultRateLimitKey},
		{"rate store", c.RateLimits["r"].Store, DefaultRateLimitStore},
		{"rate on_store_error", c.RateLimits["r"].OnStoreError, DefaultOnStoreError},
		{"rate burst = N", c.RateLimits["r"].Burst, 7},
		{"redis timeout", c.Redis.Timeout.Std(), DefaultRedisTimeout},
		{"redis prefix", c.Redis.KeyPrefix, DefaultRedisKeyPrefix},
		{"access log", c.AccessLog.Path, DefaultAccessLogPath},
		{"access log redact_query", c.AccessLog.RedactQuery, strings.Fields(DefaultRedactQuery)},
		{"grace period", c.Shutdown.GracePeriod.Std(), DefaultGracePeriod},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s: got %v; want %v", tt.name, tt.got, tt.want)
		}
	}
}

// TestApplyDefaultsIdempotent checks that a second call changes nothing.
func TestApplyDefaultsIdempotent(t *testing.T) {
	c, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	before := *c.Upstreams["api"]
	c.ApplyDefaults()
	if !reflect.DeepEqual(before, *c.Upstreams["api"]) {
		t.Errorf("got %+v after a second ApplyDefaults; want %+v", *c.Upstreams["api"], before)
	}
}

// TestEnvExpansion checks ${NAME} in values: types re-resolved for plain
// scalars, quoted ones kept strings, $$ escapes, keys untouched, no YAML
// injection.
func TestEnvExpansion(t *testing.T) {
	t.Setenv("RAMPART_TEST_PORT", "9090")
	t.Setenv("RAMPART_TEST_CONNS", "42")
	t.Setenv("RAMPART_TEST_TOKEN", "a: b\n- c")
	t.Setenv("RAMPART_TEST_EMPTY", "")
	src := `admin:
  address: "127.0.0.1:${RAMPART_TEST_PORT}"
listeners:
  web:
    address: :${RAMPART_TEST_PORT}
    limits:
      max_connections: ${RAMPART_TEST_CONNS}
upstreams:
  app:
    targets: [{url: "http://a:1"}]
routes:
  - upstream: app
    match:
      headers: {X-Price: "$$5 and $ and ${RAMPART_TEST_EMPTY}end"}
  - respond:
      body: ${RAMPART_TEST_TOKEN}
`
	c, err := Parse([]byte(src), "env.yaml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"quoted", c.Admin.Address, "127.0.0.1:9090"},
		{"no injection", c.Routes[1].Respond.Body, "a: b\n- c"},
		{"plain", c.Listeners["web"].Address, ":9090"},
		{"re-resolved as int", c.Listeners["web"].Limits.MaxConnections, 42},
		{"escapes", c.Routes[0].Match.Headers["X-Price"], "$5 and $ and end"},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s: got %q; want %q", tt.name, tt.got, tt.want)
		}
	}
}

// TestExpand checks the expansion of single values.
func TestExpand(t *testing.T) {
	env := map[string]string{"A": "x", "B_2": "y"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	tests := []struct {
		name, in, want, err string
	}{
		{"none", "plain", "plain", ""},
		{"one", "${A}", "x", ""},
		{"two", "${A}-${B_2}", "x-y", ""},
		{"dollar dollar", "$${A}", "${A}", ""},
		{"lone dollar", "^/a$", "^/a$", ""},
		{"unbraced", "$A", "$A", ""},
		{"undefined", "${C}", "", `environment variable "C" is not defined`},
		{"unterminated", "${A", "", `unterminated "${" in "${A"`},
		{"bad name", "${1A}", "", `invalid environment variable name "1A"`},
		{"empty name", "${}", "", `invalid environment variable name ""`},
	}
	for _, tt := range tests {
		got, err := expand(tt.in, lookup)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("%s: got error %v; want %q", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: got %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}

// TestValidateInCode checks Validate on a Config built in code: no lines,
// the file name when set, nil when valid.
func TestValidateInCode(t *testing.T) {
	c := &Config{
		Listeners: map[string]*Listener{"web": {Address: ":8080"}},
		Upstreams: map[string]*Upstream{"app": {Targets: []Target{{URL: "http://a:1"}}}},
		Routes:    []*Route{{Name: "r", Upstream: "app"}},
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("got %v; want nil", err)
	}
	c.Routes = append(c.Routes, &Route{Name: "x", Upstream: "nope", Match: Match{PathPrefix: "/"}})
	c.AccessLog.Path = ""
	c.Shutdown.GracePeriod = -1
	c.Upstreams["app"].Timeouts.Connect = 0
	c.Listeners["web"].Limits.SendTimeout = durationPtr(-time.Second)
	err := c.Validate()
	// All on line 0, so in the order of the checks.
	want := "listeners.web.limits.send_timeout: must not be negative\n" +
		"upstreams.app.timeouts.connect: must be positive\n" +
		"routes[1] \"x\": upstream \"nope\" is not defined\n" +
		"access_log: path is required (stdout, stderr, a file or off)\n" +
		"shutdown.grace_period: must not be negative"
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("got %T; want Errors", err)
	}
	if got := errs.Error(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	c.File = "rampart.yaml"
	if got := c.Validate().(Errors)[0].Error(); !strings.HasPrefix(got, "rampart.yaml: ") {
		t.Errorf("got %q; want the file name first", got)
	}
}

// TestValidateNilEntries checks that Validate copes, without defaults, with
// the nil entries a YAML "name:" leaves.
func TestValidateNilEntries(t *testing.T) {
	c := &Config{
		Listeners:  map[string]*Listener{"web": nil},
		Upstreams:  map[string]*Upstream{"app": nil},
		Routes:     []*Route{nil},
		WAF:        map[string]*WAFPolicy{"w": nil},
		RateLimits: map[string]*RateLimit{"r": nil},
	}
	err := c.Validate()
	for _, want := range []string{"listeners.web: is empty", "upstreams.app: is empty", "routes[0]: is empty", "rate_limits.r: is empty"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v; want it to contain %q", err, want)
		}
	}
}

// TestLoadMissingFile checks that a read error names the file.
func TestLoadMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := Load(p)
	if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), p) {
		t.Errorf("got %v; want a not-exist error naming %s", err, p)
	}
}

// durationPtr is a field of type *Duration set to d.
func durationPtr(d time.Duration) *Duration {
	v := Duration(d)
	return &v
}

func ptr[T any](v T) *T { return &v }
