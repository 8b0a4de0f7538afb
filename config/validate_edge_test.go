package config

import (
	"slices"
	"strconv"
	"testing"
)

// TestEdgeErrors has one case per error of the compression, rewrite,
// header edit and mirror checks: each file has exactly one problem, on
// the line marked "# <-".
func TestEdgeErrors(t *testing.T) {
	route := func(extra string) string {
		return lis + ups + "  shadow:\n    targets: [{url: http://127.0.0.1:9001}]\n" + rts + extra
	}
	tests := []struct {
		name string
		src  string
		want string
	}{
		{"bad regex", route("    rewrite:\n      regex:\n        pattern: \"^/u/([0-9]+$\" # <-\n        replacement: /users/$1\n"),
			`routes[0] "route-0": rewrite.regex.pattern "^/u/([0-9]+$" is not a valid RE2 expression: error parsing regexp: missing closing ): ` + "`^/u/([0-9]+$`"},
		{"two rewrites", route("    rewrite: {strip_prefix: /a, replace_prefix: {from: /b, to: /c}} # <-\n"),
			"routes[0] \"route-0\": rewrite takes only one of strip_prefix, replace_prefix or regex"},
		{"empty rewrite", route("    rewrite: {} # <-\n"), "routes[0] \"route-0\": rewrite needs one of strip_prefix, replace_prefix or regex"},
		{"strip without slash", route("    rewrite:\n      strip_prefix: static # <-\n"),
			`routes[0] "route-0": rewrite.strip_prefix "static" must be a path starting with / (no query, no spaces)`},
		{"replace to with query", route("    rewrite:\n      replace_prefix:\n        from: /a\n        to: /b?x=1 # <-\n"),
			`routes[0] "route-0": rewrite.replace_prefix.to "/b?x=1" must be a path starting with / (no query, no spaces)`},
		{"regex replacement not a path", route("    rewrite:\n      regex:\n        pattern: ^/a$\n        replacement: users # <-\n"),
			`routes[0] "route-0": rewrite.regex.replacement "users" must start with / (or with a group that holds it)`},
		{"regex replacement with a space", route("    rewrite:\n      regex:\n        pattern: ^/a$\n        replacement: /a b # <-\n"),
			`routes[0] "route-0": rewrite.regex.replacement "/a b" holds a character not allowed in a path`},
		{"request X-Forwarded-For", route("    request_headers:\n      set:\n        X-Forwarded-For: 1.2.3.4 # <-\n"),
			"routes[0] \"route-0\": request_headers cannot edit X-Forwarded-For: the proxy owns that field"},
		{"request X-Forwarded-Port", route("    request_headers:\n      add: {X-Forwarded-Port: \"1\"} # <-\n"),
			"routes[0] \"route-0\": request_headers cannot edit X-Forwarded-Port: the proxy owns that field"},
		{"request X-Request-Id", route("    request_headers:\n      remove:\n        - x-request-id # <-\n"),
			"routes[0] \"route-0\": request_headers cannot edit x-request-id: the proxy owns that field"},
		{"request Host", route("    request_headers:\n      set:\n        Host: other # <-\n"),
			"routes[0] \"route-0\": request_headers cannot edit Host: the proxy owns that field"},
		{"response Content-Length", route("    response_headers:\n      remove:\n        - Content-Length # <-\n"),
			"routes[0] \"route-0\": response_headers cannot edit Content-Length: the proxy owns that field"},
		{"response Content-Encoding", route("    response_headers:\n      set:\n        Content-Encoding: gzip # <-\n"),
			"routes[0] \"route-0\": response_headers cannot edit Content-Encoding: the proxy owns that field"},
		{"response HSTS with hsts", route("    hsts: true\n    response_headers:\n      set:\n        Strict-Transport-Security: max-age=1 # <-\n"),
			"routes[0] \"route-0\": response_headers cannot edit Strict-Transport-Security: the proxy owns that field"},
		{"bad header name", route("    response_headers:\n      set:\n        \"X Bad\": v # <-\n"),
			`routes[0] "route-0": response_headers: invalid header name "X Bad"`},
		{"control in value", route("    request_headers:\n      set:\n        X-A: \"a\\r\\nb\" # <-\n"),
			"routes[0] \"route-0\": request_headers: the value of X-A holds a control character"},
		{"mirror unknown upstream", route("    mirror:\n      upstream: nowhere # <-\n      percent: 10\n"),
			`routes[0] "route-0": mirror.upstream "nowhere" is not defined`},
		{"mirror without upstream", route("    mirror: # <-\n      percent: 10\n"), "routes[0] \"route-0\": mirror.upstream is required"},
		{"mirror percent", route("    mirror:\n      upstream: shadow\n      percent: 101 # <-\n"), "routes[0] \"route-0\": mirror.percent 101 is out of range (0 to 100)"},
		{"compression level", lis + ups + rts + "compression:\n  gzip_level: 10 # <-\n", "compression: gzip_level 10 is out of range (1 to 9)"},
		{"compression brotli level", lis + ups + rts + "compression:\n  brotli_level: 12 # <-\n", "compression: brotli_level 12 is out of range (1 to 11)"},
		{"compression zstd level", lis + ups + rts + "compression:\n  zstd_level: 23 # <-\n", "compression: zstd_level 23 is out of range (1 to 22)"},
		{"compression encoding", lis + ups + rts + "compression:\n  encodings:\n    - deflate # <-\n", `compression: unknown encoding "deflate" (want gzip, br or zstd)`},
		{"compression encoding twice", lis + ups + rts + "compression:\n  encodings:\n    - gzip\n    - gzip # <-\n", `compression: encoding "gzip" is listed twice`},
		{"compression type", lis + ups + rts + "compression:\n  types:\n    - text # <-\n", `compression: invalid media type "text" (want type/subtype, type/*, or a suffix such as +json)`},
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

func TestEdgeDefaults(t *testing.T) {
	src := lis + ups + "  shadow:\n    targets: [{url: http://127.0.0.1:9001}]\n" + rts +
		"    compress: true\n    mirror: {upstream: shadow, percent: 5}\n    rewrite: {strip_prefix: /s}\ncompression: {}\n"
	c, err := Parse([]byte(src), "rampart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	co := c.Compression
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"min_size", co.MinSize, Size(DefaultCompressMinSize)},
		{"gzip_level", co.GzipLevel, DefaultGzipLevel},
		{"brotli_level", co.BrotliLevel, DefaultBrotliLevel},
		{"zstd_level", co.ZstdLevel, DefaultZstdLevel},
		{"encodings", slices.Equal(co.Encodings, DefaultEncodings), true},
		{"types", slices.Equal(co.Types, DefaultCompressTypes), true},
		{"mirror max_body_size", c.Routes[0].Mirror.MaxBodySize, Size(DefaultMirrorMaxBodySize)},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v; want %v", tc.name, tc.got, tc.want)
		}
	}
}
