//go:build !rampart_stdrx

package waf

import (
	"regexp/syntax"
	"slices"
	"strings"
	"unicode/utf8"
)

// Literal requirements of a pattern: a set of strings, lowercase ASCII,
// such that every match contains one of them. Values are compared with
// them without case, and only when they are all ASCII (see prefilter).
//
// The analysis keeps, for each node of the syntax tree, the exact set of
// strings it can match when that set is small, and otherwise a required
// set: a concatenation needs what any of its parts needs, an alternation
// one of what each branch needs. Where it cannot tell, a node needs
// nothing, which is always true.

const (
	maxExact    = 16 // strings in an exact set
	maxExactLen = 32 // bytes in one string of an exact set
	maxLiterals = 32 // strings in a required set
)

// litLimits bound the analysis. The pattern's own literals use the limits
// above; the clean literals (rxfilter.go) larger ones, for the CRS's word
// lists (932*: hundreds of command names), searched by byte pairs.
type litLimits struct {
	exact, exactLen, literals int
}

var (
	defaultLimits = litLimits{maxExact, maxExactLen, maxLiterals}
	wideLimits    = litLimits{maxWide, maxExactLen, maxWide}
)

// maxWide is the most strings of a set under wideLimits.
const maxWide = 1024

type litInfo struct {
	exact []string // every string the node matches, lowercased; nil: unknown
	req   []string // a match contains one of these; nil: nothing known
}

// best returns the node's most useful requirement: its exact set when no
// string of it is empty, else its required set.
func (l litInfo) best(lim litLimits) []string {
	if l.exact != nil && len(l.exact) <= lim.literals && !slices.Contains(l.exact, "") {
		return l.exact
	}
	return l.req
}

var emptyOnly = litInfo{exact: []string{""}}

func needLiterals(re *syntax.Regexp) litInfo { return defaultLimits.need(re) }

func (lim litLimits) need(re *syntax.Regexp) litInfo {
	switch re.Op {
	case syntax.OpLiteral:
		var b strings.Builder
		for _, r := range re.Rune {
			if r >= utf8.RuneSelf {
				return litInfo{}
			}
			b.WriteByte(lowerASCII(byte(r)))
		}
		return litInfo{exact: []string{b.String()}}
	case syntax.OpCharClass:
		var set []string
		for i := 0; i < len(re.Rune); i += 2 {
			lo, hi := re.Rune[i], re.Rune[i+1]
			if hi >= utf8.RuneSelf || hi-lo >= maxExact {
				return litInfo{}
			}
			for r := lo; r <= hi; r++ {
				set = addString(set, string(lowerASCII(byte(r))))
			}
		}
		if len(set) > 4 {
			return litInfo{}
		}
		return litInfo{exact: set}
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText,
		syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return emptyOnly
	case syntax.OpCapture:
		return lim.need(re.Sub[0])
	case syntax.OpQuest:
		sub := lim.need(re.Sub[0])
		if sub.exact == nil || len(sub.exact) >= lim.exact {
			return litInfo{}
		}
		return litInfo{exact: addString(slices.Clone(sub.exact), "")}
	case syntax.OpPlus:
		return litInfo{req: lim.need(re.Sub[0]).best(lim)}
	case syntax.OpRepeat:
		if re.Min == 0 {
			return litInfo{}
		}
		sub := lim.need(re.Sub[0])
		if re.Min == 1 && re.Max == 1 {
			return sub
		}
		return litInfo{req: sub.best(lim)}
	case syntax.OpConcat:
		return lim.concat(re.Sub)
	case syntax.OpAlternate:
		var exact, req []string
		exactKnown, reqKnown := true, true
		for _, sub := range re.Sub {
			l := lim.need(sub)
			if exactKnown && l.exact != nil && len(exact)+len(l.exact) <= lim.exact {
				for _, s := range l.exact {
					exact = addString(exact, s)
				}
			} else {
				exactKnown = false
			}
			if b := l.best(lim); reqKnown && b != nil && len(req)+len(b) <= lim.literals {
				for _, s := range b {
					req = addString(req, s)
				}
			} else {
				reqKnown = false
			}
		}
		out := litInfo{}
		if exactKnown {
			out.exact = exact
		}
		if reqKnown {
			out.req = req
		}
		return out
	default: // any character, star, no match
		return litInfo{}
	}
}

