package waf

import (
	"bytes"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/config"
)

const sqliGET = "GET /search?q=1%27%20or%20%271%27%3D%271%27%20union%20select%20password%20from%20users-- HTTP/1.1\n" + browserHeaders + "\n\n"

func blockPolicy(t testing.TB) *Policy {
	return policy(t, "block", config.WAFPolicy{
		Mode:  config.WAFModeBlock,
		Rules: "SecRule REQUEST_URI \"@beginsWith /admin\" \"id:10001,phase:1,deny,status:401,log,msg:'admin area'\"\nSecRule ARGS \"@contains evilvalue\" \"id:10002,phase:2,deny,log,msg:'evil'\"",
		Exclusions: []config.Exclusion{
			{RuleIDs: []int{913100}, PathPrefix: "/scan"},
			{RuleIDs: []int{10002}, Targets: []string{"ARGS:q"}},
			{RuleIDs: []int{10001}, PathPrefix: "/admin/public", Methods: []string{"GET", "HEAD"}},
		},
		RequestBodyLimit: 64 << 10,
	})
}

func TestModes(t *testing.T) {
	cases := []struct {
		name       string
		mode       string
		wantStatus int
		wantAction Action
		wantEvent  string
	}{
		{"block", config.WAFModeBlock, 403, ActionBlocked, "blocked"},
		{"detect", config.WAFModeDetect, 0, ActionDetected, "detected"},
		{"off", config.WAFModeOff, 0, ActionPass, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := policy(t, "mode-"+c.mode, config.WAFPolicy{Mode: c.mode})
			v, id := inspect(t, p, sqliGET)
			if c.mode == config.WAFModeOff {
				if v != nil {
					t.Fatalf("mode off: got a verdict; want nil (no transaction)")
				}
				if n := p.OpenTransactions(); n != 0 {
					t.Fatalf("mode off: open transactions %d; want 0", n)
				}
				return
			}
			if v.Status != c.wantStatus || v.Action != c.wantAction {
				t.Fatalf("got status %d action %v; want %d %v", v.Status, v.Action, c.wantStatus, c.wantAction)
			}
			if v.Score < 5 {
				t.Errorf("got score %d; want >= 5", v.Score)
			}
			e := testAudit.event(t, id)
			if e == nil || e.Action != c.wantEvent {
				t.Fatalf("audit event %+v; want action %s", e, c.wantEvent)
			}
			if c.mode == config.WAFModeDetect && e.Status != 403 {
				t.Errorf("detect: audit status %d; want 403 (what block mode would send)", e.Status)
			}
			if !ruleIDs(e)[942100] {
				t.Errorf("audit rules %v; want 942100 among them", ruleIDs(e))
			}
		})
	}
}

func TestBlockedAnswer(t *testing.T) {
	p := blockPolicy(t)
	ctx := newCtx(t, sqliGET)
	v, id := inspectCtx(t, p, ctx)
	if !v.Blocked() {
		t.Fatalf("not blocked")
	}
	v.Respond(ctx, []byte(id))
	body := string(ctx.Response.Body())
	if ctx.Response.StatusCode() != 403 || !strings.Contains(body, id) {
		t.Fatalf("got %d %q; want 403 with the request id", ctx.Response.StatusCode(), body)
	}
	for _, leak := range []string{"942", "SQL", "rule", "CRS"} {
		if strings.Contains(body, leak) {
			t.Errorf("body %q mentions %q", body, leak)
		}
	}
}

func TestBenignPassPL1(t *testing.T) {
	p := blockPolicy(t)
	json := `{"user":{"name":"Ann O'Neil","email":"ann@example.com","tags":["a","b"],"age":42},"comment":"Looks good to me, thanks!"}`
	form := "name=Ann+O%27Neil&email=ann%40example.com&qty=3&note=Please+deliver+after+5pm"
	cases := []struct{ name, raw string }{
		{"get", "GET /products/42?page=2&sort=price HTTP/1.1\n" + browserHeaders + "\n\n"},
		{"get with cookie", "GET / HTTP/1.1\n" + browserHeaders + "\nCookie: session=abc123; theme=dark\n\n"},
		{"json", "POST /api/orders HTTP/1.1\n" + browserHeaders + "\nContent-Type: application/json\nContent-Length: " + strconv.Itoa(len(json)) + "\n\n" + json},
		{"form", "POST /checkout HTTP/1.1\n" + browserHeaders + "\nContent-Type: application/x-www-form-urlencoded\nContent-Length: " + strconv.Itoa(len(form)) + "\n\n" + form},
		{"head", "HEAD /index.html HTTP/1.1\n" + browserHeaders + "\n\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, id := inspect(t, p, c.raw)
			if v.Status != 0 || v.Action != ActionPass {
				t.Fatalf("got status %d action %v score %d; want a pass (event %+v)", v.Status, v.Action, v.Score, testAudit.event(t, id))
			}
		})
	}
}

