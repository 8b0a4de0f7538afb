package eval

import (
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func TestKeep(t *testing.T) {
	cases := []struct {
		name, class, line, want string
	}{
		{"sqli", ClassSQLi, "' OR 1=1--", ""},
		{"sqli keywords only", ClassSQLi, " UNION ALL SELECT 1,2,3", ""},
		{"lone quote", ClassSQLi, "'", DropBareWord},
		{"separator", ClassCmdi, "; ", DropBareWord},
		{"encoded newline only", ClassCmdi, "%0a%0d", DropBareWord},
		{"bare word", ClassLDAPi, "userPassword", DropBareWord},
		{"dotted name", ClassLFI, "convert.iconv.437.CP930", DropBareWord},
		{"empty", ClassXSS, "", DropEmpty},
		{"blank", ClassXSS, "   \t", DropEmpty},
		{"comment", ClassXSS, "# XSS vectors", DropComment},
		{"hash payload", ClassSSTI, "#{7*7}", ""},
		{"control", ClassXSS, "<svg\fonload=alert(1)>", DropControl},
		{"long", ClassXSS, "<a>" + strings.Repeat("x", MaxPayload), DropLong},
		{"traversal", ClassTraversal, "..%2f..%2fetc%2fpasswd", ""},
		{"traversal hex", ClassTraversal, "..0x2f..0x2fetc0x2fpasswd", ""},
		{"traversal all encoded", ClassTraversal, "%5c%2e%2e%5c%2e%2e%5c%57%49%4e%44%4f%57%53%5c%77%69%6e%2e%69%6e%69", ""},
		{"mangled dots", ClassTraversal, "??0x2fetc0x2fpasswd", DropNotLFI},
		{"absolute system path", ClassLFI, "/etc/passwd", ""},
		{"wrapper", ClassLFI, "php://filter/convert.base64-encode/resource=index.php", ""},
		{"windows", ClassLFI, `C:\boot.ini`, ""},
		{"web file", ClassLFI, "/robots.txt", DropNotLFI},
		{"wordpress page", ClassLFI, "/wp-content/plugins", DropNotLFI},
		{"xxe", ClassXXE, `<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>`, ""},
		{"xinclude", ClassXXE, `<x xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="/etc/passwd"/></x>`, ""},
		{"plain xml", ClassXXE, `<?xml version="1.0"?><test></test>`, DropNotXXE},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Keep(c.class, c.line); got != c.want {
				t.Errorf("Keep(%s, %q) = %q; want %q", c.class, c.line, got, c.want)
			}
		})
	}
}

func TestImport(t *testing.T) {
	fsys := fstest.MapFS{
		"SQL Injection/Intruder/a.txt":         {Data: []byte("' OR 1=1--\r\n'\r\n\r\n' OR 1=1--\r\nadmin' --\r\n")},
		"SQL Injection/Intruder/b.txt":         {Data: []byte("admin' --\n1 AND SLEEP(5)\n")},
		"Directory Traversal/Intruder/t.txt":   {Data: []byte("../../{FILE}\n/robots.txt\n")},
		"XXE Injection/Intruders/x.txt":        {Data: []byte("<test></test>\n<!DOCTYPE a [<!ENTITY b SYSTEM \"file:///etc/hosts\">]><a>&b;</a>\n")},
		"XSS Injection/Intruders/x.txt":        {Data: []byte("<script>alert(1)</script>\n")},
		"Command Injection/Intruder/c.txt":     {Data: []byte(";id\n")},
		"File Inclusion/Intruders/f.txt":       {Data: []byte("/etc/passwd\n")},
		"NoSQL Injection/Intruder/n.txt":       {Data: []byte("{\"$ne\": 1}\n")},
		"LDAP Injection/Intruder/l.txt":        {Data: []byte("*)(uid=*))(|(uid=*\ncn\n")},
		"Server Side Template Injection/s.txt": {Data: []byte("{{7*7}}\n")},
		"Open Redirect/Intruder/o.txt":         {Data: []byte("//example.com/%2f..\n")},
	}
	got, st, err := Import(fsys, ".")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		ClassSQLi:      {"' OR 1=1--", "admin' --", "1 AND SLEEP(5)"},
		ClassTraversal: {"../../etc/passwd"},
		ClassXXE:       {`<!DOCTYPE a [<!ENTITY b SYSTEM "file:///etc/hosts">]><a>&b;</a>`},
		ClassLDAPi:     {"*)(uid=*))(|(uid=*"},
	}
	for class, w := range want {
		if !slices.Equal(got[class], w) {
			t.Errorf("%s: got %q; want %q", class, got[class], w)
		}
	}
	if st.Duplicates[ClassSQLi] != 2 || st.Read[ClassSQLi] != 7 || st.Kept[ClassSQLi] != 3 {
		t.Errorf("sqli stats: read %d, duplicates %d, kept %d; want 7, 2, 3", st.Read[ClassSQLi], st.Duplicates[ClassSQLi], st.Kept[ClassSQLi])
	}
	if st.DroppedBy[DropNotLFI] != 1 || st.DroppedBy[DropNotXXE] != 1 {
		t.Errorf("dropped by reason: %v; want one not LFI and one not XXE", st.DroppedBy)
	}
}

