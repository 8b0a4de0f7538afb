//go:build !rampart_stdrx

package waf

import (
	"strings"
	"unicode/utf8"

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
		if c.bytesLit == "" {
			return setPrefilterSpec{}, false
		}
		b := []byte(c.bytesLit)
		for i := range b {
			b[i] = lowerASCII(b[i])
		}
		return setPrefilterSpec{MinLen: len(b), Literals: []string{string(b)}}, true
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
	re := c.fast
	if re == nil || !utf8.ValidString(value) {
		re = c.slow()
	}
	return c.run(re, tx, value)
}