func TestBodyTypes(t *testing.T) {
	p := blockPolicy(t)
	const attack = "1' or '1'='1' union select password from users--"
	boundary := "XyZzY"
	multipart := "--" + boundary + "\r\nContent-Disposition: form-data; name=\"comment\"\r\n\r\n" + attack + "\r\n--" + boundary + "--\r\n"
	cases := []struct{ name, ctype, body string }{
		{"json", "application/json", `{"a":{"b":["x","` + attack + `"]}}`},
		{"json suffix", "application/vnd.api+json", `{"a":"` + attack + `"}`},
		{"xml", "application/xml", `<?xml version="1.0"?><order><note>` + attack + `</note></order>`},
		{"urlencoded", "application/x-www-form-urlencoded", "a=1&note=" + strings.ReplaceAll(attack, " ", "+")},
		{"multipart", "multipart/form-data; boundary=" + boundary, multipart},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw := "POST /submit HTTP/1.1\n" + browserHeaders + "\nContent-Type: " + c.ctype + "\nContent-Length: " + strconv.Itoa(len(c.body)) + "\n\n" + c.body
			v, id := inspect(t, p, raw)
			if v.Status != 403 {
				t.Fatalf("got status %d; want 403", v.Status)
			}
			e := testAudit.event(t, id)
			sqli := false
			for r := range ruleIDs(e) {
				sqli = sqli || (r >= 942000 && r < 943000)
			}
			if !sqli {
				t.Fatalf("audit rules %v; want a 942xxx (SQLi) rule: the body values were not inspected", ruleIDs(e))
			}
		})
	}
}

func TestCustomRule(t *testing.T) {
	p := blockPolicy(t)
	v, id := inspect(t, p, "GET /admin/users HTTP/1.1\n"+browserHeaders+"\n\n")
	if v.Status != 401 {
		t.Fatalf("got status %d; want 401 from rule 10001", v.Status)
	}
	if !ruleIDs(testAudit.event(t, id))[10001] {
		t.Fatalf("rule 10001 not in the audit event")
	}
}

func TestExclusions(t *testing.T) {
	p := blockPolicy(t)
	nikto := "GET %s HTTP/1.1\nHost: shop.example.com\nUser-Agent: Mozilla/5.00 (Nikto/2.1.6)\nAccept: */*\n\n"
	cases := []struct {
		name   string
		raw    string
		status int
		rule   int // must (status != 0) or must not have matched
	}{
		{"scanner blocked elsewhere", strings.Replace(nikto, "%s", "/shop", 1), 403, 913100},
		{"scanner excluded on path", strings.Replace(nikto, "%s", "/scan/x", 1), 0, 913100},
		{"target excluded", "GET /x?q=evilvalue HTTP/1.1\n" + browserHeaders + "\n\n", 0, 10002},
		{"other target still checked", "GET /x?r=evilvalue HTTP/1.1\n" + browserHeaders + "\n\n", 403, 10002},
		{"method excluded", "GET /admin/public/a HTTP/1.1\n" + browserHeaders + "\n\n", 0, 10001},
		{"other method still checked", "DELETE /admin/public/a HTTP/1.1\n" + browserHeaders + "\n\n", 401, 10001},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, id := inspect(t, p, c.raw)
			if v.Status != c.status {
				t.Fatalf("got status %d; want %d (event %+v)", v.Status, c.status, testAudit.event(t, id))
			}
			if c.status != 0 && !ruleIDs(testAudit.event(t, id))[c.rule] {
				t.Fatalf("rule %d did not match", c.rule)
			}
		})
	}
}

