package eval

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/rampart-proxy/rampart/config"
)

func TestReport(t *testing.T) {
	mk := func(attack bool, class, place, enc string, blocked bool, rules ...int) Result {
		return Result{Case: &Case{Name: class + "/" + place + "/" + enc, Attack: attack, Class: class, Placement: place, Encoding: enc, Payload: "p\nq"},
			Outcome: Outcome{Blocked: blocked, Rules: rules}}
	}
	results := []Result{
		mk(true, ClassSQLi, PlaceQuery, EncPlain, true, 942100),
		mk(true, ClassSQLi, PlaceQuery, EncBase64, false),
		mk(true, ClassXSS, PlaceJSON, EncPlain, true, 941100),
		mk(true, ClassXSS, PlaceJSON, EncBase64, false),
		mk(false, ClassBenign, PlaceForm, EncPlain, false),
		mk(false, ClassBenign, PlaceForm, EncPlain, true, 942100, 942190),
		mk(false, ClassBenign, "request", EncPlain, false, 920350),
	}
	rep := NewReport("test", Selection{Classes: []string{ClassSQLi, ClassXSS, ClassXXE}, Sample: 5, Seed: 9}, results)
	if rep.Attacks.Total != 4 || rep.Attacks.Good != 2 || rep.Attacks.Rate != 50 {
		t.Errorf("attacks = %+v; want 2 of 4 blocked, 50%%", rep.Attacks)
	}
	if rep.Benign.Total != 3 || rep.Benign.Good != 2 {
		t.Errorf("benign = %+v; want 2 of 3 passed", rep.Benign)
	}
	byName := func(rows []Rate, name string) Rate {
		for _, r := range rows {
			if r.Name == name {
				return r
			}
		}
		t.Fatalf("no row %q in %+v", name, rows)
		return Rate{}
	}
	if r := byName(rep.ByEncoding, EncBase64); r.Total != 2 || r.Good != 0 {
		t.Errorf("base64 = %+v; want 0 of 2", r)
	}
	if r := byName(rep.ByPlacement, PlaceJSON); r.Total != 2 || r.Good != 1 {
		t.Errorf("json = %+v; want 1 of 2", r)
	}
	if r := byName(rep.Matrix[0].Cells, EncPlain); rep.Matrix[0].Placement != PlaceQuery || r.Good != 1 {
		t.Errorf("matrix[0] = %+v; want query, plain 1 blocked", rep.Matrix[0])
	}
	if len(rep.FalsePositives) != 1 || !slices.Equal(rep.FalsePositives[0].Rules, []int{942100, 942190}) || rep.FalsePositives[0].Payload != `p\nq` {
		t.Errorf("false positives = %+v; want the blocked benign case with its rules", rep.FalsePositives)
	}
	if len(rep.RulesOnBenign) != 3 || rep.RulesOnBenign[0].ID != 920350 {
		t.Errorf("rules on benign = %+v; want 3 rules, sorted by count then id", rep.RulesOnBenign)
	}
	if len(rep.Skipped) == 0 || !strings.HasPrefix(rep.Skipped[0], "xxe/query/plain") {
		t.Errorf("skipped = %q; want the XXE pairs", rep.Skipped)
	}

	var txt, md, js bytes.Buffer
	if err := rep.WriteText(&txt, 10); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"attacks blocked", "base64", "false positives: 1", "942100 942190"} {
		if !strings.Contains(txt.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, txt.String())
		}
	}
	for _, want := range []string{"| attacks blocked | 4 | 2 | 50.0% |", "| query | 100.0% | 0.0% |", "| benign/form/plain | 942100, 942190 |"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("Markdown report lacks %q:\n%s", want, md.String())
		}
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Attacks != rep.Attacks || len(back.Matrix) != len(rep.Matrix) {
		t.Errorf("JSON report does not read back: %v", err)
	}
}

