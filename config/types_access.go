package config

import "time"

// The access control of issue 22: IP lists, authentication policies, CORS
// and the PROXY protocol.

// ProxyProtocol makes a listener read a PROXY protocol header (v1 or v2)
// first on every connection, before TLS and before HTTP. The address the
// header carries becomes the connection's peer for every purpose:
// allow/deny, trusted_proxies, rate limits, the WAF, X-Forwarded-For, the
// access log and max_connections_per_ip. A connection from a peer not in
// Trusted is closed at accept, before anything is read from it; one whose
// header is missing, malformed or late (read_header_timeout) is closed too.
// A LOCAL header (the balancer's own health checks) keeps the peer's
// address. See docs/access.md.
type ProxyProtocol struct {
	// Trusted are the peers (addresses or CIDR prefixes, such as the load
	// balancer's subnet) allowed to connect and required to send the
	// header. Required: at least one.
	Trusted []string `yaml:"trusted"`
}

// Auth is an authentication policy (Config.Auth), named by Route.Auth.
// Exactly one of Basic, Forward and JWT. A route's requests pass through
// its policy after the rate limit and the CORS preflight, before the WAF
// (docs/auth.md).
type Auth struct {
	// Basic is HTTP basic authentication against bcrypt hashes.
	Basic *BasicAuth `yaml:"basic"`
	// Forward asks an authentication service about each request.
	Forward *ForwardAuth `yaml:"forward"`
	// JWT verifies a bearer JSON Web Token.
	JWT *JWTAuth `yaml:"jwt"`
}

// Defaults of the authentication policies.
const (
	DefaultAuthRealm = "Rampart"
	// DefaultBasicCacheTTL is how long verified basic credentials are
	// remembered, so that a client does not pay bcrypt on every request.
	DefaultBasicCacheTTL = 30 * time.Second
	// DefaultBasicCacheSize bounds the credentials remembered.
	DefaultBasicCacheSize = 1024
	// DefaultBasicFailureLimit failed attempts per client IP within
	// DefaultBasicFailureWindow; beyond it the client is answered 429
	// without running bcrypt.
	DefaultBasicFailureLimit  = 10
	DefaultBasicFailureWindow = time.Minute

	DefaultForwardTimeout = 5 * time.Second
	// DefaultForwardFailureStatus answers when the authentication service
	// is down, slow or failing.
	DefaultForwardFailureStatus = 503
	DefaultForwardMaxConns      = 256

	DefaultJWTLeeway = 30 * time.Second
	// DefaultJWTRefreshInterval is how often the JWKS is fetched again.
	DefaultJWTRefreshInterval = 10 * time.Minute
	// DefaultJWTMinRefreshInterval bounds the fetches a token with an
	// unknown key id (kid) may cause.
	DefaultJWTMinRefreshInterval = 30 * time.Second
	DefaultJWTFetchTimeout       = 5 * time.Second
)

// DefaultForwardSendHeaders are the client's header fields sent to a
// forward authentication service.
var DefaultForwardSendHeaders = []string{"Cookie", "Authorization"}

// DefaultJWTAlgorithms are the signature algorithms a JWT may use: the
// asymmetric ones. HS* and none are never accepted.
var DefaultJWTAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// BasicAuth is HTTP basic authentication.
type BasicAuth struct {
	// Users maps user names to bcrypt hashes ($2a$, $2b$ or $2y$). With
	// UsersFile, both are used (a name in both is an error).
	Users map[string]string `yaml:"users" redact:"true"`
	// UsersFile is an htpasswd file of bcrypt hashes (htpasswd -B), one
	// "name:hash" a line; # starts a comment. Relative to the config
	// file's directory. Read at start and on each reload.
	UsersFile string `yaml:"users_file"`
	// Realm is the realm of WWW-Authenticate. Default "Rampart".
	Realm string `yaml:"realm"`
	// ForwardAuthorization sends the client's Authorization header on to
	// the upstream. Default false: removed.
	ForwardAuthorization bool `yaml:"forward_authorization"`
	// CacheTTL is how long verified credentials are remembered (keyed by
	// a hash of name and password). Default 30s.
	CacheTTL Duration `yaml:"cache_ttl"`
	// CacheSize bounds the credentials remembered. Default 1024.
	CacheSize int `yaml:"cache_size"`
	// FailureLimit is the failed attempts a client IP may make within
	// FailureWindow; beyond it, it is answered 429 without bcrypt running.
	// Default 10.
	FailureLimit int `yaml:"failure_limit"`
	// FailureWindow is the window of FailureLimit. Default 1m.
	FailureWindow Duration `yaml:"failure_window"`
}

// ForwardAuth asks an authentication service about each request (the
// oauth2-proxy and Authelia pattern).
type ForwardAuth struct {
	// URL is the authentication service's endpoint (http or https),
	// required. It gets the request's method, X-Forwarded-Method, -Proto,
	// -Host, -Uri and -For, and SendHeaders; no body.
	URL string `yaml:"url"`
	// CopyHeaders are copied from the service's 2xx answer to the upstream
	// request; the client's fields of these names are always removed.
	CopyHeaders []string `yaml:"copy_headers"`
	// SendHeaders are the client's header fields sent to the service.
	// Default [Cookie, Authorization]; [] sends none.
	SendHeaders []string `yaml:"send_headers"`
	// Timeout bounds the whole exchange with the service. Default 5s.
	Timeout Duration `yaml:"timeout"`
	// FailureStatus answers when the service cannot be reached, times out,
	// fails (5xx) or answers badly. Default 503; never lets the request
	// through.
	FailureStatus int `yaml:"failure_status"`
	// MaxConns bounds the connections to the service. Default 256.
	MaxConns int `yaml:"max_conns"`
	// ForwardAuthorization sends the client's Authorization header on to
	// the upstream. Default false: removed.
	ForwardAuthorization bool `yaml:"forward_authorization"`
}

