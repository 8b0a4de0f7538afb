package waf

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestDetectorPrefilters holds each @rampart pattern's prefilter to its
// promise: whenever the pattern matches a string, mayMatch said it might.
// The strings are the CRS's attack strings, the eval corpus's payloads
// (waf/eval/corpus/attacks) in several cases, and random mutations of
// them.
func TestDetectorPrefilters(t *testing.T) {
	corpus := attackCorpus(t)
	files, err := filepath.Glob(filepath.Join("eval", "corpus", "attacks", "*.txt"))
	if err != nil || len(files) < 5 {
		t.Fatalf("eval corpus: %d files, %v", len(files), err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if l != "" {
				corpus = append(corpus, l, strings.ToUpper(l), strings.ToLower(l))
			}
		}
	}
	// attackCorpus comes from a set: sorted, the splices below are the
	// same on every run.
	slices.Sort(corpus)
	rng := rand.New(rand.NewPCG(1, 2))
	n := len(corpus)
	for range 20000 {
		a, b := corpus[rng.IntN(n)], corpus[rng.IntN(n)]
		i, j := rng.IntN(len(a)+1), rng.IntN(len(b)+1)
		corpus = append(corpus, a[:i]+b[j:])
	}
	if len(detectors) < 10 {
		t.Fatalf("%d detectors; want the 10+ of rampart.go", len(detectors))
	}
	for name, d := range detectors {
		matched, rejected := 0, 0
		for _, s := range corpus {
			m := d.rx.MatchString(s)
			if m {
				matched++
			}
			if d.mayMatch(s) {
				continue
			}
			rejected++
			if m {
				t.Errorf("%s: prefilter rejected %.100q, which matches", name, s)
			}
		}
		if matched == 0 {
			t.Errorf("%s: matched none of %d strings; the check proves nothing", name, len(corpus))
		}
		t.Logf("%s: %d of %d strings match, %d rejected by the prefilter", name, matched, len(corpus), rejected)
	}
}

// TestDetectorPrefilterOrdinaryText: the prefilters send no ordinary
// value of a JSON body to the regular expressions that could not match it.
func TestDetectorPrefilterOrdinaryText(t *testing.T) {
	cases := []struct {
		name, detector, value string
		want                  bool
	}{
		{"prose with a b and a digit", "sqli-start", "Product number 7 with a longer descriptive title", false},
		{"comparison and digit", "sqli-start", "x' or 1=1", true},
		{"order by in upper case", "sqli-start", "1 ORDER BY 3--", true},
		{"order by without a digit", "sqli-start", "sorted by name", false},
		{"a sentence with dots", "nosql-value", "Cotton shirt. Machine washable.", false},
		{"this. member", "nosql-value", "this.password.match(/^a/)", true},
		{"db. call", "nosql-value", "db.users.find()", true},
		{"a capital T", "ssti-directive", "The Tuesday delivery", false},
		{"java class in T()", "ssti-directive", "T(java.lang.Runtime)", true},
		{"XInclude in upper case", "xxe-xinclude", "<XI:INCLUDE HREF=\"http://x/\"", true},
		{"include without xi", "xxe-xinclude", "#include <stdio.h>", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := detectors[c.detector]
			if d == nil {
				t.Fatalf("no detector %q", c.detector)
			}
			if got := d.mayMatch(c.value); got != c.want {
				t.Errorf("%s.mayMatch(%q) = %v; want %v", c.detector, c.value, got, c.want)
			}
		})
	}
}
