package waf

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestShapes(t *testing.T) {
	png := base64.StdEncoding.EncodeToString([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x02\x00\x00\x00\x90\x91h6\x00\x00\x01\x96IDATx\xda\x15\xd1Q\x15D!\x10EQ\x8c\x18\xc8\x18H\x08\x81\x84"))
	for _, tc := range []struct {
		name, key, value string
		want             int
	}{
		{"prose with SQL words", "q", "We should union our efforts and select a single vendor.", shapeProse},
		{"prose with a dotfile", "q", "Where is the ~/.bashrc file on a Mac? I want to add an alias.", shapeProse},
		{"prose with a code span", "q", "Run `make test` before pushing, please.", shapeProse},
		{"prose with a Windows path", "q", `The installer puts it in C:\Program Files\Shop by default, as usual`, shapeProse},
		{"JQL", "jql", `project = WEB AND status = "In Progress" ORDER BY created DESC`, shapeFilterInert},
		{"JQL relative date and bare list", "jql", `project = WEB AND labels in (frontend, css) AND created >= -30d ORDER BY updated DESC`, shapeFilterInert},
		{"search syntax without spaces", "q", `project=ops AND label=database AND status!=done ORDER BY updated DESC`, shapeFilterInert},
		{"filter with shell syntax in a string", "q", `summary ~ "$(id)" AND status = Open`, shapeFilter},
		{"OData", "$filter", `contains(Name,'trail') or startswith(Sku,'TR-')`, shapeFilter},
		{"OData compared call", "$filter", `year(OrderDate) eq 2026 and month(OrderDate) ge 10`, shapeFilter},
		{"OData expand with nested options", "$expand", `Orders($filter=Year eq 2026;$select=Id,Total;$orderby=Total desc;$top=5),Customer/Address`, shapeFilter},
		{"OData expand with SQL in a nested filter", "$expand", `Orders($filter=Year eq 2026 or 1=1;$select=Id)`, shapeNone},
		{"OData expand with a statement", "$expand", `Orders($select=Id);drop table users`, shapeNone},
		{"expand that is not an option", "q", `Orders($filter=Year eq 2026;$select=Id,Total)`, shapeNone},
		{"regular expression quantifiers", "json.fields.0.pattern", `^[^@\s]+@[^@\s]+\.[a-z]{2,}$`, shapeQuantifier},
		{"brace expansion", "q", `{cat,/etc/passwd} and {ls,-la}`, shapeNone},
		{"quantifier beside a brace expansion", "q", `[a-z]{2,} then {cat,/etc/passwd}`, shapeNone},
		{"GraphQL document", "json.query", `query Search { products(filter: "red shoes", first: 10) { id name } }`, shapeGraphQL},
		{"data URL image", "json.data", "data:image/png;base64," + png, shapeBlob},
		// Attacks have none of the shapes.
		{"quote break", "q", "admin' or '1'='1' -- and some more words here", shapeNone},
		{"union select", "q", "1 union select password from users where id is known", shapeNone},
		{"tautology in a filter", "q", "id = 1 OR 1 = 1", shapeNone},
		{"stacked query", "q", "name = 'x'; drop table users", shapeNone},
		{"SQL keyword as a value", "q", "a = 1 or b = select", shapeNone},
		{"Windows FOR loop", "q", "for %variable in (set) do command", shapeNone},
		{"a call as a filter", "q", `Process.spawn("id")`, shapeFilter},
		{"unit glued to a keyword", "q", "id = 1union select password from users", shapeNone},
		{"long unit", "q", "id = 1 and b = 2union", shapeNone},
		{"command after a separator", "q", "please run this now; cat /etc/passwd", shapeNone},
		{"command substitution in prose", "q", "hello there my friend $(id) how are you", shapeNone},
		{"traversal in prose", "q", "open the file at ../../../../etc/passwd for me please now", shapeNone},
		{"lone command line", "q", "hello\nid", shapeNone},
		{"XSS in prose", "q", "nice picture <img src=x onerror=alert(1)> of the cat", shapeNone},
		{"invalid GraphQL", "json.query", `{ user(id: 1 OR 1=1) { name } }`, shapeNone},
		{"data URL of HTML", "json.data", "data:text/html;base64," + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("<script>alert(1)</script>", 4))), shapeNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := shapeOf(tc.key, tc.value, true); got != tc.want {
				t.Errorf("shapeOf(%q, %q) = %d; want %d", tc.key, tc.value, got, tc.want)
			}
		})
	}
}

