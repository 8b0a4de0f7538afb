package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// The JWT verifier pairs golang-jwt/jwt v5 (parsing, signature and claim
// checks) with MicahParks/keyfunc v3 over a jwkset storage (the issuer's
// keys by kid). The storage is refreshed on a timer by jwkset and, for a
// token whose kid it does not hold, at most once per MinRefreshInterval by
// kidStorage; a failed fetch leaves the keys it holds in place.

// ErrNoKeys says a token could not be checked because no key of the issuer
// has been fetched yet (the JWKS was unreachable since the start).
var ErrNoKeys = errors.New("auth: jwt: the issuer's keys are not available")

// JWTOptions configure a JWT verifier.
type JWTOptions struct {
	// JWKSURL is where the issuer publishes its keys.
	JWKSURL string
	// Issuer and Audience, when not empty, are required of iss and aud.
	Issuer, Audience string
	// Algorithms are the signature algorithms accepted (asymmetric only;
	// each pins the key type it needs).
	Algorithms []string
	// Leeway is the clock skew allowed on exp, nbf and iat.
	Leeway time.Duration
	// RefreshInterval is how often the keys are fetched again;
	// MinRefreshInterval bounds the fetches of unknown kids; FetchTimeout
	// bounds one fetch.
	RefreshInterval, MinRefreshInterval, FetchTimeout time.Duration
	// Client fetches the keys (nil: one of FetchTimeout that follows
	// redirects to https or loopback URLs only).
	Client *http.Client
	// Log receives the fetch failures (nil: discarded).
	Log *slog.Logger
	// Now is the clock of the claim checks (nil: time.Now).
	Now func() time.Time
	// NoFetch builds the verifier without fetching anything (a dry run).
	NoFetch bool
}

// JWT verifies bearer tokens signed by an issuer's published keys.
type JWT struct {
	kf     keyfunc.Keyfunc
	keys   *kidStorage
	parser *jwt.Parser
	cancel context.CancelFunc
	algs   map[string]bool
}

// NewJWT returns a verifier of o. Unless o.NoFetch, it fetches the keys
// once (waiting FetchTimeout at most; a failure is logged, not returned:
// the issuer may come back) and starts refreshing them until Close.
func NewJWT(o JWTOptions) (*JWT, error) {
	u, err := url.Parse(o.JWKSURL)
	if err != nil || !(u.Scheme == "https" || u.Scheme == "http" && isLoopback(u.Hostname())) {
		return nil, fmt.Errorf("auth: jwt: jwks_url %q must be https, or http to a loopback address", o.JWKSURL)
	}
	j := &JWT{algs: map[string]bool{}}
	for _, a := range o.Algorithms {
		if !asymmetric(a) {
			return nil, fmt.Errorf("auth: jwt: algorithm %q is not accepted", a)
		}
		j.algs[a] = true
	}
	if len(j.algs) == 0 {
		return nil, errors.New("auth: jwt: no algorithm")
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	client := o.Client
	if client == nil {
		client = &http.Client{Timeout: o.FetchTimeout, CheckRedirect: checkRedirect}
	}
	ctx, cancel := context.WithCancel(context.Background())
	j.cancel = cancel
	mem := jwkset.NewMemoryStorage()
	onErr := func(_ context.Context, err error) {
		log.Warn("fetching the JWKS failed; the keys fetched before stay in use", "jwks_url", o.JWKSURL, "error", err.Error())
	}
	fetch := func(ctx context.Context) error {
		// A storage of no refresh interval fetches once, into mem, and
		// leaves mem alone when that fails.
		_, err := jwkset.NewStorageFromHTTP(o.JWKSURL, jwkset.HTTPClientStorageOptions{
			Client: client, Ctx: ctx, HTTPTimeout: o.FetchTimeout, Storage: mem,
		})
		return err
	}
	j.keys = &kidStorage{Storage: mem, limiter: rate.NewLimiter(rate.Every(o.MinRefreshInterval), 1), log: log, url: o.JWKSURL}
	if !o.NoFetch {
		// Fetches now, then every RefreshInterval until Close.
		if _, err := jwkset.NewStorageFromHTTP(o.JWKSURL, jwkset.HTTPClientStorageOptions{
			Client: client, Ctx: ctx, HTTPTimeout: o.FetchTimeout, Storage: mem,
			RefreshInterval: o.RefreshInterval, NoErrorReturnFirstHTTPReq: true, RefreshErrorHandler: onErr,
		}); err != nil {
			cancel()
			return nil, fmt.Errorf("auth: jwt: %w", err)
		}
		j.keys.fetch = func() error {
			ctx, cancel := context.WithTimeout(ctx, o.FetchTimeout)
			defer cancel()
			return fetch(ctx)
		}
	}
	j.kf, err = keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: j.keys})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("auth: jwt: %w", err)
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(o.Algorithms), jwt.WithLeeway(o.Leeway),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
	}
	if o.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(o.Issuer))
	}
	if o.Audience != "" {
		opts = append(opts, jwt.WithAudience(o.Audience))
	}
	if o.Now != nil {
		opts = append(opts, jwt.WithTimeFunc(o.Now))
	}
	j.parser = jwt.NewParser(opts...)
	return j, nil
}

