package auth

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/rampart-proxy/rampart/auth/authtest"
)

const (
	testIss = "https://issuer.example/"
	testAud = "my-api"
)

func newTestJWT(t *testing.T, url string, min time.Duration) *JWT {
	t.Helper()
	j, err := NewJWT(JWTOptions{JWKSURL: url, Issuer: testIss, Audience: testAud, Algorithms: []string{"RS256", "PS256", "ES256", "EdDSA"},
		Leeway: 30 * time.Second, RefreshInterval: time.Hour, MinRefreshInterval: min, FetchTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(j.Close)
	return j
}

func TestJWTVerify(t *testing.T) {
	rsaKey, ecKey, edKey, psKey := authtest.NewKey("rsa", "RS256"), authtest.NewKey("ec", "ES256"), authtest.NewKey("ed", "EdDSA"), authtest.NewKey("ps", "PS256")
	is := authtest.Start(t, rsaKey, ecKey, edKey, psKey)
	j := newTestJWT(t, is.URL, time.Hour)
	good := func() jwt.MapClaims { return authtest.Claims("alice", testIss, testAud, time.Minute) }
	with := func(k string, v any) jwt.MapClaims { c := good(); c[k] = v; return c }
	without := func(k string) jwt.MapClaims { c := good(); delete(c, k); return c }
	stranger := authtest.NewKey("rsa", "RS256") // same kid, another key

	// none: unsigned.
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, good()).SignedString(jwt.UnsafeAllowNoneSignatureType)
	// HS256 keyed with the RSA public key, as published: the classic
	// confusion attack.
	der, _ := x509.MarshalPKIXPublicKey(rsaKey.Signer.Public())
	pub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, good())
	hs.Header["kid"] = "rsa"
	hsTok, _ := hs.SignedString(pub)
	// ES256 signed by an EC key but naming the RSA key's kid.
	mixed := &authtest.Key{KID: "rsa", Alg: "ES256", Signer: ecKey.Signer}

	tests := []struct {
		name   string
		token  string
		reason string // "" when valid
	}{
		{"RS256", rsaKey.Sign(good()), ""},
		{"PS256", psKey.Sign(good()), ""},
		{"ES256", ecKey.Sign(good()), ""},
		{"EdDSA", edKey.Sign(good()), ""},
		{"aud in a list", rsaKey.Sign(with("aud", []string{"other", testAud})), ""},
		{"expired within the leeway", rsaKey.Sign(with("exp", time.Now().Add(-10*time.Second).Unix())), ""},
		{"expired", rsaKey.Sign(with("exp", time.Now().Add(-time.Minute).Unix())), "expired"},
		{"not yet valid", rsaKey.Sign(with("nbf", time.Now().Add(time.Minute).Unix())), "not yet valid"},
		{"no exp", rsaKey.Sign(without("exp")), "claim missing"},
		{"wrong audience", rsaKey.Sign(with("aud", "other-api")), "wrong audience"},
		{"no audience", rsaKey.Sign(without("aud")), "claim missing"},
		{"wrong issuer", rsaKey.Sign(with("iss", "https://evil.example/")), "wrong issuer"},
		{"unknown key", authtest.NewKey("nobody", "RS256").Sign(good()), "unknown key"},
		{"forged with a known kid", stranger.Sign(good()), "bad signature"},
		{"alg none", none, "bad signature"},
		{"HS256 with the public key", hsTok, "bad signature"},
		{"ES256 naming an RSA key", mixed.Sign(good()), "unverifiable"},
		{"garbage", "not.a.token", "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			claims, err := j.Verify(tt.token)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("got %v; want valid", err)
				}
				if claims["sub"] != "alice" {
					t.Errorf("sub: got %v; want alice", claims["sub"])
				}
				return
			}
			if err == nil {
				t.Fatal("got valid; want refused")
			}
			if got := Reason(err); got != tt.reason {
				t.Errorf("reason: got %q (%v); want %q", got, err, tt.reason)
			}
		})
	}
}

