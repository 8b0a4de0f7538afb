package waf

import (
	"encoding/base64"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rampart-proxy/rampart/config"
)

// rrPolicy returns a block-mode PL1 policy with Rampart's rules on (nil
// disabled) or off, with groups disabled.
func rrPolicy(t *testing.T, on bool, disabled ...string) *Policy {
	t.Helper()
	name := "rr-" + strconv.FormatBool(on) + "-" + strings.Join(disabled, "-")
	return policy(t, name, config.WAFPolicy{Mode: config.WAFModeBlock, RampartRules: &on, RampartRulesDisabled: disabled})
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func getReq(target string, headers ...string) string {
	h := ""
	for _, x := range headers {
		h += "\n" + x
	}
	return "GET " + target + " HTTP/1.1\n" + browserHeaders + h + "\n\n"
}

func postReq(target, ctype, body string) string {
	return "POST " + target + " HTTP/1.1\n" + browserHeaders + "\nContent-Type: " + ctype +
		"\nContent-Length: " + strconv.Itoa(len(body)) + "\n\n" + body
}

// rrCase is a request, the group whose rules must block it (and with it
// switched off, not), and a rule id the audit event must name (0: any).
type rrCase struct {
	name  string
	raw   string
	group string
	rule  int
}

// rrAttacks are blocked with Rampart's rules on, not by the CRS alone.
var rrAttacks = []rrCase{
	// decode
	{"base64 SVG in a SAML field", postReq("/saml/acs", "application/x-www-form-urlencoded", "SAMLResponse="+url.QueryEscape(b64(`<svg xmlns="http://www.w3.org/2000/svg" onload="alert(document.domain)"/>`))), "decode", 0},
	{"base64 SQLi in a query argument", getReq("/search?q=" + url.QueryEscape(b64("1' UNION SELECT username, password FROM users--"))), "decode", 0},
	{"double URL-encoded XSS in a form", postReq("/profile", "application/x-www-form-urlencoded", "bio="+url.QueryEscape(url.QueryEscape("<script>alert(document.cookie)</script>"))), "decode", 0},
	{"base64 command in a JSON value", postReq("/api/items", "application/json", `{"note":"`+b64("; cat /etc/passwd")+`"}`), "decode", 0},
	{"HTML entities in JSON", postReq("/api/items", "application/json", `{"note":"&lt;img src=x onerror=alert(1)&gt;"}`), "decode", 0},
	{"JSON escapes in a query argument", getReq("/search?q=" + url.QueryEscape(`\u003csvg onload=alert(1)\u003e`)), "decode", 0},
	{"base64 traversal in a cookie", getReq("/account", "Cookie: session=abc; pref="+b64("../../../../etc/passwd")), "decode", 0},
	// headers
	{"SQLi in X-Api-Key", getReq("/api/v1/items", "X-Api-Key: 1' UNION SELECT password FROM users--"), "headers", 0},
	{"traversal in X-Forwarded-Host", getReq("/api/v1/items", "X-Forwarded-Host: ../../../../etc/passwd"), "headers", 0},
	// path
	{"SQLi in a path segment", getReq("/api/v1/items/" + url.PathEscape("1' UNION SELECT password FROM users--") + "/details"), "path", 0},
	{"XSS in a matrix parameter", getReq("/api/v1/items;sort=" + url.PathEscape("<script>alert(1)</script>") + "/details"), "path", 0},
	// uploads
	{"XSS in a file name", postReq("/upload", "multipart/form-data; boundary=B0undary",
		"--B0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"<svg onload=alert(1)>.png\"\r\nContent-Type: image/png\r\n\r\nx\r\n--B0undary--\r\n"), "uploads", 0},
	// graphql
	{"SQLi in a GraphQL string argument", postReq("/graphql", "application/json", `{"query":"query { products(filter: \"1' UNION SELECT password FROM users--\") { id } }"}`), "graphql", 0},
	// xxe
	{"external entity", postReq("/api/orders", "application/xml", `<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "https://attacker.example/x">]><r>&x;</r>`), "xxe", 9500300},
	{"XInclude", postReq("/api/orders", "application/xml", `<r xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="https://attacker.example/x" parse="text"/></r>`), "xxe", 9500300},
	// ssti
	{"Jinja arithmetic", getReq("/search?q=" + url.QueryEscape("{{7*'7'}}")), "ssti", 9500300},
	{"dunder chain", getReq("/search?q=" + url.QueryEscape("{{ ''.__class__.__mro__[1].__subclasses__() }}")), "ssti", 9500300},
	{"FreeMarker Execute", getReq("/search?q=" + url.QueryEscape(`<#assign ex="freemarker.template.utility.Execute"?new()>${ex("id")}`)), "ssti", 9500300},
	// nosql
	{"operator in an argument name", getReq("/login?user=admin&password[$ne]=x"), "nosql", 9500400},
	{"operator in a JSON key", postReq("/login", "application/json", `{"user":"admin","password":{"$gt":""}}`), "nosql", 9500400},
	{"$where JavaScript", getReq("/search?q=" + url.QueryEscape("'; return this.password.match(/.*/);//")), "nosql", 9500300},
	// ldap
	{"LDAP filter break-out", getReq("/search?user=" + url.QueryEscape("*)(uid=*))(|(uid=*")), "ldap", 9500300},
	// cmdi
	{"command after a semicolon", getReq("/ping?host=" + url.QueryEscape(";id")), "cmdi", 9500300},
	{"command substitution", getReq("/ping?host=" + url.QueryEscape("$(whoami)")), "cmdi", 9500300},
	{"separator glued to the argument", getReq("/ping?host=" + url.QueryEscape("a;whoami")), "cmdi", 9500300},
	{"closing parenthesis then a command", getReq("/ping?host=" + url.QueryEscape("a);id")), "cmdi", 9500300},
	// sqli
	{"XPath tautology", getReq("/search?q=" + url.QueryEscape("x' or name()='username' or 'x'='y")), "sqli", 9500300},
	{"ORDER BY probe", getReq("/items?sort=" + url.QueryEscape("1 ORDER BY 17--")), "sqli", 9500300},
	{"login bypass with a comment", postReq("/login", "application/x-www-form-urlencoded", "user="+url.QueryEscape("admin' #")+"&password=x"), "sqli", 9500300},
	{"system variable", getReq("/search?q=" + url.QueryEscape("select @@version")), "sqli", 9500300},
	// traversal
	{"traversal with escaped separators", getReq("/download?file=" + url.QueryEscape("..%c0%9v..%c0%9v..%c0%9vetc%c0%9vpasswd")), "traversal", 9500300},
	{"traversal with IIS double percents", postReq("/api/files", "application/json", `{"path":"%c0%ae%c0%ae%%35%%63%c0%ae%c0%ae%%35%%63boot.ini"}`), "traversal", 9500300},
	// redirect
	{"protocol-relative redirect", getReq("/login?next=" + url.QueryEscape("//evil.example/")), "redirect", 9500300},
	{"credentials before the host", getReq("/login?next=" + url.QueryEscape("https://shop.example.com@evil.example/")), "redirect", 9500300},
}

// rrBenign look like attacks to a careless rule and must pass.
var rrBenign = []struct{ name, raw string }{
	{"JWT in a JSON body", postReq("/api/token", "application/json",
		`{"token":"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"}`)},
	{"base64 image in JSON", postReq("/api/avatar", "application/json", `{"image":"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="}`)},
	{"base64 of prose", getReq("/share?text=" + url.QueryEscape(b64("Meet me at the cafe at noon, bring the report")))},
	{"Mustache placeholder", postReq("/api/templates", "application/json", `{"body":"Hello {{name}}, your order {{ order.id }} ships ${DATE}"}`)},
	{"home directory in a ticket", postReq("/support", "application/x-www-form-urlencoded", "text="+url.QueryEscape("My ~/.bashrc sets PATH twice, see the attached file"))},
	{"SQL prose", postReq("/support", "application/x-www-form-urlencoded", "text="+url.QueryEscape("The report query uses WHERE 1=1 so that filters can be appended"))},
	{"apostrophes", getReq("/search?q=" + url.QueryEscape("O'Brien's and Smith's orders"))},
	{"request id headers", getReq("/api/v1/items", "X-Request-Id: 3f2a9c4e-7b1d-4c8e-9a7d-41c83b0f5c2e", "X-Forwarded-For: 203.0.113.7, 10.0.0.1", "X-Api-Key: sk_live_4eC39HqLyjWDarjtT1zdp7dc")},
	{"plain path", getReq("/api/v1/items/42/details;jsessionid=A1B2C3")},
	{"trace context and signature headers", getReq("/api/v1/orders", "Traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"Baggage: userId=alice,serverNode=DF%2028,isProduction=false", `Signature-Input: sig1=("@method" "@path");created=1765100000;keyid="k"`)},
	{"GraphQL with arguments", postReq("/graphql", "application/json", `{"query":"query Search($q: String!) { products(filter: \"red shoes\", first: 10) { id name } }","variables":{"q":"red shoes"}}`)},
	{"absolute URL argument", getReq("/login?next=" + url.QueryEscape("https://shop.example.com/account"))},
	{"XHTML DOCTYPE in a field", postReq("/cms/page", "application/x-www-form-urlencoded", "html="+url.QueryEscape(`<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">`))},
	{"XML order", postReq("/api/orders", "application/xml", `<?xml version="1.0"?><order><id>42</id><note>Leave at the door &amp; ring</note></order>`)},
	{"file upload", postReq("/upload", "multipart/form-data; boundary=B0undary",
		"--B0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"holiday photo (1).png\"\r\nContent-Type: image/png\r\n\r\nx\r\n--B0undary--\r\n")},
	// The decoded form is an XML document the XSS rules read as markup
	// (941130 on xmlns): the XML document shape takes their score back.
	// Lists of names that hold a command's name (the cmdi group).
	{"field lists", getReq("/api/v1/users?fields=" + url.QueryEscape("name;id;email") + "&columns=" + url.QueryEscape("user|pwd|hostname") + "&sort=" + url.QueryEscape("name;id"))},
	{"a label with a parenthesis", getReq("/forms/new?label=" + url.QueryEscape("Customer (optional)|identifier"))},
	// Percent signs and dots that are no traversal (the traversal group).
	{"percent-encoded emoji after an ellipsis", postReq("/api/v1/posts", "application/json", `{"text":"Great job..%F0%9F%98%82%F0%9F%98%82 see you at home"}`)},
	{"a discount code with a percent", getReq("/cart?note=" + url.QueryEscape("SAVE20%..30% off etc, see the windows display"))},
	{"SAML response posted by the identity provider", postReq("/saml/acs", "application/x-www-form-urlencoded", "SAMLResponse="+url.QueryEscape(b64(samlResponse))+"&RelayState=%2Faccount")},
}

func ruleIDsOf(e *Event) []int {
	if e == nil {
		return nil
	}
	out := make([]int, len(e.Rules))
	for i, r := range e.Rules {
		out[i] = r.ID
	}
	return out
}

func TestRampartRulesBlock(t *testing.T) {
	on, off := rrPolicy(t, true), rrPolicy(t, false)
	for _, tc := range rrAttacks {
		t.Run(tc.name, func(t *testing.T) {
			if v, _ := inspect(t, off, tc.raw); v.Blocked() {
				t.Skipf("the CRS alone blocks it (status %d): not a test of Rampart's rules", v.Status)
			}
			v, id := inspect(t, on, tc.raw)
			if !v.Blocked() {
				t.Fatalf("rampart_rules on: got status %d, score %d; want blocked", v.Status, v.Score)
			}
			if tc.rule != 0 {
				if e := testAudit.event(t, id); !slices.Contains(ruleIDsOf(e), tc.rule) {
					t.Errorf("audit event rules %v; want %d among them", ruleIDsOf(e), tc.rule)
				}
			}
			if v, _ := inspect(t, rrPolicy(t, true, tc.group), tc.raw); v.Blocked() {
				t.Errorf("group %s disabled: got status %d; want passed", tc.group, v.Status)
			}
		})
	}
}

// TestRampartRulesPass: Rampart's rules add nothing to a benign request:
// none of them matches, and the score is at most the CRS's alone.
func TestRampartRulesPass(t *testing.T) {
	on, off := rrPolicy(t, true), rrPolicy(t, false)
	for _, tc := range rrBenign {
		t.Run(tc.name, func(t *testing.T) {
			vOff, _ := inspect(t, off, tc.raw)
			v, id := inspect(t, on, tc.raw)
			for _, r := range ruleIDsOf(testAudit.event(t, id)) {
				if r >= rampartBaseID && r <= rampartLastID {
					t.Errorf("rule %d matched; want none of Rampart's", r)
				}
			}
			if v.Score > vOff.Score {
				t.Errorf("score %d with rampart_rules on; want at most %d (off)", v.Score, vOff.Score)
			}
		})
	}
}

// rrCRSFalsePositives are blocked by the CRS alone and passed by the prose
// group, which recognizes their shape.
var rrCRSFalsePositives = []struct{ name, raw string }{
	{"SQL words in prose", postReq("/support", "application/x-www-form-urlencoded", "text="+url.QueryEscape("We should union our efforts and select a single vendor before the deadline."))},
	{"dotfile in prose", postReq("/support", "application/x-www-form-urlencoded", "text="+url.QueryEscape("My ~/.bashrc sets PATH twice, see the attached file"))},
	{"JQL filter", getReq("/rest/api/search?jql=" + url.QueryEscape(`project = WEB AND status = "In Progress" ORDER BY created DESC`))},
	{"JQL with a function", getReq("/rest/api/search?jql=" + url.QueryEscape(`assignee = currentUser() AND resolution = Unresolved`))},
	{"OData compared calls", getReq("/odata/Orders?filter=" + url.QueryEscape(`year(OrderDate) eq 2026 and month(OrderDate) ge 10`))},
	{"OData functions", getReq("/odata/Products?filter=" + url.QueryEscape(`contains(Name,'trail') or startswith(Sku,'TR-')`))},
	{"base64 image in JSON", postReq("/api/avatar", "application/json", `{"image":"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="}`)},
	{"spreadsheet formula", getReq("/search?id=" + url.QueryEscape(`=IF(A2>100, "high", "low")`))},
	{"spreadsheet formula in a GraphQL argument", postReq("/graphql", "application/json", `{"query":"query { products(filter: \"=IF(A2>100, \\\"high\\\", \\\"low\\\")\", first: 10) { id } }"}`)},
}

func TestRampartRulesProse(t *testing.T) {
	on, off, noProse := rrPolicy(t, true), rrPolicy(t, false), rrPolicy(t, true, "prose")
	for _, tc := range rrCRSFalsePositives {
		t.Run(tc.name, func(t *testing.T) {
			if v, _ := inspect(t, off, tc.raw); !v.Blocked() {
				t.Skipf("the CRS alone passes it: not a test of the prose group")
			}
			if v, id := inspect(t, on, tc.raw); v.Blocked() {
				t.Errorf("rampart_rules on: status %d, rules %v; want passed", v.Status, ruleIDsOf(testAudit.event(t, id)))
			}
			if v, _ := inspect(t, noProse, tc.raw); !v.Blocked() {
				t.Errorf("prose disabled: passed; want blocked as by the CRS")
			}
		})
	}
}

// TestRampartRulesOff: with rampart_rules off the engine loads none of
// them, and the decoding pass adds nothing.
func TestRampartRulesOff(t *testing.T) {
	off, on := rrPolicy(t, false), rrPolicy(t, true)
	for _, id := range []int{9500000, 9500100, 9500202, 9500300, 9500400, 9500900} {
		if off.HasRule(id) {
			t.Errorf("rampart_rules off: rule %d loaded", id)
		}
		if !on.HasRule(id) {
			t.Errorf("rampart_rules on: rule %d not loaded", id)
		}
	}
	if p := rrPolicy(t, true, "decode", "headers", "path", "uploads", "graphql", "prose"); p.HasRule(9500000) {
		t.Errorf("every expansion group disabled: rule 9500000 loaded")
	}
	for id := range on.rules {
		if id > rampartLastID && id < exclusionBaseID {
			t.Errorf("rule %d outside %d-%d", id, rampartBaseID, rampartLastID)
		}
	}
}

func TestRampartRulesDisabledUnknown(t *testing.T) {
	on := true
	_, err := Compile("bad", &config.WAFPolicy{Mode: config.WAFModeBlock, RampartRules: &on, RampartRulesDisabled: []string{"sqlx"}}, Options{})
	if err == nil || !strings.Contains(err.Error(), `"sqlx"`) {
		t.Errorf("got %v; want an error naming \"sqlx\"", err)
	}
}

// TestCorroboration: text with code in it that sets off one CRS rule
// passes, two such texts of two rules in one request are refused,
// and a payload that breaks out of its context is refused alone.
func TestCorroboration(t *testing.T) {
	on, noProse := rrPolicy(t, true), rrPolicy(t, true, "prose")
	sql := url.QueryEscape("SELECT name FROM products WHERE price < 50 is what I'd expect the filter to do")
	path := url.QueryEscape(`Backslashes in Windows paths: C:\Program Files\Shop\shop.exe`)
	// Text with a shell variable: one command rule.
	shell := url.QueryEscape("Set PATH=$HOME/bin:$PATH in your shell profile.")
	for _, tc := range []struct {
		name    string
		raw     string
		blocked bool
	}{
		{"SQL in a sentence", getReq("/search?q=" + sql), false},
		{"Windows path in a sentence", getReq("/search?q=" + path), false},
		{"shell variable in a sentence", getReq("/search?q=" + shell), false},
		{"both in one request", getReq("/search?q=" + shell + "&note=" + path), true},
		{"with a comment", getReq("/search?q=" + url.QueryEscape("2 > 1 and 1 < 2 -- basic maths")), true},
		{"Windows IF command, prose-shaped", getReq("/search?q=" + url.QueryEscape("IF EXIST data.xls Echo The file was found.")), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, id := inspect(t, on, tc.raw)
			if v.Blocked() != tc.blocked {
				t.Fatalf("got blocked %v (score %d, rules %v); want %v", v.Blocked(), v.Score, ruleIDsOf(testAudit.event(t, id)), tc.blocked)
			}
			if v, _ := inspect(t, noProse, tc.raw); !v.Blocked() {
				t.Errorf("prose group off: got status %d; want blocked", v.Status)
			}
		})
	}
}

// TestTraversalPatterns: the traversal group's patterns find scanners'
// traversals whose separators or dots no decoder undoes, and leave plain
// ../ to the CRS and text with percent signs and dots alone.
func TestTraversalPatterns(t *testing.T) {
	match := func(v string) bool { return patternMatch(v, "traversal-target", "traversal-dots") != "" }
	for _, tc := range []struct {
		v    string
		want bool
	}{
		{"..%c0%9v..%c0%9v..%c0%9vetc%c0%9vpasswd", true},
		{"..%01%c1%8s..%01%c1%8sboot.ini", true},
		{"%%32%%65%%32%%65%bg%qfwindows%bg%qfsystem32%bg%qfdrivers%bg%qfetc%bg%qfhosts", true},
		{"0x2e0x2e%c0%qf0x2e0x2e%c0%qfetc%c0%qfpasswd", true},
		{".?%c0%5c.?%c0%5cetc%c0%5cpasswd", true},
		{"..%uEFC8windows%uEFC8win.ini", true},
		{"/0x2e0x2e0x5c0x2e0x2e0x5cetc/passwd", true},
		// Plain traversal is the CRS's; text is no traversal.
		{"../../etc/passwd", false},
		{"..\\..\\windows\\win.ini", false},
		{"Great job..%F0%9F%98%82 see you at home", false},
		{"SAVE20%..30% off etc, see the windows display", false},
		{"50% of the fetch calls, etc.", false},
		{"what?? really?? 100%", false},
	} {
		if got := match(tc.v); got != tc.want {
			t.Errorf("traversal patterns on %q: %v; want %v", tc.v, got, tc.want)
		}
	}
}

// TestSQLProbePatterns: the sqli group's probe patterns find what a SQL
// injection probe sends first and leave text that merely starts alike.
func TestSQLProbePatterns(t *testing.T) {
	match := func(v string) string { return patternMatch(v, "sqli-comment", "sqli-bool", "sqli-letters", "sqli-sys") }
	for _, tc := range []struct{ v, want string }{
		{"admin' #", "sqli-comment"},
		{"admin'--", "sqli-comment"},
		{`jane@example.org")/*`, "sqli-comment"},
		{"or true--", "sqli-bool"},
		{"' AND 1#", "sqli-bool"},
		{"&& 0;", "sqli-bool"},
		{"' OR x=x-- ", "sqli-letters"},
		{`" or a=b#`, "sqli-letters"},
		{"select @@version", "sqli-sys"},
		{"SELECT * FROM pg_shadow;", "sqli-sys"},
		{"select current_user;", "sqli-sys"},
		// Text that starts alike.
		{`"#general" is the channel`, ""},
		{"'#1 seller'", ""},
		{"Rock 'n' roll -- the best", ""},
		{"or 2 more if you have them", ""},
		{"and 1 more thing", ""},
		{"AND 1", ""}, // no comment: left alone (the pattern's prefilter)
		{"pick a or b = c, then continue", ""},
		{"select a gift for mom", ""},
		{"SELECT name FROM customers", ""},
	} {
		if got := match(tc.v); got != tc.want {
			t.Errorf("%q: matched %q; want %q", tc.v, got, tc.want)
		}
	}
}

// patternMatch returns the first of the named value patterns that finds
// v (its prefilter and its expression), or "".
func patternMatch(v string, names ...string) string {
	for _, name := range names {
		if d := detectors[name]; d.mayMatch(v) && d.rx.MatchString(v) {
			return name
		}
	}
	return ""
}
