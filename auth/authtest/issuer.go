// Package authtest is a token issuer for tests and benchmarks: it holds
// signing keys, serves their JWKS over loopback HTTP (and can stop serving
// it, to play an issuer that is down), counts the fetches, and signs
// tokens.
package authtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// Key is a signing key and its kid.
type Key struct {
	KID    string
	Alg    string // RS256, ES256 or EdDSA
	Signer crypto.Signer
}

// NewKey makes a key for alg (RS256, PS256, ES256 or EdDSA).
func NewKey(kid, alg string) *Key {
	var s crypto.Signer
	var err error
	switch alg {
	case "RS256", "PS256":
		s, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		s, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, s, err = ed25519.GenerateKey(rand.Reader)
	default:
		panic("authtest: no key for " + alg)
	}
	if err != nil {
		panic(err)
	}
	return &Key{KID: kid, Alg: alg, Signer: s}
}

// Sign signs claims with k (kid in the header).
func (k *Key) Sign(claims jwt.MapClaims) string {
	t := jwt.NewWithClaims(jwt.GetSigningMethod(k.Alg), claims)
	t.Header["kid"] = k.KID
	s, err := t.SignedString(k.Signer)
	if err != nil {
		panic(err)
	}
	return s
}

// Claims are typical claims: sub, iss, aud, and exp in ttl.
func Claims(sub, iss, aud string, ttl time.Duration) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"sub": sub, "iss": iss, "aud": aud, "iat": now.Unix(), "exp": now.Add(ttl).Unix()}
}

// Issuer serves a JWKS on a loopback address.
type Issuer struct {
	URL string // of the JWKS

	ln      net.Listener
	srv     *http.Server
	mu      sync.Mutex // guards keys
	keys    []*Key
	down    atomic.Bool
	fetches atomic.Int64
}

// NewIssuer serves keys until Close.
func NewIssuer(keys ...*Key) (*Issuer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	is := &Issuer{ln: ln, keys: keys, URL: "http://" + ln.Addr().String() + "/.well-known/jwks.json"}
	is.srv = &http.Server{Handler: is, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = is.srv.Serve(ln) }()
	return is, nil
}

// Start is NewIssuer for a test: it fails tb when the issuer cannot
// listen and closes it when tb ends.
func Start(tb testing.TB, keys ...*Key) *Issuer {
	tb.Helper()
	is, err := NewIssuer(keys...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(is.Close)
	return is
}

// ServeHTTP answers the JWKS, or 503 while Down.
func (is *Issuer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	is.fetches.Add(1)
	if is.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	b, err := is.JWKS()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// JWKS is the key set's JSON.
func (is *Issuer) JWKS() ([]byte, error) {
	is.mu.Lock()
	defer is.mu.Unlock()
	return JWKS(is.keys...)
}

// JWKS is the JSON of a key set of the public halves of keys.
func JWKS(keys ...*Key) ([]byte, error) {
	var set jwkset.JWKSMarshal
	for _, k := range keys {
		j, err := jwkset.NewJWKFromKey(k.Signer.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: k.KID, USE: jwkset.UseSig}})
		if err != nil {
			return nil, err
		}
		set.Keys = append(set.Keys, j.Marshal())
	}
	return json.Marshal(set)
}

// SetKeys replaces the keys served (a rotation).
func (is *Issuer) SetKeys(keys ...*Key) {
	is.mu.Lock()
	is.keys = keys
	is.mu.Unlock()
}

// SetDown makes the issuer answer 503 (true) or serve again (false).
func (is *Issuer) SetDown(down bool) { is.down.Store(down) }

// Fetches counts the requests for the JWKS.
func (is *Issuer) Fetches() int64 { return is.fetches.Load() }

// Close stops serving.
func (is *Issuer) Close() { _ = is.srv.Close() }
