package config

import (
	"strconv"
	"strings"
	"testing"
)

// A bcrypt hash (of "pw", cost 4).
const testBcrypt = "$2a$04$0tl7Yc7Xx5p8b.xDoZ2S3uJ8vW2p0z4J5Nj5Fq0Yl8M8o0q0e0e0K"

func TestAuthErrors(t *testing.T) {
	rt := lis + ups + "routes:\n  - upstream: app\n    auth: a\n"
	tests := []struct{ name, src, want string }{
		{"policy undefined", lis + ups + "routes:\n  - upstream: app\n    auth: nope # <-\n", `routes[0] "route-0": auth policy "nope" is not defined`},
		{"no kind", rt + "auth:\n  a: {} # <-\n", "auth.a: needs exactly one of basic, forward and jwt (has 0)"},
		{"two kinds", rt + "auth:\n  a: # <-\n    basic: {users: {u: \"" + testBcrypt + "\"}}\n    forward: {url: \"http://127.0.0.1:9091/\"}\n", "auth.a: needs exactly one of basic, forward and jwt (has 2)"},
		{"basic without users", rt + "auth:\n  a:\n    basic: # <-\n      realm: x\n", "auth.a.basic: users or users_file is required"},
		{"basic md5 hash", rt + "auth:\n  a:\n    basic:\n      users: # <-\n        u: \"$apr1$x$y\"\n", `auth.a.basic: user "u": the hash is not a bcrypt hash ($2a$, $2b$ or $2y$; htpasswd -B)`},
		{"basic realm quote", rt + "auth:\n  a:\n    basic:\n      users: {u: \"" + testBcrypt + "\"}\n      realm: 'a\"b' # <-\n", `auth.a.basic: "a\"b" must not hold a quote, a backslash or a control character`},
		{"basic failure limit", rt + "auth:\n  a:\n    basic:\n      users: {u: \"" + testBcrypt + "\"}\n      failure_limit: -1 # <-\n", "auth.a.basic: -1 must be at least 1"},
		{"forward url", rt + "auth:\n  a:\n    forward:\n      url: ftp://x/ # <-\n", `auth.a.forward: "ftp://x/" must be an http or https URL with a host, no user info and no fragment`},
		{"forward copy owned", rt + "auth:\n  a:\n    forward:\n      url: http://127.0.0.1:9091/\n      copy_headers: [Remote-User, X-Forwarded-For] # <-\n", `auth.a.forward: "X-Forwarded-For" is a header field the proxy owns`},
		{"forward status", rt + "auth:\n  a:\n    forward:\n      url: http://127.0.0.1:9091/\n      failure_status: 200 # <-\n", "auth.a.forward: 200 must be a 4xx or 5xx status"},
		{"jwt plain http", rt + "auth:\n  a:\n    jwt:\n      jwks_url: http://issuer.example/jwks # <-\n", `auth.a.jwt: "http://issuer.example/jwks" must be https (http only to a loopback address): the keys decide who gets in`},
		{"jwt HS256", rt + "auth:\n  a:\n    jwt:\n      jwks_url: https://issuer.example/jwks\n      algorithms: [RS256, HS256] # <-\n", `auth.a.jwt: "HS256" is never accepted: an HMAC key is a shared secret, not a published key`},
		{"jwt none", rt + "auth:\n  a:\n    jwt:\n      jwks_url: https://issuer.example/jwks\n      algorithms: [none] # <-\n", `auth.a.jwt: "none" is never accepted: it means an unsigned token`},
		{"jwt claim to Host", rt + "auth:\n  a:\n    jwt:\n      jwks_url: https://issuer.example/jwks\n      claims_to_headers: # <-\n        sub: Host\n", `auth.a.jwt: "Host" is a header field the proxy owns`},
		{"jwt claim header name", rt + "auth:\n  a:\n    jwt:\n      jwks_url: https://issuer.example/jwks\n      claims_to_headers: # <-\n        sub: \"X User\"\n", `auth.a.jwt: "X User" is not a header name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := parseErrors(t, tt.src)
			line := markedLine(tt.src)
			want := "rampart.yaml:" + strconv.Itoa(line) + ": " + tt.want
			if len(errs) != 1 || errs[0].Error() != want {
				t.Errorf("got %d errors:\n%v\nwant 1:\n%s", len(errs), errs, want)
			}
		})
	}
}

func TestAuthAccepted(t *testing.T) {
	src := lis + ups + "routes:\n  - upstream: app\n    auth: b\n  - upstream: app\n    auth: f\n  - upstream: app\n    auth: j\n" +
		"auth:\n  b:\n    basic:\n      users: {alice: \"" + testBcrypt + "\"}\n" +
		"  f:\n    forward:\n      url: http://127.0.0.1:9091/verify\n      copy_headers: [Remote-User]\n" +
		"  j:\n    jwt:\n      jwks_url: http://127.0.0.1:8000/jwks\n      issuer: https://issuer.example/\n      audience: my-api\n      claims_to_headers: {sub: X-User}\n"
	c, err := Parse([]byte(src), "rampart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"basic realm", c.Auth["b"].Basic.Realm, DefaultAuthRealm},
		{"basic failure limit", c.Auth["b"].Basic.FailureLimit, DefaultBasicFailureLimit},
		{"forward status", c.Auth["f"].Forward.FailureStatus, DefaultForwardFailureStatus},
		{"forward send headers", strings.Join(c.Auth["f"].Forward.SendHeaders, ","), "Cookie,Authorization"},
		{"jwt leeway", c.Auth["j"].JWT.Leeway, Duration(DefaultJWTLeeway)},
		{"jwt algorithms", len(c.Auth["j"].JWT.Algorithms), len(DefaultJWTAlgorithms)},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %v; want %v", tt.name, tt.got, tt.want)
		}
	}
}
