//go:build !rampart_stdrx

package waf

import (
	"regexp/syntax"
	"slices"
	"unicode/utf8"
)

// A prefilter tells, without running the regular expression, that a
// value cannot match it. Most values of a benign request are short (on a
// browser's GET, two thirds of the @rx calls get fewer than 8 bytes) and
// RE2 costs about 200 ns a call before it reads a byte, so three cheap
// necessary conditions, derived from the pattern's syntax tree when the
// operator is built, skip most calls:
//
//   - minLen: every match is at least this many bytes long (each rune of
//     a match takes at least one byte, an invalid byte included);
//   - need: every match contains at least one of these bytes, compared
//     without case. Bytes above 0x7F never count as one of them: a valid
//     multi-byte sequence decodes to a rune above 0x7F and an invalid byte
//     to U+FFFD, and the only such runes that fold to ASCII under (?i) are
//     U+212A (Kelvin sign, "k") and U+017F (long s, "s"). A value with
//     either runs the expression whatever need says;
//   - lits: every match contains one of these strings of two or more
//     bytes, compared without case; bytes above 0x7F count as for need
//     (rxliterals.go);
//   - clean: the literals of the pattern with every character that is not
//     a letter, a digit or one of " ,.-_:/" taken out of it (cleanPattern).
//     A value made of those characters only can match the pattern only as
//     it matches the cleaned pattern, whose literals are often decisive
//     where the pattern's own are not: the CRS's command rules allow quotes
//     and backslashes between the letters of each word (b["'\\]*u...),
//     which hides every literal, while a clean value must spell the word.
//
// All three are conservative: where the analysis is unsure it answers "may
// match". FuzzRXPrefilter and TestRXPrefilterCRS hold it to that against
// Go's regexp.
type prefilter struct {
	minLen int
	need   *[128]bool // nil: no byte requirement
	lits   *literals  // nil: no literal requirement
	clean  *literals  // for clean values; nil: none (see cleanNever)
	// cleanNever: no clean value matches the pattern.
	cleanNever bool
}

// mayMatch reports whether s can match; false is certain.
func (p *prefilter) mayMatch(s string) bool {
	if len(s) < p.minLen {
		return false
	}
	if p.need != nil && !p.hasNeeded(s) {
		return false
	}
	if p.lits != nil && !p.lits.containedIn(s) {
		return false
	}
	if (p.clean != nil || p.cleanNever) && isClean(s) {
		return !p.cleanNever && p.clean.containedIn(s)
	}
	return true
}

// hasNeeded reports whether s has a needed byte, or a rune that folds to
// ASCII (foldsAt).
func (p *prefilter) hasNeeded(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			if foldsAt(s, i) {
				return true
			}
			continue
		}
		if p.need[c] {
			return true
		}
	}
	return false
}

// foldsAt reports whether s holds U+212A or U+017F at i, in UTF-8: the
// only runes above 0x7F that fold to ASCII letters (k and s).
func foldsAt(s string, i int) bool {
	switch s[i] {
	case 0xE2:
		return i+2 < len(s) && s[i+1] == 0x84 && s[i+2] == 0xAA
	case 0xC5:
		return i+1 < len(s) && s[i+1] == 0xBF
	}
	return false
}

// useful reports whether the prefilter can ever answer false.
func (p *prefilter) useful() bool {
	return p.minLen > 0 || p.need != nil || p.lits != nil || p.clean != nil || p.cleanNever
}

// maxMinLen bounds minLen's arithmetic (x{1000}{1000}).
const maxMinLen = 1 << 20

// newPrefilter analyses a pattern as Go's regexp parses it (syntax.Perl,
// the flags given inline as Coraza's @rx gives them).
func newPrefilter(pattern string) prefilter {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return prefilter{}
	}
	p := prefilter{minLen: minLen(re)}
	if set, ok := needBytes(re); ok && selective(set) {
		need := new([128]bool)
		for c := range set {
			need[c] = true
		}
		p.need = need
	}
	if set := needLiterals(re).best(defaultLimits); len(set) > 0 && len(set) <= maxLiterals {
		p.lits = newLiterals(set)
	}
	if c := cleanPattern(re); c == nil {
		p.cleanNever = true
	} else if set := wideLimits.need(c).best(wideLimits); len(set) > 0 && len(set) <= maxWide &&
		(p.lits == nil || !slices.Equal(set, p.lits.set)) {
		p.clean = newLiterals(set)
	}
	return p
}

