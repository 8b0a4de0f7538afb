// Package config holds Rampart's YAML schema, its defaults and its validation.
//
// Parse and Load read a file in four steps: ${NAME} references in values
// are replaced by environment variables; the file is decoded strictly
// (unknown fields are errors); ApplyDefaults fills empty fields with the
// Default* constants; Validate checks values and cross references. Every
// error names the file, the line, the field path and the offending value,
// and all errors of a file are reported together (type Errors).
//
// The types here are data only: nothing in this package opens a socket or
// starts a goroutine. The YAML names are a contract (see DESIGN.md) relied on
// by the README, the examples and operators' files.
package config

import "time"

// Config is one whole Rampart configuration file.
type Config struct {
	// Admin is the admin listener (/metrics, /healthz, /readyz, /api/...).
	// When nil, no admin listener is opened.
	Admin *Admin `yaml:"admin"`

	// Listeners maps a listener name to where and how it accepts
	// downstream connections. At least one is required.
	Listeners map[string]*Listener `yaml:"listeners"`

	// Upstreams maps a pool name to its targets and balancing policy.
	Upstreams map[string]*Upstream `yaml:"upstreams"`

	// Routes are matched most specific first: exact host, then wildcard
	// host, then any host; within those the longest path_prefix; then the
	// route with more method and header matchers; then file order.
	// ApplyDefaults replaces a nil entry with an empty Route.
	Routes []*Route `yaml:"routes"`

	// WAF maps a policy name to a Coraza + OWASP CRS policy.
	WAF map[string]*WAFPolicy `yaml:"waf"`

	// RateLimits maps a policy name to a rate limit.
	RateLimits map[string]*RateLimit `yaml:"rate_limits"`

	// Redis is the server used by every store named "redis" (rate limits,
	// the ACME cache, response caches). Required when any of them uses Redis.
	Redis *Redis `yaml:"redis"`

	// TrustedProxies lists the CIDRs (or single addresses) whose
	// X-Forwarded-For header is believed when computing the client IP.
	// Empty: the client IP is always the peer address.
	TrustedProxies []string `yaml:"trusted_proxies"`

	// AccessLog says where the one-JSON-line-per-request log goes.
	AccessLog AccessLog `yaml:"access_log"`

	// Shutdown governs graceful shutdown on SIGTERM and SIGINT.
	Shutdown Shutdown `yaml:"shutdown"`

	// WAFBufferLimit bounds the bytes of request and response bodies that
	// the whole process holds in memory for WAF inspection at once. A
	// request body reserves its declared length (at most the policy's
	// request_body_limit) before it is read, a chunked one 64 KiB at a time
	// as it arrives, until the request ends; a response body until it is
	// relayed. A body that does not fit is refused with 503 and
	// Retry-After in block mode, or passed uninspected with an audit event
	// (rule 95100001) in detect mode. No policy's request_body_limit or
	// response_body_limit may reach it. Default DefaultWAFBufferLimit; 0
	// means the default.
	WAFBufferLimit Size `yaml:"waf_buffer_limit"`

	// Caches are response cache policies by name (Route.Cache).
	Caches map[string]*Cache `yaml:"caches"`

	// Compression tunes compression for routes with compress: true.
	Compression *Compression `yaml:"compression"`

	// Auth are authentication policies by name (Route.Auth).
	Auth map[string]*Auth `yaml:"auth"`

	// CORS are CORS policies by name (Route.CORS).
	CORS map[string]*CORS `yaml:"cors"`

	// Tracing exports OpenTelemetry traces. Omitted: off.
	Tracing *Tracing `yaml:"tracing"`

	// File is the path the config was read from ("" when parsed from
	// bytes). Not part of the YAML.
	File string `yaml:"-"`
}

// Admin is the admin listener. It is secure by default: see
// docs/security.md for the checks below and why.
type Admin struct {
	// Address is host:port. Default DefaultAdminAddress (loopback). An
	// address that is not loopback (0.0.0.0, ::, ":PORT", another IP, a
	// name other than localhost) requires Token, or AllowUnauthenticated.
	Address string `yaml:"address"`
	// Token, when set, is required as "Authorization: Bearer TOKEN" on
	// every admin request except /healthz and /readyz, and compared in
	// constant time. Omitted: no authentication, allowed only on a
	// loopback Address. Written but empty (an empty ${NAME}) is an error,
	// never "no authentication". A secret: write it as ${NAME}; the admin
	// API redacts it.
	Token string `yaml:"token" redact:"true"`
	// Hosts are names accepted in the Host header of admin requests besides
	// localhost, IP addresses and the host of Address, for a client that
	// reaches the admin listener by name (Prometheus scraping
	// "rampart:9901"). Other names are refused with 403, against DNS
	// rebinding; /healthz and /readyz answer whatever the Host. Empty: no
	// other name.
	Hosts []string `yaml:"hosts"`
	// AllowUnauthenticated, when true, lets a non-loopback Address serve
	// without a Token: anyone who reaches it can read the config and
	// reload it. Logged as a warning at every start and reload. Default
	// false. When false, validation refuses a non-loopback Address that
	// has no Token.
	AllowUnauthenticated bool `yaml:"allow_unauthenticated"`
}

