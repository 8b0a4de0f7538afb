package proxy

import (
	"math"
	"testing"
)

func TestCutSegmentPrefix(t *testing.T) {
	for _, tc := range []struct {
		name, path, prefix, rest string
		ok                       bool
	}{
		{"whole path", "/api", "/api", "", true},
		{"segment", "/api/x", "/api", "/x", true},
		{"not a segment boundary", "/apix", "/api", "", false},
		{"prefix with slash", "/api/x", "/api/", "x", true},
		{"other path", "/web/x", "/api", "", false},
		{"shorter path", "/ap", "/api", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rest, ok := cutSegmentPrefix([]byte(tc.path), []byte(tc.prefix))
			if ok != tc.ok || string(rest) != tc.rest {
				t.Errorf("cutSegmentPrefix(%q, %q) = %q, %v; want %q, %v", tc.path, tc.prefix, rest, ok, tc.rest, tc.ok)
			}
		})
	}
}

func TestValidOriginPath(t *testing.T) {
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"/", true}, {"/a/b;c=d/%20e", true}, {"/users/42", true},
		{"", false}, {"users", false}, {"/a?b", false}, {"/a#b", false}, {"/a b", false},
		{"/a%2", false}, {"/a%zz", false}, {"/a\x00", false}, {"/a\r\nX: y", false},
	} {
		if got := validOriginPath([]byte(tc.path)); got != tc.want {
			t.Errorf("validOriginPath(%q) = %v; want %v", tc.path, got, tc.want)
		}
	}
}

// TestMirrorChosen checks the share of requests copied with an injected
// source of randomness.
func TestMirrorChosen(t *testing.T) {
	for _, tc := range []struct {
		name   string
		all    bool
		below  uint64
		draw   uint64
		chosen bool
	}{
		{"percent 100", true, 0, math.MaxUint64, true},
		{"under the share", false, math.MaxUint64 / 10, math.MaxUint64/10 - 1, true},
		{"at the share", false, math.MaxUint64 / 10, math.MaxUint64 / 10, false},
		{"above the share", false, math.MaxUint64 / 10, math.MaxUint64 / 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &mirror{all: tc.all, below: tc.below, rnd: func() uint64 { return tc.draw }}
			if got := m.chosen(); got != tc.chosen {
				t.Errorf("chosen() = %v; want %v", got, tc.chosen)
			}
		})
	}
}

func TestAbsolutePrefix(t *testing.T) {
	for _, tc := range []struct{ uri, want string }{
		{"/a/b?c", ""},
		{"http://host:8080/a?b", "http://host:8080"},
		{"https://host?x", "https://host"},
		{"http://host", "http://host"},
		{"*", ""},
		{"", ""},
	} {
		if got := absolutePrefix([]byte(tc.uri)); string(got) != tc.want {
			t.Errorf("absolutePrefix(%q) = %q; want %q", tc.uri, got, tc.want)
		}
	}
}