// minLen returns a lower bound of the length in bytes of re's matches.
func minLen(re *syntax.Regexp) int {
	switch re.Op {
	case syntax.OpLiteral:
		return len(re.Rune)
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return 1
	case syntax.OpCapture, syntax.OpPlus:
		return minLen(re.Sub[0])
	case syntax.OpRepeat:
		return min(re.Min*minLen(re.Sub[0]), maxMinLen)
	case syntax.OpConcat:
		n := 0
		for _, sub := range re.Sub {
			n = min(n+minLen(sub), maxMinLen)
		}
		return n
	case syntax.OpAlternate:
		n := maxMinLen
		for _, sub := range re.Sub {
			n = min(n, minLen(sub))
		}
		return n
	default: // empty-width assertions, empty match, star, quest, no match
		return 0
	}
}

// byteSet is a set of ASCII bytes, each present in both cases.
type byteSet map[byte]struct{}

// needBytes returns a set of ASCII bytes such that every match of re
// contains one of them (in either case), and false when it finds none.
func needBytes(re *syntax.Regexp) (byteSet, bool) {
	switch re.Op {
	case syntax.OpLiteral:
		// Any one rune of the literal is in every match: take the rarest
		// ASCII one.
		best, found := byte(0), false
		for _, r := range re.Rune {
			if r < utf8.RuneSelf && (!found || rarity(byte(r)) > rarity(best)) {
				best, found = byte(r), true
			}
		}
		if !found {
			return nil, false
		}
		s := byteSet{}
		s.add(best)
		return s, true
	case syntax.OpCharClass:
		s := byteSet{}
		for i := 0; i < len(re.Rune); i += 2 {
			lo, hi := re.Rune[i], re.Rune[i+1]
			if hi >= utf8.RuneSelf {
				return nil, false
			}
			for r := lo; r <= hi; r++ {
				s.add(byte(r))
			}
		}
		return s, true
	case syntax.OpCapture, syntax.OpPlus:
		return needBytes(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min == 0 {
			return nil, false
		}
		return needBytes(re.Sub[0])
	case syntax.OpConcat:
		// Every part is in every match: take the most selective part.
		var best byteSet
		found := false
		for _, sub := range re.Sub {
			if s, ok := needBytes(sub); ok && (!found || cost(s) < cost(best)) {
				best, found = s, true
			}
		}
		return best, found
	case syntax.OpAlternate:
		// A match is a match of one branch: every branch needs a set.
		u := byteSet{}
		for _, sub := range re.Sub {
			s, ok := needBytes(sub)
			if !ok {
				return nil, false
			}
			for c := range s {
				u[c] = struct{}{}
			}
		}
		return u, true
	case syntax.OpNoMatch:
		return byteSet{}, true // nothing matches: no byte lets it
	default:
		return nil, false
	}
}

func (s byteSet) add(c byte) {
	s[c] = struct{}{}
	switch {
	case 'a' <= c && c <= 'z':
		s[c-'a'+'A'] = struct{}{}
	case 'A' <= c && c <= 'Z':
		s[c-'A'+'a'] = struct{}{}
	}
}

// rarity ranks bytes by how seldom they appear in benign values: symbols
// most rarely, then uncommon letters, then common letters, digits and the
// space least rarely. Only the choice of set depends on it, never whether
// the answer is right.
func rarity(c byte) int {
	switch {
	case c >= 'A' && c <= 'Z':
		c += 'a' - 'A'
	case c >= '0' && c <= '9' || c == ' ':
		return 0
	}
	switch c {
	case 'e', 't', 'a', 'o', 'i', 'n', 's', 'r', 'h', 'l':
		return 1
	case 'd', 'c', 'u', 'm', 'f', 'p', 'g', 'w', 'y', 'b':
		return 2
	case 'v', 'k', 'x', 'j', 'q', 'z':
		return 3
	case '-', '_', '.', '/', ',', ':', '=', '&', '+':
		return 3 // common in paths, queries, dates and JSON values
	}
	return 4
}

// cost estimates how often a value contains a byte of s.
func cost(s byteSet) int {
	n := 0
	for c := range s {
		n += 1 << (2 * (4 - rarity(c)))
	}
	return n
}

// selective reports whether a set is worth a pass over the value: a set
// that takes in the common letters and digits lets nearly every value
// through.
func selective(s byteSet) bool {
	return cost(s) < 4*(1<<8)
}

// cleanByte holds the bytes of a clean value: letters, digits, and
// " ,.-_:/", which benign text, JSON values and paths are made of.
var cleanByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range " ,.-_:/" {
		t[c] = true
	}
	return t
}()

