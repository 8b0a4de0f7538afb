package eval

import (
	"testing"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/waf"
)

// runDefault evaluates the embedded corpus with sel through the default
// policy with rampart_rules on or off.
func runDefault(t *testing.T, on bool, sel Selection) (*Report, []Result) {
	t.Helper()
	c, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	cases, err := c.Cases(sel)
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLocal("default", &config.WAFPolicy{RampartRules: &on}, "", "eval")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	results, err := Run(l, cases, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return NewReport("default", sel, results), results
}

// TestCRSAttacksBlocked: every CRS regression test of a paranoia level 1
// attack rule is blocked by the default policy, with Rampart's rules on
// (whose shapes take scores back) as with them off.
func TestCRSAttacksBlocked(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles two policies")
	}
	for _, on := range []bool{true, false} {
		rep, results := runDefault(t, on, Selection{Source: SourceCRS, NoBenign: true})
		if rep.Attacks.Total < 1500 || rep.Attacks.Good != rep.Attacks.Total {
			t.Errorf("rampart_rules %v: %d of %d CRS attack tests blocked; want all", on, rep.Attacks.Good, rep.Attacks.Total)
			for _, r := range results {
				if !r.Blocked {
					t.Logf("  passed: %s (rules %v)", r.Case.Name, r.Rules)
				}
			}
		}
	}
}

// TestDefaultTargets holds the default policy to its targets on the
// corpus, as `rampart waf eval` runs it (sample 30, seed 1): at least 90%
// of the attacks blocked in every placement and every encoding, at least
// 99% of the benign requests passed. The rates need the patched Coraza
// (`make test` builds with it); stock Coraza's XML reading refuses two
// benign requests more.
func TestDefaultTargets(t *testing.T) {
	if testing.Short() {
		t.Skip("evaluates 13,000 cases")
	}
	if !waf.CorazaPatched() {
		t.Skip("stock Coraza: the targets are those of the patched build")
	}
	rep, _ := runDefault(t, true, Selection{Sample: 30, Seed: 1})
	for _, r := range append(append([]Rate{}, rep.ByPlacement...), rep.ByEncoding...) {
		if r.Total == 0 || r.Rate < 90 {
			t.Errorf("%s: %.1f%% of %d attacks blocked; want at least 90%%", r.Name, r.Rate, r.Total)
		}
	}
	if rep.Benign.Total < 1500 || rep.Benign.Rate < 99 {
		t.Errorf("benign: %.2f%% of %d passed; want at least 99%%", rep.Benign.Rate, rep.Benign.Total)
		for _, fp := range rep.FalsePositives {
			t.Logf("  refused: %s (rules %v)", fp.Case, fp.Rules)
		}
	}
}
