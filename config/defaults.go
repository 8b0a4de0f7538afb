package config

import (
	"strconv"
	"strings"
	"time"
)

// Defaults applied by ApplyDefaults to fields left empty. They are exported
// so the README, the tests and the other packages name one source of truth.
const (
	DefaultAdminAddress = "127.0.0.1:9901"

	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultMaxHeaderBytes    = 16 << 10
	DefaultPathHandling      = "normalize"

	// DefaultBodyTimeout and DefaultSendTimeout are nginx's
	// client_body_timeout and send_timeout: bounds on a stalled client,
	// so that it cannot hold a worker and an upstream connection forever.
	DefaultBodyTimeout = 60 * time.Second
	DefaultSendTimeout = 60 * time.Second

	// HTTP/2 limits (listeners.NAME.http2). MaxConcurrentStreams is
	// Envoy's default and the floor RFC 9113 section 6.5.2 recommends
	// (nginx: 128; x/net: 250): browsers open fewer, and each stream may
	// hold an upstream connection. MaxHeaderListSize is nginx's
	// large_client_header_buffers in total (4 x 8k; Envoy 60k), twice
	// DefaultMaxHeaderBytes so a request HTTP/1.1 accepts fits with
	// HTTP/2's 32 bytes per field. MaxStreamsPerConnection is ten times
	// nginx's keepalive_requests, so a busy gRPC channel reconnects once
	// per 10,000 calls. MaxStreamsPerIP bounds the streams one address has
	// open across all its connections (ten full connections). Resets and
	// control frames (PING, SETTINGS) are rates per connection, with a
	// burst of twice the rate: a browser that leaves a page cancels its
	// image streams at once, and a gRPC client's BDP estimator pings once
	// per round trip while it receives, but a rapid-reset (CVE-2023-44487)
	// or PING flood sends hundreds of thousands a second.
	DefaultHTTP2MaxConcurrentStreams      = 100
	DefaultHTTP2MaxHeaderListSize         = 32 << 10
	DefaultHTTP2MaxStreamsPerConnection   = 10000
	DefaultHTTP2MaxStreamsPerIP           = 1000
	DefaultHTTP2MaxResetsPerSecond        = 100
	DefaultHTTP2MaxControlFramesPerSecond = 1000

	DefaultTLSMinVersion    = "1.2"
	DefaultClientAuth       = "require"
	DefaultACMEDirectoryURL = "https://acme-v02.api.letsencrypt.org/directory"
	DefaultACMECache        = "dir"
	DefaultACMECacheDir     = "/var/lib/rampart/acme"

	DefaultBalancer          = "round_robin"
	DefaultHashKey           = "client_ip"
	DefaultStickyCookie      = "rampart_sticky"
	DefaultTargetWeight      = 1
	DefaultMaxConnsPerTarget = 1024
	DefaultUpstreamProtocol  = "http1"

	DefaultHealthCheckType     = "http"
	DefaultHealthCheckPath     = "/health"
	DefaultHealthCheckInterval = 5 * time.Second
	DefaultHealthCheckTimeout  = 1 * time.Second
	DefaultHealthyThreshold    = 2
	DefaultExpectedStatuses    = "200-399"
	DefaultUnhealthyThreshold  = 3

	DefaultPassiveMaxFailures = 5
	DefaultPassiveEjection    = 30 * time.Second
	DefaultPassiveMaxEjection = 5 * time.Minute
	DefaultMaxEjectionPercent = 50

	DefaultConnectTimeout       = 2 * time.Second
	DefaultUpstreamReadTimeout  = 60 * time.Second
	DefaultUpstreamWriteTimeout = 60 * time.Second
	DefaultUpstreamIdleTimeout  = 90 * time.Second

	DefaultPathPrefix      = "/"
	DefaultRouteNamePrefix = "route-" // followed by the route's index

	DefaultRespondStatus      = 200
	DefaultRespondContentType = "text/plain; charset=utf-8"

	DefaultWAFMode                = "block"
	DefaultParanoiaLevel          = 1
	DefaultAnomalyThreshold       = 5
	DefaultRequestBodyLimit       = 1 << 20
	DefaultRequestBodyLimitAction = "reject"
	// DefaultMaxArguments is ModSecurity's and Coraza's SecArgumentsLimit.
	DefaultMaxArguments = 1000
	// DefaultLimitStatus is the status of ModSecurity's recommended
	// ARGUMENTS_LIMIT rules (200004, 200005): the request is malformed
	// for this policy, not an attack the rules recognized.
	DefaultLimitStatus = 400
	// DefaultResponseBodyLimit is ModSecurity's recommended
	// SecResponseBodyLimit (512 KiB).
	DefaultResponseBodyLimit       = 512 << 10
	DefaultResponseBodyLimitAction = "reject"
	// DefaultWAFBufferLimit holds 64 bodies of the default
	// request_body_limit at once: a small container's worth of memory.
	DefaultWAFBufferLimit = 64 << 20

	DefaultRateLimitKey   = "client_ip"
	DefaultRateLimitStore = "memory"
	DefaultOnStoreError   = "allow"

	DefaultRedisTimeout   = 50 * time.Millisecond
	DefaultRedisKeyPrefix = "rampart:"

	DefaultAccessLogPath = "stdout"
	DefaultGracePeriod   = 30 * time.Second

	// DefaultRedactQuery lists, separated by spaces, the query parameters
	// whose values the access log hides unless redact_query says otherwise:
	// OAuth tokens and codes, passwords, API keys, signatures of pre-signed
	// URLs (S3, Azure SAS).
	DefaultRedactQuery = "access_token refresh_token id_token token code client_secret password passwd secret " +
		"api_key apikey key auth signature sig x-amz-signature x-amz-credential x-amz-security-token"
)