// isClean reports whether s is made of clean bytes only.
func isClean(s string) bool {
	for i := 0; i < len(s); i++ {
		if !cleanByte[s[i]] {
			return false
		}
	}
	return true
}

// cleanPattern returns re with every character that is not a clean byte
// taken out, or nil when what is left matches nothing. Every match of re
// in a clean value is a match of the result: the parts of re that the
// match used matched clean text only, and the result keeps exactly those.
// re is not modified.
func cleanPattern(re *syntax.Regexp) *syntax.Regexp {
	switch re.Op {
	case syntax.OpNoMatch:
		return nil
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			if r >= utf8.RuneSelf || !cleanByte[r] {
				return nil
			}
		}
		return re
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		var ranges []rune
		for c := rune(0); c < utf8.RuneSelf; c++ {
			if cleanByte[c] && classHas(re, c) {
				if n := len(ranges); n > 0 && ranges[n-1] == c-1 {
					ranges[n-1] = c
				} else {
					ranges = append(ranges, c, c)
				}
			}
		}
		if len(ranges) == 0 {
			return nil
		}
		return &syntax.Regexp{Op: syntax.OpCharClass, Flags: re.Flags, Rune: ranges}
	case syntax.OpCapture, syntax.OpPlus:
		sub := cleanPattern(re.Sub[0])
		if sub == nil {
			return nil
		}
		return withSubs(re, sub)
	case syntax.OpStar, syntax.OpQuest:
		sub := cleanPattern(re.Sub[0])
		if sub == nil {
			return &syntax.Regexp{Op: syntax.OpEmptyMatch, Flags: re.Flags}
		}
		return withSubs(re, sub)
	case syntax.OpRepeat:
		sub := cleanPattern(re.Sub[0])
		if sub == nil {
			if re.Min == 0 {
				return &syntax.Regexp{Op: syntax.OpEmptyMatch, Flags: re.Flags}
			}
			return nil
		}
		return withSubs(re, sub)
	case syntax.OpConcat:
		subs := make([]*syntax.Regexp, len(re.Sub))
		for i, s := range re.Sub {
			if subs[i] = cleanPattern(s); subs[i] == nil {
				return nil
			}
		}
		return withSubs(re, subs...)
	case syntax.OpAlternate:
		var subs []*syntax.Regexp
		for _, s := range re.Sub {
			if c := cleanPattern(s); c != nil {
				subs = append(subs, c)
			}
		}
		switch len(subs) {
		case 0:
			return nil
		case 1:
			return subs[0]
		}
		return withSubs(re, subs...)
	default: // empty-width assertions, empty match
		return re
	}
}

// classHas reports whether the one-character node re matches c.
func classHas(re *syntax.Regexp, c rune) bool {
	switch re.Op {
	case syntax.OpAnyChar:
		return true
	case syntax.OpAnyCharNotNL:
		return c != '\n'
	}
	for i := 0; i < len(re.Rune); i += 2 {
		if re.Rune[i] <= c && c <= re.Rune[i+1] {
			return true
		}
	}
	return false
}

// withSubs returns a copy of re with the given sub-expressions.
func withSubs(re *syntax.Regexp, subs ...*syntax.Regexp) *syntax.Regexp {
	c := *re
	c.Sub = subs
	c.Sub0 = [1]*syntax.Regexp{}
	return &c
}
