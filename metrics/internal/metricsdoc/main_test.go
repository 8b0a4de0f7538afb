package main

import (
	"bytes"
	"os"
	"testing"
)

// TestDocUpToDate fails when docs/metrics.md's reference table differs from
// what the code registers: run `go generate ./metrics`.
func TestDocUpToDate(t *testing.T) {
	const path = "../../../docs/metrics.md"
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Replace(doc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(doc, want) {
		t.Errorf("%s is stale: run go generate ./metrics", path)
	}
}

// TestFamilies checks the reading of descriptors on families whose parts
// are known.
func TestFamilies(t *testing.T) {
	fams, err := Families()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Family{}
	for _, f := range fams {
		byName[f.Name] = f
	}
	for _, tt := range []struct {
		name, typ, labels string
	}{
		{"rampart_requests_total", "counter", "route,code"},
		{"rampart_request_duration_seconds", "histogram", "route"},
		{"rampart_upstream_target_healthy", "gauge", "upstream,target"},
		{"rampart_upstream_retries_total", "counter", "upstream,target,reason"},
		{"rampart_waf_buffer_bytes", "gauge", ""},
	} {
		f, ok := byName[tt.name]
		if !ok {
			t.Errorf("%s: missing", tt.name)
			continue
		}
		if f.Type != tt.typ {
			t.Errorf("%s type: got %s; want %s", tt.name, f.Type, tt.typ)
		}
		if got := joinLabels(f.Labels); got != tt.labels {
			t.Errorf("%s labels: got %s; want %s", tt.name, got, tt.labels)
		}
		if f.Help == "" {
			t.Errorf("%s: no help text", tt.name)
		}
	}
}

func joinLabels(l []string) string {
	var b bytes.Buffer
	for i, s := range l {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s)
	}
	return b.String()
}
