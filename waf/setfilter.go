//go:build !rampart_stdrx

package waf

import (
	"slices"
	"strings"
	"unicode/utf8"

	bsyntax "rsc.io/binaryregexp/syntax"

	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
)

// The rule set's prefilter pass. Rampart's Coraza patch (item 6 of
// waf/corazapatch/README.md) gathers the prefilters of every rule whose
// operator describes its own (SetPrefilter) into one automaton per
// transformation chain, runs it once per value and chain, and calls the
// operator's EvaluateCandidate only for values that pass the rule's
// prefilter; the operator then skips the checks the pass already made.
// With stock Coraza nothing calls these methods and Evaluate runs its
// prefilter itself.

// setPrefilterSpec is the patch's plugintypes.PrefilterSpec, an unnamed
// struct type, spelled out so that this file builds with stock Coraza
// too (which has no such type): identical struct types are one type.
type setPrefilterSpec = struct {
	MinLen        int
	Need          *[128]bool
	Literals      []string
	Clean         *[256]bool
	CleanLiterals []string
	CleanNever    bool
	FoldRunes     bool
}

// SetPrefilter describes c's prefilter: the same conditions mayMatch
// checks, for the engine's pass. For the byte matcher: its literal, when
// its pattern is one (compared without ASCII case by the pass: a weaker
// condition than Evaluate's), else none.
func (c *rxCompiled) SetPrefilter() (setPrefilterSpec, bool) {
	if c.pre == nil {
		if c.bytesLit != "" {
			return setPrefilterSpec{MinLen: len(c.bytesLit), Literals: []string{lowerASCIIString(c.bytesLit)}}, true
		}
		if c.bytesNeed != nil {
			return setPrefilterSpec{Literals: c.bytesNeed}, true
		}
		return setPrefilterSpec{}, false
	}
	p := c.pre
	s := setPrefilterSpec{MinLen: p.minLen, Need: p.need, CleanNever: p.cleanNever, FoldRunes: true}
	if p.lits != nil {
		s.Literals = p.lits.set
	}
	if p.clean != nil || p.cleanNever {
		s.Clean = &cleanByte
		if p.clean != nil {
			s.CleanLiterals = p.clean.set
		}
	}
	return s, true
}

// EvaluateCandidate is Evaluate for a value that passed c's prefilter.
func (c *rxCompiled) EvaluateCandidate(tx plugintypes.TransactionState, value string) bool {
	if c.bytesLit != "" && !strings.Contains(value, c.bytesLit) {
		return false
	}
	if c.whole {
		// What either engine would find: the whole value, no group.
		if tx.Capturing() {
			tx.CaptureField(0, value)
		}
		return true
	}
	re := c.fast
	if re == nil || !utf8.ValidString(value) {
		re = c.slow()
	}
	return c.run(re, tx, value)
}

// maxNeedBytes bounds the byte set byteNeed returns.
const maxNeedBytes = 16

// byteNeed returns, for a byte matcher's pattern, a set of bytes (as
// one-byte strings) one of which every match contains, or nil when it
// finds none small enough. The CRS's 933180 and 941310 need '$' and one of
// '<' and 0xBC: the pass turns every other value away, where the byte
// matcher's backtracker used to run on every value. Bytes are compared by
// the pass without ASCII case, a weaker condition.
func byteNeed(pattern string) []string {
	re, err := bsyntax.Parse(pattern, bsyntax.Perl)
	if err != nil {
		return nil
	}
	set, ok := byteNeedOf(re.Simplify())
	if !ok || len(set) == 0 || len(set) > maxNeedBytes {
		return nil
	}
	out := make([]string, 0, len(set))
	for b := range set {
		out = append(out, string([]byte{b}))
	}
	slices.Sort(out)
	return out
}