// Listener accepts downstream connections on one address.
type Listener struct {
	// Address is host:port or :port. Required. Port 0 picks a free port
	// (tests), and is the only port two listeners may share.
	Address string `yaml:"address"`
	// Limits protect the listener from slow and hostile clients.
	Limits Limits `yaml:"limits"`
	// TLS, when set, makes this an HTTPS listener.
	TLS *ListenerTLS `yaml:"tls"`
	// PathHandling says how the request path is matched, inspected and
	// forwarded; the router, the WAF and the upstream always see the same
	// path. "normalize" (DefaultPathHandling; empty means it): unreserved
	// characters sent percent-encoded are decoded, encoded slashes and
	// backslashes (%2F, %5C, \) become slashes, repeated slashes merge and
	// dot segments are resolved (RFC 3986 section 5.2.4), and the result
	// is what routes match, what the WAF inspects and what the upstream
	// receives; a dot segment carrying ";" parameters ("..;"), an encoded
	// NUL and a double-encoded dot, slash or backslash ("%252e") are refused
	// with 400. "reject": a path that normalizing would change in meaning
	// (dot segments, "//", a backslash, %2E %2F %5C %25XX %00, "..;") is
	// refused with 400, any other is forwarded as received. "raw": the path
	// is matched and forwarded exactly as received, percent-encoding
	// included (route prefixes compare with the encoded bytes). The query
	// is always forwarded as received.
	PathHandling string `yaml:"path_handling"`
	// UnderscoresInHeaders keeps request header fields whose name holds an
	// underscore ("X_Forwarded_For"). False (the default) drops them before
	// the upstream, as nginx does (underscores_in_headers off): CGI, PHP,
	// Rack and WSGI map "-" and "_" to one name, so a client could pass
	// such a field off as one the proxy sets. Even when true, the
	// underscore spellings of the names the proxy owns (X-Forwarded-*,
	// X-Real-IP, X-Request-Id, X-Client-Cert-Subject) are dropped.
	UnderscoresInHeaders bool `yaml:"underscores_in_headers"`
	// Protocols are the protocols the listener serves: "http1" (HTTP/1.0
	// and 1.1), "h2" (HTTP/2 over TLS, chosen by ALPN; TLS listeners
	// only) and "h2c" (HTTP/2 in cleartext with prior knowledge: the
	// client starts with the HTTP/2 preface; plain listeners only). The
	// default, when omitted, is [h2, http1] on a TLS listener (ALPN
	// offers h2 first) and [http1] on a plain one. An empty list is an
	// error. ALPN offers them in the order listed. A listener without
	// http1 answers an HTTP/1.1 request 505 (ACME's HTTP-01 validations
	// excepted). A reload that changes the list applies to new
	// connections.
	Protocols []string `yaml:"protocols"`
	// HTTP2 holds the limits of HTTP/2 connections (h2, h2c).
	HTTP2 HTTP2 `yaml:"http2"`

	// ProxyProtocol makes the listener read a PROXY protocol header from
	// trusted peers. Omitted: no PROXY protocol.
	ProxyProtocol *ProxyProtocol `yaml:"proxy_protocol"`
}

// Protocols a listener serves (listeners.NAME.protocols).
const (
	ProtocolHTTP1 = "http1" // HTTP/1.0 and HTTP/1.1
	ProtocolH2    = "h2"    // HTTP/2 over TLS, chosen by ALPN
	ProtocolH2C   = "h2c"   // HTTP/2 in cleartext, with prior knowledge
)

