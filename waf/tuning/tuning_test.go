package tuning

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
	"gopkg.in/yaml.v3"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/waf"
)

func line(t *testing.T, e waf.Event) string {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

func TestRead(t *testing.T) {
	ev := func(route, method, uri, action string, rules ...waf.RuleMatch) waf.Event {
		return waf.Event{Route: route, Policy: "p-" + route, Method: method, URI: uri, Action: action, Rules: rules}
	}
	sqli := waf.RuleMatch{ID: 942100, Msg: "SQL Injection", Target: "ARGS:q", Data: "1' or 1=1"}
	eval := waf.RuleMatch{ID: 949110, Msg: "Inbound Anomaly Score Exceeded", Target: "TX:blocking_inbound_anomaly_score"}
	multi := waf.RuleMatch{ID: 942290, Target: "ARGS_NAMES:$filter", Targets: []string{"ARGS_NAMES:$filter", "ARGS_NAMES:$orderby"}}
	body := waf.RuleMatch{ID: 200002, Target: "REQBODY_ERROR"}
	var log strings.Builder
	log.WriteString(line(t, ev("api", "GET", "/search?q=1%27", "blocked", sqli, eval)))
	log.WriteString(line(t, ev("api", "get", "/search?q=2", "blocked", sqli, eval)))
	log.WriteString(line(t, ev("api", "POST", "/search", "detected", sqli)))
	log.WriteString("not json\n\n")
	log.WriteString(`{"padding":"` + strings.Repeat("x", MaxLine) + `"}` + "\n")
	log.WriteString(line(t, ev("odata", "GET", "/odata/v4/Orders/17?$filter=x", "blocked", multi, body)))
	log.WriteString(line(t, ev("odata", "GET", "http://shop.example.com/odata/v4/Orders/18?$orderby=y", "detected", multi))) // no newline at the end below
	s, err := Read(strings.NewReader(strings.TrimSuffix(log.String(), "\n")), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Events != 5 || s.Blocked != 3 || s.Detected != 2 || s.BadLines != 2 {
		t.Errorf("events %d (%d blocked, %d detected), bad lines %d; want 5 (3, 2), 2", s.Events, s.Blocked, s.Detected, s.BadLines)
	}
	if len(s.Routes) != 2 || s.Routes[0].Route != "api" || s.Routes[0].Events != 3 {
		t.Errorf("routes = %+v; want api (3 events) then odata", s.Routes)
	}
	g := s.Groups[0]
	if g.RuleID != 942100 || g.Path != "/search" || g.Target != "ARGS:q" || g.Hits != 3 || !slices.Equal(g.Methods, []string{"GET", "POST"}) || g.Example != sqli.Data {
		t.Errorf("first group = %+v; want 942100 on /search ARGS:q, 3 hits, GET and POST", g)
	}
	for _, g := range s.Groups {
		if g.RuleID == 949110 || g.RuleID == 200002 {
			t.Errorf("group of rule %d: evaluation and body rules are not grouped", g.RuleID)
		}
	}
	if s.NotExcludable[200002] != 1 {
		t.Errorf("not excludable = %v; want 200002 once", s.NotExcludable)
	}
	var odata []string
	for _, g := range s.Groups {
		if g.Route == "odata" {
			odata = append(odata, g.Path+" "+g.Target)
		}
	}
	slices.Sort(odata)
	want := []string{"/odata/v4/Orders/17 ARGS_NAMES:$filter", "/odata/v4/Orders/17 ARGS_NAMES:$orderby",
		"/odata/v4/Orders/18 ARGS_NAMES:$filter", "/odata/v4/Orders/18 ARGS_NAMES:$orderby"}
	if !slices.Equal(odata, want) {
		t.Errorf("odata groups = %q; want every target of the rule, by path", odata)
	}

	cut, _ := Read(strings.NewReader(log.String()), Filter{Route: "odata", Blocked: true, PathDepth: 2})
	if cut.Events != 1 || len(cut.Groups) != 2 || cut.Groups[0].Path != "/odata/v4" {
		t.Errorf("filtered: %d events, groups %+v; want 1 event, 2 groups on /odata/v4", cut.Events, cut.Groups)
	}
}

func TestExclusionTarget(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"ARGS:q", "ARGS:q", true},
		{"args_get:q", "ARGS_GET:q", true},
		{"ARGS:json.items.3.name", `ARGS:/^json\.items\.\d+\.name$/`, true},
		{"ARGS_NAMES:json.filter.plan.$in", `ARGS_NAMES:json.filter.plan.$in`, true},
		{"ARGS:json.0", `ARGS:/^json\.\d+$/`, true},
		{"ARGS:prefs[locale]", "ARGS:prefs[locale]", true},
		{"REQUEST_HEADERS:x-api-key", "REQUEST_HEADERS:x-api-key", true},
		{"REQUEST_COOKIES:pref", "REQUEST_COOKIES:pref", true},
		{"REQUEST_XML:/*", "XML:/*", true},
		{"REQUEST_FILENAME", "", true},
		{"REQUEST_URI:", "", true},
		{"TX:anomaly_score", "", true},
		{"", "", true},
		{"ARGS:a,ctl:ruleEngine=Off", "", false},
		{`ARGS:a"b`, "", false},
		{"REQUEST_COOKIES:a b", "", false},
		{"ARGS:a|b", "", false},
		{`ARGS:a\b`, "", false},
		{"TX:a,b", "", true},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, ok := exclusionTarget(c.in)
			if got != c.want || ok != c.ok {
				t.Errorf("exclusionTarget(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
			}
		})
	}
}

