//go:build !rampart_stdrx

package waf

import (
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strings"
	"testing"

	re2 "github.com/wasilibs/go-re2"
)

func TestPrefilter(t *testing.T) {
	cases := []struct {
		pattern string
		minLen  int
		need    string // bytes of need, sorted; "-": none
		no, may []string
	}{
		{"(?i)select", 6, "Cc", []string{"", "selec", "nothing here"}, []string{"SELECT", "seleCt", "a select b"}},
		{"union|select", 5, "CUcu", []string{"xxxxxxx", "nnnnn"}, []string{"union", "select"}},
		{"a(?:b|c)+d", 3, "Dd", []string{"ad", "abcx"}, []string{"abd", "accd"}},
		{"<script", 7, "<", []string{"script here"}, []string{"<script"}},
		{"x*", 0, "-", nil, []string{"", "y"}},
		{"ab|c?", 0, "-", nil, []string{""}},
		{"^$", 0, "-", nil, []string{""}},
		{"[0-9]{3}", 3, "-", []string{"12"}, []string{"123", "abc"}},
		{"(?i)[k]ill", 4, "Ii", []string{"kxll"}, []string{"kill", "\u212aill"}},
		// Under (?i), k also matches the Kelvin sign and s the long s:
		// values that are not all ASCII pass whatever need says.
		{"(?i)k", 1, "Kk", []string{"x"}, []string{"\u212a"}},
		{"(?i)ks", 2, "Kk", []string{"ss"}, []string{"\u212a\u017f"}},
		{"(?i)xk", 2, "Xx", []string{"zz"}, []string{"x\u212a", "\u212a\u212a"}},
		// Bytes above 0x7F match no needed byte, except in U+212A and
		// U+017F.
		{"abc;", 4, ";", []string{"ab\xffc", "abc\u00e9"}, []string{"abc;\xff"}},
		{"(?i)ab[k;]", 3, "Bb", nil, []string{"ab\u212a"}},
		{"(?i)x[k;]", 2, "Xx", nil, []string{"\xe2\x84\xaa", "\xc5\xbf\xc5"}},
		{"(?i)x[k;]", 2, "Xx", []string{"\xe2\x84\xab", "\xc5\xc5\xe2\x84", "\xe2\xe2\x84"}, nil},
		{"[^a]", 1, "-", nil, []string{"b"}},
		{"a{0}b", 1, "Bb", []string{"a"}, []string{"b"}},
		{"(?:ab){2,}", 4, "Bb", []string{"aaaa", "ab"}, []string{"abab"}},
		{"[\\x{100}-\\x{200}]", 1, "-", []string{"a"}, []string{"\u0150"}},
	}
	for _, c := range cases {
		t.Run(c.pattern, func(t *testing.T) {
			p := newPrefilter(c.pattern)
			need := "-"
			if p.need != nil {
				need = ""
				for b := range 128 {
					if p.need[b] {
						need += string(rune(b))
					}
				}
			}
			if p.minLen != c.minLen || need != c.need {
				t.Errorf("minLen %d, need %q; want %d, %q", p.minLen, need, c.minLen, c.need)
			}
			checkMayMatch(t, &p, c.pattern, c.no, c.may)
		})
	}
}

// checkMayMatch: the prefilter of pattern turns away every value of no,
// none of which may match it, and lets every value of may through.
func checkMayMatch(t *testing.T, p *prefilter, pattern string, no, may []string) {
	t.Helper()
	re := regexp.MustCompile(pattern)
	for _, s := range no {
		if p.mayMatch(s) {
			t.Errorf("mayMatch(%q) = true; want false", s)
		}
		if re.MatchString(s) {
			t.Errorf("bad case: %q matches", s)
		}
	}
	for _, s := range may {
		if !p.mayMatch(s) {
			t.Errorf("mayMatch(%q) = false; want true", s)
		}
	}
}

// crsPatterns returns the @rx patterns of the embedded CRS as the
// operator compiles them, without those that the byte matcher runs.
func crsPatterns(t testing.TB) []string {
	t.Helper()
	seen := map[string]bool{}
	var out []string
	for _, src := range crsRXSources(t) {
		p := "(?sm)" + src
		if seen[p] || matchesArbitraryBytes(p) {
			continue
		}
		seen[p] = true
		out = append(out, p)
	}
	return out
}

