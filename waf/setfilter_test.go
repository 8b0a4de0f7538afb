//go:build !rampart_stdrx

package waf

import (
	"math/rand"
	"slices"
	"strings"
	"testing"

	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	re2 "github.com/wasilibs/go-re2"
	"rsc.io/binaryregexp"

	"github.com/rampart-proxy/rampart/config"
)

// specPasses checks a value against a prefilter spec as the Coraza
// patch's pass does (internal/corazawaf/setfilter.go: ruleCandidate).
func specPasses(s setPrefilterSpec, v string) bool {
	if len(v) < s.MinLen {
		return false
	}
	if s.FoldRunes && (strings.Contains(v, "\u212a") || strings.Contains(v, "\u017f")) {
		return true
	}
	if s.Need != nil && !strings.ContainsFunc(v, func(r rune) bool { return r < 128 && s.Need[r] }) {
		// ContainsFunc decodes runes; an invalid byte is U+FFFD, never needed.
		return false
	}
	lower := lowerASCIIString(v)
	containsOne := func(set []string) bool {
		for _, l := range set {
			if strings.Contains(lower, l) {
				return true
			}
		}
		return false
	}
	if len(s.Literals) > 0 && !containsOne(s.Literals) {
		return false
	}
	if s.Clean != nil && isCleanIn(s.Clean, v) {
		if s.CleanNever || (len(s.CleanLiterals) > 0 && !containsOne(s.CleanLiterals)) {
			return false
		}
	}
	return true
}

func isCleanIn(t *[256]bool, v string) bool {
	for i := 0; i < len(v); i++ {
		if !t[v[i]] {
			return false
		}
	}
	return true
}

// TestSetPrefilterCRS holds every CRS pattern's spec, which the rule
// set's pass checks in place of the operator's own prefilter, to the same
// promise as the prefilter: whenever RE2 matches one of the CRS's attack
// strings, the string passes the spec; and on the strings that pass,
// EvaluateCandidate answers as Evaluate, capturing the same fields.
func TestSetPrefilterCRS(t *testing.T) {
	patterns := crsPatterns(t)
	corpus := attackCorpus(t)
	if len(corpus) > 3000 {
		corpus = corpus[:3000] // bounded: patterns x strings
	}
	specs, turnedAway := 0, 0
	for _, p := range patterns {
		op, err := newRX(plugintypes.OperatorOptions{Arguments: strings.TrimPrefix(p, "(?sm)")})
		if err != nil {
			t.Fatalf("%.80s: %v", p, err)
		}
		c := op.(*rxCompiled)
		spec, ok := c.SetPrefilter()
		if ok != (c.pre != nil || c.bytesLit != "") {
			t.Fatalf("%.80s: SetPrefilter %v; want %v (the operator's prefilter)", p, ok, c.pre != nil)
		}
		if !ok {
			continue
		}
		specs++
		re, err := re2.Compile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range corpus {
			if !specPasses(spec, s) {
				turnedAway++
				if re.MatchString(s) {
					t.Errorf("pattern %.80s: spec turned away %.80q, which matches", p, s)
				}
				continue
			}
			for _, capture := range []bool{false, true} {
				a := &captureState{capturing: capture, fields: map[int]string{}}
				b := &captureState{capturing: capture, fields: map[int]string{}}
				if got, want := c.EvaluateCandidate(a, s), c.Evaluate(b, s); got != want || len(a.fields) != len(b.fields) || a.fields[0] != b.fields[0] {
					t.Errorf("pattern %.80s on %.80q (capture %v): EvaluateCandidate %v %v; Evaluate %v %v", p, s, capture, got, a.fields, want, b.fields)
				}
			}
		}
	}
	t.Logf("%d patterns, %d with a spec; %d (pattern, string) pairs turned away", len(patterns), specs, turnedAway)
	if specs < len(patterns)/2 {
		t.Errorf("only %d of %d patterns have a spec", specs, len(patterns))
	}
}

// TestSetPrefilterSpec: the spec carries each part of the prefilter.
func TestSetPrefilterSpec(t *testing.T) {
	cases := []struct {
		name, pattern              string
		minLen                     int
		need, lits, clean, cleanNv bool
	}{
		{"literal", `(?i)union\s+select`, 12, true, true, false, false},
		{"byte only", `<`, 1, true, false, true, true},
		{"words with quotes", `(?i)b["'\\]*a["'\\]*s["'\\]*h`, 4, true, false, true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			op, err := newRX(plugintypes.OperatorOptions{Arguments: c.pattern})
			if err != nil {
				t.Fatal(err)
			}
			s, ok := op.(*rxCompiled).SetPrefilter()
			if !ok {
				t.Fatal("no spec")
			}
			if s.MinLen != c.minLen || (s.Need != nil) != c.need || (len(s.Literals) > 0) != c.lits ||
				(s.Clean != nil) != c.clean || s.CleanNever != c.cleanNv || !s.FoldRunes {
				t.Errorf("got minLen %d need %v literals %q clean %v cleanLiterals %q cleanNever %v fold %v; want %d %v %v %v %v true",
					s.MinLen, s.Need != nil, s.Literals, s.Clean != nil, s.CleanLiterals, s.CleanNever, s.FoldRunes,
					c.minLen, c.need, c.lits, c.clean, c.cleanNv)
			}
		})
	}
	bytesCases := []struct {
		name, pattern string
		want          []string
	}{
		{"byte literal", `\xac\xed\x00\x05`, []string{"\xac\xed\x00\x05"}},
		{"byte literal with letters", `AB\xff`, []string{"ab\xff"}},
		{"byte class", `[\x80-\xff]{4}`, nil},
	}
	for _, c := range bytesCases {
		t.Run(c.name, func(t *testing.T) {
			op, err := newRX(plugintypes.OperatorOptions{Arguments: c.pattern})
			if err != nil {
				t.Fatal(err)
			}
			s, ok := op.(*rxCompiled).SetPrefilter()
			if ok != (c.want != nil) || !slices.Equal(s.Literals, c.want) {
				t.Errorf("spec %v, literals %q; want %v, %q", ok, s.Literals, c.want != nil, c.want)
			}
		})
	}
}

