package proxy

import (
	"bytes"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestNormalizePath(t *testing.T) {
	const bad = "(400)"
	cases := []struct {
		name, raw, want string // want: the normal form, or bad
	}{
		{"root", "/", "/"},
		{"plain", "/api/v1/items", "/api/v1/items"},
		{"trailing slash kept", "/api/", "/api/"},
		{"encoded dots resolved", "/api/%2e%2e/users", "/users"},
		{"encoded dots upper case", "/api/%2E%2E/users", "/users"},
		{"one encoded dot", "/api/.%2e/users", "/users"},
		{"encoded slash separates", "/api/x%2F..%2Fadmin", "/api/admin"},
		{"encoded slash lower case", "/api/..%2fusers", "/users"},
		{"encoded slash alone", "/api%2Fadmin", "/api/admin"},
		{"backslash separates", `/api\..\admin`, "/admin"},
		{"encoded backslash separates", "/api/..%5cadmin", "/admin"},
		{"encoded backslash upper case", "/api%5C..%5Cadmin", "/admin"},
		{"slashes merged", "/a//b///c", "/a/b/c"},
		{"leading slashes merged", "//admin/x", "/admin/x"},
		{"dot removed", "/a/./b", "/a/b"},
		{"final dot leaves the slash", "/a/.", "/a/"},
		{"final dot-dot leaves the slash", "/a/b/..", "/a/"},
		{"never above the root", "/../../etc/passwd", "/etc/passwd"},
		{"dot-dot at the root", "/..", "/"},
		{"three dots are a name", "/a/.../b", "/a/.../b"},
		{"dot in a name", "/a/.well-known/b", "/a/.well-known/b"},
		{"dots in a name", "/a/..b/c..", "/a/..b/c.."},
		{"encoded unreserved decoded", "/%41%62c%7Euser%2D%5F", "/Abc~user-_"},
		{"encoded dot in a name decoded", "/get/dump%2Erdb", "/get/dump.rdb"},
		{"reserved escapes kept", "/a%3Fb%23c%3Bd%20e", "/a%3Fb%23c%3Bd%20e"},
		{"utf-8 escapes kept as sent", "/caf%c3%a9", "/caf%c3%a9"},
		{"encoded percent kept", "/a/100%25/%2541", "/a/100%25/%2541"},
		{"double-encoded dot", "/a/%252e%252e/b", bad},
		{"double-encoded slash", "/a%252Fb", bad},
		{"double-encoded backslash", "/a%255cb", bad},
		{"triple-encoded dot", "/a/%25252E", bad},
		{"double-encoded NUL", "/a%2500", bad},
		{"matrix parameters on a name kept", "/api;jsessionid=1/x", "/api;jsessionid=1/x"},
		{"dot-dot with parameters", "/api/..;/admin", bad},
		{"dot with parameters", "/api/.;x/admin", bad},
		{"encoded dot-dot with parameters", "/api/%2e%2e;/admin", bad},
		{"encoded NUL", "/a%00b", bad},
		{"invalid escape", "/a%zz", bad},
		{"truncated escape", "/a%4", bad},
		{"relative path rooted", "a/../b", "/b"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, ok := normalizePath(nil, []byte(tc.raw))
			got := string(out)
			if !ok {
				got = bad
			}
			if got != tc.want {
				t.Errorf("normalizePath(%q): got %q; want %q", tc.raw, got, tc.want)
			}
		})
	}
}

func TestPathAmbiguous(t *testing.T) {
	cases := []struct {
		raw  string
		want bool
	}{
		{"/", false},
		{"/api/v1/items", false},
		{"/a%20b/caf%C3%A9", false},
		{"/%41bc", false},
		{"/api;jsessionid=1/x", false},
		{"/.well-known/acme-challenge/x", false},
		{"/a/.../b", false},
		{"/a%25", false},
		{"/a%25zz", false},
		{"/a%2541", true},
		{"*", false},
		{"/api/%2e%2e/users", true},
		{"/get/dump%2Erdb", true},
		{"/a%2Fb", true},
		{"/a%2fb", true},
		{"/a%5cb", true},
		{`/a\b`, true},
		{"/a%00", true},
		{"/a/%252e%252e/b", true},
		{"/a//b", true},
		{"/a/./b", true},
		{"/a/../b", true},
		{"/a/..", true},
		{"/a/..;/b", true},
		{"/a/.;/b", true},
		{"/a%zz", true},
		{"a/b", true},
	}
	for _, tc := range cases {
		if got := pathAmbiguous([]byte(tc.raw)); got != tc.want {
			t.Errorf("pathAmbiguous(%q): got %v; want %v", tc.raw, got, tc.want)
		}
	}
}

// TestPathAllocs holds the path check of a path that needs no change, and
// the normalizing of one that does, to zero allocations.
func TestPathAllocs(t *testing.T) {
	clean := []byte("/api/v1/items/12345")
	dirty := []byte("/api/v1/%2e%2e/items//12345")
	dst := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() {
		if pathNeedsLook(clean) || pathAmbiguous(clean) {
			t.Fatal("clean path needs a look")
		}
		dst, _ = normalizePath(dst[:0], dirty)
	}); n != 0 {
		t.Errorf("allocs per path check: got %v; want 0", n)
	}
}