func TestBodyLimit(t *testing.T) {
	big := strings.Repeat("a", 2000)
	attackAt := func(off int) string {
		return "x=" + strings.Repeat("a", off) + "&y=1'+or+'1'='1'+union+select+password+from+users--"
	}
	post := func(body string) string {
		return "POST /p HTTP/1.1\n" + browserHeaders + "\nContent-Type: application/x-www-form-urlencoded\nContent-Length: " + strconv.Itoa(len(body)) + "\n\n" + body
	}
	reject := policy(t, "limit-reject", config.WAFPolicy{Mode: "block", RequestBodyLimit: 1000})
	partial := policy(t, "limit-partial", config.WAFPolicy{Mode: "block", RequestBodyLimit: 1000, RequestBodyLimitAction: config.BodyLimitPartial})
	detect := policy(t, "limit-detect", config.WAFPolicy{Mode: "detect", RequestBodyLimit: 1000})
	cases := []struct {
		name   string
		p      *Policy
		body   string
		status int
	}{
		{"reject at limit", reject, "x=" + big[:998], 0},
		{"reject over limit", reject, "x=" + big[:999], 413},
		{"partial over limit passes", partial, "x=" + big, 0},
		{"partial attack inside limit", partial, attackAt(100) + "&z=" + big, 403},
		{"partial attack beyond limit", partial, attackAt(1500), 0},
		{"detect never refuses", detect, "x=" + big, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, _ := inspect(t, c.p, post(c.body))
			if v.Status != c.status {
				t.Fatalf("got status %d; want %d", v.Status, c.status)
			}
		})
	}
}

// TestStreamedBody: a streamed body is read up to the limit for inspection
// and Verdict.Body yields it whole again.
func TestStreamedBody(t *testing.T) {
	p := blockPolicy(t) // 64 KiB limit
	// 750 arguments: under max_arguments.
	benign := bytes.Repeat([]byte("k="+strings.Repeat("v", 197)+"&"), 750)
	attack := append([]byte("q=1'+or+'1'='1'+union+select+password+from+users--&"), benign[:1000]...)
	cases := []struct {
		name   string
		body   []byte
		cl     int
		status int
	}{
		{"small attack", attack, len(attack), 403},
		{"small attack chunked", attack, -1, 403},
		{"large benign refused", benign, len(benign), 413},
		{"under limit replayed", benign[:60000], -1, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := newCtx(t, "POST /upload HTTP/1.1\n"+browserHeaders+"\nContent-Type: application/x-www-form-urlencoded\n\n")
			ctx.Request.SetBodyStream(bytes.NewReader(c.body), c.cl)
			v, _ := inspectCtx(t, p, ctx)
			if v.Status != c.status {
				t.Fatalf("got status %d; want %d", v.Status, c.status)
			}
			if c.status != 0 {
				return
			}
			if v.Body == nil {
				t.Fatalf("Body is nil; want a replay of the stream")
			}
			got, err := io.ReadAll(v.Body)
			if err != nil || !bytes.Equal(got, c.body) {
				t.Fatalf("replayed %d bytes (err %v); want the %d bytes sent", len(got), err, len(c.body))
			}
		})
	}
}

func TestHooks(t *testing.T) {
	p := blockPolicy(t)
	before, rule := testHooks.action("block/blocked"), testHooks.rule(942100)
	v := p.Inspect(newCtx(t, sqliGET), Request{ID: []byte("hooks")})
	v.Close() // the hooks have run by the end of Close at the latest
	if got := testHooks.action("block/blocked"); got != before+1 {
		t.Errorf("blocked count %d; want %d", got, before+1)
	}
	if got := testHooks.rule(942100); got != rule+1 {
		t.Errorf("942100 count %d; want %d", got, rule+1)
	}
}