// concat: the exact sets of consecutive parts multiply out (while
// small); each run of them, and each part's own requirement, is a
// requirement of the whole; the longest is kept.
func (lim litLimits) concat(subs []*syntax.Regexp) litInfo {
	var best []string
	consider := func(set []string) {
		if set == nil || slices.Contains(set, "") || len(set) > lim.literals {
			return
		}
		if best == nil || lim.shortest(set) > lim.shortest(best) ||
			(lim.shortest(set) == lim.shortest(best) && len(set) < len(best)) {
			best = set
		}
	}
	run, allExact := []string{""}, true
	for _, sub := range subs {
		l := lim.need(sub)
		if l.exact != nil {
			if next, ok := lim.cross(run, l.exact); ok {
				run = next
				continue
			}
			consider(run)
			run = slices.Clone(l.exact)
			allExact = false
			continue
		}
		allExact = false
		consider(run)
		consider(l.req)
		run = []string{""}
	}
	consider(run)
	out := litInfo{req: best}
	if allExact {
		out.exact = run
	}
	return out
}

// cross returns every a+b, or false when that is too many or too long.
func (lim litLimits) cross(as, bs []string) ([]string, bool) {
	if len(as)*len(bs) > lim.exact {
		return nil, false
	}
	out := make([]string, 0, len(as)*len(bs))
	for _, a := range as {
		for _, b := range bs {
			if len(a)+len(b) > lim.exactLen {
				return nil, false
			}
			out = addString(out, a+b)
		}
	}
	return out, true
}

func (lim litLimits) shortest(set []string) int {
	n := lim.exactLen + 1
	for _, s := range set {
		n = min(n, len(s))
	}
	return n
}

func addString(set []string, s string) []string {
	if slices.Contains(set, s) {
		return set
	}
	return append(set, s)
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// lowerASCIIString lower-cases the ASCII letters of s byte by byte
// (strings.ToLower would rewrite invalid UTF-8).
func lowerASCIIString(s string) string {
	b := []byte(s)
	for i := range b {
		b[i] = lowerASCII(b[i])
	}
	return string(b)
}

// literals is a required set, ready to search for: strings of two or more
// bytes only (a one-byte requirement is the cheaper need set's work).
type literals struct {
	first [128]bool // first bytes of the strings, both cases
	set   []string

	// For sets of more than maxLiterals strings: the strings by their
	// first two bytes (pairKey), and the set of those pairs.
	pairs  *[1 << 16 / 64]uint64
	byPair map[uint16][]string
	bucket int // bytes in the largest bucket of byPair
}

// pairKey is the key of two bytes, ASCII letters lowered.
func pairKey(a, b byte) uint16 { return uint16(lowerASCII(a))<<8 | uint16(lowerASCII(b)) }

func newLiterals(set []string) *literals {
	l := &literals{}
	for _, s := range set {
		if len(s) < 2 {
			return nil
		}
		l.set = append(l.set, s)
		l.first[s[0]] = true
		if 'a' <= s[0] && s[0] <= 'z' {
			l.first[s[0]-'a'+'A'] = true
		}
	}
	if len(l.set) > maxLiterals {
		l.pairs, l.byPair = new([1 << 16 / 64]uint64), map[uint16][]string{}
		for _, s := range l.set {
			k := pairKey(s[0], s[1])
			l.pairs[k>>6] |= 1 << (k & 63)
			l.byPair[k] = append(l.byPair[k], s)
		}
		for _, b := range l.byPair {
			n := 0
			for _, w := range b {
				n += len(w)
			}
			l.bucket = max(l.bucket, n)
		}
	}
	return l
}

// containedIn reports whether s contains one of the strings without case,
// or has a rune that folds to ASCII (foldsAt: then the answer is not
// known, true). Other bytes above 0x7F match no byte of
// a string (rxfilter.go says why). Its work
// is bounded by a budget linear in len(s): strings that share long
// prefixes could otherwise make a crafted value (a megabyte of "a") cost
// len(s) times their total length; when the budget runs out the answer is
// true and RE2, linear in any case, decides.
func (l *literals) containedIn(s string) bool {
	// A wide set's budget allows one full bucket more: a bucket's strings
	// share their first two bytes and are all compared where those are.
	budget := 4*len(s) + 64 + l.bucket
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			if foldsAt(s, i) {
				return true
			}
			continue
		}
		if !l.first[c] {
			continue
		}
		set := l.set
		if l.pairs != nil {
			if i+1 >= len(s) {
				break
			}
			k := pairKey(c, s[i+1])
			if l.pairs[k>>6]&(1<<(k&63)) == 0 {
				continue
			}
			set = l.byPair[k]
		}
		for _, w := range set {
			n, ok := prefixFold(s[i:], w)
			if ok {
				return true
			}
			if budget -= n; budget < 0 {
				return true
			}
		}
	}
	return false
}

// prefixFold reports whether s starts with w (lowercase ASCII) without
// case, and how many bytes it compared. A byte above 0x7F in s matches no
// byte of w: where it starts a rune that folds to ASCII, containedIn
// answers true when it reaches the rune.
func prefixFold(s, w string) (int, bool) {
	if len(s) < len(w) {
		return 1, false
	}
	for j := 0; j < len(w); j++ {
		c := s[j]
		if lowerASCII(c) != w[j] {
			return j + 1, false
		}
	}
	return len(w), true
}