// ApplyDefaults fills every field left empty with its Default* value, and
// normalizes what matching compares case-insensitively: hosts become lower
// case, methods upper case. A nil entry in a map or list ("web:" with
// nothing under it) becomes an empty item, so Validate reports what it
// lacks. ApplyDefaults is idempotent and safe on a partly decoded Config.
func (c *Config) ApplyDefaults() {
	if c.Admin != nil {
		orDefault(&c.Admin.Address, DefaultAdminAddress)
	}
	for name, l := range c.Listeners {
		c.Listeners[name] = nonNil(l)
		c.Listeners[name].applyDefaults()
	}
	for name, u := range c.Upstreams {
		c.Upstreams[name] = nonNil(u)
		c.Upstreams[name].applyDefaults()
	}
	for i, r := range c.Routes {
		c.Routes[i] = nonNil(r)
		c.Routes[i].applyDefaults(i)
	}
	for name, p := range c.WAF {
		c.WAF[name] = nonNil(p)
		c.WAF[name].applyDefaults()
	}
	for name, rl := range c.RateLimits {
		c.RateLimits[name] = nonNil(rl)
		c.RateLimits[name].applyDefaults()
	}
	for name, a := range c.Auth {
		c.Auth[name] = nonNil(a)
		c.Auth[name].applyDefaults() // types_access.go
	}
	for name, cp := range c.Caches {
		c.Caches[name] = nonNil(cp)
		c.Caches[name].applyDefaults() // types_edge.go
	}
	if c.Redis != nil {
		orDefault(&c.Redis.Timeout, Duration(DefaultRedisTimeout))
		orDefault(&c.Redis.KeyPrefix, DefaultRedisKeyPrefix)
	}
	orDefault(&c.AccessLog.Path, DefaultAccessLogPath)
	orDefault(&c.AccessLog.Format, DefaultAccessLogFormat)
	if c.Tracing != nil {
		c.Tracing.applyDefaults()
	}
	if c.AccessLog.RedactQuery == nil {
		c.AccessLog.RedactQuery = strings.Fields(DefaultRedactQuery)
	}
	orDefault(&c.Shutdown.GracePeriod, Duration(DefaultGracePeriod))
	orDefault(&c.WAFBufferLimit, DefaultWAFBufferLimit)
	c.applyEdgeDefaults() // types_edge.go
}

func (l *Listener) applyDefaults() {
	orDefault(&l.Limits.ReadHeaderTimeout, Duration(DefaultReadHeaderTimeout))
	orDefaultPtr(&l.Limits.BodyTimeout, Duration(DefaultBodyTimeout))
	orDefaultPtr(&l.Limits.SendTimeout, Duration(DefaultSendTimeout))
	orDefault(&l.Limits.IdleTimeout, Duration(DefaultIdleTimeout))
	orDefault(&l.Limits.MaxHeaderBytes, DefaultMaxHeaderBytes)
	orDefault(&l.PathHandling, DefaultPathHandling)
	if l.Protocols == nil {
		l.Protocols = []string{ProtocolHTTP1}
		if l.TLS != nil {
			l.Protocols = []string{ProtocolH2, ProtocolHTTP1}
		}
	}
	h2 := &l.HTTP2
	orDefault(&h2.MaxConcurrentStreams, DefaultHTTP2MaxConcurrentStreams)
	orDefault(&h2.MaxHeaderListSize, DefaultHTTP2MaxHeaderListSize)
	orDefault(&h2.MaxStreamsPerConnection, DefaultHTTP2MaxStreamsPerConnection)
	orDefault(&h2.MaxStreamsPerIP, DefaultHTTP2MaxStreamsPerIP)
	orDefault(&h2.MaxResetsPerSecond, DefaultHTTP2MaxResetsPerSecond)
	orDefault(&h2.MaxControlFramesPerSecond, DefaultHTTP2MaxControlFramesPerSecond)
	t := l.TLS
	if t == nil {
		return
	}
	orDefault(&t.MinVersion, DefaultTLSMinVersion)
	if t.ClientCAFile != "" {
		orDefault(&t.ClientAuth, DefaultClientAuth)
	}
	if a := t.ACME; a != nil {
		orDefault(&a.DirectoryURL, DefaultACMEDirectoryURL)
		orDefault(&a.Cache, DefaultACMECache)
		if a.Cache == "dir" {
			orDefault(&a.CacheDir, DefaultACMECacheDir)
		}
		lower(a.Hosts)
	}
}

