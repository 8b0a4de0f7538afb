package waf

import (
	"errors"
	"io/fs"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/corazawaf/coraza/v3/types"

	"github.com/rampart-proxy/rampart/config"
)

func TestAppendFuse(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"one line", `SecRule ARGS "@rx a" "id:1,t:none,t:lowercase"` + "\n",
			`SecRule ARGS "@rx a" "id:1,t:none,t:lowercase,rampart_fuse"` + "\n"},
		{"continued, with a comment inside", "SecRule ARGS \"@rx a\" \\\n    \"id:1,\\\n# note\n    t:none\"\n",
			"SecRule ARGS \"@rx a\" \\\n    \"id:1,\\\n# note\n    t:none,rampart_fuse\"\n"},
		{"chain child", "SecRule ARGS \"@rx a\" \"id:1,chain\"\n    SecRule MATCHED_VARS \"@rx b\" \"t:none\"\n",
			"SecRule ARGS \"@rx a\" \"id:1,chain,rampart_fuse\"\n    SecRule MATCHED_VARS \"@rx b\" \"t:none,rampart_fuse\"\n"},
		{"CRLF", "SecRule ARGS \"@rx a\" \"id:1\"\r\n", "SecRule ARGS \"@rx a\" \"id:1,rampart_fuse\"\r\n"},
		{"no final newline", `SecRule ARGS "@rx a" "id:1"`, `SecRule ARGS "@rx a" "id:1,rampart_fuse"`},
		{"other directives", "SecAction \"id:1,t:none\"\nSecMarker \"END\"\nSecRuleRemoveById 5\n",
			"SecAction \"id:1,t:none\"\nSecMarker \"END\"\nSecRuleRemoveById 5\n"},
		{"comments and blank lines", "# SecRule ARGS \"@rx a\" \"id:1\"\n\n", "# SecRule ARGS \"@rx a\" \"id:1\"\n\n"},
		{"chained rule without actions", "SecRule ARGS \"@rx a\" \"id:1,chain\"\n    SecRule TX:X \"@eq 1\"\n",
			"SecRule ARGS \"@rx a\" \"id:1,chain,rampart_fuse\"\n    SecRule TX:X \"@eq 1\"\n"},
		{"continued rule without actions", "SecRule TX:X \\\n  \"@eq 1\"\n", "SecRule TX:X \\\n  \"@eq 1\"\n"},
		{"escaped quotes in the operator", `SecRule ARGS "@rx a\" \"b" "id:1"`, `SecRule ARGS "@rx a\" \"b" "id:1,rampart_fuse"`},
		{"only escaped quotes after the operator", `SecRule ARGS "@rx a\" \"b"`, `SecRule ARGS "@rx a\" \"b"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := string(appendFuse([]byte(c.in))); got != c.want {
				t.Errorf("got\n%q\nwant\n%q", got, c.want)
			}
			if got, want := strings.Count(c.in, "\n"), strings.Count(string(appendFuse([]byte(c.in))), "\n"); got != want {
				t.Errorf("lines: got %d; want %d", want, got)
			}
		})
	}
}

func TestFusedKeepsValueOfFailingStep(t *testing.T) {
	fail := errors.New("bad input")
	steps := []plugintypes.Transformation{
		func(s string) (string, bool, error) { return strings.ToLower(s), true, nil },
		func(s string) (string, bool, error) { return "garbage", true, fail },
		func(s string) (string, bool, error) { return strings.ReplaceAll(s, " ", ""), true, nil },
	}
	got, changed, err := chain(steps).apply("A B")
	if got != "ab" || !changed || !errors.Is(err, fail) {
		t.Errorf("got %q, %v, %v; want \"ab\", true, %v", got, changed, err, fail)
	}
	got, changed, err = chain(steps[2:]).apply("ab")
	if got != "ab" || changed || err != nil {
		t.Errorf("unchanged input: got %q, %v, %v; want \"ab\", false, nil", got, changed, err)
	}
}

// ruleShape is what a rule is besides its transformations: fusing must
// leave it alone.
type ruleShape struct {
	id, phase, level int
	operator, data   string
	negated          bool
	actions          string // names, rampart_fuse left out
	variables        int
}

// visitRules calls visit for a rule and each rule chained to it with the
// rule's shape, its number of transformation steps, whether its one step
// is a fused chain and whether it has multiMatch.
func visitRules(t *testing.T, rm types.RuleMetadata, visit func(s ruleShape, steps int, fused, multiMatch bool)) {
	t.Helper()
	for level := 0; rm != nil; level++ {
		v := reflect.ValueOf(rm).Elem()
		multi := v.FieldByName("MultiMatch").Bool()
		f := v.FieldByName("transformations")
		if !f.IsValid() {
			t.Fatal("coraza's Rule has no transformations field: fusing is off")
		}
		steps, _, ok := ruleTransformations(rm)
		if !ok && !multi {
			t.Fatalf("rule %d: transformations not readable", rm.ID())
		}
		s := ruleShape{id: rm.ID(), phase: int(rm.Phase()), level: level, variables: v.FieldByName("variables").Len()}
		if op := v.FieldByName("operator"); !op.IsNil() {
			s.operator = op.Elem().FieldByName("Function").String()
			s.data = op.Elem().FieldByName("Data").String()
			s.negated = op.Elem().FieldByName("Negation").Bool()
		}
		var names []string
		acts := v.FieldByName("actions")
		for i := range acts.Len() {
			switch n := acts.Index(i).FieldByName("Name").String(); n {
			case fuseAction:
			case removeByTagAction:
				names = append(names, "ctl") // what it was rewritten from
			default:
				names = append(names, n)
			}
		}
		s.actions = strings.Join(names, ",")
		visit(s, f.Len(), f.Len() == 1 && len(steps) == 1 && strings.Contains(funcName(steps[0]), "waf.chain.apply"), multi)
		next := v.FieldByName("Chain")
		if next.IsNil() {
			return
		}
		rm = next.Interface().(types.RuleMetadata)
	}
}

// compiledRules returns the rules of a compiled WAF as Coraza stores them,
// chains attached (a rule observer sees each rule before its chain).
func compiledRules(t *testing.T, w coraza.WAF) []types.RuleMetadata {
	t.Helper()
	v := reflect.ValueOf(w)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	rules := v.FieldByName("waf").Elem().FieldByName("Rules").FieldByName("rules")
	if !rules.IsValid() || rules.Kind() != reflect.Slice {
		t.Fatal("coraza's WAF is not laid out as this test expects")
	}
	out := make([]types.RuleMetadata, rules.Len())
	for i := range out {
		e := rules.Index(i)
		out[i] = reflect.NewAt(e.Type(), unsafe.Pointer(e.UnsafeAddr())).Interface().(types.RuleMetadata)
	}
	return out
}

// TestCRSChainsFused compiles the CRS as policies do and checks that every
// chain of two or more steps was fused, except multiMatch ones, that the
// unfused CRS has as many such chains as were fused, and that nothing else
// about any rule changed.
func TestCRSChainsFused(t *testing.T) {
	type result struct {
		shapes              []ruleShape
		long, fusedN, multi int
	}
	compile := func(root fs.FS) (r result) {
		w, err := coraza.NewWAF(coraza.NewWAFConfig().WithRootFS(root).
			WithDirectives("Include @crs-setup.conf.example\nInclude @owasp_crs/*.conf"))
		if err != nil {
			t.Fatal(err)
		}
		for _, rm := range compiledRules(t, w) {
			visitRules(t, rm, func(s ruleShape, steps int, isFused, mm bool) {
				r.shapes = append(r.shapes, s)
				switch {
				case isFused:
					r.fusedN++
				case mm && steps > 1:
					r.multi++
				case steps > 1:
					r.long++
				}
			})
		}
		return r
	}
	stock, fused := compile(coreruleset.FS), compile(crsFS())
	if stock.fusedN != 0 || stock.long < 50 {
		t.Fatalf("stock CRS: %d chains of 2+ steps, %d fused; want 50+ and 0", stock.long, stock.fusedN)
	}
	if fused.long != 0 || fused.fusedN != stock.long || fused.multi != stock.multi {
		t.Errorf("fused CRS: %d unfused chains of 2+ steps (want 0), %d fused (want %d), %d multiMatch (want %d)",
			fused.long, fused.fusedN, stock.long, fused.multi, stock.multi)
	}
	if len(fused.shapes) != len(stock.shapes) {
		t.Fatalf("fused CRS has %d rules; stock %d", len(fused.shapes), len(stock.shapes))
	}
	for i := range stock.shapes {
		if fused.shapes[i] != stock.shapes[i] {
			t.Errorf("rule %d: fused %+v; stock %+v", i, fused.shapes[i], stock.shapes[i])
		}
	}
}

// TestFusedRuleVerdicts runs rules whose chains are fused: the operator
// sees the value after every step, a multiMatch rule still sees each step,
// and t:none before rampart_fuse leaves nothing to fuse.
func TestFusedRuleVerdicts(t *testing.T) {
	rules := `SecRule ARGS:a "@streq abc" "id:1001,phase:1,deny,status:403,t:none,t:urlDecodeUni,t:lowercase,t:removeWhitespace,rampart_fuse"
SecRule ARGS:m "@streq A B" "id:1002,phase:1,deny,status:403,multiMatch,t:none,t:urlDecodeUni,t:lowercase,rampart_fuse"
SecRule ARGS:n "@streq x" "id:1003,phase:1,deny,status:403,t:lowercase,t:none,rampart_fuse"
`
	p := policy(t, "fuse", config.WAFPolicy{Mode: config.WAFModeBlock, Rules: rules})
	cases := []struct {
		query string
		want  bool
	}{
		{"a=%2520A%2520b%2520C", true}, // ARGS holds "%20A%20b%20C"; the three steps give "abc"
		{"a=A%20b%20%20C", true},
		{"m=a%2520b", false},
		{"a=abd", false},
		{"m=A%2520B", true}, // "A%20B": only the value after urlDecodeUni, "A B", matches
		{"n=X", false},
		{"n=x", true},
	}
	for _, c := range cases {
		v, _ := inspectNow(t, p, "GET /?"+c.query+" HTTP/1.1\nHost: example.com\n\n")
		if got := v.Blocked(); got != c.want {
			t.Errorf("%s: blocked %v; want %v", c.query, got, c.want)
		}
		v.Close()
	}
}
