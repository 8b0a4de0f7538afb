package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestDocsUpToDate fails when docs/config.md is not what `go generate
// ./config` writes from the current source.
func TestDocsUpToDate(t *testing.T) {
	got, err := Generate("../..")
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	want, err := os.ReadFile("../../../docs/config.md")
	if err != nil {
		t.Fatalf("%v (run: go generate ./config)", err)
	}
	if !bytes.Equal(got, want) {
		n, g, w := diffLine(got, want)
		t.Errorf("docs/config.md is stale; run: go generate ./config\nfirst difference at line %d:\ngenerated: %s\n  on disk: %s", n, g, w)
	}
}

// diffLine returns the first line where a and b differ.
func diffLine(a, b []byte) (n int, la, lb string) {
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return i + 1, x, y
		}
	}
	return 0, "", ""
}

// TestEveryFieldDocumented lists what the reference shows: every YAML
// field of every section, with a type, and a default taken from the code
// where ApplyDefaults sets one.
func TestEveryFieldDocumented(t *testing.T) {
	p, err := load("../..")
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	var w writer
	p.write(&w)
	doc := w.String()
	for _, s := range p.walk() {
		for _, f := range p.fields(s.name) {
			if !strings.Contains(doc, "`"+f.yaml+"`") && !strings.Contains(doc, "["+f.yaml+"]") {
				t.Errorf("%s.%s: not in the reference", s.title(), f.yaml)
			}
			if f.doc == "" {
				// Reported, not failed: the doc comments belong to the config package.
				t.Logf("%s.%s has no doc comment in config/types.go", s.title(), f.yaml)
			}
		}
	}
	for _, row := range []string{
		"`read_header_timeout` | [duration](#duration) | `10s`",
		"`max_header_bytes` | [size](#size) | `16KiB`",
		"`balancer` | string | `round_robin`",
		"`expected_statuses` | list of strings | `[200-399]`",
		"`grace_period` | [duration](#duration) | `30s`",
		"`address` | string | required",
		"`burst` | integer | the rate's N",
	} {
		if !strings.Contains(doc, row) {
			t.Errorf("reference lacks the row %q", row)
		}
	}
}
