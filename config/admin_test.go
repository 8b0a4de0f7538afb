package config

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// adminFile is a valid file but for its admin section.
func adminFile(admin string) string {
	return admin + lis + ups + rts
}

// TestAdminRefused covers the ways an admin section would fail open: each
// is one error on the line marked "# <-".
func TestAdminRefused(t *testing.T) {
	const notLoopback = ` is not a loopback address, and no admin.token is set`
	tests := []struct {
		name, admin string
		env         map[string]string
		want        string // the message after "rampart.yaml:LINE: "
	}{
		{"token from an empty variable", "admin:\n  token: ${RAMPART_TEST_EMPTY} # <-\n", nil,
			`admin.token: "${RAMPART_TEST_EMPTY}" expands to an empty string, which would turn authentication off; set a token, or remove the key to serve without one on a loopback address`},
		{"token from two empty variables", "admin:\n  address: 127.0.0.1:9901\n  token: \"${RAMPART_TEST_EMPTY}${RAMPART_TEST_EMPTY}\" # <-\n", nil,
			`admin.token: "${RAMPART_TEST_EMPTY}${RAMPART_TEST_EMPTY}" expands to an empty string`},
		{"token empty string", "admin:\n  token: \"\" # <-\n", nil, `admin.token: is empty, which would turn authentication off`},
		{"token null", "admin:\n  token: # <-\n  address: 127.0.0.1:9901\n", nil, `admin.token: is empty, which would turn authentication off`},
		{"token empty on the network", "admin:\n  address: 0.0.0.0:9901\n  token: ${RAMPART_TEST_EMPTY} # <-\n", nil, `admin.token: "${RAMPART_TEST_EMPTY}" expands to an empty string`},
		{"token with a trailing newline", "admin:\n  token: ${RAMPART_TEST_NEWLINE} # <-\n", map[string]string{"RAMPART_TEST_NEWLINE": "s3cret\n"},
			`admin.token: begins or ends with white space (a secret file's trailing newline?); a client's bearer token never matches it`},
		{"token with a control character", "admin:\n  token: \"a\\x01b\" # <-\n", nil, `admin.token: contains a control character, which an HTTP header cannot carry`},
		{"any address", "admin:\n  address: 0.0.0.0:9901 # <-\n", nil, `admin.address: "0.0.0.0:9901"` + notLoopback},
		{"any IPv6 address", "admin:\n  address: \"[::]:9901\" # <-\n", nil, `admin.address: "[::]:9901"` + notLoopback},
		{"port only", "admin:\n  address: \":9901\" # <-\n", nil, `admin.address: ":9901"` + notLoopback},
		{"private IP", "admin:\n  address: 10.1.2.3:9901 # <-\n", nil, `admin.address: "10.1.2.3:9901"` + notLoopback},
		{"public IPv6", "admin:\n  address: \"[2001:db8::1]:9901\" # <-\n", nil, `admin.address: "[2001:db8::1]:9901"` + notLoopback},
		{"link-local IPv6", "admin:\n  address: \"[fe80::1]:9901\" # <-\n", nil, `admin.address: "[fe80::1]:9901"` + notLoopback},
		{"host name", "admin:\n  address: rampart-admin.internal:9901 # <-\n", nil, `admin.address: "rampart-admin.internal:9901"` + notLoopback},
		{"a name under localhost", "admin:\n  address: evil.localhost:9901 # <-\n", nil, `admin.address: "evil.localhost:9901"` + notLoopback},
		{"address from a variable", "admin:\n  address: ${RAMPART_TEST_ADDR} # <-\n", map[string]string{"RAMPART_TEST_ADDR": "0.0.0.0:9901"}, `admin.address: "0.0.0.0:9901"` + notLoopback},
		{"allow false written", "admin:\n  address: 0.0.0.0:9901 # <-\n  allow_unauthenticated: false\n", nil, `admin.address: "0.0.0.0:9901"` + notLoopback},
		{"token and allow", "admin:\n  address: 0.0.0.0:9901\n  token: t\n  allow_unauthenticated: true # <-\n", nil, `admin.allow_unauthenticated: set token or allow_unauthenticated, not both`},
		{"host with a port", "admin:\n  hosts: [\"rampart:9901\"] # <-\n", nil, `admin.hosts[0]: invalid host "rampart:9901" (want a DNS name or an IP, without a port)`},
		{"host with a scheme", "admin:\n  hosts:\n    - ok.example\n    - http://rampart # <-\n", nil, `admin.hosts[1]: invalid host "http://rampart" (want a DNS name or an IP, without a port)`},
		{"host empty", "admin:\n  hosts: [\"\"] # <-\n", nil, `admin.hosts[0]: invalid host "" (want a DNS name or an IP, without a port)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("RAMPART_TEST_EMPTY", "")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			src := adminFile(tt.admin)
			errs := parseErrors(t, src)
			line := markedLine(src)
			want := "rampart.yaml:" + strconv.Itoa(line) + ": " + tt.want
			if len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), want) {
				t.Errorf("got %d errors:\n%v\nwant 1 beginning:\n%s", len(errs), errs, want)
			}
			for _, v := range tt.env {
				if strings.Contains(errs.Error(), strings.TrimSpace(v)) && strings.Contains(tt.admin, "token") {
					t.Errorf("the error shows the token: %v", errs)
				}
			}
		})
	}
}

// TestAdminAccepted: loopback addresses need no token; any address may
// have one; the opt-out is accepted when written.
func TestAdminAccepted(t *testing.T) {
	tests := []struct {
		name, admin string
		loopback    bool
	}{
		{"default address", "admin: {}\n", true},
		{"token omitted", "admin:\n  address: 127.0.0.1:9901\n", true},
		{"other loopback IPv4", "admin:\n  address: 127.0.0.2:9901\n", true},
		{"loopback IPv6", "admin:\n  address: \"[::1]:9901\"\n", true},
		{"mapped loopback", "admin:\n  address: \"[::ffff:127.0.0.1]:9901\"\n", true},
		{"localhost", "admin:\n  address: localhost:9901\n", true},
		{"localhost upper case", "admin:\n  address: LOCALHOST:9901\n", true},
		{"any address with a token", "admin:\n  address: 0.0.0.0:9901\n  token: ${RAMPART_TEST_TOKEN}\n", false},
		{"name with a token", "admin:\n  address: rampart:9901\n  token: t0k\n  hosts: [rampart, Rampart.Example., 10.0.0.1]\n", false},
		{"opt-out", "admin:\n  address: 0.0.0.0:9901\n  allow_unauthenticated: true\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("RAMPART_TEST_TOKEN", "from-env")
			c, err := Parse([]byte(adminFile(tt.admin)), "rampart.yaml")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := c.Admin.Loopback(); got != tt.loopback {
				t.Errorf("Loopback() = %v; want %v", got, tt.loopback)
			}
		})
	}
}

// secretWords are parts of a field's name that suggest it holds a secret.
var secretWords = []string{
	"password", "passwd", "pass", "secret", "token", "key", "credential", "cred", "auth",
	"header", "user", "private", "hmac", "eab", "salt", "signature", "cookie", "session",
	"bearer", "pem", "dsn",
}

// notSecret lists the fields whose name suggests a secret but that were
// reviewed and hold none, each with the reason.
var notSecret = map[string]string{
	"Certificate.KeyFile":     "a path; the key stays in the file",
	"UpstreamTLS.KeyFile":     "a path; the key stays in the file",
	"RedisTLS.KeyFile":        "a path; the key stays in the file",
	"ACME.EncryptionKeyFile":  "a path; the key stays in the file",
	"Redis.KeyPrefix":         "the prefix of Redis keys",
	"Upstream.HashKey":        "what is hashed (header:NAME), not a value",
	"RateLimit.Key":           "what is counted (header:NAME), not a value",
	"ListenerTLS.ClientAuth":  "require or verify_if_given",
	"Sticky.Cookie":           "the cookie's name",
	"Route.Auth":              "the name of an auth policy",
	"BasicAuth.UsersFile":     "a path; the hashes stay in the file",
	"ForwardAuth.CopyHeaders": "header names",
	"ForwardAuth.SendHeaders": "header names",
	"JWTAuth.Cookie":          "the cookie's name",
	"JWTAuth.ClaimsToHeaders": "claim and header names",
	"CORS.AllowHeaders":       "header names",
	"CORS.ExposeHeaders":      "header names",
}

// TestSecretFieldsMarked walks every type of the file and fails on a field
// that bears strings, whose name suggests a secret, and that is neither
// marked redact:"true" nor reviewed in notSecret: the admin API's config
// dump hides exactly the marked fields (and URL user info anywhere), so an
// unmarked secret would show.
func TestSecretFieldsMarked(t *testing.T) {
	seen := map[reflect.Type]bool{}
	reviewed := map[string]bool{}
	var walk func(typ reflect.Type)
	walk = func(typ reflect.Type) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map || typ.Kind() == reflect.Array {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || seen[typ] {
			return
		}
		seen[typ] = true
		for i := range typ.NumField() {
			f := typ.Field(i)
			yamlName, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || yamlName == "-" {
				continue
			}
			walk(f.Type)
			id := typ.Name() + "." + f.Name
			if !bearsStrings(f.Type) {
				continue
			}
			name := strings.ToLower(f.Name + " " + yamlName)
			for _, w := range secretWords {
				if !strings.Contains(name, w) {
					continue
				}
				if _, ok := notSecret[id]; ok {
					reviewed[id] = true
				} else if !Secret(f) {
					t.Errorf("%s (yaml %q) looks like a secret (%q): mark it `redact:\"true\"`, or list it in notSecret with the reason it holds none", id, yamlName, w)
				}
				break
			}
		}
	}
	walk(reflect.TypeFor[Config]())
	for id := range notSecret {
		if !reviewed[id] {
			t.Errorf("notSecret lists %s, which no longer exists or no longer looks like a secret", id)
		}
	}
	// The known secrets are marked.
	for _, f := range []struct {
		typ   reflect.Type
		field string
	}{
		{reflect.TypeFor[Admin](), "Token"},
		{reflect.TypeFor[Redis](), "Password"},
		{reflect.TypeFor[Redis](), "Username"},
		{reflect.TypeFor[Match](), "Headers"},
		{reflect.TypeFor[WAFPolicy](), "Rules"},
	} {
		sf, ok := f.typ.FieldByName(f.field)
		if !ok || !Secret(sf) {
			t.Errorf("%v.%s: got not marked secret; want redact:\"true\"", f.typ, f.field)
		}
	}
}

// bearsStrings reports whether values of typ hold text or bytes (a string,
// []byte, or lists and maps of them), the forms a secret takes.
func bearsStrings(typ reflect.Type) bool {
	switch typ.Kind() {
	case reflect.String:
		return true
	case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
		return bearsStrings(typ.Elem()) || typ.Elem().Kind() == reflect.Uint8
	}
	return false
}