func TestAuditFormat(t *testing.T) {
	p := blockPolicy(t)
	v, id := inspect(t, p, sqliGET)
	if !v.Blocked() {
		t.Fatal("not blocked")
	}
	e := testAudit.event(t, id)
	if e == nil {
		t.Fatal("no audit event")
	}
	if e.Time.IsZero() || e.ClientIP != "192.0.2.7" || e.Route != "r1" || e.Policy != "block" ||
		e.Method != "GET" || !strings.HasPrefix(e.URI, "/search?q=") || e.Action != "blocked" ||
		e.Status != 403 || e.AnomalyScore < 5 || len(e.Rules) == 0 {
		t.Fatalf("event %+v", e)
	}
	var eval bool
	for _, r := range e.Rules {
		if r.ID == 0 || r.Msg == "" || len(r.Data) > MaxMatchedData+len("…") {
			t.Errorf("rule %+v", r)
		}
		if r.ID == 942100 && (r.Severity != "critical" || r.Target == "") {
			t.Errorf("942100: %+v; want severity critical and a target", r)
		}
		eval = eval || r.ID == 949110
	}
	if !eval {
		t.Errorf("949110 (the blocking evaluation) not in %v", ruleIDs(e))
	}
	// A benign request writes no event.
	_, benign := inspect(t, p, "GET / HTTP/1.1\n"+browserHeaders+"\n\n")
	_, marker := inspect(t, p, sqliGET)
	if testAudit.event(t, marker) == nil {
		t.Fatal("no event for the marker")
	}
	for _, e := range testAudit.events(t) {
		if e.RequestID == benign {
			t.Fatalf("benign request logged: %+v", e)
		}
	}
}

func TestAuditDropsWhenFull(t *testing.T) {
	r, w := io.Pipe() // nobody reads: the writer blocks on its first event
	defer r.Close()
	a := NewAuditLog(w, 2)
	for range 10 {
		a.send(&Event{RequestID: "x"})
	}
	// 1 taken by the writer (blocked in Write), 2 queued, the rest dropped.
	if d := a.Dropped(); d < 7 || d > 8 {
		t.Fatalf("dropped %d; want 7 or 8", d)
	}
	r.Close()
	_ = a.Close()
}

// TestNoLeakedTransactions runs every kind of request, then checks that
// each policy's transactions are all closed.
func TestNoLeakedTransactions(t *testing.T) {
	rx := policy(t, "response", config.WAFPolicy{Mode: "block", InspectResponse: true})
	all := []*Policy{blockPolicy(t), rx, policy(t, "mode-detect", config.WAFPolicy{Mode: "detect"})}
	raws := []string{sqliGET, "GET / HTTP/1.1\n" + browserHeaders + "\n\n", "GET /admin HTTP/1.1\n" + browserHeaders + "\n\n",
		"POST /p HTTP/1.1\nHost: a\nContent-Type: application/json\nContent-Length: 5\n\n{bad}"}
	for _, p := range all {
		for _, raw := range raws {
			ctx := newCtx(t, raw)
			v := p.Inspect(ctx, Request{ID: []byte("leak")})
			if v.Blocked() {
				v.Respond(ctx, []byte("leak"))
			} else {
				ctx.Response.SetStatusCode(200)
				ctx.Response.SetBodyString("ok")
				v.InspectResponse(&ctx.Response, nil)
			}
			v.Close()
		}
		// A verdict left open while the response is awaited, then closed.
		v := p.Inspect(newCtx(t, "GET / HTTP/1.1\nHost: a\n\n"), Request{ID: []byte("open")})
		if p == rx && p.OpenTransactions() != 1 {
			t.Errorf("%s: %d open while awaiting the response; want 1", p.Name(), p.OpenTransactions())
		}
		v.Close()
		if n := p.OpenTransactions(); n != 0 {
			t.Errorf("%s: %d transactions open; want 0", p.Name(), n)
		}
	}
}

func TestResponseInspection(t *testing.T) {
	p := policy(t, "response", config.WAFPolicy{Mode: "block", InspectResponse: true})
	ctx := newCtx(t, "GET /page HTTP/1.1\n"+browserHeaders+"\n\n")
	v, id := inspectCtx(t, p, ctx)
	if v.Blocked() {
		t.Fatal("request blocked")
	}
	ctx.Response.SetStatusCode(200)
	ctx.Response.Header.SetContentType("text/html")
	ctx.Response.SetBodyString("<html>Warning: mysql_fetch_array() expects parameter 1 to be resource, boolean given in /var/www/x.php on line 3 You have an error in your SQL syntax; check the manual that corresponds to your MySQL server version</html>")
	if refused, _ := v.InspectResponse(&ctx.Response, nil); !refused {
		t.Fatalf("response with SQL errors not blocked; event %+v", testAudit.event(t, id))
	}
	if !ruleIDs(testAudit.event(t, id))[951230] {
		t.Errorf("event %+v; want 951230", testAudit.event(t, id))
	}
}

