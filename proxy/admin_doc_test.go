package proxy

import (
	"os"
	"regexp"
	"slices"
	"testing"
)

// TestAdminAPIDocumented keeps docs/admin-api.md and the admin mux in step:
// every endpoint registered in admin.go has a "### `METHOD /path`" section,
// and every such section names an endpoint that exists.
func TestAdminAPIDocumented(t *testing.T) {
	src, err := os.ReadFile("admin.go")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../docs/admin-api.md")
	if err != nil {
		t.Fatal(err)
	}
	registered := submatches(regexp.MustCompile(`mux\.Handle(?:Func)?\("([A-Z]+ /[^"]*)"`), src)
	documented := submatches(regexp.MustCompile("(?m)^### `([A-Z]+ /[^`]*)`"), doc)
	if len(registered) < 6 {
		t.Fatalf("found %d endpoints in admin.go (%v); the pattern no longer reads it", len(registered), registered)
	}
	for _, e := range registered {
		if !slices.Contains(documented, e) {
			t.Errorf("endpoint %q is registered but has no section in docs/admin-api.md", e)
		}
	}
	for _, e := range documented {
		if !slices.Contains(registered, e) {
			t.Errorf("docs/admin-api.md documents %q, which admin.go does not register", e)
		}
	}
}

func submatches(re *regexp.Regexp, b []byte) []string {
	var out []string
	for _, m := range re.FindAllSubmatch(b, -1) {
		out = append(out, string(m[1]))
	}
	return out
}
