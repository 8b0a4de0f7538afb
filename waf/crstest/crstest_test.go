package crstest

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	crstests "github.com/corazawaf/coraza-coreruleset/v4/tests"
	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/waf"
)

// The whole suite takes some 15 s on two cores; by default only a sample
// runs. Set
// RAMPART_CRS=all for every test, or a comma-separated list of prefixes
// ("942,920270") for some. RAMPART_CRS_REPORT names a file that receives
// every failing test with its reason, RAMPART_CRS_FIRED one that receives
// the rules each test fired (to compare two engines' verdicts).
const sampleTests = "911100,913100,920350,930100,932160,941100-1,942100-1,942100-2,951230,980170"

// exclusionsFile lists the tests known to fail, one "NAME reason" a line.
const exclusionsFile = "../testdata/crs-exclusions.txt"

// endpoint is a loopback fasthttp server that inspects every request with
// the policy, then answers as Backend.
func endpoint(t testing.TB, p *waf.Policy) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{
		Handler:                       func(ctx *fasthttp.RequestCtx) { handle(ctx, p) },
		DisablePreParseMultipartForm:  true,
		DisableHeaderNamesNormalizing: true,
		NoDefaultServerHeader:         true,
		ReadBufferSize:                64 << 10,
		MaxRequestBodySize:            16 << 20,
		ReadTimeout:                   10 * time.Second,
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

func handle(ctx *fasthttp.RequestCtx, p *waf.Policy) {
	id := ctx.Request.Header.Peek("X-Request-Id")
	if len(id) == 0 {
		id = fmt.Appendf(nil, "r%d", ctx.ID())
	}
	ip, _ := netip.AddrFromSlice(ctx.RemoteIP().To4())
	v := p.Inspect(ctx, waf.Request{ID: id, ClientIP: ip, Route: "crs"})
	defer v.Close()
	if v.Blocked() {
		v.Respond(ctx, id)
		return
	}
	Backend(ctx)
	if refused, _ := v.InspectResponse(&ctx.Response, nil); refused {
		v.Respond(ctx, id)
	}
}

// testPolicy is the policy as the CRS test setup configures the engine.
// Rampart's own rules are off: the suite and the verdict comparison of
// stock and patched Coraza (make coraza-verdicts) are about the CRS.
func testPolicy(t testing.TB, audit string) *waf.Policy {
	off := false
	p, err := waf.Compile("crs", &config.WAFPolicy{
		RampartRules:           &off,
		Mode:                   config.WAFModeDetect,
		ParanoiaLevel:          4,
		AnomalyThreshold:       5,
		RequestBodyLimit:       13107200,
		RequestBodyLimitAction: config.BodyLimitReject,
		InspectResponse:        true,
		Rules:                  PolicyRules,
		AuditLog:               audit,
	}, waf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// TestCRSRegression runs the CRS regression tests through the adapter on
// a loopback socket and compares the results with the known failures.
func TestCRSRegression(t *testing.T) {
	spec := os.Getenv("RAMPART_CRS")
	if spec == "" {
		spec = sampleTests
	}
	files, err := Load(crstests.FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(audit, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p := testPolicy(t, audit)
	tail, f, err := OpenTail(audit)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := &Runner{Addr: endpoint(t, p), Audit: tail}
	known, err := ReadExclusions(exclusionsFile)
	if err != nil {
		t.Fatal(err)
	}
	sum := r.RunFiles(files, func(name string) bool { return selected(name, spec) }, known)
	for _, res := range sum.Unexpected {
		t.Errorf("%s: %s; fired %v", res.Name, res.Reason, res.Fired)
		if testing.Verbose() {
			t.Logf("%s log:\n%s", res.Name, res.Log)
		}
	}
	for _, name := range sum.Fixed {
		t.Logf("%s passes but is listed as failing (%s)", name, known[name])
	}
	if sum.Total == 0 {
		t.Fatalf("no test selected by %q", spec)
	}
	t.Logf("CRS regression: %s", sum)
	if out := os.Getenv("RAMPART_CRS_REPORT"); out != "" {
		if err := os.WriteFile(out, []byte(strings.Join(sum.Failures, "\n")+"\n"), 0o644); err != nil {
			t.Error(err)
		}
	}
	if out := os.Getenv("RAMPART_CRS_FIRED"); out != "" {
		if err := os.WriteFile(out, []byte(strings.Join(sum.Fired, "\n")+"\n"), 0o644); err != nil {
			t.Error(err)
		}
	}
	if n := p.OpenTransactions(); n != 0 {
		t.Errorf("%d transactions left open", n)
	}
}

func TestBuild(t *testing.T) {
	s := func(v string) *string { return &v }
	f := false
	cases := []struct {
		name string
		in   Input
		want string
	}{
		{"defaults", Input{Headers: map[string]string{"Host": "localhost"}},
			"GET / HTTP/1.1\r\nConnection: close\r\nHost: localhost\r\n\r\n"},
		{"form encoded", Input{Method: s("POST"), URI: s("/post"), Headers: map[string]string{"Host": "h"}, Data: s("var=1234 OR 1=1")},
			"POST /post HTTP/1.1\r\nConnection: close\r\nContent-Length: 17\r\nContent-Type: application/x-www-form-urlencoded\r\nHost: h\r\n\r\nvar=1234+OR+1%3D1"},
		{"with ampersand kept", Input{Method: s("POST"), Headers: map[string]string{"Host": "h"}, Data: s("a=1 2&b=3")},
			"POST / HTTP/1.1\r\nConnection: close\r\nContent-Length: 9\r\nContent-Type: application/x-www-form-urlencoded\r\nHost: h\r\n\r\na=1 2&b=3"},
		{"no autocomplete", Input{Version: s(""), Headers: map[string]string{"Host": "h"}, Data: s("x"), AutocompleteHeaders: &f},
			"GET /\r\nHost: h\r\n\r\nx"},
		{"encoded", Input{EncodedRequest: "R0VUIC8gSFRUUC8xLjANCkhvc3Q6DQoNCg=="}, "GET / HTTP/1.0\r\nHost:\r\n\r\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Build(&c.in)
			if err != nil || string(got) != c.want {
				t.Fatalf("got %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	files, err := Load(crstests.FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		n += len(f.Tests)
	}
	if len(files) < 300 || n < 4000 {
		t.Fatalf("loaded %d files, %d tests; want the whole suite", len(files), n)
	}
}

// selected reports whether the test called name is in spec: "all", or
// comma-separated name prefixes.
func selected(name, spec string) bool {
	if spec == "all" {
		return true
	}
	for _, p := range strings.Split(spec, ",") {
		if p = strings.TrimSpace(p); p != "" && strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}