func TestSample(t *testing.T) {
	items := make([]string, 100)
	for i := range items {
		items[i] = string(rune('a'+i%26)) + strings.Repeat("x", i)
	}
	a, b := sample(items, 10, 7), sample(items, 10, 7)
	if !slices.Equal(a, b) {
		t.Errorf("the same seed gave %q and %q", a, b)
	}
	if len(a) != 10 {
		t.Fatalf("got %d items; want 10", len(a))
	}
	last := -1
	for _, s := range a {
		i := slices.Index(items, s)
		if i <= last {
			t.Errorf("sample not in the original order: %q", a)
		}
		last = i
	}
	if slices.Equal(a, sample(items, 10, 8)) {
		t.Errorf("seeds 7 and 8 gave the same sample")
	}
}

func TestParseHTTP(t *testing.T) {
	src := `A comment before the first request.

### a search
GET /search?q=shoes
Accept: text/html

### an upload
POST /upload
Content-Type: multipart/form-data; boundary=b

--b
Content-Disposition: form-data; name="f"

x
--b--


### json
POST /api
Host: api.example.com
Content-Type: application/json

{"a": 1,
 "b": 2}
`
	cases, err := ParseHTTP("t.http", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) != 3 {
		t.Fatalf("got %d requests; want 3", len(cases))
	}
	c := cases[0]
	if c.Name != "t: a search" || c.Req.Method != "GET" || c.Req.Target != "/search?q=shoes" || len(c.Req.Body) != 0 {
		t.Errorf("request 1: %q %s %s body %q", c.Name, c.Req.Method, c.Req.Target, c.Req.Body)
	}
	if got := c.Req.Get("Accept"); got != "text/html" {
		t.Errorf("Accept = %q; want the request's own", got)
	}
	if got := c.Req.Get("Host"); got != DefaultHost {
		t.Errorf("Host = %q; want %q", got, DefaultHost)
	}
	if got, want := string(cases[1].Req.Body), "--b\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nx\r\n--b--\r\n"; got != want {
		t.Errorf("multipart body = %q; want %q (CRLF, trailing blank lines dropped)", got, want)
	}
	if got, want := string(cases[2].Req.Body), "{\"a\": 1,\n \"b\": 2}"; got != want {
		t.Errorf("JSON body = %q; want %q", got, want)
	}
	if got := cases[2].Req.Get("Host"); got != "api.example.com" {
		t.Errorf("Host = %q; want the request's own", got)
	}

	bad := []struct{ name, src string }{
		{"no request line", "### x\n\n"},
		{"no target", "### x\nGET\n"},
		{"bad header", "### x\nGET /\nNot a header\n"},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			if _, err := ParseHTTP("bad.http", []byte(b.src)); err == nil || !strings.Contains(err.Error(), "bad.http:1") {
				t.Errorf("err = %v; want one naming bad.http:1", err)
			}
		})
	}
}