// refNormalize is normalizePath written another way: strings, split and a
// stack. It returns "" for a path without a normal form.
func refNormalize(raw string) string {
	// Decode the escapes of unreserved characters and separators; keep
	// the others as sent.
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c == '%' {
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return ""
			}
			d := unhex(raw[i+1])<<4 | unhex(raw[i+2])
			switch {
			case d == 0:
				return ""
			case d == '%':
				rest := raw[i+3:]
				for strings.HasPrefix(rest, "25") {
					rest = rest[2:]
				}
				for _, e := range []string{"2e", "2f", "5c", "00"} {
					if len(rest) >= 2 && strings.EqualFold(rest[:2], e) {
						return ""
					}
				}
				b.WriteString(raw[i : i+3])
			case d == '/' || d == '\\':
				b.WriteByte('/')
			case isUnreserved(d):
				b.WriteByte(d)
			default:
				b.WriteString(raw[i : i+3])
			}
			i += 2
			continue
		}
		if c == '\\' {
			c = '/'
		}
		b.WriteByte(c)
	}
	segs := strings.Split(b.String(), "/")
	var stack []string
	for i, s := range segs {
		last := i == len(segs)-1
		switch {
		case s == "" || s == ".":
			if last {
				stack = append(stack, "")
			}
		case s == "..":
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			if last {
				stack = append(stack, "")
			}
		case strings.HasPrefix(s, ".;") || strings.HasPrefix(s, "..;"):
			return ""
		default:
			stack = append(stack, s)
		}
	}
	return "/" + strings.Join(stack, "/")
}

// decodeOnce decodes every valid escape of p, as fasthttp's URI.Path does.
func decodeOnce(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]) {
			b.WriteByte(unhex(p[i+1])<<4 | unhex(p[i+2]))
			i += 2
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// FuzzNormalizePath checks the path handling of every mode on arbitrary
// paths: normalizePath agrees with a reference, its result is its own normal
// form and holds nothing upstreams read differently, decoding it gives what
// the router matches (fasthttp's URI.Path of it), a path that needs no look
// is left as it is, and a path the reject mode lets through keeps its
// meaning when normalized.
func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/", "/api/v1", "/api/%2e%2e/users", "/a//b", `/a\..\b`, "/a/..;/b", "/a%2F..%2Fb",
		"/a%252e", "/a%00", "/a%zz", "a/b", "*", "/a/b/..", "/.", "/%2e", "/a;b/.;c", "/caf%C3%A9/%20"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		out, ok := normalizePath(nil, []byte(raw))
		want := refNormalize(raw)
		if len(raw) == 0 {
			want = "/"
		}
		if ok != (want != "") || (ok && string(out) != want) {
			t.Fatalf("normalizePath(%q) = %q, %v; want %q (reference)", raw, out, ok, want)
		}
		if !pathNeedsLook([]byte(raw)) && len(raw) > 0 && raw != "*" {
			if !ok || string(out) != raw {
				t.Fatalf("normalizePath(%q) = %q, %v; want the path unchanged (it needs no look)", raw, out, ok)
			}
			if pathAmbiguous([]byte(raw)) {
				t.Fatalf("pathAmbiguous(%q) = true for a path that needs no look", raw)
			}
		}
		if !ok {
			return
		}
		n := string(out)
		if n[0] != '/' || strings.Contains(n, "//") || strings.Contains(n, `\`) {
			t.Fatalf("normalizePath(%q) = %q; want a rooted path without // or \\", raw, n)
		}
		for _, seg := range strings.Split(n, "/") {
			if seg == "." || seg == ".." || strings.HasPrefix(seg, ".;") || strings.HasPrefix(seg, "..;") {
				t.Fatalf("normalizePath(%q) = %q; holds the dot segment %q", raw, n, seg)
			}
		}
		for _, esc := range []string{"%2e", "%2f", "%5c", "%00"} {
			if strings.Contains(strings.ToLower(n), esc) {
				t.Fatalf("normalizePath(%q) = %q; holds %s", raw, n, esc)
			}
		}
		if again, ok := normalizePath(nil, out); !ok || !bytes.Equal(again, out) {
			t.Fatalf("normalizePath(%q) = %q, %v; want the normal form unchanged", n, again, ok)
		}
		if pathAmbiguous(out) && !strings.Contains(n, "%25") { // double encoding stays in a normal form
			t.Fatalf("pathAmbiguous(%q) = true for a normal form", n)
		}
		var u fasthttp.URI
		u.SetPathBytes(out)
		if got := string(u.Path()); got != decodeOnce(n) {
			t.Fatalf("fasthttp Path of %q = %q; want it decoded once, %q", n, got, decodeOnce(n))
		}
		if raw != "" && raw[0] == '/' && !pathAmbiguous([]byte(raw)) && decodeOnce(n) != decodeOnce(raw) {
			t.Fatalf("normalizePath(%q) = %q: decoded %q; want %q, as the path reject mode forwards", raw, n, decodeOnce(n), decodeOnce(raw))
		}
	})
}

func TestAppendWithoutParams(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/", "/"},
		{"/a/b", "/a/b"},
		{"/a;x/b", "/a/b"},
		{"/a;x=1;y/b;z", "/a/b"},
		{"/a;/b/", "/a/b/"},
		{";x", ""},
		{"/a/b;", "/a/b"},
		{"/;x/;y", "//"},
	} {
		if got := string(appendWithoutParams(nil, []byte(tc.in))); got != tc.want {
			t.Errorf("appendWithoutParams(%q): got %q; want %q", tc.in, got, tc.want)
		}
	}
}
