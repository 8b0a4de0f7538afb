package proxy

import (
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	crstests "github.com/corazawaf/coraza-coreruleset/v4/tests"
	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/waf/crstest"
)

// crsExclusions lists the CRS regression tests known to fail through the
// proxy, one "NAME reason" a line; crsExclusionsNormalize those that fail
// besides when the listener normalizes paths (path_handling: normalize).
const (
	crsExclusions          = "testdata/crs-exclusions.txt"
	crsExclusionsNormalize = "testdata/crs-exclusions-normalize.txt"
)

// TestCRSRegressionThroughProxy sends the OWASP CRS's own regression tests
// (the go-ftw YAML files shipped in coraza-coreruleset) through a running
// Rampart over a real socket: a listener, a route with a WAF policy set up
// as the CRS test setup sets the engine (detect mode, paranoia level 4,
// response inspection), and a backend that answers as the tests expect. The
// rules that fired are read back from the policy's audit log.
//
// The suite runs twice: on a listener that matches and inspects paths as
// received (path_handling: raw), what the suite's reference server (Apache
// with ModSecurity) hands the engine, and on one that normalizes them (the
// default), where the WAF inspects the path the upstream receives.
//
// By default every test runs (some 15 s per mode on two cores; a sample
// under -race).
// RAMPART_CRS=sample
// runs a few, RAMPART_CRS=942,920270 those whose names start so;
// RAMPART_CRS_REPORT=FILE receives every failure with its reason.
func TestCRSRegressionThroughProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("the CRS suite is long; run without -short")
	}
	spec := os.Getenv("RAMPART_CRS")
	if spec == "" && raceEnabled {
		// The race detector makes the engine ten times slower; the full
		// suite runs without it (make test runs both).
		spec = "sample"
	}
	switch spec {
	case "", "all":
		spec = ""
	case "sample":
		spec = "911100,913100,920350,930100,932160,941100-1,942100-1,942100-2,951230,980170"
	}
	files, err := crstest.Load(crstests.FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{config.PathRaw, config.PathNormalize} {
		t.Run("path_handling="+mode, func(t *testing.T) {
			runCRSThroughProxy(t, files, spec, mode)
		})
	}
}

// runCRSThroughProxy runs the selected tests of files through a proxy
// whose listener has the given path_handling. The policy has Rampart's
// own rules on, as users run it (RAMPART_CRS_RULES=off: the CRS alone);
// both give the same results: the api group takes back the score of the
// CRS rules it overrides instead of switching them off, and the decoding
// layer shows the CRS no form the suite expects it not to match
// (docs/waf-rules.md).
func runCRSThroughProxy(t *testing.T, files []*crstest.File, spec, pathHandling string) {

	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The backend answers without parsing forms, and keeps quiet about the
	// suite's deliberately broken requests (their lines buried a failure's
	// output in CI).
	bs := &fasthttp.Server{Handler: crstest.Backend, NoDefaultServerHeader: true, MaxRequestBodySize: 16 << 20,
		DisablePreParseMultipartForm: true, Logger: quietLogger{}}
	go func() { _ = bs.Serve(backend) }()
	t.Cleanup(func() { _ = bs.Shutdown() })

	dir := t.TempDir()
	audit := filepath.Join(dir, "audit.jsonl")
	if err := os.WriteFile(audit, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := fmt.Sprintf(`
listeners:
  web:
    address: 127.0.0.1:0
    path_handling: %s
    limits:
      max_header_bytes: 64KiB
upstreams:
  backend:
    targets: [{url: "http://%s"}]
waf:
  crs:
    mode: detect
    paranoia_level: 4
    anomaly_threshold: 5
    request_body_limit: 13107200
    inspect_response: true
    rampart_rules: %s
    audit_log: %s
    rules: |
%s
routes:
  - name: crs
    upstream: backend
    waf: crs
access_log: {path: "off"}
`, pathHandling, backend.Addr(), crsRampartRules(), audit, indent(crstest.PolicyRules, 6))
	cfg, err := config.Parse([]byte(yaml), filepath.Join(dir, "crs.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	srv := serveConfig(t, cfg, e2eLogger())

	tail, f, err := crstest.OpenTail(audit)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	known, err := crstest.ReadExclusions(crsExclusions)
	if err != nil {
		t.Fatal(err)
	}
	if pathHandling == config.PathNormalize {
		more, err := crstest.ReadExclusions(crsExclusionsNormalize)
		if err != nil {
			t.Fatal(err)
		}
		maps.Copy(known, more)
	}
	r := &crstest.Runner{Addr: srv.Addr("web"), Audit: tail, Timeout: 5 * time.Second}
	selected := func(name string) bool {
		if spec == "" {
			return true
		}
		for _, p := range strings.Split(spec, ",") {
			if strings.HasPrefix(name, p) {
				return true
			}
		}
		return false
	}
	sum := r.RunFiles(files, selected, known)
	for _, res := range sum.Unexpected {
		t.Errorf("%s: %s; fired %v", res.Name, res.Reason, res.Fired)
	}
	for _, name := range sum.Fixed {
		t.Logf("%s passes but is listed as failing (%s)", name, known[name])
	}
	if sum.Total == 0 {
		t.Fatalf("no test selected by %q", spec)
	}
	t.Logf("CRS regression through the proxy, path_handling %s: %s", pathHandling, sum)
	if out := os.Getenv("RAMPART_CRS_REPORT"); out != "" {
		if err := os.WriteFile(out, []byte(strings.Join(sum.Failures, "\n")+"\n"), 0o644); err != nil {
			t.Error(err)
		}
	}
	if p := srv.snap.Load().waf["crs"]; p.OpenTransactions() != 0 {
		t.Errorf("%d WAF transactions left open", p.OpenTransactions())
	}
}

// crsRampartRules is the policy's rampart_rules for the suite:
// RAMPART_CRS_RULES=off runs the CRS alone.
func crsRampartRules() string {
	if os.Getenv("RAMPART_CRS_RULES") == "off" {
		return "off"
	}
	return "on"
}

// quietLogger drops fasthttp's messages.
type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}