func TestHeadersReachEngine(t *testing.T) {
	p := policy(t, "headers", config.WAFPolicy{Mode: "block", Rules: `
SecRule REQUEST_HEADERS:Transfer-Encoding "@streq chunked" "id:10101,phase:1,pass,log,msg:'te'"
SecRule REQUEST_HEADERS:Host "@streq h.example" "id:10102,phase:1,pass,log,msg:'host'"
SecRule &REQUEST_HEADERS:X-Dup "@eq 2" "id:10103,phase:1,pass,log,msg:'dup'"
SecRule REMOTE_ADDR "@ipMatch 192.0.2.7" "id:10104,phase:1,pass,log,msg:'ip'"
SecRule UNIQUE_ID "@beginsWith req-" "id:10105,phase:1,pass,log,msg:'id'"
`})
	v, id := inspect(t, p, "POST /x HTTP/1.1\nHost: h.example\nX-Dup: 1\nX-Dup: 2\nTransfer-Encoding: chunked\nContent-Type: application/x-www-form-urlencoded\n\n3\r\nabc\r\n0\r\n\r\n")
	if v.Blocked() {
		t.Fatalf("blocked %d: %+v", v.Status, testAudit.event(t, id))
	}
	got := ruleIDs(testAudit.event(t, id))
	for _, r := range []int{10101, 10102, 10103, 10104, 10105} {
		if !got[r] {
			t.Errorf("rule %d did not match; matched %v", r, got)
		}
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  config.WAFPolicy
		want string // "" means valid
	}{
		{"valid", config.WAFPolicy{Mode: "block", Rules: "SecRule ARGS \"@rx x\" \"id:10001,phase:2,pass,log\"", Exclusions: []config.Exclusion{{RuleIDs: []int{942100}}}}, ""},
		{"off still checked", config.WAFPolicy{Mode: "off", Rules: "SecFoo bar"}, `rules line 1: unknown directive "secfoo"`},
		{"bad regexp line", config.WAFPolicy{Mode: "block", Rules: "# comment\nSecRule ARGS \"@rx a\" \"id:10001,phase:2,pass\"\n\nSecRule ARGS \\\n  \"@rx (\" \"id:10002,phase:2,pass\""}, "rules line 4: "},
		{"duplicate id", config.WAFPolicy{Mode: "block", Rules: "SecRule ARGS \"@rx a\" \"id:10001,phase:2,pass\"\nSecRule ARGS \"@rx a\" \"id:10001,phase:2,pass\""}, "rules line 2: "},
		{"unknown rule id", config.WAFPolicy{Mode: "block", Exclusions: []config.Exclusion{{RuleIDs: []int{123456}, PathPrefix: "/x"}}}, "exclusions[0]: rule 123456 is not loaded"},
		{"protected 949110", config.WAFPolicy{Mode: "block", Exclusions: []config.Exclusion{{RuleIDs: []int{942100, 949110}}}}, "rule 949110 would switch off"},
		{"protected 980170", config.WAFPolicy{Mode: "detect", Exclusions: []config.Exclusion{{RuleIDs: []int{980170}}}}, "rule 980170 would switch off"},
		{"missing rule file", config.WAFPolicy{Mode: "block", RuleFiles: []string{"testdata/nope.conf"}}, "rule_files"},
		{"rule file line", config.WAFPolicy{Mode: "block", RuleFiles: []string{"testdata/bad.conf"}}, "testdata/bad.conf line 5: "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Validate(map[string]*config.WAFPolicy{"p": &c.cfg}, "")
			if c.want == "" {
				if err != nil {
					t.Fatalf("got %v; want no error", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "waf.p") {
				t.Fatalf("got %v; want an error naming waf.p and containing %q", err, c.want)
			}
		})
	}
}

// TestReplayErrors: a client that fails mid-body is reported in BodyErr
// and nothing is forwarded.
func TestReplayErrors(t *testing.T) {
	p := blockPolicy(t)
	ctx := newCtx(t, "POST /upload HTTP/1.1\n"+browserHeaders+"\nContent-Type: application/x-www-form-urlencoded\n\n")
	ctx.Request.SetBodyStream(io.MultiReader(strings.NewReader("a=abc"), &failReader{}), 100)
	v, _ := inspectCtx(t, p, ctx)
	if v.BodyErr != errFail || v.Body != nil || v.Blocked() {
		t.Fatalf("got BodyErr %v, Body %v, status %d; want %v, nil, 0", v.BodyErr, v.Body, v.Status, errFail)
	}
}

var errFail = fasthttp.ErrBodyTooLarge

type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, errFail }

