package waf

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"
)

func forms(v string) []string {
	var e expander
	var out []string
	e.expand(v, func(f string) { out = append(out, f) })
	return out
}

func TestExpandFinds(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString
	for _, tc := range []struct {
		name, in, want string
	}{
		{"url", "%27%20OR%201%3D1--", "' OR 1=1--"},
		{"double url", "%2527%2520OR%25201%253D1", "' OR 1=1"},
		{"iis %u", "%u003cscript%u003e", "<script>"},
		{"overlong utf-8", "%c0%ae%c0%ae%c0%afetc%c0%afpasswd", "../etc/passwd"},
		{"overlong three bytes", "%e0%80%ae%e0%80%ae/etc", "../etc"},
		{"fullwidth", "\uff1cscript\uff1e", "<script>"},
		{"json unicode", `\u003cimg src=x onerror=alert(1)\u003e`, "<img src=x onerror=alert(1)>"},
		{"surrogate pair", `\ud83d\ude00'`, "\U0001F600'"},
		{"js hex", `\x3csvg\x3e`, "<svg>"},
		{"js braces", `\u{3c}svg\u{3e}`, "<svg>"},
		{"html numeric", "&#x3C;script&#x3E;", "<script>"},
		{"html named", "&lt;svg onload=alert(1)&gt;", "<svg onload=alert(1)>"},
		{"html decimal no semicolon", "&#60script&#62", "<script>"},
		{"base64", b64([]byte("' UNION SELECT password FROM users--")), "' UNION SELECT password FROM users--"},
		{"base64 unpadded url alphabet", strings.TrimRight(base64.URLEncoding.EncodeToString([]byte("<script>alert(1)</script>")), "="), "<script>alert(1)</script>"},
		{"base64 of url", b64([]byte("%27%20or%201%3D1")), "' or 1=1"},
		{"base64 of form encoding", b64([]byte("1'+or+'1'='1")), "1' or '1'='1"},
		{"data url", "data:text/html;base64," + b64([]byte("<script>alert(1)</script>")), "<script>alert(1)</script>"},
		{"basic credential", "Basic " + b64([]byte("admin' --:x")), "admin' --:x"},
		{"jwt claims", "eyJhbGciOiJIUzI1NiJ9." + strings.TrimRight(base64.URLEncoding.EncodeToString([]byte(`{"sub":"' or 1=1--"}`)), "=") + ".c2lnbmF0dXJl", `{"sub":"' or 1=1--"}`},
		{"html inside json escape", `\u0026lt;script\u0026gt;`, "<script>"},
		{"html after a kept PI opener", "&lt;?&gt;&lt;script&gt;alert(1)", "&lt;?><script>alert(1)"},
		{"html PI opener, both referenced", "&#60;&#x3f;php", "&#60;?php"},
		{"escapes beside escaped backslashes", `\\\u003cscript\u003e`, `\<script>`},
		{"plus kept beside percent-encoding", "%281%29+(SELECT%201)", "(1)+(SELECT 1)"},
		{"plus as a space beside percent-encoding", "%281%29+(SELECT%201)", "(1) (SELECT 1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := forms(tc.in)
			found := false
			for _, f := range got {
				if strings.Contains(f, tc.want) {
					found = true
				}
			}
			if !found {
				t.Errorf("forms(%q) = %q; want one containing %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestExpandLeavesAlone(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"prose", "Please reset my password, the login page says error 500"},
		{"number", "12345"},
		{"word", "password"},
		{"uuid", "3f2a9c4e-7b1d-4c8e-9a7d-41c83b0f5c2e"},
		{"hex id", "5f2c9a1b7e3d4c6a"},
		{"email", "alice@example.com"},
		{"base64 png", base64.StdEncoding.EncodeToString([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10"))},
		{"random bytes", base64.StdEncoding.EncodeToString([]byte{0x01, 0xfe, 0x33, 0x80, 0x00, 0x9c, 0x10, 0xff, 0x42})},
		{"backslash path", `C:\Program Files\App`},
		{"lone ampersand", "Tom & Jerry"},
		{"escaped backslashes", `\\server\\share\\c`},
		{"html PI opener", "&lt;? should not trigger"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := forms(tc.in); len(got) > 0 {
				t.Errorf("forms(%q) = %q; want none", tc.in, got)
			}
		})
	}
}

func TestExpandBounds(t *testing.T) {
	// Nested encodings stop after maxDecodeDepth decodings.
	v := "<x>"
	for range maxDecodeDepth + 3 {
		v = base64.StdEncoding.EncodeToString([]byte(v))
	}
	if got := forms(v); len(got) > maxDecodeDepth || slices.Contains(got, "<x>") {
		t.Errorf("forms of %d-deep base64 = %q; want at most %d forms, without the innermost", maxDecodeDepth+3, got, maxDecodeDepth)
	}
	// A request's forms are bounded: past the budget the expander says so.
	var e expander
	n := 0
	for i := 0; i < maxExpandForms+10 && !e.over; i++ {
		e.expand("%27", func(string) { n++ })
	}
	if !e.over || n != maxExpandForms {
		t.Errorf("after %d values: over %v, %d forms; want over true, %d forms", maxExpandForms+10, e.over, n, maxExpandForms)
	}
	// A long value is decoded in its first maxDecodeValue bytes only.
	long := strings.Repeat("a", maxDecodeValue) + "%27"
	if got := forms(long); len(got) != 0 {
		t.Errorf("forms of a value with an escape past maxDecodeValue: %d; want 0", len(got))
	}
}

func TestPathSegments(t *testing.T) {
	var got []string
	pathSegments("/api/v1/items;jsessionid=1;sort=%27%20or%201=1/..%2f..%2fetc%2fpasswd/a+b%20c/details?x=1", func(k, v string) {
		if k != "path" {
			t.Errorf("key %q; want path", k)
		}
		got = append(got, v)
	})
	for _, want := range []string{"api", "items;jsessionid=1;sort=' or 1=1", "' or 1=1", "../../etc/passwd", "a+b c", "details"} {
		if !slices.Contains(got, want) {
			t.Errorf("segments %q; want %q among them", got, want)
		}
	}
	if slices.Contains(got, "x=1") {
		t.Errorf("segments %q hold the query", got)
	}
}

func TestGraphQLStrings(t *testing.T) {
	var got []string
	graphqlStrings(`query Q { a(x: "it\"s", y: 3) { b } # "comment"
	c(z: """block "quoted" text""") }`, func(s string) { got = append(got, s) })
	want := []string{`it"s`, `block "quoted" text`}
	if !slices.Equal(got, want) {
		t.Errorf("graphqlStrings = %q; want %q", got, want)
	}
}

func BenchmarkExpandPlain(b *testing.B) {
	var e expander
	b.ReportAllocs()
	for range b.N {
		e.expand("Cotton shirt, machine washable at 30 degrees, in several sizes 42", func(string) {})
	}
}

// TestExpandPlainAllocs: the common value, which no decoder changes, costs
// one scan and no allocation.
func TestExpandPlainAllocs(t *testing.T) {
	var e expander
	add := func(string) { t.Fatal("a plain value has no forms") }
	for _, v := range []string{"Cotton shirt, machine washable at 30 degrees", "12345", "alice@example.com", "red shoes"} {
		if n := testing.AllocsPerRun(100, func() { e.expand(v, add) }); n != 0 {
			t.Errorf("expand(%q): %v allocations; want 0", v, n)
		}
	}
}

// TestDecodeURLKeepPlus: keeping '+' is decoding with every '+' written
// as %2B first (what a path decoder does), except that a value without an
// escape to undo has no such form.
func TestDecodeURLKeepPlus(t *testing.T) {
	for _, s := range []string{"1+(2)%20x", "a+b", "%41+%42", "50%+off", "%2B+", "x%u0041+y", "+%zz", "%c0%ae+"} {
		got, ok := decodeURLKeepPlus(s, 0)
		want, wok := decodeURL(strings.ReplaceAll(s, "+", "%2B"), 0)
		if !strings.Contains(s, "+") {
			wok = false
		}
		if ok && (!wok || got != want) {
			t.Errorf("decodeURLKeepPlus(%q) = %q; want %q", s, got, want)
		}
		if !ok && wok && want != s {
			t.Errorf("decodeURLKeepPlus(%q): no form; want %q", s, want)
		}
	}
}
