package waf

import (
	"bytes"
	"io/fs"
	"strings"
	"testing"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"

	"github.com/rampart-proxy/rampart/config"
)

func TestRewriteTagCtl(t *testing.T) {
	cases := []struct{ in, want string }{
		{`"id:1,ctl:ruleRemoveTargetByTag=xss-perf-disable;REQUEST_FILENAME,ver:'x'"`,
			`"id:1,rampart_remove_target_by_tag:xss-perf-disable;REQUEST_FILENAME,ver:'x'"`},
		{"    ctl:ruleRemoveTargetByTag=t1;ARGS,\\\n", "    rampart_remove_target_by_tag:t1;ARGS,\\\n"},
		{`"ctl:ruleRemoveTargetByTag=t1;ARGS"`, `"rampart_remove_target_by_tag:t1;ARGS"`},
		// A key or a regular expression stays with Coraza's ctl.
		{`"ctl:ruleRemoveTargetByTag=t1;ARGS:foo,id:1"`, `"ctl:ruleRemoveTargetByTag=t1;ARGS:foo,id:1"`},
		{`"ctl:ruleRemoveTargetByTag=t1;ARGS:/^x/"`, `"ctl:ruleRemoveTargetByTag=t1;ARGS:/^x/"`},
		{`"ctl:ruleRemoveTargetById=941100;REQUEST_FILENAME"`, `"ctl:ruleRemoveTargetById=941100;REQUEST_FILENAME"`},
	}
	for _, c := range cases {
		if got := string(rewriteTagCtl([]byte(c.in))); got != c.want {
			t.Errorf("rewriteTagCtl(%q) = %q; want %q", c.in, got, c.want)
		}
	}

	// Every such ctl of the CRS is rewritten, and nothing else changes.
	names, _ := fs.Glob(coreruleset.FS, "@owasp_crs/*.conf")
	stock, rewritten := 0, 0
	for _, n := range names {
		b, _ := fs.ReadFile(coreruleset.FS, n)
		stock += bytes.Count(b, []byte("ctl:ruleRemoveTargetByTag="))
		r, _ := fs.ReadFile(crsFS(), n)
		rewritten += bytes.Count(r, []byte(removeByTagAction+":"))
		if bytes.Contains(r, []byte("ctl:ruleRemoveTargetByTag=")) {
			t.Errorf("%s: a ctl:ruleRemoveTargetByTag was not rewritten", n)
		}
	}
	if stock == 0 || rewritten != stock {
		t.Errorf("CRS: %d ctl:ruleRemoveTargetByTag, %d rewritten; want the same, not 0", stock, rewritten)
	}
}

// TestRemoveTargetByTag runs the same rules with Coraza's ctl and with the
// rewritten action: the verdicts must be the same.
func TestRemoveTargetByTag(t *testing.T) {
	rules := `SecRule ARGS:skip "@streq 1" "id:1000,phase:1,pass,nolog,CTL"
SecRule REQUEST_FILENAME|ARGS:q "@contains evil" "id:1001,phase:2,deny,status:403,tag:'perf-x'"
SecRule REQUEST_FILENAME "@contains evil" "id:1002,phase:2,deny,status:401,tag:'other'"
`
	cases := []struct {
		target string
		status int
	}{
		{"/evil", 403},               // 1001 looks at the path
		{"/evil?skip=1", 401},        // not any more; 1002 still does
		{"/fine?skip=1&q=evil", 403}, // 1001 still looks at ARGS:q
		{"/fine?skip=1", 0},
	}
	for _, ctl := range []string{"ctl:ruleRemoveTargetByTag=perf-x;REQUEST_FILENAME", removeByTagAction + ":perf-x;REQUEST_FILENAME"} {
		p := policy(t, "tag-"+ctl, config.WAFPolicy{Mode: config.WAFModeBlock, Rules: strings.Replace(rules, "CTL", ctl, 1)})
		for _, c := range cases {
			v, _ := inspectNow(t, p, "GET "+c.target+" HTTP/1.1\nHost: example.com\nUser-Agent: test\nAccept: */*\n\n")
			if v.Status != c.status {
				t.Errorf("%s, %s: status %d; want %d", ctl, c.target, v.Status, c.status)
			}
			v.Close()
		}
	}
}
