//go:build !rampart_stdrx

package waf

import (
	"regexp"
	"regexp/syntax"
	"sync"

	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	re2 "github.com/wasilibs/go-re2"
	"rsc.io/binaryregexp"
	bsyntax "rsc.io/binaryregexp/syntax"
)

// The @rx operator is replaced with one that runs RE2 (github.com/
// wasilibs/go-re2, pure Go): the CRS's capture action makes Go's regexp use
// its slow submatch search, which dominated the CPU profile of large
// requests. Detection is unchanged: RE2 never matches invalid UTF-8, so such
// inputs go to Go's regexp, compiled from the same pattern; patterns that
// match raw bytes (\xNN >= 0x80) use the byte matcher as Coraza's own @rx
// does. RE2 is faster even on short inputs here: sending inputs under 16,
// 32 or 64 bytes to Go's regexp instead only slowed BenchmarkInspectGET and
// BenchmarkInspectPOST16K down. Before either engine runs, a prefilter
// derived from the pattern (rxfilter.go) turns away values that cannot
// match: too short, or without any of the bytes, or any of the strings, one
// of which every match contains. Build with -tags rampart_stdrx to keep
// Coraza's operator.
//
// Registration is process-wide (Coraza keeps one operator table), so it
// happens once, before any policy is compiled.
func init() {
	plugins.RegisterOperator("rx", newRX)
}

// matcher is what both regexp engines provide.
type matcher interface {
	MatchString(s string) bool
	FindStringSubmatchIndex(s string) []int
}

// rxCompiled is the @rx operator, memoized across rules and policies by
// pattern (Evaluate keeps no state of its own).
type rxCompiled struct {
	fast matcher    // RE2; nil when the pattern does not compile there
	pre  *prefilter // nil when it could never say no (rxfilter.go)

	// std is Go's regexp, or the byte matcher. Next to RE2 it only serves
	// values that are not valid UTF-8, so it is compiled on the first such
	// value: over the CRS, the Go programs would be a third of a policy's
	// live heap (7 of 21 MB), which GOGC 400 multiplies, while compiling all
	// of them takes 39 ms, paid once per process by the first values that
	// need each.
	stdOnce sync.Once
	std     matcher
	pattern string

	// bytesLit: the byte matcher's pattern is this string of bytes and
	// nothing else (the CRS's 944210, a Java serialization header), so a
	// value without it cannot match. Empty: not such a pattern.
	bytesLit string
	// bytesNeed: one of these bytes is in every match of the byte
	// matcher's pattern (byteNeed, setfilter.go); nil: none known.
	bytesNeed []string
	// whole: the pattern is .* (anchored or not, (?s) as Coraza sets
	// it), which matches every value from its start to its end: the
	// CRS's 920450 and 920451 run it on every header name to capture it.
	whole bool
}

// matchesWhole reports whether a pattern, parsed with Coraza's (?sm), is
// .* with at most ^ before and $ after: its leftmost match is always the
// whole value.
func matchesWhole(pattern string) bool {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return false
	}
	re = re.Simplify()
	subs := []*syntax.Regexp{re}
	if re.Op == syntax.OpConcat {
		subs = re.Sub
	}
	if len(subs) > 0 && (subs[0].Op == syntax.OpBeginLine || subs[0].Op == syntax.OpBeginText) {
		subs = subs[1:]
	}
	if len(subs) > 0 && (subs[len(subs)-1].Op == syntax.OpEndLine || subs[len(subs)-1].Op == syntax.OpEndText) {
		subs = subs[:len(subs)-1]
	}
	return len(subs) == 1 && subs[0].Op == syntax.OpStar && subs[0].Flags&syntax.NonGreedy == 0 &&
		subs[0].Sub[0].Op == syntax.OpAnyChar
}

// byteLiteral returns the bytes a byte matcher's pattern spells when it is
// a plain literal (no case folding, no operators), else "".
func byteLiteral(pattern string) string {
	re, err := bsyntax.Parse(pattern, bsyntax.Perl)
	if err != nil {
		return ""
	}
	re = re.Simplify()
	if re.Op != bsyntax.OpLiteral || re.Flags&bsyntax.FoldCase != 0 {
		return ""
	}
	b := make([]byte, len(re.Rune))
	for i, r := range re.Rune {
		if r > 0xFF {
			return ""
		}
		b[i] = byte(r)
	}
	return string(b)
}

func (c *rxCompiled) slow() matcher {
	c.stdOnce.Do(func() {
		if c.std == nil {
			// The pattern parsed when the operator was built; Go's
			// compiler fails on nothing its parser accepts.
			c.std = regexp.MustCompile(c.pattern)
		}
	})
	return c.std
}

func newRX(opt plugintypes.OperatorOptions) (plugintypes.Operator, error) {
	// Coraza's defaults: dot matches newline, ^ and $ match at lines.
	pattern := "(?sm)" + opt.Arguments
	c, err := memoize(opt.Memoizer, "rampart-rx:"+pattern, func() (any, error) {
		if matchesArbitraryBytes(pattern) {
			re, err := binaryregexp.Compile(opt.Arguments)
			if err != nil {
				return nil, err
			}
			return &rxCompiled{std: re, bytesLit: byteLiteral(opt.Arguments), bytesNeed: byteNeed(opt.Arguments)}, nil
		}
		// Parsing finds every error compiling would, and gives the same
		// error as regexp.Compile.
		if _, err := syntax.Parse(pattern, syntax.Perl); err != nil {
			return nil, err
		}
		c := &rxCompiled{pattern: pattern, whole: matchesWhole(pattern)}
		if fast, err := re2.Compile(pattern); err == nil {
			c.fast = fast
		} else {
			c.slow() // every value goes to Go's regexp
		}
		if pre := newPrefilter(pattern); pre.useful() {
			c.pre = &pre
		}
		return c, nil
	})
	if err != nil {
		return nil, err
	}
	return c.(*rxCompiled), nil
}

func memoize(m plugintypes.Memoizer, key string, fn func() (any, error)) (any, error) {
	if m == nil {
		return fn()
	}
	return m.Do(key, fn)
}

func (c *rxCompiled) Evaluate(tx plugintypes.TransactionState, value string) bool {
	if c.pre != nil && !c.pre.mayMatch(value) {
		return false
	}
	return c.EvaluateCandidate(tx, value)
}

// run matches value with re, capturing as Coraza's @rx does.
func (c *rxCompiled) run(re matcher, tx plugintypes.TransactionState, value string) bool {
	if !tx.Capturing() {
		return re.MatchString(value)
	}
	m := re.FindStringSubmatchIndex(value)
	if m == nil {
		return false
	}
	// As Coraza's @rx: TX.0 to TX.8 hold the match and its groups.
	for i := 0; i < len(m)/2 && i < 9; i++ {
		if m[2*i] >= 0 {
			tx.CaptureField(i, value[m[2*i]:m[2*i+1]])
		} else {
			tx.CaptureField(i, "")
		}
	}
	return true
}
