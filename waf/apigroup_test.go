package waf

import (
	"slices"
	"strconv"
	"testing"

	"github.com/rampart-proxy/rampart/config"
)

func methodReq(method, target, ctype, body string) string {
	return method + " " + target + " HTTP/1.1\n" + browserHeaders + "\nContent-Type: " + ctype +
		"\nContent-Length: " + strconv.Itoa(len(body)) + "\n\n" + body
}

// TestAPIGroup: the api group lets PUT, PATCH, DELETE and +json/+xml
// media types through, with the CRS rules that flag them still in the
// audit event (911100, 920420) and their score taken back; other methods
// and types stay refused, an attack in such a request stays blocked, and
// with the group off the CRS refuses them.
func TestAPIGroup(t *testing.T) {
	on, noAPI := rrPolicy(t, true), rrPolicy(t, true, "api")
	for _, tc := range []struct {
		name    string
		raw     string
		rule    int  // the CRS rule the audit event must name
		blocked bool // with the group on
	}{
		{"PUT JSON", methodReq("PUT", "/api/items/42", "application/json", `{"name":"trail shoe"}`), 911100, false},
		{"DELETE", methodReq("DELETE", "/api/items/42", "application/json", `{}`), 911100, false},
		{"PATCH merge-patch", methodReq("PATCH", "/api/items/42", "application/merge-patch+json", `{"price":12}`), 920420, false},
		{"CSP violation report", methodReq("POST", "/csp-reports", "application/csp-report", `{"csp-report":{"document-uri":"https://shop.example.com/checkout","violated-directive":"script-src-elem","blocked-uri":"https://cdn.example.net/x.js"}}`), 920420, false},
		{"XSS in a CSP report", methodReq("POST", "/csp-reports", "application/csp-report", `{"csp-report":{"document-uri":"<script>alert(document.cookie)</script>"}}`), 941100, true},
		{"POST RSS", methodReq("POST", "/feeds", "application/rss+xml", `<?xml version="1.0"?><rss version="2.0"><channel><title>News</title></channel></rss>`), 920420, false},
		{"WebDAV PROPFIND", "PROPFIND /dav/files/jane/Photos%20(2026)/ HTTP/1.1\n" + browserHeaders + "\nDepth: 1\n\n", 911100, false},
		{"TRACE stays refused", methodReq("TRACE", "/api/items/42", "application/json", `{}`), 911100, true},
		{"unknown type stays refused", methodReq("POST", "/api/items", "application/x-evil", `a=b`), 920420, true},
		{"XSS in a merge patch", methodReq("PATCH", "/api/items/42", "application/merge-patch+json", `{"bio":"<script>alert(document.cookie)</script>"}`), 941100, true},
		{"SQLi in a PUT", methodReq("PUT", "/api/items/42", "application/json", `{"name":"1' UNION SELECT password FROM users--"}`), 942100, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, id := inspect(t, on, tc.raw)
			if v.Blocked() != tc.blocked {
				t.Fatalf("got blocked %v (status %d, score %d); want %v", v.Blocked(), v.Status, v.Score, tc.blocked)
			}
			if ids := ruleIDsOf(testAudit.event(t, id)); !slices.Contains(ids, tc.rule) {
				t.Errorf("audit event rules %v; want %d among them", ids, tc.rule)
			}
			if !tc.blocked && v.Score != 0 {
				t.Errorf("got score %d; want 0 (the group's score taken back)", v.Score)
			}
			if v, _ := inspect(t, noAPI, tc.raw); !v.Blocked() {
				t.Errorf("api group off: got status %d; want blocked", v.Status)
			}
		})
	}
}

// TestAPIGroupExclusion: with 911100 excluded there is no score to take
// back, and the score of another finding stays.
func TestAPIGroupExclusion(t *testing.T) {
	on := true
	p := policy(t, "api-excl", config.WAFPolicy{Mode: config.WAFModeBlock, RampartRules: &on,
		Exclusions: []config.Exclusion{{RuleIDs: []int{911100}}}})
	v, id := inspect(t, p, methodReq("PUT", "/api/items/42", "application/json", `{"bio":"<script>alert(document.cookie)</script>"}`))
	if !v.Blocked() {
		t.Fatalf("got status %d score %d (rules %v); want blocked", v.Status, v.Score, ruleIDsOf(testAudit.event(t, id)))
	}
	if ids := ruleIDsOf(testAudit.event(t, id)); slices.Contains(ids, 911100) {
		t.Errorf("audit event rules %v; want no 911100 (excluded)", ids)
	}
}

func TestAPIMediaType(t *testing.T) {
	for _, tc := range []struct {
		ct   string
		want bool
	}{
		{"application/merge-patch+json", true},
		{"Application/Problem+JSON; charset=utf-8", true},
		{"application/rss+xml", true},
		{"application/csp-report", true},
		{"application/csp-reports", false},
		{"application/json", false},
		{"application/+json", false},
		{"text/x+json", false},
		{"application/a b+json", false},
		{"", false},
	} {
		if got := apiMediaType(tc.ct); got != tc.want {
			t.Errorf("apiMediaType(%q) = %v; want %v", tc.ct, got, tc.want)
		}
	}
}