// HTTP2 limits protect an HTTP/2 listener from hostile clients. Each
// zero field means its default. docs/http2.md compares them with nginx's
// and Envoy's.
type HTTP2 struct {
	// MaxConcurrentStreams is SETTINGS_MAX_CONCURRENT_STREAMS, the
	// streams a connection may have open at once; one more is reset.
	// Default DefaultHTTP2MaxConcurrentStreams.
	MaxConcurrentStreams int `yaml:"max_concurrent_streams"`
	// MaxHeaderListSize is SETTINGS_MAX_HEADER_LIST_SIZE, the decoded
	// size of a request's header fields (each counts 32 bytes more than
	// its name and value); a larger request gets 431, and a header block
	// far larger closes the connection. At least 1KiB. Default
	// DefaultHTTP2MaxHeaderListSize.
	MaxHeaderListSize Size `yaml:"max_header_list_size"`
	// MaxStreamsPerConnection is the number of streams a connection may
	// open in its life; after the last, a graceful GOAWAY makes the
	// client go on over a new connection. Default
	// DefaultHTTP2MaxStreamsPerConnection.
	MaxStreamsPerConnection int `yaml:"max_streams_per_connection"`
	// MaxStreamsPerIP bounds the streams one client IP address has open
	// at once over all its connections; one more gets 429 (a gRPC
	// client RESOURCE_EXHAUSTED). Default DefaultHTTP2MaxStreamsPerIP.
	MaxStreamsPerIP int `yaml:"max_streams_per_ip"`
	// MaxResetsPerSecond is the rate of RST_STREAM frames a client may
	// send on a connection, with a burst of twice as many; more closes
	// the connection with GOAWAY ENHANCE_YOUR_CALM (rapid reset,
	// CVE-2023-44487). Default DefaultHTTP2MaxResetsPerSecond.
	MaxResetsPerSecond int `yaml:"max_resets_per_second"`
	// MaxControlFramesPerSecond is the rate of PING and SETTINGS frames a
	// client may send on a connection, with a burst of twice as many;
	// more closes the connection with GOAWAY ENHANCE_YOUR_CALM. Default
	// DefaultHTTP2MaxControlFramesPerSecond.
	MaxControlFramesPerSecond int `yaml:"max_control_frames_per_second"`
}

// Limits are per-listener protections against slow or hostile clients.
type Limits struct {
	// ReadHeaderTimeout bounds the time to read a request's headers
	// (slowloris). Default DefaultReadHeaderTimeout. Zero means the default.
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds the time to read a whole request, body included.
	// Zero (the default) means no bound beyond ReadHeaderTimeout, so large
	// uploads over slow links work.
	ReadTimeout Duration `yaml:"read_timeout"`
	// WriteTimeout bounds the time to write a response, to within a tenth
	// of it. Zero (the default) means no bound, so large downloads work.
	WriteTimeout Duration `yaml:"write_timeout"`
	// BodyTimeout bounds the wait for each read of a request body, not the
	// whole body (nginx client_body_timeout): a client that sends no byte
	// of its body for this long gets 408 and its connection is closed, and
	// the upstream connection a streamed upload had taken is closed too.
	// A slow client that keeps sending is never cut by it. Default
	// DefaultBodyTimeout when omitted; 0 turns it off.
	BodyTimeout *Duration `yaml:"body_timeout"`
	// SendTimeout bounds the wait for the client to accept response bytes,
	// not the whole response (nginx send_timeout): when the client takes
	// none for this long (up to a sixteenth more, the resolution of the
	// check), the connection is closed, and a response streaming from an
	// upstream is cut, which frees its upstream connection. A slow client
	// that keeps reading is never cut by it. Default DefaultSendTimeout
	// when omitted; 0 turns it off.
	SendTimeout *Duration `yaml:"send_timeout"`
	// IdleTimeout closes a keep-alive connection that has been idle this
	// long. Default DefaultIdleTimeout. Zero means the default.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes bounds the request line plus headers. Default
	// DefaultMaxHeaderBytes. Zero means the default.
	MaxHeaderBytes Size `yaml:"max_header_bytes"`
	// MaxBodySize refuses larger request bodies with 413. Zero (the
	// default) means unlimited, and the body is streamed.
	MaxBodySize Size `yaml:"max_body_size"`
	// MaxConnections bounds concurrent downstream connections on this
	// listener. Zero (the default) means unlimited.
	MaxConnections int `yaml:"max_connections"`
	// MaxConnectionsPerIP bounds concurrent downstream connections from one
	// client IP. Zero (the default) means unlimited.
	MaxConnectionsPerIP int `yaml:"max_connections_per_ip"`
}

// ListenerTLS terminates TLS on a listener.
type ListenerTLS struct {
	// MinVersion is "1.2" (DefaultTLSMinVersion) or "1.3".
	MinVersion string `yaml:"min_version"`
	// Certificates are static certificates chosen by SNI; the first is the
	// default for clients that send no SNI or an unknown name.
	Certificates []Certificate `yaml:"certificates"`
	// ACME obtains certificates automatically.
	ACME *ACME `yaml:"acme"`
	// ClientCAFile, when set, enables client certificate authentication
	// against the CAs in this PEM file.
	ClientCAFile string `yaml:"client_ca_file"`
	// ClientAuth is "require" (the default when ClientCAFile is set) or
	// "verify_if_given".
	ClientAuth string `yaml:"client_auth"`
}

