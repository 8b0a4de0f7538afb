package config

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
// Exactly one of Basic, Forward and JWT.
type Auth struct {
	// Basic is HTTP basic authentication against bcrypt hashes.
	Basic *BasicAuth `yaml:"basic"`
	// Forward asks an authentication service about each request.
	Forward *ForwardAuth `yaml:"forward"`
	// JWT verifies a bearer JSON Web Token.
	JWT *JWTAuth `yaml:"jwt"`
}

// BasicAuth is HTTP basic authentication.
type BasicAuth struct {
	// Users maps user names to bcrypt hashes.
	Users map[string]string `yaml:"users" redact:"true"`
	// UsersFile is an htpasswd file of bcrypt hashes.
	UsersFile string `yaml:"users_file"`
	// Realm is the realm of WWW-Authenticate.
	Realm string `yaml:"realm"`
}

// ForwardAuth asks an authentication service about each request.
type ForwardAuth struct {
	// URL is the authentication service's endpoint.
	URL string `yaml:"url"`
	// CopyHeaders are copied from the service's 2xx answer to the upstream
	// request.
	CopyHeaders []string `yaml:"copy_headers"`
}

// JWTAuth verifies a bearer JSON Web Token.
type JWTAuth struct {
	// JWKSURL is where the issuer's keys are fetched.
	JWKSURL string `yaml:"jwks_url"`
	// Issuer is the required iss claim.
	Issuer string `yaml:"issuer"`
	// Audience is the required aud claim.
	Audience string `yaml:"audience"`
	// ClaimsToHeaders copies claims to request header fields.
	ClaimsToHeaders map[string]string `yaml:"claims_to_headers"`
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