// TestJWTRotation: a token signed by a new key is accepted once the issuer
// publishes it, with one fetch; tokens with made-up kids cause no more
// fetches within the interval.
func TestJWTRotation(t *testing.T) {
	old, next := authtest.NewKey("k1", "RS256"), authtest.NewKey("k2", "ES256")
	is := authtest.Start(t, old)
	j := newTestJWT(t, is.URL, time.Hour)
	if _, err := j.Verify(old.Sign(authtest.Claims("a", testIss, testAud, time.Minute))); err != nil {
		t.Fatalf("the first key: %v", err)
	}
	start := is.Fetches()
	is.SetKeys(old, next)
	if _, err := j.Verify(next.Sign(authtest.Claims("a", testIss, testAud, time.Minute))); err != nil {
		t.Fatalf("the rotated key: %v", err)
	}
	if got := is.Fetches() - start; got != 1 {
		t.Errorf("fetches for the new kid: got %d; want 1", got)
	}
	for i := range 20 {
		if _, err := j.Verify(authtest.NewKey("made-up", "ES256").Sign(authtest.Claims("a", testIss, testAud, time.Minute))); err == nil {
			t.Fatalf("made-up kid %d: got valid", i)
		}
	}
	if got := is.Fetches() - start; got != 1 {
		t.Errorf("fetches after 20 made-up kids: got %d; want still 1", got)
	}
}

// TestJWTIssuerDown: the keys fetched stay in use while the issuer fails;
// a verifier that never got any answers ErrNoKeys.
func TestJWTIssuerDown(t *testing.T) {
	k := authtest.NewKey("k1", "RS256")
	is := authtest.Start(t, k)
	j := newTestJWT(t, is.URL, time.Nanosecond)
	is.SetDown(true)
	// An unknown kid makes it fetch (and fail) while down.
	if _, err := j.Verify(authtest.NewKey("k9", "RS256").Sign(authtest.Claims("a", testIss, testAud, time.Minute))); err == nil {
		t.Fatal("unknown kid while down: got valid")
	}
	if _, err := j.Verify(k.Sign(authtest.Claims("a", testIss, testAud, time.Minute))); err != nil {
		t.Errorf("a known key while the issuer is down: %v", err)
	}

	down := authtest.Start(t, k)
	down.SetDown(true)
	j2 := newTestJWT(t, down.URL, time.Nanosecond)
	_, err := j2.Verify(k.Sign(authtest.Claims("a", testIss, testAud, time.Minute)))
	if !errors.Is(err, ErrNoKeys) {
		t.Errorf("never fetched: got %v; want ErrNoKeys", err)
	}
	down.SetDown(false)
	if _, err := j2.Verify(k.Sign(authtest.Claims("a", testIss, testAud, time.Minute))); err != nil {
		t.Errorf("once the issuer is back: %v", err)
	}
}

func TestNewJWTRefuses(t *testing.T) {
	tests := []struct {
		name string
		o    JWTOptions
		want string
	}{
		{"plain http elsewhere", JWTOptions{JWKSURL: "http://issuer.example/jwks", Algorithms: []string{"RS256"}}, "must be https"},
		{"HS256", JWTOptions{JWKSURL: "https://issuer.example/jwks", Algorithms: []string{"HS256"}}, `"HS256" is not accepted`},
		{"none", JWTOptions{JWKSURL: "https://issuer.example/jwks", Algorithms: []string{"none"}}, `"none" is not accepted`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.NoFetch = true
			_, err := NewJWT(tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v; want an error with %q", err, tt.want)
			}
		})
	}
}

// BenchmarkJWTVerify is the cost of checking an RS256 token of a 2048-bit
// key against a JWKS of one key.
func BenchmarkJWTVerify(b *testing.B) {
	key := authtest.NewKey("k1", "RS256")
	is := authtest.Start(b, key)
	j, err := NewJWT(JWTOptions{JWKSURL: is.URL, Issuer: testIss, Audience: testAud, Algorithms: []string{"RS256"},
		Leeway: 30 * time.Second, RefreshInterval: time.Hour, MinRefreshInterval: time.Hour, FetchTimeout: 2 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	tok := key.Sign(authtest.Claims("alice", testIss, testAud, time.Hour))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := j.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}
