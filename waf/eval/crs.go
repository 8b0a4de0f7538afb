package eval

import (
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	crstests "github.com/corazawaf/coraza-coreruleset/v4/tests"

	"github.com/rampart-proxy/rampart/waf/crstest"
)

// PlaceCRS is the placement of the CRS regression tests' requests, sent
// as the tests write them.
const PlaceCRS = "crs-test"

// EncAsWritten is the encoding of the CRS regression tests' requests:
// whatever the test wrote.
const EncAsWritten = "as-written"

// The CRS's attack rule files, by number, and the class of their tests.
var crsClasses = map[int]string{
	930: "crs-lfi", 931: "crs-rfi", 932: "crs-rce", 933: "crs-php", 934: "crs-generic",
	941: "crs-xss", 942: "crs-sqli", 943: "crs-session-fixation", 944: "crs-java",
}

var (
	ruleIDRx = regexp.MustCompile(`\bid:(\d+)`)
	plRx     = regexp.MustCompile(`paranoia-level/(\d)`)
)

// crsParanoia returns the paranoia level of each CRS rule, read from the
// tags of the embedded rule files.
func crsParanoia() (map[int]int, error) {
	files, err := fs.Glob(coreruleset.FS, "@owasp_crs/*.conf")
	if err != nil {
		return nil, err
	}
	pl := map[int]int{}
	for _, f := range files {
		b, err := fs.ReadFile(coreruleset.FS, f)
		if err != nil {
			return nil, err
		}
		// A rule starts at a SecRule in the first column; its chained
		// rules are indented.
		for _, chunk := range strings.Split(string(b), "\nSecRule ") {
			id := ruleIDRx.FindStringSubmatch(chunk)
			level := plRx.FindStringSubmatch(chunk)
			if id == nil || level == nil {
				continue
			}
			n, _ := strconv.Atoi(id[1])
			l, _ := strconv.Atoi(level[1])
			pl[n] = l
		}
	}
	if len(pl) == 0 {
		return nil, fmt.Errorf("eval: no paranoia level tag in the CRS rules")
	}
	return pl, nil
}

// CRSCases returns the CRS regression tests of the attack rules (files
// 930-944) as attack cases, sent as written: a test counts when it has
// one stage, expects its own rule to match, and that rule is of paranoia
// level maxPL or below (the tests of higher levels' rules are attacks a
// policy at maxPL is not meant to see). Their class is the rule file's
// ("crs-sqli"), their placement PlaceCRS, their encoding EncAsWritten.
func CRSCases(maxPL int) ([]*Case, error) {
	pl, err := crsParanoia()
	if err != nil {
		return nil, err
	}
	files, err := crstest.Load(crstests.FS, ".")
	if err != nil {
		return nil, err
	}
	var cases []*Case
	for _, f := range files {
		class := crsClasses[f.RuleID/1000]
		if class == "" || pl[f.RuleID] == 0 || pl[f.RuleID] > maxPL {
			continue
		}
		for _, tc := range f.Tests {
			if len(tc.Stages) != 1 {
				continue
			}
			st := tc.Stages[0]
			if st.Output.ExpectError || !slices.Contains(st.Output.Log.ExpectIDs, f.RuleID) {
				continue
			}
			raw, err := crstest.Build(&st.Input)
			if err != nil {
				return nil, fmt.Errorf("eval: CRS test %s: %w", tc.Name, err)
			}
			cases = append(cases, &Case{
				Name: "crs/" + tc.Name, Attack: true, Class: class, Placement: PlaceCRS, Encoding: EncAsWritten,
				Payload: tc.Desc, Req: Request{Raw: raw},
			})
		}
	}
	return cases, nil
}