// crsRXSources returns the argument of every @rx operator of the embedded
// CRS, in file order, as the rule text writes it (continuation lines
// joined, \" unescaped), duplicates included.
func crsRXSources(t testing.TB) []string {
	t.Helper()
	names, err := fs.Glob(crsFS(), "@owasp_crs/*.conf")
	if err != nil || len(names) == 0 {
		t.Fatalf("CRS rule files: %v", err)
	}
	rx := regexp.MustCompile(`"@rx ((?:[^"\\]|\\.)*)"`)
	var out []string
	for _, n := range names {
		b, err := fs.ReadFile(crsFS(), n)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(b), "\\\n", "")
		for _, m := range rx.FindAllStringSubmatch(text, -1) {
			out = append(out, strings.ReplaceAll(m[1], `\"`, `"`))
		}
	}
	return out
}

// TestRXPrefilterCRS holds every CRS pattern's prefilter to its promise on
// the CRS's own attack strings: whenever RE2 finds a match, mayMatch said
// it might.
func TestRXPrefilterCRS(t *testing.T) {
	patterns := crsPatterns(t)
	corpus := attackCorpus(t)
	if len(patterns) < 100 || len(corpus) < 5000 {
		t.Fatalf("%d patterns and %d strings; want 100+ and 5000+", len(patterns), len(corpus))
	}
	filtered, rejected, matches := 0, 0, 0
	for _, p := range patterns {
		pre := newPrefilter(p)
		if !pre.useful() {
			continue
		}
		filtered++
		re, err := re2.Compile(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for _, s := range corpus {
			if pre.mayMatch(s) {
				continue
			}
			rejected++
			if re.MatchString(s) {
				matches++
				t.Errorf("pattern %.80s: prefilter rejected %.80q, which matches", p, s)
			}
		}
	}
	t.Logf("%d patterns, %d with a prefilter; %d strings; %d (pattern, string) pairs rejected, %d of them wrongly",
		len(patterns), filtered, len(corpus), rejected, matches)
	if filtered < len(patterns)/2 {
		t.Errorf("only %d of %d patterns have a prefilter", filtered, len(patterns))
	}
}

func FuzzRXPrefilter(f *testing.F) {
	for _, s := range []struct{ p, in string }{
		{"(?i)select", "SeLeCt"}, {"(?i)k", "\u212a"}, {"a|b?", ""}, {"(?:ab){2,}", "abab"},
		{"[\\s\\x0b]*<", " <"}, {"\\bunion\\b", "union all"}, {"(?i)\\x{17f}", "s"}, {"x{2}y{0,}", "xx"},
	} {
		f.Add(s.p, s.in)
	}
	f.Fuzz(func(t *testing.T, pattern, in string) {
		if len(pattern) > 200 {
			return
		}
		re, err := regexp.Compile(pattern)
		if err != nil {
			return
		}
		p := newPrefilter(pattern)
		if re.MatchString(in) && !p.mayMatch(in) {
			t.Fatalf("pattern %q: prefilter rejected %q, which matches (minLen %d)", pattern, in, p.minLen)
		}
	})
}

func TestPrefilterLiterals(t *testing.T) {
	cases := []struct {
		pattern string
		lits    string // the required strings, sorted, space-separated; "-": none
		no, may []string
	}{
		{"(?i)select", "select", []string{"selec t"}, []string{"SeLeCt", "x select"}},
		{"union|select", "select union", []string{"unio selec"}, []string{"UNION"}},
		{"(?i)(?:un|ex)ion", "exion union", []string{"ion"}, []string{"Union", "exion"}},
		{"a[bc]d", "abd acd", []string{"abcd", "ad"}, []string{"xacdx"}},
		{`\bselect\s+from`, "select", []string{"selec from", "from"}, []string{"select  from", "a select bcd"}}, // the longer part
		{"ab?c", "abc ac", []string{"a c"}, []string{"ac", "abc"}},
		{"x*yz", "yz", []string{"xy"}, []string{"yz"}},
		{"(?:ab)+", "ab", []string{"ba"}, []string{"abab"}},
		{"a|", "-", nil, []string{""}},
		{"[a-z]+", "-", nil, []string{"q"}},
		{"ab|c", "-", nil, []string{"c"}}, // "c" is one byte: the need set's work
		{"(?i)kelvin", "kelvin", []string{"kelvi"}, []string{"\u212aelvin", "KELVIN"}},
		{"s\\x{e9}l", "-", nil, []string{"s\u00e9l"}},
		{"(?i)kelvin", "kelvin", []string{"kelvi\xff", "\xffkelvi"}, []string{"\xc5\xbfkelvi", "\xe2\x84\xaaelvi"}},
	}
	for _, c := range cases {
		t.Run(c.pattern, func(t *testing.T) {
			p := newPrefilter(c.pattern)
			got := "-"
			if p.lits != nil {
				s := slices.Clone(p.lits.set)
				slices.Sort(s)
				got = strings.Join(s, " ")
			}
			if got != c.lits {
				t.Errorf("literals %q; want %q", got, c.lits)
			}
			checkMayMatch(t, &p, c.pattern, c.no, c.may)
		})
	}
}

// TestPrefilterClean: values made of letters, digits and " ,.-_:/" only
// are held to the literals of the pattern without its other characters.
func TestPrefilterClean(t *testing.T) {
	cases := []struct {
		pattern string
		clean   string // the clean literals, sorted, space-separated; "-": none; "never"
		no, may []string
	}{
		// The CRS's command words: quotes and backslashes may separate
		// the letters; a clean value must spell the word.
		{`(?i)\bc["'\x5c]*u["'\x5c]*r["'\x5c]*l\b|w["'\x5c]*g["'\x5c]*e["'\x5c]*t`, "curl wget",
			[]string{"cu rl", "a w-get", "Cotton shirt, machine washable"},
			[]string{"c'url", "CURL x", "w\\get", "x\"curl"}},
		{`<[a-z]+>|x?;`, "never", []string{"", "b", "a b", "x"}, []string{"<b>", ";"}},
		{`(?i)(?:^|[;|])s["\x5c]*h\b`, "sh", []string{"a sx", "s h"}, []string{"sh", ";s'h", "x|sh"}},
		{`[a-z]+`, "-", nil, []string{"abc"}},
	}
	for _, c := range cases {
		t.Run(c.pattern, func(t *testing.T) {
			p := newPrefilter(c.pattern)
			got := "-"
			switch {
			case p.cleanNever:
				got = "never"
			case p.clean != nil:
				s := slices.Clone(p.clean.set)
				slices.Sort(s)
				got = strings.Join(s, " ")
			}
			if got != c.clean {
				t.Errorf("clean literals %q; want %q", got, c.clean)
			}
			checkMayMatch(t, &p, c.pattern, c.no, c.may)
		})
	}
}

// TestPrefilterCleanWide: a clean pattern with more strings than the
// pattern's own literals may have (the CRS's lists of command names) is
// searched by byte pairs, and answers as the pattern does.
func TestPrefilterCleanWide(t *testing.T) {
	var words []string
	for i := range 60 {
		w := fmt.Sprintf("cmd%c%c", 'a'+i/26, 'a'+i%26)
		var b strings.Builder
		for j := range len(w) {
			if j > 0 {
				b.WriteString(`["'\x5c]*`)
			}
			b.WriteByte(w[j])
		}
		words = append(words, b.String())
	}
	pattern := `(?i)(?:^|;)(?:` + strings.Join(words, "|") + `)\b`
	p := newPrefilter(pattern)
	if p.clean == nil || len(p.clean.set) != 60 || p.clean.pairs == nil {
		t.Fatalf("clean literals %v; want the 60 words, by pairs", p.clean)
	}
	checkMayMatch(t, &p, pattern,
		[]string{"cmd", "cm dab", "cmdzz", "a cmd ab", "xcmdxx"},
		[]string{"cmdab", "CMDBC", ";cmdaz", "c'mdab", "c\\mdab x", "x cmdab"})
}

// TestLiteralsBounded: strings with long shared prefixes on a long value
// of the same byte cost a bounded number of comparisons, not one pass of
// every string at every position.
func TestLiteralsBounded(t *testing.T) {
	var set []string
	for i := range 32 {
		set = append(set, strings.Repeat("a", 30)+string(rune('b'+i%20))+string(rune('b'+i/20)))
	}
	l := newLiterals(set)
	if l == nil {
		t.Fatal("no literals")
	}
	if !l.containedIn(strings.Repeat("a", 1<<20)) {
		t.Fatal("budget exhausted must answer true (not known)")
	}
	if l.containedIn(strings.Repeat("z", 1<<20)) {
		t.Fatal("no string of the set in the value")
	}
	if !l.containedIn("xx" + strings.Repeat("a", 30) + "bb") {
		t.Fatal("a string of the set in the value")
	}
}
