package proxy

import (
	"bytes"
	"testing"
)

// TestCORSAllowOrigin: exact origins without regard to case, wildcard
// subdomains (not the apex, not a look-alike, not another port or scheme).
func TestCORSAllowOrigin(t *testing.T) {
	c := &corsPolicy{origins: []string{"https://app.example.com", "http://localhost:3000"},
		wildcards: []corsWildcard{{scheme: "https://", suffix: ".example.net"}, {scheme: "http://", suffix: ".dev.test:8080"}}}
	tests := []struct {
		origin string
		want   bool
	}{
		{"https://app.example.com", true},
		{"HTTPS://APP.EXAMPLE.COM", true},
		{"https://app.example.com:443", false},
		{"http://app.example.com", false},
		{"https://app.example.com.evil", false},
		{"http://localhost:3000", true},
		{"http://localhost:3001", false},
		{"https://a.example.net", true},
		{"https://a.b.example.net", true},
		{"https://example.net", false},
		{"https://.example.net", false},
		{"https://a..example.net", false},
		{"https://evilexample.net", false},
		{"https://a.example.net:8443", false},
		{"https://a/b.example.net", false},
		{"http://x.dev.test:8080", true},
		{"http://x.dev.test", false},
		{"null", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := c.allowOrigin([]byte(tt.origin)); got != tt.want {
			t.Errorf("allowOrigin(%q): got %v; want %v", tt.origin, got, tt.want)
		}
	}
	if !(&corsPolicy{anyOrigin: true}).allowOrigin([]byte("https://anything.example")) {
		t.Error(`"*": got false; want true`)
	}
}

// TestCORSAllowHeaders: a preflight's field list, names compared without
// regard to case; "*" takes any field name but no garbage.
func TestCORSAllowHeaders(t *testing.T) {
	c := &corsPolicy{headers: []string{"content-type", "x-token"}}
	star := &corsPolicy{anyHeader: true}
	tests := []struct {
		name string
		c    *corsPolicy
		list string
		want bool
	}{
		{"empty", c, "", true},
		{"listed", c, "content-type,x-token", true},
		{"listed, spaces and case", c, " Content-Type , X-TOKEN ", true},
		{"one not listed", c, "content-type, x-other", false},
		{"any", star, "x-anything, y", true},
		{"any, but not a name", star, "x-a, b:c", false},
	}
	for _, tt := range tests {
		if got := tt.c.allowHeaders([]byte(tt.list)); got != tt.want {
			t.Errorf("%s: allowHeaders(%q): got %v; want %v", tt.name, tt.list, got, tt.want)
		}
	}
}

// TestAppendVaryOrigin: Origin is added to Vary once, and not to "*".
func TestAppendVaryOrigin(t *testing.T) {
	tests := []struct{ vary, want string }{
		{"", "Origin"},
		{"Accept-Encoding", "Accept-Encoding, Origin"},
		{"accept-encoding, origin", ""},
		{"ORIGIN", ""},
		{"*", ""},
		{"Origins", "Origins, Origin"},
	}
	for _, tt := range tests {
		if got := string(appendVaryOrigin(nil, []byte(tt.vary))); got != tt.want {
			t.Errorf("appendVaryOrigin(%q): got %q; want %q", tt.vary, got, tt.want)
		}
	}
}

// FuzzCORS feeds the CORS checks attacker-chosen Origin,
// Access-Control-Request-Headers and Vary values: no panic, origins
// compared without regard to case, Vary always left covering Origin.
func FuzzCORS(f *testing.F) {
	f.Add("https://app.example.com", "content-type, x-token", "Accept-Encoding")
	f.Add("https://a.b.example.net", "x-a,,x-b", "*")
	f.Add("https://.example.net", " , ", "origin")
	f.Add("null", "x:y", "")
	c := &corsPolicy{origins: []string{"https://app.example.com"},
		wildcards: []corsWildcard{{scheme: "https://", suffix: ".example.net"}}, headers: []string{"content-type", "x-token"}}
	star := &corsPolicy{anyHeader: true}
	f.Fuzz(func(t *testing.T, origin, headers, vary string) {
		ok := c.allowOrigin([]byte(origin))
		upper := []byte(origin)
		for i, b := range upper { // ASCII only: what browsers send
			if b >= 'a' && b <= 'z' {
				upper[i] = b - 'a' + 'A'
			}
		}
		if up := c.allowOrigin(upper); up != ok {
			t.Errorf("allowOrigin(%q) = %v but %v in upper case", origin, ok, up)
		}
		if c.allowHeaders([]byte(headers)) && !star.allowHeaders([]byte(headers)) {
			t.Errorf("allowHeaders(%q): a list policy allows what \"*\" refuses", headers)
		}
		out := appendVaryOrigin(nil, []byte(vary))
		if len(out) == 0 {
			out = []byte(vary) // covered already
		}
		if !bytes.Contains(bytes.ToLower(out), []byte("origin")) && !bytes.Contains(out, []byte("*")) {
			t.Errorf("appendVaryOrigin(%q) = %q: Origin not covered", vary, out)
		}
	})
}