// JWTAuth verifies a bearer JSON Web Token.
type JWTAuth struct {
	// JWKSURL is where the issuer's keys are fetched, required: https, or
	// http to a loopback address only.
	JWKSURL string `yaml:"jwks_url"`
	// Issuer is the required iss claim. Empty: not checked.
	Issuer string `yaml:"issuer"`
	// Audience is the required aud claim. Empty: not checked.
	Audience string `yaml:"audience"`
	// ClaimsToHeaders copies claims to request header fields (a string
	// as is, a list joined by ", ", other values as JSON); the client's
	// fields of these names are always removed.
	ClaimsToHeaders map[string]string `yaml:"claims_to_headers"`
	// Algorithms are the signature algorithms accepted. Default: RS256,
	// RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA. HS*
	// and none are refused.
	Algorithms []string `yaml:"algorithms"`
	// Leeway is the clock skew allowed on exp, nbf and iat. Default 30s.
	Leeway Duration `yaml:"leeway"`
	// Cookie, when set, is a cookie that carries the token when no
	// Authorization: Bearer is sent. Empty: the header only.
	Cookie string `yaml:"cookie"`
	// Optional lets a request without any token through (with the claim
	// headers removed); a bad token is still refused. Default false.
	Optional bool `yaml:"optional"`
	// ForwardAuthorization sends the client's Authorization header on to
	// the upstream. Default false: removed.
	ForwardAuthorization bool `yaml:"forward_authorization"`
	// RefreshInterval is how often the JWKS is fetched again. Default 10m.
	RefreshInterval Duration `yaml:"refresh_interval"`
	// MinRefreshInterval bounds the extra fetches that tokens with an
	// unknown key id cause: at most one per interval. Default 30s.
	MinRefreshInterval Duration `yaml:"min_refresh_interval"`
	// FetchTimeout bounds one fetch of the JWKS. Default 5s.
	FetchTimeout Duration `yaml:"fetch_timeout"`
}

func (a *Auth) applyDefaults() {
	if b := a.Basic; b != nil {
		orDefault(&b.Realm, DefaultAuthRealm)
		orDefault(&b.CacheTTL, Duration(DefaultBasicCacheTTL))
		orDefault(&b.CacheSize, DefaultBasicCacheSize)
		orDefault(&b.FailureLimit, DefaultBasicFailureLimit)
		orDefault(&b.FailureWindow, Duration(DefaultBasicFailureWindow))
	}
	if f := a.Forward; f != nil {
		if f.SendHeaders == nil {
			f.SendHeaders = append([]string(nil), DefaultForwardSendHeaders...)
		}
		orDefault(&f.Timeout, Duration(DefaultForwardTimeout))
		orDefault(&f.FailureStatus, DefaultForwardFailureStatus)
		orDefault(&f.MaxConns, DefaultForwardMaxConns)
	}
	if j := a.JWT; j != nil {
		if j.Algorithms == nil {
			j.Algorithms = append([]string(nil), DefaultJWTAlgorithms...)
		}
		orDefault(&j.Leeway, Duration(DefaultJWTLeeway))
		orDefault(&j.RefreshInterval, Duration(DefaultJWTRefreshInterval))
		orDefault(&j.MinRefreshInterval, Duration(DefaultJWTMinRefreshInterval))
		orDefault(&j.FetchTimeout, Duration(DefaultJWTFetchTimeout))
	}
}

// CORS is a cross-origin resource sharing policy (Config.CORS), named by
// Route.CORS. On a route with a policy the proxy owns the CORS fields: it
// answers preflight requests itself and replaces the target's
// Access-Control-* response fields with its own (docs/access.md).
type CORS struct {
	// AllowOrigins are the origins allowed: "scheme://host[:port]" as a
	// browser sends it in Origin, "scheme://*.example.com[:port]" for any
	// subdomain (one label or more, not example.com itself), or "*" for
	// every origin (not with AllowCredentials). Required: at least one.
	AllowOrigins []string `yaml:"allow_origins"`
	// AllowMethods are the methods a preflight may ask for. Empty: GET,
	// HEAD and POST (DefaultCORSMethods).
	AllowMethods []string `yaml:"allow_methods"`
	// AllowHeaders are the request header fields a preflight may ask for
	// (compared without regard to case), or ["*"] for any. Empty: none
	// beyond the CORS-safelisted ones browsers send without asking.
	AllowHeaders []string `yaml:"allow_headers"`
	// ExposeHeaders are the response header fields scripts may read beyond
	// the CORS-safelisted ones (Access-Control-Expose-Headers). Empty:
	// none.
	ExposeHeaders []string `yaml:"expose_headers"`
	// AllowCredentials lets cross-origin requests carry cookies and
	// Authorization (Access-Control-Allow-Credentials: true).
	AllowCredentials bool `yaml:"allow_credentials"`
	// MaxAge is how long a browser may cache a preflight answer
	// (Access-Control-Max-Age, in whole seconds). 0: the field is not
	// sent, and browsers keep the answer for 5 seconds.
	MaxAge Duration `yaml:"max_age"`
}

// DefaultCORSMethods are the methods a CORS policy allows when
// allow_methods is empty.
var DefaultCORSMethods = []string{"GET", "HEAD", "POST"}
