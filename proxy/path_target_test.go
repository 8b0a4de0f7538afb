package proxy

import "testing"

func TestNormalizedTarget(t *testing.T) {
	cases := []struct {
		name, raw, query string
		want             string
		ok               bool
	}{
		{"normal", "/api/v1/items", "q=1", "", true},
		{"dot segments", "/api/v1/items/../../admin", "q=1", "/api/admin?q=1", true},
		{"encoded slash", "/a%2fb", "", "/a/b", true},
		{"backslash", `/a\b`, "", "/a/b", true},
		{"encoded NUL", "/a%00b", "", "", false},
		{"dot segment with parameters", "/a/..;x=1/b", "", "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := NormalizedTarget([]byte(c.raw), []byte(c.query))
			if string(got) != c.want || ok != c.ok {
				t.Errorf("NormalizedTarget(%q, %q) = %q, %v; want %q, %v", c.raw, c.query, got, ok, c.want, c.ok)
			}
		})
	}
}
