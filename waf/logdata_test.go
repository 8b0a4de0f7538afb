package waf

import (
	"net/url"
	"reflect"
	"testing"

	"github.com/corazawaf/coraza/v3/experimental/plugins/macro"

	"github.com/rampart-proxy/rampart/config"
)

// TestMemoMacroAuditEvents sends the CRS's own attack strings, as query
// values, through a policy with memoized msg and logdata and one without,
// both in detect mode, and requires identical audit events: every rule,
// message and matched data.
func TestMemoMacroAuditEvents(t *testing.T) {
	with := policy(t, "memo-on", config.WAFPolicy{Mode: config.WAFModeDetect})
	memoizeMacros = false
	without := policy(t, "memo-off", config.WAFPolicy{Mode: config.WAFModeDetect})
	memoizeMacros = true

	corpus := attackCorpus(t)
	checked, rules := 0, 0
	for i, s := range corpus {
		if i%100 != 0 || len(s) > 512 {
			continue // a sample keeps the test short
		}
		q := "q=" + url.QueryEscape(s)
		var events [2][]RuleMatch
		var actions [2]Action
		for j, p := range []*Policy{with, without} {
			v, id := inspectNow(t, p, "GET /search?"+q+" HTTP/1.1\n"+browserHeaders+"\n\n")
			actions[j] = v.Action
			v.Close()
			if actions[j] == ActionPass {
				continue // no event to wait for
			}
			e := testAudit.event(t, id)
			if e == nil {
				t.Fatalf("%q: no audit event for request %s", s, id)
			}
			events[j] = e.Rules
		}
		if actions[0] != actions[1] {
			t.Fatalf("%q: action %v memoized, %v with Coraza's macros", s, actions[0], actions[1])
		}
		if !reflect.DeepEqual(events[0], events[1]) {
			t.Fatalf("%q:\nmemoized: %+v\nCoraza's:  %+v", s, events[0], events[1])
		}
		checked++
		rules += len(events[0])
	}
	if checked < 100 || rules < 100 {
		t.Fatalf("%d requests with %d matched rules compared; want 100+ of each", checked, rules)
	}
	t.Logf("%d requests, %d matched rules, identical", checked, rules)
}

// TestNewMemoMacro splits as Coraza's macro does, or refuses.
func TestNewMemoMacro(t *testing.T) {
	for _, c := range []struct {
		text  string
		parts int
		ok    bool
	}{
		{"Matched Data: %{TX.0} found within %{MATCHED_VAR_NAME}: %{MATCHED_VAR}", 6, true},
		{"%{TX.0}", 1, true},
		{"plain text", 0, false},
		{"a %{tx.anomaly_score} b %{tx.1} c %{tx.2} d %{tx.3} e %{tx.4} f %{tx.5} g %{tx.6}", 0, false}, // 7 variables
	} {
		m, err := macroFor(c.text)
		if err != nil {
			t.Fatalf("%q: %v", c.text, err)
		}
		mm := newMemoMacro(m)
		if (mm != nil) != c.ok || (mm != nil && len(mm.parts) != c.parts) {
			t.Errorf("%q: %+v; want ok %v with %d parts", c.text, mm, c.ok, c.parts)
		}
		if mm != nil && mm.String() != c.text {
			t.Errorf("String() = %q; want %q", mm.String(), c.text)
		}
	}
}

func macroFor(text string) (macro.Macro, error) { return macro.NewMacro(text) }