func TestProposeAndYAML(t *testing.T) {
	groups := []Group{
		{Policy: "shop", RuleID: 942100, Path: "/search", Target: "ARGS:q", Methods: []string{"GET"}, Hits: 5},
		{Policy: "shop", RuleID: 942190, Path: "/search", Target: "ARGS:q", Methods: []string{"GET"}, Hits: 1},
		{Policy: "shop", RuleID: 942100, Path: "/search", Target: "ARGS:sort", Methods: []string{"GET"}, Hits: 2},
		{Policy: "shop", RuleID: 942190, Path: "/search", Target: "ARGS:sort", Methods: []string{"GET"}, Hits: 2},
		{Policy: "shop", RuleID: 911100, Path: "/api/items", Target: "REQUEST_METHOD", Methods: []string{"DELETE"}, Hits: 1},
		{Policy: "api v2", RuleID: 932235, Path: `/notes/"x"`, Target: "ARGS:json.lines.4.text", Methods: []string{"POST"}, Hits: 3},
	}
	props, unsafe := Propose(append(groups, Group{Policy: "shop", RuleID: 942100, Path: "/x", Target: "ARGS:a,ctl:ruleEngine=Off", Hits: 1}))
	if len(unsafe) != 1 || unsafe[0].Path != "/x" {
		t.Errorf("unsafe = %+v; want the group whose argument name would inject an action", unsafe)
	}
	var b bytes.Buffer
	if err := WriteYAML(&b, props); err != nil {
		t.Fatal(err)
	}
	want := `waf:
  "api v2":
    exclusions:
      - rule_ids: [932235]  # 3 hit(s)
        path_prefix: "/notes/\"x\""
        methods: ["POST"]
        targets: ["ARGS:/^json\\.lines\\.\\d+\\.text$/"]
  shop:
    exclusions:
      - rule_ids: [911100]  # 1 hit(s)
        path_prefix: "/api/items"
        methods: ["DELETE"]
      - rule_ids: [942100, 942190]  # 10 hit(s)
        path_prefix: "/search"
        methods: ["GET"]
        targets: ["ARGS:q", "ARGS:sort"]
`
	if b.String() != want {
		t.Errorf("YAML:\n%s\nwant:\n%s", b.String(), want)
	}
	var doc struct {
		WAF map[string]struct {
			Exclusions []config.Exclusion `yaml:"exclusions"`
		} `yaml:"waf"`
	}
	dec := yaml.NewDecoder(&b)
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("the YAML does not decode: %v", err)
	}
	if got := doc.WAF["api v2"].Exclusions[0].Targets[0]; got != `ARGS:/^json\.lines\.\d+\.text$/` {
		t.Errorf("decoded target = %q", got)
	}
	for name, p := range doc.WAF {
		if err := waf.Validate(map[string]*config.WAFPolicy{name: {Mode: config.WAFModeBlock, Exclusions: p.Exclusions}}, ""); err != nil {
			t.Errorf("policy %s with the proposed exclusions: %v", name, err)
		}
	}
}

// TestProposalsRemoveFalsePositives inspects benign requests that the
// stock CRS refuses, reads the audit events, proposes exclusions, compiles
// the policy with them and inspects the requests again: none may match.
func TestProposalsRemoveFalsePositives(t *testing.T) {
	raws := []string{
		"GET /odata/Orders?$filter=Status%20eq%20%27Shipped%27&$orderby=Date%20desc HTTP/1.1\r\nHost: shop.example.com\r\n\r\n",
		"POST /api/forms HTTP/1.1\r\nHost: shop.example.com\r\nContent-Type: application/json\r\nContent-Length: 81\r\n\r\n" +
			`{"fields":[{"pattern":"^[a-z]{2,}$"},{"pattern":"^[0-9]{3,}$"},{"n":"a"}],"x":1}` + "  ",
		"POST /notes HTTP/1.1\r\nHost: shop.example.com\r\nContent-Type: application/xml\r\nContent-Length: 75\r\n\r\n" +
			`<?xml version="1.0"?><n><t>2 &gt; 1 and 1 &lt; 2 -- basic maths</t></n>     `,
		"GET /account HTTP/1.1\r\nHost: shop.example.com\r\nCookie: pref=; note=1' or '1'='1\r\n\r\n",
		"GET /help HTTP/1.1\r\nHost: shop.example.com\r\nUser-Agent: Mozilla/5.00 (Nikto/2.5.0) (Evasions:None)\r\n\r\n",
	}
	inspect := func(p *waf.Policy) {
		for i, raw := range raws {
			var req fasthttp.Request
			if err := req.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			var ctx fasthttp.RequestCtx
			ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000}, nil)
			v := p.Inspect(&ctx, waf.Request{ID: []byte{'r', byte('0' + i)}, ClientIP: netip.MustParseAddr("127.0.0.1"), Route: "app"})
			v.Close()
		}
	}
	run := func(excl []config.Exclusion) []byte {
		var sink bytes.Buffer
		audit := waf.NewAuditLog(&sink, 64)
		p, err := waf.Compile("shop", &config.WAFPolicy{Mode: config.WAFModeDetect, Exclusions: excl}, waf.Options{Audit: audit})
		if err != nil {
			t.Fatal(err)
		}
		inspect(p)
		_ = p.Close()
		if err := audit.Close(); err != nil {
			t.Fatal(err)
		}
		return sink.Bytes()
	}
	first := run(nil)
	s, err := Read(bytes.NewReader(first), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Events != len(raws) {
		t.Fatalf("%d events; want one per request (%d): the requests must be false positives of the stock CRS\n%s", s.Events, len(raws), first)
	}
	var excl []config.Exclusion
	props, _ := Propose(s.Groups)
	for _, p := range props {
		excl = append(excl, p.Exclusion)
	}
	if again := run(excl); len(again) != 0 {
		t.Errorf("with the proposed exclusions %+v, rules still matched:\n%s", excl, again)
	}
}