// TestInvalidUTF8Detected: values that are not UTF-8 are still inspected
// (RE2 never matches them; the @rx operator falls back to Go's regexp).
func TestInvalidUTF8Detected(t *testing.T) {
	p := blockPolicy(t)
	v, id := inspect(t, p, "GET /s?q=%ff%fe%27%20or%20%271%27%3D%271%27%20union%20select%20password%20from%20users-- HTTP/1.1\n"+browserHeaders+"\n\n")
	if v.Status != 403 {
		t.Fatalf("got status %d; want 403 (event %+v)", v.Status, testAudit.event(t, id))
	}
}

func TestAuditLogsShared(t *testing.T) {
	path := t.TempDir() + "/audit.jsonl"
	set := NewAuditLogs()
	a, err := set.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := set.Open(path)
	if a != b {
		t.Fatal("two opens of one path gave two writers")
	}
	a.send(&Event{RequestID: "one"})
	_ = set.release(a)
	b.send(&Event{RequestID: "two"}) // still open: one reference left
	_ = set.release(b)
	b.send(&Event{RequestID: "late"}) // closed: dropped, no panic
	got, _ := os.ReadFile(path)
	if n := strings.Count(string(got), "\n"); n != 2 || b.Dropped() != 1 {
		t.Fatalf("wrote %d lines, dropped %d; want 2 and 1:\n%s", n, b.Dropped(), got)
	}
}

// TestVerdictCloseTwice: a second Close of a verdict does not put it back in
// the pool again, where two later inspections would get the same one.
func TestVerdictCloseTwice(t *testing.T) {
	p := blockPolicy(t)
	v := p.Inspect(newCtx(t, "GET / HTTP/1.1\nHost: a\n\n"), Request{ID: []byte("twice")})
	v.Close()
	v.Close()
	// The pool may hand v out at most once now (or drop it, as sync.Pool may).
	a := p.Inspect(newCtx(t, "GET /a HTTP/1.1\nHost: a\n\n"), Request{ID: []byte("a")})
	b := p.Inspect(newCtx(t, "GET /b HTTP/1.1\nHost: a\n\n"), Request{ID: []byte("b")})
	if a == b {
		t.Fatal("two open inspections share one verdict")
	}
	a.Close()
	b.Close()
	if n := p.OpenTransactions(); n != 0 {
		t.Errorf("%d transactions open; want 0", n)
	}
}

// TestAuditTargets: a rule that matched several variables names each in
// its event, the first as Target, so that an exclusion by target can be
// complete (rampart waf report).
func TestAuditTargets(t *testing.T) {
	p := blockPolicy(t)
	_, id := inspect(t, p, "GET /search?a=1%27%20or%201%3D1--&b=2%27%20or%202%3D2--&c=shoes HTTP/1.1\n"+browserHeaders+"\n\n")
	e := testAudit.event(t, id)
	if e == nil {
		t.Fatal("no audit event")
	}
	for _, r := range e.Rules {
		if r.ID != 942100 {
			continue
		}
		if !slices.Equal(r.Targets, []string{"ARGS:a", "ARGS:b"}) || r.Target != "ARGS:a" {
			t.Errorf("942100: target %q, targets %q; want ARGS:a, and ARGS:a and ARGS:b", r.Target, r.Targets)
		}
		return
	}
	t.Fatalf("942100 not in %v", ruleIDs(e))
}