func byteNeedOf(re *bsyntax.Regexp) (map[byte]bool, bool) {
	switch re.Op {
	case bsyntax.OpLiteral:
		// Every byte of the literal is in every match: take one that does
		// not fold, or an ASCII letter with its other case.
		for _, r := range re.Rune {
			if r > 0xFF {
				return nil, false
			}
			b := byte(r)
			if re.Flags&bsyntax.FoldCase == 0 || !asciiLetter(b) && b < utf8.RuneSelf {
				return map[byte]bool{b: true}, true
			}
		}
		for _, r := range re.Rune {
			if b := byte(r); b < utf8.RuneSelf && asciiLetter(b) {
				return map[byte]bool{lowerASCII(b): true, b &^ 0x20: true}, true
			}
		}
		return nil, false
	case bsyntax.OpCharClass:
		set := map[byte]bool{}
		for i := 0; i < len(re.Rune); i += 2 {
			lo, hi := re.Rune[i], re.Rune[i+1]
			if hi > 0xFF || hi-lo >= maxNeedBytes {
				return nil, false
			}
			for r := lo; r <= hi; r++ {
				set[byte(r)] = true
			}
		}
		return set, len(set) <= maxNeedBytes
	case bsyntax.OpCapture, bsyntax.OpPlus:
		return byteNeedOf(re.Sub[0])
	case bsyntax.OpRepeat:
		if re.Min == 0 {
			return nil, false
		}
		return byteNeedOf(re.Sub[0])
	case bsyntax.OpConcat:
		var best map[byte]bool
		for _, sub := range re.Sub {
			if s, ok := byteNeedOf(sub); ok && (best == nil || len(s) < len(best)) {
				best = s
			}
		}
		return best, best != nil
	case bsyntax.OpAlternate:
		u := map[byte]bool{}
		for _, sub := range re.Sub {
			s, ok := byteNeedOf(sub)
			if !ok {
				return nil, false
			}
			for b := range s {
				u[b] = true
			}
		}
		return u, len(u) <= maxNeedBytes
	default:
		return nil, false
	}
}

func asciiLetter(b byte) bool { return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' }

// digitNeed is the Need of a detector that needs an ASCII digit.
var digitNeed = func() *[128]bool {
	var n [128]bool
	for c := '0'; c <= '9'; c++ {
		n[c] = true
	}
	return &n
}()

// SetPrefilter describes d's need for the engine's pass: each byte of
// anyOf and each substring becomes a literal (compared without ASCII case
// by the pass, a weaker condition than mayMatch's for subs), and digit
// the Need of a digit. A detector that needs nothing has no spec.
func (d *detector) SetPrefilter() (setPrefilterSpec, bool) {
	return detectorSet{d}.SetPrefilter()
}

// EvaluateCandidate is Evaluate: d checks its own need again, which the
// pass only approximates.
func (d *detector) EvaluateCandidate(tx plugintypes.TransactionState, v string) bool {
	return d.Evaluate(tx, v)
}

// SetPrefilter describes what a value needs for one of ds to match: the
// union of their literals, and a digit when every one needs one. When one
// of them has no literal (anyOf and substrings), its digit alone or
// nothing is left.
func (ds detectorSet) SetPrefilter() (setPrefilterSpec, bool) {
	var s setPrefilterSpec
	allDigit, allLits := true, true
	for _, d := range ds {
		n := &d.need
		allDigit = allDigit && n.digit
		if n.anyOf == "" && len(n.subs) == 0 && len(n.foldSubs) == 0 {
			allLits = false
			continue
		}
		for i := 0; i < len(n.anyOf); i++ {
			s.Literals = append(s.Literals, string(lowerASCII(n.anyOf[i])))
		}
		for _, sub := range n.subs {
			s.Literals = append(s.Literals, lowerASCIIString(sub))
		}
		s.Literals = append(s.Literals, n.foldSubs...)
	}
	if !allLits {
		s.Literals = nil
	}
	if allDigit {
		s.Need = digitNeed
	}
	if s.Literals == nil && s.Need == nil {
		return setPrefilterSpec{}, false
	}
	slices.Sort(s.Literals)
	s.Literals = slices.Compact(s.Literals)
	return s, true
}

// EvaluateCandidate is Evaluate.
func (ds detectorSet) EvaluateCandidate(tx plugintypes.TransactionState, v string) bool {
	return ds.Evaluate(tx, v)
}
