package config

// The access control of issue 22: IP lists, authentication policies, CORS
// and the PROXY protocol.

// ProxyProtocol makes a listener read a PROXY protocol header (v1 or v2)
// first on every connection.
type ProxyProtocol struct {
	// Trusted are the peers (addresses or CIDR prefixes) allowed to send
	// the header.
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
// Route.CORS.
type CORS struct {
	// AllowOrigins are the origins allowed.
	AllowOrigins []string `yaml:"allow_origins"`
	// AllowMethods are the methods allowed.
	AllowMethods []string `yaml:"allow_methods"`
	// AllowHeaders are the request header fields allowed.
	AllowHeaders []string `yaml:"allow_headers"`
	// AllowCredentials allows credentials.
	AllowCredentials bool `yaml:"allow_credentials"`
	// MaxAge is how long a preflight answer may be cached.
	MaxAge Duration `yaml:"max_age"`
}