// Certificate is a PEM certificate chain and its key.
type Certificate struct {
	// CertFile is the PEM certificate chain, leaf first. Required.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of the leaf. Required.
	KeyFile string `yaml:"key_file"`
}

// ACME obtains and renews certificates automatically.
type ACME struct {
	// Email is the ACME account contact.
	Email string `yaml:"email"`
	// DirectoryURL is the ACME directory. Default DefaultACMEDirectoryURL.
	DirectoryURL string `yaml:"directory_url"`
	// CAFile holds extra roots to trust the ACME server (a test CA such as
	// Pebble's). Empty: the system roots.
	CAFile string `yaml:"ca_file"`
	// Cache is "dir" (the default; CacheDir on disk) or "redis" (shared by
	// every instance through the top-level redis, with a lock).
	Cache string `yaml:"cache"`
	// CacheDir is where "dir" keeps accounts and certificates. Default
	// DefaultACMECacheDir.
	CacheDir string `yaml:"cache_dir"`
	// Hosts are the only names a certificate may be ordered for. Empty:
	// the exact (non-wildcard) hosts of the routes bound to this listener.
	Hosts []string `yaml:"hosts"`
	// EncryptionKey encrypts and authenticates every value that cache
	// "redis" stores (AES-256-GCM): 32 random bytes in base64, such as the
	// output of `openssl rand -base64 32`. A secret: write it as ${NAME} to
	// read it from the environment; the admin API redacts it. Every
	// instance sharing the Redis needs the same key. With cache "redis",
	// one of EncryptionKey and EncryptionKeyFile is required (there is no
	// default and no way to store in clear); with cache "dir" neither may
	// be set (the directory is protected by its mode, 0700).
	EncryptionKey string `yaml:"encryption_key" redact:"true"`
	// EncryptionKeyFile is a file holding the key as EncryptionKey does
	// (base64; surrounding whitespace ignored), such as a mounted
	// Kubernetes Secret; read at start and at each reload that changes
	// the config. Set it or EncryptionKey, not both.
	EncryptionKeyFile string `yaml:"encryption_key_file"`
	// PreviousEncryptionKeys are keys in EncryptionKey's format that
	// decrypt values written before a rotation but never encrypt; a value
	// read under one is written again under the current key. Empty (the
	// default): only the current key decrypts.
	PreviousEncryptionKeys []string `yaml:"previous_encryption_keys" redact:"true"`
	// InsecureMigrateCleartext accepts values stored in clear (by a
	// Rampart without encryption) and writes each again encrypted, at
	// start and when read. While it is true, anyone who can write to the
	// Redis can plant a certificate and key that will be served: set it
	// for one upgrade, then remove it. False (the default): a value in
	// clear is ignored and logged, and autocert orders anew in its place.
	InsecureMigrateCleartext bool `yaml:"insecure_migrate_cleartext"`
}

// Upstream is a pool of targets.
type Upstream struct {
	// Balancer is one of round_robin (DefaultBalancer),
	// weighted_round_robin, least_conn, random, p2c, ip_hash,
	// consistent_hash.
	Balancer string `yaml:"balancer"`
	// HashKey is what consistent_hash hashes: client_ip (the default,
	// filled whatever the balancer), header:NAME, cookie:NAME, query:NAME
	// or path. See the Key* constants.
	HashKey string `yaml:"hash_key"`
	// Sticky pins a client to a target with a cookie. Nil: no pinning.
	Sticky *Sticky `yaml:"sticky"`
	// Targets are the pool's members. At least one is required.
	Targets []Target `yaml:"targets"`
	// HealthCheck is the active health check. Nil: none; every target is
	// healthy unless passive checks eject it.
	HealthCheck *HealthCheck `yaml:"health_check"`
	// Passive is outlier detection from live traffic. Nil: none.
	Passive *Passive `yaml:"passive"`
	// Timeouts bound connecting to and reading from a target.
	Timeouts UpstreamTimeouts `yaml:"timeouts"`
	// Retries is how many other targets are tried, for idempotent methods
	// whose body is held whole, after the request was sent and met a
	// 502/503/504, a timeout, or a connection dropped before the answer.
	// Default 0. Connect failures are counted apart (ConnectRetries).
	Retries int `yaml:"retries"`
	// ConnectRetries is how many other targets are tried, for any method,
	// after a failure to connect (refused, unreachable, connect timeout,
	// TLS handshake): nothing was sent then, so it is always safe, as
	// nginx's proxy_next_upstream error does by default. Omitted: one
	// less than the number of targets, at most DefaultMaxConnectRetries;
	// 0 turns it off (a connect failure answers 502).
	ConnectRetries *int `yaml:"connect_retries"`
	// MaxConnsPerTarget bounds the pooled connections to one target.
	// Default DefaultMaxConnsPerTarget.
	MaxConnsPerTarget int `yaml:"max_conns_per_target"`
	// TLS configures https:// targets.
	TLS *UpstreamTLS `yaml:"tls"`
	// Protocol is what Rampart speaks to the targets: http1 or http2.
	// Default DefaultUpstreamProtocol. With http2, an http://
	// target gets cleartext HTTP/2 with prior knowledge (h2c, as gRPC
	// servers listen) and an https:// target TLS with h2 chosen by ALPN
	// (one that does not offer h2 counts as unreachable); requests are
	// multiplexed as streams over few connections. gRPC upstreams need
	// http2.
	Protocol string `yaml:"protocol"`
}