// Close stops the refreshes.
func (j *JWT) Close() {
	if j != nil {
		j.cancel()
	}
}

// Keys counts the keys held.
func (j *JWT) Keys() int {
	all, _ := j.keys.KeyReadAll(context.Background())
	return len(all)
}

// Verify checks token (the compact serialization) and returns its claims.
// ErrNoKeys says the issuer's keys are not there to check it with.
func (j *JWT) Verify(token string) (jwt.MapClaims, error) {
	claims := jwt.MapClaims{}
	_, err := j.parser.ParseWithClaims(token, claims, j.key)
	if err != nil {
		if errors.Is(err, jwkset.ErrKeyNotFound) && j.Keys() == 0 {
			return nil, ErrNoKeys
		}
		return nil, err
	}
	return claims, nil
}

// key finds the key of the token's kid, and refuses it unless it is of the
// type the token's algorithm needs: a token cannot pick HS256 to have an
// RSA public key used as an HMAC secret.
func (j *JWT) key(t *jwt.Token) (any, error) {
	alg, _ := t.Header["alg"].(string)
	if !j.algs[alg] {
		return nil, fmt.Errorf("algorithm %q is not accepted", alg)
	}
	k, err := j.kf.Keyfunc(t)
	if err != nil {
		return nil, err
	}
	if set, ok := k.(jwt.VerificationKeySet); ok {
		fit := set.Keys[:0:0]
		for _, key := range set.Keys {
			if keyFits(alg, key) {
				fit = append(fit, key)
			}
		}
		if len(fit) == 0 {
			return nil, fmt.Errorf("%w: no key for algorithm %q", jwkset.ErrKeyNotFound, alg)
		}
		return jwt.VerificationKeySet{Keys: fit}, nil
	}
	if !keyFits(alg, k) {
		return nil, fmt.Errorf("key %v is not a key of algorithm %q", t.Header["kid"], alg)
	}
	return k, nil
}

// asymmetric reports the algorithms a JWT may use.
func asymmetric(alg string) bool {
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA":
		return true
	}
	return false
}

// keyFits reports whether key is of the type (and curve) alg needs.
func keyFits(alg string, key any) bool {
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		_, ok := key.(*rsa.PublicKey)
		return ok
	case "ES256", "ES384", "ES512":
		k, ok := key.(*ecdsa.PublicKey)
		bits := map[string]int{"ES256": 256, "ES384": 384, "ES512": 521}[alg]
		return ok && k.Curve.Params().BitSize == bits
	case "EdDSA":
		_, ok := key.(ed25519.PublicKey)
		return ok
	}
	return false
}

// Reason names why err refused a token, for logs.
func Reason(err error) string {
	switch {
	case errors.Is(err, ErrNoKeys):
		return "no keys"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "not yet valid"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "claim missing"
	case errors.Is(err, jwkset.ErrKeyNotFound):
		return "unknown key"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "unverifiable"
	}
	return "invalid"
}

// kidStorage is the keys, fetched again when a token names a kid they do
// not hold: at most once per the limiter's interval, so that tokens with
// made-up kids cannot make the proxy hammer the issuer.
type kidStorage struct {
	jwkset.Storage
	limiter *rate.Limiter
	fetch   func() error // nil: never (a dry run)
	log     *slog.Logger
	url     string
}

func (s *kidStorage) KeyRead(ctx context.Context, kid string) (jwkset.JWK, error) {
	k, err := s.Storage.KeyRead(ctx, kid)
	if !errors.Is(err, jwkset.ErrKeyNotFound) || s.fetch == nil || !s.limiter.Allow() {
		return k, err
	}
	if ferr := s.fetch(); ferr != nil {
		s.log.Warn("fetching the JWKS for an unknown key id failed", "jwks_url", s.url, "kid", kid, "error", ferr.Error())
		return k, err
	}
	s.log.Info("fetched the JWKS again for an unknown key id", "jwks_url", s.url, "kid", kid)
	return s.Storage.KeyRead(ctx, kid)
}

// checkRedirect follows a JWKS redirect only to https, or to http on a
// loopback address.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("too many redirects")
	}
	if req.URL.Scheme != "https" && !(req.URL.Scheme == "http" && isLoopback(req.URL.Hostname())) {
		return fmt.Errorf("redirect to %q refused: not https", req.URL.Redacted())
	}
	return nil
}

// isLoopback reports whether host is "localhost" or a loopback address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
