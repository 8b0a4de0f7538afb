//go:build !rampart_stdrx

package waf

import (
	"regexp/syntax"
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
//     without case. It is only consulted for values that are all ASCII:
//     under (?i) a regular expression also folds "k" to U+212A and "s" to
//     U+017F, and an invalid byte matches as U+FFFD, so a value with any
//     byte above 0x7F runs the expression whatever need says;
//   - lits: every match contains one of these strings of two or more
//     bytes, compared without case; consulted, like need, only for values
//     that are all ASCII (rxliterals.go).
//
// All three are conservative: where the analysis is unsure it answers "may
// match". FuzzRXPrefilter and TestRXPrefilterCRS hold it to that against
// Go's regexp.
type prefilter struct {
	minLen int
	need   *[128]bool // nil: no byte requirement
	lits   *literals  // nil: no literal requirement
}

// mayMatch reports whether s can match; false is certain.
func (p *prefilter) mayMatch(s string) bool {
	if len(s) < p.minLen {
		return false
	}
	if p.need != nil && !p.hasNeeded(s) {
		return false
	}
	return p.lits == nil || p.lits.containedIn(s)
}

// hasNeeded reports whether s has a needed byte, or one above 0x7F.
func (p *prefilter) hasNeeded(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf || p.need[c] {
			return true
		}
	}
	return false
}

// useful reports whether the prefilter can ever answer false.
func (p *prefilter) useful() bool { return p.minLen > 0 || p.need != nil || p.lits != nil }

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
	if set := needLiterals(re).best(); len(set) > 0 && len(set) <= maxLiterals {
		p.lits = newLiterals(set)
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