// Sticky pins clients with a cookie.
type Sticky struct {
	// Cookie is the cookie's name. Default DefaultStickyCookie.
	Cookie string `yaml:"cookie"`
}

// Target is one member of a pool.
type Target struct {
	// URL is http://host:port or https://host:port; no path.
	URL string `yaml:"url"`
	// Weight is used by weighted_round_robin and splits ties elsewhere.
	// Default 1. Zero means the default.
	Weight int `yaml:"weight"`
}

// HealthCheck is an active health check, over HTTP or gRPC.
type HealthCheck struct {
	// Type is http (GET path, judged by its status) or grpc (the gRPC
	// health protocol's grpc.health.v1.Health/Check, passing when the
	// answer is SERVING; only with protocol http2). Default
	// DefaultHealthCheckType.
	Type string `yaml:"type"`
	// Service is the service name a grpc check asks about. Empty: the
	// server as a whole. Only with type grpc.
	Service string `yaml:"service"`
	// Path is requested with GET. Default DefaultHealthCheckPath. Only
	// with type http.
	Path string `yaml:"path"`
	// Host, when set, is sent as the Host header (:authority over
	// HTTP/2).
	Host string `yaml:"host"`
	// Interval between checks of one target (with jitter). Default
	// DefaultHealthCheckInterval.
	Interval Duration `yaml:"interval"`
	// Timeout of one check. Default DefaultHealthCheckTimeout.
	Timeout Duration `yaml:"timeout"`
	// HealthyThreshold consecutive successes mark a target healthy.
	// Default DefaultHealthyThreshold.
	HealthyThreshold int `yaml:"healthy_threshold"`
	// UnhealthyThreshold consecutive failures mark it unhealthy. Default
	// DefaultUnhealthyThreshold.
	UnhealthyThreshold int `yaml:"unhealthy_threshold"`
	// ExpectedStatuses are status codes or ranges ("200", "200-399").
	// Empty: DefaultExpectedStatuses, which ApplyDefaults fills in. Only
	// with type http.
	ExpectedStatuses []string `yaml:"expected_statuses"`
}

// Passive is outlier detection from live traffic.
type Passive struct {
	// MaxFailures consecutive connect errors, timeouts or 5xx eject a
	// target. Default DefaultPassiveMaxFailures.
	MaxFailures int `yaml:"max_failures"`
	// Ejection is how long the first ejection lasts; it doubles on each
	// repeated ejection up to MaxEjection. With a health_check, its
	// healthy_threshold of passing checks in a row ends an ejection early.
	// Default DefaultPassiveEjection.
	Ejection Duration `yaml:"ejection"`
	// MaxEjection caps the doubling. Default DefaultPassiveMaxEjection.
	MaxEjection Duration `yaml:"max_ejection"`
	// MaxEjectionPercent caps the share of a pool ejected at once.
	// Default DefaultMaxEjectionPercent.
	MaxEjectionPercent int `yaml:"max_ejection_percent"`
}

// UpstreamTimeouts bound the upstream side of a request.
type UpstreamTimeouts struct {
	// Connect bounds dialing a target. Default DefaultConnectTimeout.
	Connect Duration `yaml:"connect"`
	// Read bounds waiting for the response headers (and each read of the
	// body). Default DefaultUpstreamReadTimeout. Beyond it: 504.
	Read Duration `yaml:"read"`
	// Write bounds sending the request. Default DefaultUpstreamWriteTimeout.
	Write Duration `yaml:"write"`
	// Idle closes pooled connections unused this long. Default
	// DefaultUpstreamIdleTimeout.
	Idle Duration `yaml:"idle"`
}

