package config

import (
	"strconv"
	"testing"
)

// TestAccessErrors: each file has one problem with an IP list, a CORS
// policy or proxy_protocol, on the line marked "# <-".
func TestAccessErrors(t *testing.T) {
	cors := func(body string) string { return lis + ups + rts + "cors:\n  web:\n" + body }
	tests := []struct {
		name string
		src  string
		want string
	}{
		{"allow not a CIDR", lis + ups + "routes:\n  - upstream: app\n    allow:\n      - 10.0.0.0/8\n      - 10.0.0.0/33 # <-\n", `routes[0].allow[1]: "10.0.0.0/33" is neither a CIDR nor an IP address`},
		{"deny not an address", lis + ups + "routes:\n  - upstream: app\n    deny:\n      - example.com # <-\n", `routes[0].deny[0]: "example.com" is neither a CIDR nor an IP address`},
		{"undefined CORS policy", lis + ups + "routes:\n  - upstream: app\n    cors: nope # <-\n", `routes[0] "route-0": CORS policy "nope" is not defined`},
		{"proxy_protocol without trusted", "listeners:\n  web:\n    address: \":8080\"\n    proxy_protocol: {} # <-\n" + ups + rts, "listeners.web.proxy_protocol: trusted is required: the peers (addresses or CIDRs) that send the PROXY header"},
		{"proxy_protocol bad trusted", "listeners:\n  web:\n    address: \":8080\"\n    proxy_protocol:\n      trusted:\n        - 10.0.0.0/8\n        - lb.internal # <-\n" + ups + rts, `listeners.web.proxy_protocol.trusted[1]: "lb.internal" is neither a CIDR nor an IP address`},
		{"CORS without origins", lis + ups + rts + "cors:\n  web: # <-\n    allow_methods: [GET]\n", "cors.web: allow_origins is required"},
		{"CORS wildcard with credentials", cors("    allow_credentials: true\n    allow_origins:\n      - \"*\" # <-\n"), `cors.web.allow_origins[0]: "*" is not allowed with allow_credentials: list the origins`},
		{"CORS origin with a path", cors("    allow_origins:\n      - https://app.example.com/ # <-\n"), `cors.web.allow_origins[0]: "https://app.example.com/" is not an origin: an origin has no path, query, user or trailing slash`},
		{"CORS origin without scheme", cors("    allow_origins:\n      - app.example.com # <-\n"), `cors.web.allow_origins[0]: "app.example.com" is not an origin: want scheme://host[:port]`},
		{"CORS origin bad port", cors("    allow_origins:\n      - https://app.example.com:0 # <-\n"), `cors.web.allow_origins[0]: "https://app.example.com:0" is not an origin: invalid port`},
		{"CORS origin wildcard in the middle", cors("    allow_origins:\n      - https://app.*.example.com # <-\n"), `cors.web.allow_origins[0]: "https://app.*.example.com" is not an origin: invalid host`},
		{"CORS null origin", cors("    allow_origins:\n      - \"null\" # <-\n"), `cors.web.allow_origins[0]: "null" is not an origin: want scheme://host[:port]`},
		{"CORS bad method", cors("    allow_origins: [https://a.example]\n    allow_methods:\n      - \"GET POST\" # <-\n"), `cors.web.allow_methods[0]: "GET POST" is not a method`},
		{"CORS * among headers", cors("    allow_origins: [https://a.example]\n    allow_headers:\n      - X-A\n      - \"*\" # <-\n"), `cors.web.allow_headers[1]: "*" is not a header field name (or "*" alone)`},
		{"CORS bad expose header", cors("    allow_origins: [https://a.example]\n    expose_headers:\n      - \"X:Y\" # <-\n"), `cors.web.expose_headers[0]: "X:Y" is not a header field name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := parseErrors(t, tt.src)
			line := markedLine(tt.src)
			want := "rampart.yaml: " + tt.want
			if line > 0 {
				want = "rampart.yaml:" + strconv.Itoa(line) + ": " + tt.want
			}
			if len(errs) != 1 || errs[0].Error() != want {
				t.Errorf("got %d errors:\n%v\nwant 1:\n%s", len(errs), errs, want)
			}
		})
	}
}

// TestAccessValid: the forms the access settings accept.
func TestAccessValid(t *testing.T) {
	src := "listeners:\n  web:\n    address: \":8080\"\n    proxy_protocol: {trusted: [10.0.0.0/8, 192.0.2.1, \"2001:db8::/32\"]}\n" + ups +
		"routes:\n  - upstream: app\n    allow: [10.0.0.0/8, 192.0.2.7, \"::1\", \"2001:db8::/48\"]\n    deny: [10.9.0.0/16]\n    cors: web\n" +
		"cors:\n  web:\n    allow_origins: [\"https://app.example.com\", \"http://localhost:3000\", \"https://*.example.net\", \"http://[::1]:8080\"]\n" +
		"    allow_methods: [GET, PATCH]\n    allow_headers: [Content-Type]\n    expose_headers: [X-Total]\n    allow_credentials: true\n    max_age: 10m\n" +
		"  open:\n    allow_origins: [\"*\"]\n    allow_headers: [\"*\"]\n"
	if _, err := Parse([]byte(src), "rampart.yaml"); err != nil {
		t.Fatalf("Parse: %v", err)
	}
}

// TestParseOrigin: the normal form of allowed origins.
func TestParseOrigin(t *testing.T) {
	tests := []struct {
		in, want string
		wildcard bool
	}{
		{"https://App.Example.com", "https://app.example.com", false},
		{"http://localhost:3000", "http://localhost:3000", false},
		{"https://*.Example.net:8443", "https://.example.net:8443", true},
		{"http://[::1]:8080", "http://[::1]:8080", false},
		{"http://192.0.2.1", "http://192.0.2.1", false},
	}
	for _, tt := range tests {
		got, wildcard, err := ParseOrigin(tt.in)
		if err != "" || got != tt.want || wildcard != tt.wildcard {
			t.Errorf("ParseOrigin(%q): got %q, %v, %q; want %q, %v, \"\"", tt.in, got, wildcard, err, tt.want, tt.wildcard)
		}
	}
}