func TestMixedText(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		want        bool
	}{
		{"SQL statement in a sentence", "SELECT name FROM products WHERE price < 50 is what I'd expect the filter to do", true},
		{"Windows path in a sentence", `Backslashes in Windows paths: C:\Program Files\Shop\shop.exe`, true},
		{"shell variable in a sentence", "Set PATH=$HOME/bin:$PATH in your shell profile.", true},
		{"dotfiles in a ticket", "I added the token to ~/.bashrc as export SHOP_TOKEN=... and ran source ~/.bashrc but it fails", true},
		// What an injection needs breaks out, or the words are code.
		{"tautology of keywords", "1 or 1=1 and name is not null", false},
		{"quote that opens", "we want the select statement' or '1'='1 thanks a lot", false},
		{"comment", "2 > 1 and 1 < 2 -- basic maths and more words", false},
		{"command separator", "hello there my friend; cat /etc/passwd now please", false},
		{"pipe", "kubectl get pods -n shop | grep checkout", false},
		{"and-and", "python3 -m venv .venv && source .venv/bin/activate", false},
		{"substitution", "hello there my good friend $(id) how are you", false},
		{"markup", "nice picture here <script>alert(1)</script> thanks", false},
		{"traversal", "please open the file ../../etc/passwd for me", false},
		{"line break", "please run this for me\ncat /etc/passwd > /tmp/x now", false},
		{"double quote", `the search "trail runner" OR "trail shoe" gives nothing`, false},
		{"template", "the greeting says {{7*7}} to every user here", false},
		{"Windows command variable", "for /d %variable in (set) do command", false},
		{"too few words", "C:/Windows/win.ini and /etc/passwd here", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := mixedText(tc.value); got != tc.want {
				t.Errorf("mixedText(%q) = %v; want %v", tc.value, got, tc.want)
			}
		})
	}
}

// TestShapeCache: the cache computes only the shapes asked for, once per
// value, and answers as computing them all would.
func TestShapeCache(t *testing.T) {
	values := []struct{ k, v string }{
		{"q", "We should union our efforts and select a single vendor."},
		{"id", `=IF(A2>100, "high", "low")`},
		{"q", "sqrt(16) = 4, and 2^10 = 1024"},
		{"q", "kubectl get pods -n shop | grep checkout"},
		{"saml", b64(samlResponse)},
		{"body", "This fails with 401:\n\ncurl -H 'X-Api-Key: k' 'https://api.example.com/v1/orders'\n\nbut works in the dashboard's explorer."},
		{"q", "1' UNION SELECT password FROM users--"},
	}
	all := func(k, v string) uint16 {
		s := uint16(1) << shapeOf(k, v, true)
		for bit, f := range map[int]func(string) bool{shapeFormula: spreadsheetFormula, shapeXMLDoc: inertXMLDoc, shapeMessage: messageText} {
			if f(v) {
				s |= 1 << bit
			}
		}
		if len(v) >= 16 && sqlDead(v) {
			s |= 1 << shapeSQLDead
		}
		if len(v) >= 16 && shellFilterPipe(v) {
			s |= 1 << shapeShellFilter
		}
		return s
	}
	var c shapeCache
	for _, x := range values {
		want := all(x.k, x.v)
		// One shape at a time, in an order that interleaves the values.
		for s := 0; s < numShapes; s++ {
			bit := uint16(1) << s
			if got := c.shapes(x.k, x.v, true, bit); got != want&bit {
				t.Errorf("%q: shape %d: got %v; want %v", x.v, s, got != 0, want&bit != 0)
			}
		}
		if got := c.shapes(x.k, x.v, true, ^uint16(0)); got != want {
			t.Errorf("%q: all shapes: got %b; want %b", x.v, got, want)
		}
	}
	// Asked for the formula shape only, the cache computes nothing else.
	var lazy shapeCache
	lazy.shapes("saml", b64(samlResponse), true, 1<<shapeFormula)
	if m := lazy.m[[2]string{"saml", b64(samlResponse)}]; m.known&(1<<shapeXMLDoc|1<<shapeMessage|baseShapes) != 0 {
		t.Errorf("known %b after asking for the formula shape; want no XML, message or base shape decided", m.known)
	}
}