// UpstreamTLS configures connections to https:// targets.
type UpstreamTLS struct {
	// CAFile holds the roots that verify targets. Empty: the system roots.
	CAFile string `yaml:"ca_file"`
	// ServerName overrides the SNI and verified name. Empty: the target's host.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify disables verification. Only when written explicitly.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// CertFile and KeyFile are a client certificate presented to targets (mTLS).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Route sends matching requests to an upstream, a split, or a direct answer.
type Route struct {
	// Name identifies the route in logs and metrics; names are unique.
	// Default "route-N", N its 0-based index in Routes.
	Name string `yaml:"name"`
	// Listeners the route is bound to. Empty: every listener.
	Listeners []string `yaml:"listeners"`
	// Match selects requests. Empty: every request.
	Match Match `yaml:"match"`
	// Upstream is the pool that serves the route. Exactly one of Upstream,
	// Split and Respond is required.
	Upstream string `yaml:"upstream"`
	// Split spreads requests across pools by weight.
	Split []SplitTarget `yaml:"split"`
	// Respond answers directly without an upstream.
	Respond *Respond `yaml:"respond"`
	// WAF is a policy name. Empty: no WAF.
	WAF string `yaml:"waf"`
	// RateLimit is a policy name. Empty: no limit.
	RateLimit string `yaml:"rate_limit"`
	// RedirectHTTPS answers plain-HTTP requests with 308 to https, on a
	// TLS listener that serves the route: the one on port 443 if any, else
	// the first TLS listener in Listeners (by name when Listeners is
	// empty). A route bound to plain listeners only (a catch-all redirect)
	// goes to the first TLS listener, port 443 first, then by name, with a
	// route that matches the request; with none, the answer is 404. A
	// config without a TLS listener is refused.
	RedirectHTTPS bool `yaml:"redirect_https"`
	// HSTS adds Strict-Transport-Security to HTTPS responses.
	HSTS bool `yaml:"hsts"`

	// Allow lists the client addresses or CIDR prefixes that may use the
	// route (the client address after trusted_proxies and the PROXY
	// protocol). Empty: every client.
	Allow []string `yaml:"allow"`

	// Deny lists client addresses or CIDR prefixes refused; deny wins over
	// allow.
	Deny []string `yaml:"deny"`

	// Auth names an authentication policy (Config.Auth). Empty: none.
	Auth string `yaml:"auth"`

	// CORS names a CORS policy (Config.CORS). Empty: none.
	CORS string `yaml:"cors"`

	// Compress compresses responses (gzip, br, zstd) as the client's
	// Accept-Encoding asks.
	Compress bool `yaml:"compress"`

	// Cache names a cache policy (Config.Caches). Empty: no caching.
	Cache string `yaml:"cache"`

	// Rewrite changes the path forwarded upstream.
	Rewrite *Rewrite `yaml:"rewrite"`

	// RequestHeaders edits the request's header fields before forwarding.
	RequestHeaders *HeaderEdits `yaml:"request_headers"`

	// ResponseHeaders edits the response's header fields.
	ResponseHeaders *HeaderEdits `yaml:"response_headers"`

	// Mirror copies a share of the route's requests to another upstream.
	Mirror *Mirror `yaml:"mirror"`
}

// Match selects requests. All given matchers must hold.
type Match struct {
	// Host is an exact host ("api.example.com"), an IP, or a wildcard
	// ("*.example.com", one or more labels). Case-insensitive, port
	// ignored: ApplyDefaults lower-cases it.
	Host string `yaml:"host"`
	// Hosts is a list of such hosts; either Host or Hosts.
	Hosts []string `yaml:"hosts"`
	// PathPrefix must prefix the request path; it starts with "/".
	// Default DefaultPathPrefix ("/").
	PathPrefix string `yaml:"path_prefix"`
	// Methods, when set, must contain the request's method.
	// ApplyDefaults upper-cases them.
	Methods []string `yaml:"methods"`
	// Headers must each be present with exactly this value. Names are
	// case-insensitive. The values are often shared secrets (an internal
	// auth header): the admin API redacts every one.
	Headers map[string]string `yaml:"headers" redact:"true"`
}

// SplitTarget is one side of a weighted split.
type SplitTarget struct {
	// Upstream is the pool that serves this side. Required.
	Upstream string `yaml:"upstream"`
	// Weight is this side's share of the requests, relative to the other
	// sides' weights. Must be at least 1.
	Weight int `yaml:"weight"`
}

// Respond is a direct answer.
type Respond struct {
	// Status is the HTTP status, 100-599. Default DefaultRespondStatus.
	Status int `yaml:"status"`
	// Body is sent as is.
	Body string `yaml:"body"`
	// ContentType of Body. Default DefaultRespondContentType.
	ContentType string `yaml:"content_type"`
}

// WAFPolicy is a Coraza + OWASP CRS v4 policy.
type WAFPolicy struct {
	// Mode is off, detect or block (DefaultWAFMode).
	Mode string `yaml:"mode"`
	// ParanoiaLevel is 1 (DefaultParanoiaLevel) to 4.
	ParanoiaLevel int `yaml:"paranoia_level"`
	// AnomalyThreshold is the inbound anomaly score that blocks. Default
	// DefaultAnomalyThreshold.
	AnomalyThreshold int `yaml:"anomaly_threshold"`
	// RequestBodyLimit is the most body inspected. Default
	// DefaultRequestBodyLimit.
	RequestBodyLimit Size `yaml:"request_body_limit"`
	// RequestBodyLimitAction is reject (413, the default) or partial
	// (inspect the first RequestBodyLimit bytes).
	RequestBodyLimitAction string `yaml:"request_body_limit_action"`
	// MaxArguments is the most arguments inspected from each source: the
	// query string, and the request body (urlencoded, JSON; multipart
	// fields, and apart from them multipart files). A request with more is
	// refused with LimitStatus (block mode) or logged (detect mode), never
	// passed with arguments uninspected; the audit event names rule 200004
	// (query string), 200005 (urlencoded or JSON body) or 200007
	// (multipart body), "Arguments limit exceeded". Default
	// DefaultMaxArguments, as ModSecurity's SecArgumentsLimit; 0 means the
	// default.
	MaxArguments int `yaml:"max_arguments"`
	// LimitStatus is the status that refuses a request over one of the
	// policy's collection limits (max_arguments): 400 or 403. Default
	// DefaultLimitStatus, the status of ModSecurity's recommended rules
	// 200004 and 200005 (the request is malformed for the policy, not an
	// attack a rule recognized); 0 means the default.
	LimitStatus int `yaml:"limit_status"`
	// InspectResponse enables response inspection. Default false.
	InspectResponse bool `yaml:"inspect_response"`
	// ResponseBodyLimit is the most response body inspected, held in
	// memory (and counted against waf_buffer_limit) while it is: only
	// bodies of the types Coraza inspects (text/plain, text/html,
	// text/xml) are read. Used with InspectResponse. Default
	// DefaultResponseBodyLimit, as ModSecurity's SecResponseBodyLimit; 0
	// means the default.
	ResponseBodyLimit Size `yaml:"response_body_limit"`
	// ResponseBodyLimitAction says what happens to a larger response body:
	// reject (502 in block mode) or partial (inspect the first
	// ResponseBodyLimit bytes and relay the rest uninspected). Both write
	// an audit event (rule 95100002). Detect mode never refuses: it
	// inspects the first bytes. Default DefaultResponseBodyLimitAction,
	// which fails closed.
	ResponseBodyLimitAction string `yaml:"response_body_limit_action"`
	// Rules is extra SecLang loaded after the CRS. The admin API redacts
	// it: a rule may compare a header with a secret value.
	Rules string `yaml:"rules" redact:"true"`
	// rulesLine is the line of the file on which Rules begins (0:
	// unknown), for compile errors (RulesLine).
	rulesLine int `yaml:"-"`
	// RuleFiles are extra SecLang files loaded after Rules.
	RuleFiles []string `yaml:"rule_files"`
	// Exclusions switch rules off for some requests.
	Exclusions []Exclusion `yaml:"exclusions"`
	// RampartRules switches Rampart's own rules on top of the CRS
	// (docs/waf-rules.md): every value (arguments, JSON values, cookies,
	// non-standard headers, path segments, multipart names and file names,
	// XML text, GraphQL arguments) is also inspected in the forms an
	// application would decode it to (base64, nested URL encoding, %u,
	// JSON and JavaScript escapes, HTML entities, overlong UTF-8), and rules
	// of their own (ids 9500000 to 9500999) look for XXE, template,
	// NoSQL, LDAP, SQL and command injection and open redirects. Their scores add to the CRS
	// inbound anomaly score, so mode and anomaly_threshold decide as for
	// the CRS. on or off (also true or false). Default on
	// (DefaultRampartRules); off decides exactly as stock Coraza + CRS.
	RampartRules *bool `yaml:"rampart_rules"`
	// RampartRulesDisabled switches groups of Rampart's rules off by name,
	// for a policy that keeps the others (RampartRuleGroups: decode,
	// headers, path, uploads, graphql, prose, api, libinjection, xxe, ssti,
	// nosql, ldap, cmdi, sqli, redirect, traversal; each with its false-positive risk in
	// docs/waf-rules.md). Single rules are switched off with exclusions,
	// as CRS rules are. Empty: every group on.
	RampartRulesDisabled []string `yaml:"rampart_rules_disabled"`
	// AuditLog is a file, stdout or stderr. Empty: no audit log.
	AuditLog string `yaml:"audit_log"`
}

// Exclusion switches rules off where it matches.
type Exclusion struct {
	// RuleIDs are the CRS or custom rule ids switched off. Required. The
	// CRS evaluation rules (949110, 959100, 980xxx) are refused: without
	// them nothing is ever blocked.
	RuleIDs []int `yaml:"rule_ids"`
	// PathPrefix narrows the exclusion to these paths. Empty: every path.
	PathPrefix string `yaml:"path_prefix"`
	// Methods narrow the exclusion to these methods. Empty: every method.
	Methods []string `yaml:"methods"`
	// Targets narrow the exclusion to variables such as "ARGS:q".
	// Empty: the whole rule.
	Targets []string `yaml:"targets"`
}

// RateLimit is a rate limit policy.
type RateLimit struct {
	// Key is client_ip (DefaultRateLimitKey), header:NAME or route.
	Key string `yaml:"key"`
	// Rate is N/s, N/m or N/h. Required.
	Rate Rate `yaml:"rate"`
	// Burst is how many requests may arrive at once, at least 1. Default:
	// the rate's N.
	Burst int `yaml:"burst"`
	// Store is memory (DefaultRateLimitStore) or redis.
	Store string `yaml:"store"`
	// OnStoreError is allow (DefaultOnStoreError; fall back to a local
	// limit) or deny (503).
	OnStoreError string `yaml:"on_store_error"`
}

// Redis is the shared Redis used by stores named redis (Redis 5 or later).
type Redis struct {
	// Address is host:port of a single server.
	Address string `yaml:"address"`
	// Addresses lists several nodes (Cluster, or Sentinels with
	// MasterName). Exactly one of Address and Addresses is required.
	Addresses []string `yaml:"addresses"`
	// MasterName selects Sentinel mode.
	MasterName string `yaml:"master_name"`
	// Username is the Redis ACL user. Empty: the default user. The admin
	// API redacts it.
	Username string `yaml:"username" redact:"true"`
	// Password authenticates to Redis. Empty: none. A secret: write it as
	// ${NAME} to read it from the environment; the admin API redacts it.
	Password string `yaml:"password" redact:"true"`
	// DB is the database number (single server and Sentinel only). Default 0.
	DB int `yaml:"db"`
	// Timeout bounds each call. Default DefaultRedisTimeout.
	Timeout Duration `yaml:"timeout"`
	// KeyPrefix prefixes every key. Default DefaultRedisKeyPrefix.
	KeyPrefix string `yaml:"key_prefix"`
	// TLS, when set, connects with TLS.
	TLS *RedisTLS `yaml:"tls"`
}

// RedisTLS configures TLS to Redis.
type RedisTLS struct {
	// CAFile holds the roots that verify the server. Empty: the system roots.
	CAFile string `yaml:"ca_file"`
	// ServerName overrides the name verified. Empty: the address's host.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify disables verification. Only when written explicitly.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// CertFile and KeyFile are a client certificate for Redis (mTLS).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// AccessLog configures the access log.
type AccessLog struct {
	// Path is stdout (DefaultAccessLogPath), stderr, a file, or off.
	Path string `yaml:"path"`
	// RedactQuery names the query parameters whose values the access log
	// replaces with "[redacted]", in its request_uri and query fields.
	// Names compare case-insensitively, after percent-decoding. Omitted:
	// the default, common names of credentials in URLs; an empty list
	// redacts nothing.
	RedactQuery []string `yaml:"redact_query"`

	// Format is json, one JSON object per line (the fields of
	// docs/logs.md), or combined, the Apache and nginx combined format
	// (client, user "-", time, request line, status, bytes sent, Referer,
	// User-Agent) for classic log tooling. Default DefaultAccessLogFormat.
	Format string `yaml:"format"`

	// Fields lists the fields of a json line, by name (docs/logs.md), in
	// any order: a line has them in the reference's order. An unknown name
	// is an error. Empty: every field. Only with format json.
	Fields []string `yaml:"fields"`
}

// Shutdown configures graceful shutdown.
type Shutdown struct {
	// GracePeriod is how long in-flight requests may take to finish after
	// SIGTERM or SIGINT. Default DefaultGracePeriod.
	GracePeriod Duration `yaml:"grace_period"`
}

// Duration is a time.Duration written as "10s", "1m30s", "250ms", or 0.
// Negative durations are refused.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// Or returns *d, or def when d is nil (a field left out of the file, in a
// Config on which ApplyDefaults has not run).
func (d *Duration) Or(def Duration) Duration {
	if d == nil {
		return def
	}
	return *d
}

// Size is a byte count written as 1024, "16KiB", "1MiB", "2GiB", "10KB"
// (KB, MB, GB are powers of 1000; KiB, MiB, GiB and K, M, G of 1024).
type Size int64

// Rate is a count per period, written "100/s", "20/m", "1000/h". The
// zero Rate means unset.
type Rate struct {
	N   int64
	Per time.Duration
}