// TestLocal inspects a few cases with the default policy (stock CRS at
// paranoia level 1) in process.
func TestLocal(t *testing.T) {
	l, err := NewLocal("default", &config.WAFPolicy{}, "", "eval")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cases := []struct {
		name    string
		c       *Case
		blocked bool
		rule    int
	}{
		{"sqli in the query", &Case{Name: "a", Req: Build(ClassSQLi, PlaceQuery, EncPlain, "1' UNION SELECT password FROM users--", 0)}, true, 942100},
		{"xss in JSON", &Case{Name: "b", Req: Build(ClassXSS, PlaceJSON, EncPlain, "<script>alert(1)</script>", 0)}, true, 941100},
		{"traversal in the path", &Case{Name: "c", Req: Build(ClassTraversal, PlacePath, EncPlain, "../../../../etc/passwd", 0)}, true, 930100},
		{"benign search", &Case{Name: "d", Req: Build(ClassBenign, PlaceQuery, EncPlain, "running shoes size 10", 0)}, false, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, err := l.Inspect(c.c)
			if err != nil {
				t.Fatal(err)
			}
			if o.Blocked != c.blocked {
				t.Errorf("blocked = %v (status %d, rules %v); want %v", o.Blocked, o.Status, o.Rules, c.blocked)
			}
			if c.rule != 0 && !slices.Contains(o.Rules, c.rule) {
				t.Errorf("rules = %v; want %d among them", o.Rules, c.rule)
			}
			if c.rule == 0 && len(o.Rules) != 0 {
				t.Errorf("rules = %v; want none", o.Rules)
			}
			for _, id := range o.Rules {
				if id/1000 == 949 || id/1000 == 980 {
					t.Errorf("rules = %v: the evaluation rules are listed", o.Rules)
				}
			}
		})
	}
	if _, err := NewLocal("off", &config.WAFPolicy{Mode: config.WAFModeOff}, "", "eval"); err == nil {
		t.Errorf("a policy in mode off was accepted")
	}
}

// BenchmarkLocal is the cost of one case in process: parsing the request
// from its wire form and inspecting it with the stock CRS.
func BenchmarkLocal(b *testing.B) {
	l, err := NewLocal("default", &config.WAFPolicy{}, "", "eval")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	cases := []*Case{
		{Name: "json", Req: Build(ClassSQLi, PlaceJSON, EncPlain, "1' UNION SELECT password FROM users--", 0)},
		{Name: "benign", Req: Build(ClassBenign, PlaceQuery, EncPlain, "running shoes size 10", 0)},
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := l.Inspect(cases[i%len(cases)]); err != nil {
			b.Fatal(err)
		}
	}
}

func TestWriteComparison(t *testing.T) {
	base := &Report{Attacks: Rate{Name: "attacks blocked", Total: 10, Good: 4, Rate: 40},
		ByPlacement: []Rate{{Name: PlaceQuery, Total: 4, Good: 2, Rate: 50}},
		Benign:      Rate{Name: "benign passed", Total: 5, Good: 5, Rate: 100}}
	rep := &Report{Attacks: Rate{Name: "attacks blocked", Total: 10, Good: 9, Rate: 90},
		ByPlacement: []Rate{{Name: PlaceQuery, Total: 4, Good: 4, Rate: 100}, {Name: PlaceHeader, Total: 2, Good: 1, Rate: 50}},
		Benign:      Rate{Name: "benign passed", Total: 5, Good: 4, Rate: 80}}
	var b bytes.Buffer
	if err := rep.WriteComparison(&b, base, "off", "on"); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := base.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := ReadReport(&buf)
	if err != nil || back.Attacks != base.Attacks {
		t.Fatalf("ReadReport: %+v, %v", back, err)
	}
	for _, want := range []string{
		"| rate | off | on | change |",
		"| attacks blocked | 40.0% (4/10) | 90.0% (9/10) | +50.0 |",
		"| placement: query | 50.0% (2/4) | 100.0% (4/4) | +50.0 |",
		"| placement: header | - | 50.0% (1/2) | - |",
		"| benign passed | 100.0% (5/5) | 80.0% (4/5) | -20.0 |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("comparison lacks %q:\n%s", want, b.String())
		}
	}
}
