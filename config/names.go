package config

// The words a field accepts, named once so that the packages which act on
// them switch on the same constants that Validate checks.

// Balancers (upstreams.NAME.balancer).
const (
	BalancerRoundRobin         = "round_robin"
	BalancerWeightedRoundRobin = "weighted_round_robin"
	BalancerLeastConn          = "least_conn"
	BalancerRandom             = "random"
	BalancerP2C                = "p2c"
	BalancerIPHash             = "ip_hash"
	BalancerConsistentHash     = "consistent_hash"
)

// Balancers lists every balancer, in the order the docs present them.
var Balancers = []string{
	BalancerRoundRobin, BalancerWeightedRoundRobin, BalancerLeastConn,
	BalancerRandom, BalancerP2C, BalancerIPHash, BalancerConsistentHash,
}

// Upstream protocols (upstreams.NAME.protocol).
const (
	UpstreamHTTP1 = "http1"
	UpstreamHTTP2 = "http2"
)

// Health check types (upstreams.NAME.health_check.type).
const (
	HealthCheckHTTP = "http"
	HealthCheckGRPC = "grpc"
)

// WAF modes (waf.NAME.mode).
const (
	WAFModeOff    = "off"
	WAFModeDetect = "detect"
	WAFModeBlock  = "block"
)

// WAF body limit actions (waf.NAME.request_body_limit_action).
const (
	BodyLimitReject  = "reject"
	BodyLimitPartial = "partial"
)

// Path handling (listeners.NAME.path_handling).
const (
	PathNormalize = "normalize"
	PathReject    = "reject"
	PathRaw       = "raw"
)

// Stores: rate_limits.NAME.store, and listeners.NAME.tls.acme.cache.
const (
	StoreMemory = "memory"
	StoreRedis  = "redis"
	StoreDir    = "dir"
)

// Rate limit store failure policies (rate_limits.NAME.on_store_error).
const (
	OnStoreErrorAllow = "allow"
	OnStoreErrorDeny  = "deny"
)

// Client certificate policies (listeners.NAME.tls.client_auth).
const (
	ClientAuthRequire       = "require"
	ClientAuthVerifyIfGiven = "verify_if_given"
)

// Key forms of hash_key and rate_limits.NAME.key. The prefixed forms are
// followed by a name: "header:X-User".
const (
	KeyClientIP     = "client_ip"
	KeyPath         = "path"
	KeyRoute        = "route"
	KeyHeaderPrefix = "header:"
	KeyCookiePrefix = "cookie:"
	KeyQueryPrefix  = "query:"
)

// Access log destinations other than a file path (access_log.path).
const (
	AccessLogStdout = "stdout"
	AccessLogStderr = "stderr"
	AccessLogOff    = "off"
)
