package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/rampart-proxy/rampart/config"
)

// TestDocsUpToDate fails when docs/logs.md is not what `go generate
// ./config` writes from config.AccessLogFields.
func TestDocsUpToDate(t *testing.T) {
	want, err := os.ReadFile("../../../docs/logs.md")
	if err != nil {
		t.Fatalf("%v (run: go generate ./config)", err)
	}
	if got := Generate(); !bytes.Equal(got, want) {
		t.Errorf("docs/logs.md is stale; run: go generate ./config")
	}
}

// TestEveryFieldDocumented: each field has a row with its type and a
// sentence, and no name is listed twice.
func TestEveryFieldDocumented(t *testing.T) {
	doc := string(Generate())
	seen := map[string]bool{}
	for _, f := range config.AccessLogFields {
		if seen[f.Name] {
			t.Errorf("%s: listed twice", f.Name)
		}
		seen[f.Name] = true
		if f.Type == "" || !strings.HasSuffix(f.Doc, ".") {
			t.Errorf("%s: type %q, doc %q; want a type and a sentence", f.Name, f.Type, f.Doc)
		}
		if !strings.Contains(doc, "| `"+f.Name+"` | "+f.Type+" | ") {
			t.Errorf("%s: no row in the reference", f.Name)
		}
	}
}