func (u *Upstream) applyDefaults() {
	orDefault(&u.Balancer, DefaultBalancer)
	orDefault(&u.HashKey, DefaultHashKey)
	orDefault(&u.MaxConnsPerTarget, DefaultMaxConnsPerTarget)
	if u.Sticky != nil {
		orDefault(&u.Sticky.Cookie, DefaultStickyCookie)
	}
	for i := range u.Targets {
		orDefault(&u.Targets[i].Weight, DefaultTargetWeight)
	}
	orDefault(&u.Protocol, DefaultUpstreamProtocol)
	if h := u.HealthCheck; h != nil {
		orDefault(&h.Type, DefaultHealthCheckType)
		if h.Type == DefaultHealthCheckType { // http
			orDefault(&h.Path, DefaultHealthCheckPath)
			if len(h.ExpectedStatuses) == 0 {
				h.ExpectedStatuses = []string{DefaultExpectedStatuses}
			}
		}
		orDefault(&h.Interval, Duration(DefaultHealthCheckInterval))
		orDefault(&h.Timeout, Duration(DefaultHealthCheckTimeout))
		orDefault(&h.HealthyThreshold, DefaultHealthyThreshold)
		orDefault(&h.UnhealthyThreshold, DefaultUnhealthyThreshold)
	}
	if p := u.Passive; p != nil {
		orDefault(&p.MaxFailures, DefaultPassiveMaxFailures)
		orDefault(&p.Ejection, Duration(DefaultPassiveEjection))
		orDefault(&p.MaxEjection, Duration(DefaultPassiveMaxEjection))
		orDefault(&p.MaxEjectionPercent, DefaultMaxEjectionPercent)
	}
	orDefault(&u.Timeouts.Connect, Duration(DefaultConnectTimeout))
	if u.ConnectRetries == nil {
		n := u.DefaultConnectRetries()
		u.ConnectRetries = &n
	}
	orDefault(&u.Timeouts.Read, Duration(DefaultUpstreamReadTimeout))
	orDefault(&u.Timeouts.Write, Duration(DefaultUpstreamWriteTimeout))
	orDefault(&u.Timeouts.Idle, Duration(DefaultUpstreamIdleTimeout))
}

// applyDefaults fills the route at index i.
func (r *Route) applyDefaults(i int) {
	orDefault(&r.Name, DefaultRouteNamePrefix+strconv.Itoa(i))
	m := &r.Match
	m.Host = strings.ToLower(m.Host)
	lower(m.Hosts)
	orDefault(&m.PathPrefix, DefaultPathPrefix)
	upper(m.Methods)
	if r.Respond != nil {
		orDefault(&r.Respond.Status, DefaultRespondStatus)
		orDefault(&r.Respond.ContentType, DefaultRespondContentType)
	}
}

func (p *WAFPolicy) applyDefaults() {
	orDefault(&p.Mode, DefaultWAFMode)
	orDefault(&p.ParanoiaLevel, DefaultParanoiaLevel)
	orDefault(&p.AnomalyThreshold, DefaultAnomalyThreshold)
	orDefault(&p.RequestBodyLimit, DefaultRequestBodyLimit)
	orDefault(&p.RequestBodyLimitAction, DefaultRequestBodyLimitAction)
	orDefault(&p.MaxArguments, DefaultMaxArguments)
	orDefault(&p.LimitStatus, DefaultLimitStatus)
	orDefault(&p.ResponseBodyLimit, DefaultResponseBodyLimit)
	orDefault(&p.ResponseBodyLimitAction, DefaultResponseBodyLimitAction)
	orDefaultPtr(&p.RampartRules, DefaultRampartRules)
	for i := range p.Exclusions {
		upper(p.Exclusions[i].Methods)
	}
}

func (rl *RateLimit) applyDefaults() {
	orDefault(&rl.Key, DefaultRateLimitKey)
	orDefault(&rl.Store, DefaultRateLimitStore)
	orDefault(&rl.OnStoreError, DefaultOnStoreError)
	if rl.Rate.N > 0 && int64(int(rl.Rate.N)) == rl.Rate.N {
		orDefault(&rl.Burst, int(rl.Rate.N))
	}
}

// orDefault sets *p to v when *p is the zero value.
func orDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// orDefaultPtr points *p at v when *p is nil: a field whose zero value,
// written explicitly, means something else than the default (off).
func orDefaultPtr[T any](p **T, v T) {
	if *p == nil {
		*p = &v
	}
}

// nonNil returns p, or a new zero T when p is nil.
func nonNil[T any](p *T) *T {
	if p == nil {
		return new(T)
	}
	return p
}

func lower(s []string) {
	for i := range s {
		s[i] = strings.ToLower(s[i])
	}
}

func upper(s []string) {
	for i := range s {
		s[i] = strings.ToUpper(s[i])
	}
}
