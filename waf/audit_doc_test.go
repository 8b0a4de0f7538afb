package waf

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestAuditEventDocumented keeps docs/waf-audit.md's field table and the
// JSON names of Event and RuleMatch in step, both ways.
func TestAuditEventDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/waf-audit.md")
	if err != nil {
		t.Fatal(err)
	}
	var fields []string
	for _, typ := range []struct {
		prefix string
		t      reflect.Type
	}{{"", reflect.TypeFor[Event]()}, {"rules[].", reflect.TypeFor[RuleMatch]()}} {
		for f := range typ.t.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			fields = append(fields, typ.prefix+name)
		}
	}
	var documented []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_\\[\\].]+)` \\|").FindAllSubmatch(doc, -1) {
		documented = append(documented, string(m[1]))
	}
	for _, f := range fields {
		if !slices.Contains(documented, f) {
			t.Errorf("field %q is in the audit event but not in docs/waf-audit.md", f)
		}
	}
	for _, d := range documented {
		if !slices.Contains(fields, d) {
			t.Errorf("docs/waf-audit.md documents %q, which the audit event does not have", d)
		}
	}
}
