package waf

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
)

// @rampart NAME runs one of Rampart's detection patterns on a value. Each
// pattern has a prefilter: the bytes or substrings without which it cannot
// match. An ordinary value (words, numbers, ids) fails the prefilter in one
// scan and never reaches the regular expression, which costs a CRS @rx
// rule's worth of time on every value it does reach; a dozen such rules on
// every argument were a fifth of the engine's time on a 16 KiB JSON body.
func init() {
	plugins.RegisterOperator("rampart", func(o plugintypes.OperatorOptions) (plugintypes.Operator, error) {
		var set detectorSet
		for _, name := range strings.Split(strings.TrimSpace(o.Arguments), "|") {
			d, ok := detectors[name]
			if !ok {
				return nil, fmt.Errorf("@rampart: no pattern %q", name)
			}
			set = append(set, d)
		}
		if len(set) == 1 {
			return set[0], nil
		}
		return set, nil
	})
}

// detectorSet runs several detectors, in order, on each value: one rule
// for all of a policy's patterns costs the engine one rule's overhead per
// target instead of a dozen. The first that matches names itself in
// TX:rampart_detect, which the rule's message shows.
type detectorSet []*detector

func (ds detectorSet) Evaluate(tx plugintypes.TransactionState, v string) bool {
	for _, d := range ds {
		if d.Evaluate(tx, v) {
			tx.Variables().TX().Set("rampart_detect", []string{d.msg})
			return true
		}
	}
	return false
}

// detector is a pattern and its prefilter.
type detector struct {
	msg  string // what it finds, for the rule's message
	rx   *regexp.Regexp
	need need
}

// need is a detector's prefilter: what a value must hold for the pattern
// to match it. The zero need lets every value through.
type need struct {
	anyOf    string   // one of these bytes,
	subs     []string // or one of these substrings (case-sensitive),
	foldSubs []string // or one of these lower-case ASCII substrings in any case;
	digit    bool     // and an ASCII digit
}

func (d *detector) Evaluate(tx plugintypes.TransactionState, v string) bool {
	if !d.mayMatch(v) {
		return false
	}
	m := d.rx.FindStringIndex(v)
	if m == nil {
		return false
	}
	if tx.Capturing() {
		tx.CaptureField(0, v[m[0]:m[1]])
	}
	return true
}

// mayMatch is the detector's prefilter: false when the value lacks what
// the pattern needs.
func (d *detector) mayMatch(v string) bool {
	n := &d.need
	if n.anyOf != "" || len(n.subs) > 0 || len(n.foldSubs) > 0 {
		hit := n.anyOf != "" && strings.ContainsAny(v, n.anyOf)
		for i := 0; !hit && i < len(n.subs); i++ {
			hit = strings.Contains(v, n.subs[i])
		}
		for i := 0; !hit && i < len(n.foldSubs); i++ {
			hit = containsFoldASCII(v, n.foldSubs[i])
		}
		if !hit {
			return false
		}
	}
	return !n.digit || strings.ContainsAny(v, "0123456789")
}

// containsFoldASCII reports whether v holds lit (lower-case ASCII) in any
// case, without allocating.
func containsFoldASCII(v, lit string) bool {
	n := len(lit)
	for i := 0; i+n <= len(v); i++ {
		j := 0
		for ; j < n; j++ {
			c := v[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != lit[j] {
				break
			}
		}
		if j == n {
			return true
		}
	}
	return false
}

// detectors are the patterns by name (rampart.go uses them).
var detectors = map[string]*detector{}

// pattern registers a detector and returns its @rampart operator.
func pattern(name, rx string, n need) string {
	detectors[name] = &detector{msg: name, rx: regexp.MustCompile(rx), need: n}
	return "@rampart " + name
}