// BenchmarkCompileCRS compiles the default policy (the CRS at paranoia
// level 1 with Rampart's rules): what a reload costs, the rule set's
// automaton included.
func BenchmarkCompileCRS(b *testing.B) {
	cfg := config.WAFPolicy{Mode: config.WAFModeBlock, ParanoiaLevel: 1, AnomalyThreshold: 5,
		RequestBodyLimitAction: config.BodyLimitReject}
	b.ReportAllocs()
	cpu0 := processCPU()
	for range b.N {
		if _, err := Compile("bench-compile", &cfg, Options{Audit: testLog}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
}

// TestByteNeedCRS: the byte matcher's patterns of the CRS that get a
// needed-byte spec (933180, 941310 among them) never have it turn away an
// attack string they match; generated strings of the bytes that matter
// too.
func TestByteNeedCRS(t *testing.T) {
	var patterns []string
	for _, p := range crsRXSources(t) {
		if matchesArbitraryBytes("(?sm)" + p) {
			patterns = append(patterns, p)
		}
	}
	corpus := attackCorpus(t)
	rng := rand.New(rand.NewSource(1))
	alphabet := "$(<>\xbc\xbe\x80\xff\x00aZ ;"
	for range 3000 {
		b := make([]byte, rng.Intn(16))
		for j := range b {
			b[j] = alphabet[rng.Intn(len(alphabet))]
		}
		corpus = append(corpus, string(b))
	}
	withSpec := 0
	for _, p := range patterns {
		op, err := newRX(plugintypes.OperatorOptions{Arguments: p})
		if err != nil {
			t.Fatalf("%.80s: %v", p, err)
		}
		c := op.(*rxCompiled)
		spec, ok := c.SetPrefilter()
		if !ok {
			continue
		}
		withSpec++
		re := binaryregexp.MustCompile(p)
		for _, s := range corpus {
			if re.MatchString(s) && !specPasses(spec, s) {
				t.Errorf("pattern %.80s: spec %q turned away %.80q, which matches", p, spec.Literals, s)
			}
		}
	}
	t.Logf("%d byte matcher patterns, %d with a spec", len(patterns), withSpec)
	if withSpec < 3 {
		t.Errorf("%d of %d byte matcher patterns with a spec; want 3 or more (944210, 933180, 941310)", withSpec, len(patterns))
	}
}

func TestByteNeed(t *testing.T) {
	cases := []struct {
		name, pattern string
		want          []string
	}{
		{"concat picks smallest", `\$+[a-z\x7f-\xff]*\(`, []string{"$"}},
		{"alternation unions", `\xbc[^\xbe>]*[\xbe>]|<[^\xbe]*\xbe`, []string{"<", "\xbc"}},
		{"folded letter", `(?i)k\xe9`, []string{"K", "k"}},
		{"optional only", `\xff?`, nil},
		{"wide class", `[\x80-\xff]`, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := byteNeed(c.pattern); !slices.Equal(got, c.want) {
				t.Errorf("byteNeed(%q) = %q; want %q", c.pattern, got, c.want)
			}
		})
	}
}

// TestDetectorSetPrefilter: the spec a detector (or a set of them) gives
// the engine's pass lets through every value its own prefilter lets
// through, so the pass never turns away a value the detector could match;
// and it does turn values away.
func TestDetectorSetPrefilter(t *testing.T) {
	values := append(attackCorpus(t), "plain words only", "Order 42 shipped", "", "x", "ÅÉ")
	var all detectorSet
	for _, d := range detectors {
		all = append(all, d)
	}
	sets := map[string]detectorSet{"all": all}
	for name, d := range detectors {
		sets[name] = detectorSet{d}
	}
	for name, ds := range sets {
		spec, ok := ds.SetPrefilter()
		if !ok {
			continue
		}
		t.Logf("%s: %d literals, digit %v", name, len(spec.Literals), spec.Need != nil)
		turned := 0
		for _, v := range values {
			may := false
			for _, d := range ds {
				may = may || d.mayMatch(v)
			}
			acc := specPasses(spec, v)
			if may && !acc {
				t.Fatalf("%s: the spec turns away %q, which its prefilter lets through", name, v)
			}
			if !acc {
				turned++
			}
		}
		if turned == 0 {
			t.Errorf("%s: the spec turns away none of %d values; want some", name, len(values))
		}
	}
}