// TestEmbeddedCorpus checks the shipped corpus: every class has payloads,
// there are at least 500 benign requests, and every generated request
// parses as the proxy parses it.
func TestEmbeddedCorpus(t *testing.T) {
	c, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	for _, class := range AllClasses {
		if len(c.Attacks[class]) == 0 {
			t.Errorf("class %s has no payloads", class)
		}
	}
	cases, err := c.Cases(Selection{Sample: 2, Seed: DefaultSeed})
	if err != nil {
		t.Fatal(err)
	}
	benign, names := 0, map[string]bool{}
	for _, cs := range cases {
		if !cs.Attack {
			benign++
		}
		if names[cs.Name] {
			t.Errorf("two cases are called %q", cs.Name)
		}
		names[cs.Name] = true
		parse(t, cs.Req)
	}
	if benign < 500 {
		t.Errorf("%d benign requests; want at least 500", benign)
	}
	if len(c.Benign) < 150 {
		t.Errorf("%d benign requests written whole; want at least 150", len(c.Benign))
	}
}

func TestCases(t *testing.T) {
	c := &Corpus{Attacks: map[string][]string{
		ClassSQLi: {"' OR 1=1--", "1 AND SLEEP(5)", "admin' --", "1 UNION SELECT 1"},
		ClassXXE:  {`<!DOCTYPE a [<!ENTITY b SYSTEM "file:///etc/hosts">]><a>&b;</a>`},
	}, Values: []string{"O'Brien"}}
	sel := Selection{Classes: []string{ClassSQLi, ClassXXE}, Sample: 2, Seed: 3}
	a, err := c.Cases(sel)
	if err != nil {
		t.Fatal(err)
	}
	// sqli: 9 placements x 6 encodings x 2; xxe: 2 cells x 1; benign:
	// one value in 6 placements.
	if want := 9*6*2 + 2 + len(ValuePlacements); len(a) != want {
		t.Errorf("got %d cases; want %d", len(a), want)
	}
	b, _ := c.Cases(sel)
	seen := map[string]bool{}
	for i := range a {
		if a[i].Name != b[i].Name || string(a[i].Req.AppendRaw(nil)) != string(b[i].Req.AppendRaw(nil)) {
			t.Fatalf("case %d differs between two runs: %s and %s", i, a[i].Name, b[i].Name)
		}
		if a[i].Class == ClassXXE && (a[i].Encoding != EncPlain || (a[i].Placement != PlaceXML && a[i].Placement != PlaceMultipart)) {
			t.Errorf("case %s: XXE placed where Skip says not to", a[i].Name)
		}
		if a[i].Class == ClassSQLi {
			seen[a[i].Payload] = true
		}
	}
	if len(seen) != 4 {
		t.Errorf("the cells together tried %d of the 4 payloads; want all", len(seen))
	}
	other, _ := c.Cases(Selection{Classes: []string{ClassSQLi}, Sample: 2, Seed: 4})
	differ := false
	for i := range other {
		if other[i].Name != a[i].Name {
			differ = true
		}
	}
	if !differ {
		t.Errorf("seeds 3 and 4 picked the same payloads")
	}
	if _, err := c.Cases(Selection{Placements: []string{"body"}}); err == nil {
		t.Errorf("an unknown placement was accepted")
	}
}

func TestCRSCases(t *testing.T) {
	pl1, err := CRSCases(1)
	if err != nil {
		t.Fatal(err)
	}
	pl4, err := CRSCases(4)
	if err != nil {
		t.Fatal(err)
	}
	if len(pl1) < 1000 || len(pl4) <= len(pl1) {
		t.Errorf("%d tests at paranoia level 1, %d up to 4; want over 1000, and more up to 4", len(pl1), len(pl4))
	}
	for _, c := range pl1 {
		if !c.Attack || c.Placement != PlaceCRS || !strings.HasPrefix(c.Class, "crs-") || c.Req.Raw == nil {
			t.Fatalf("case %+v: want an attack sent as written, of a crs- class", c)
		}
	}
	// 942130 is a paranoia level 2 rule: its tests are not taken at 1.
	for _, c := range pl1 {
		if strings.HasPrefix(c.Name, "crs/942130-") {
			t.Errorf("%s: a test of a level 2 rule at level 1", c.Name)
		}
	}
	raw := string(pl1[0].Req.AppendRaw(nil, [2]string{"X-Request-Id", "eval-1"}))
	if line, rest, _ := strings.Cut(raw, "\r\n"); !strings.HasPrefix(rest, "X-Request-Id: eval-1\r\n") || strings.Contains(line, "X-Request-Id") {
		t.Errorf("the extra field is not right after the request line:\n%s", raw)
	}
}
