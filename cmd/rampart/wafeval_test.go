package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/waf/eval"
)

// evalCorpus is a small corpus for the end-to-end test: a few attacks, and
// benign requests the stock CRS refuses (and one it passes).
var evalCorpus = map[string]string{
	"attacks/sqli.txt": "1' UNION SELECT username, password FROM users--\n' OR '1'='1\n1 AND SLEEP(5)\n",
	"attacks/xss.txt":  "<script>alert(document.domain)</script>\n<img src=x onerror=alert(1)>\n",
	"attacks/xxe.txt":  `<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><foo>&xxe;</foo>` + "\n",
	"benign/t.http": `### jql
GET /rest/api/2/search?jql=project%20%3D%20OPS%20AND%20status%20%3D%20Open%20ORDER%20BY%20priority%20DESC

### odata
GET /odata/v4/Orders?$filter=Status%20eq%20%27Shipped%27&$orderby=CreatedAt%20desc

### regexes in a JSON array
POST /api/v1/forms
Content-Type: application/json

{"fields": [{"pattern": "^[a-z]{2,}$"}, {"pattern": "^[0-9]{3,8}$"}]}

### prose in XML
POST /api/v1/notes
Content-Type: application/xml

<?xml version="1.0"?><note><text>2 &gt; 1 and 1 &lt; 2 -- basic maths</text></note>

### XML the engine cannot parse
POST /xmlrpc
Content-Type: text/xml

<?xml version="1.0"?>
<methodCall><methodName>a.b</methodName></params></methodCall>

### a search
GET /search?q=running+shoes

### a HEAD request: the answer has a Content-Length and no body
HEAD /downloads/rampart.tar.gz

### the next request on the connection
GET /search?q=hiking+boots
`,
	"benign/values.txt": "# values\n=IF(A2>100, \"high\", \"low\")\npython3 -m venv .venv && source .venv/bin/activate\nrunning shoes size 10\n",
}

// TestWAFEvalAgainstRunningRampart runs the built binary with a WAF policy
// and an audit log, evaluates it over HTTP and in process (the two must
// agree, rules included), reports the audit log, and checks that the
// proposed exclusions, added to the configuration, leave no false positive
// but the one no exclusion may remove (a body the engine cannot parse).
func TestWAFEvalAgainstRunningRampart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	for name, content := range evalCorpus {
		p := filepath.Join(dir, "corpus", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, class := range eval.AllClasses {
		p := filepath.Join(dir, "corpus", "attacks", class+".txt")
		if _, err := os.Stat(p); err != nil {
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	corpus := filepath.Join(dir, "corpus")
	auditPath := filepath.Join(dir, "audit.jsonl")
	config := `listeners:
  web:
    address: 127.0.0.1:0
routes:
  - name: app
    respond: {body: "ok\n"}
    waf: shop
access_log:
  path: "off"
waf:
  shop:
    mode: block
    audit_log: ` + auditPath + "\n"
	cfgPath := filepath.Join(dir, "rampart.yaml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}

	bin := buildBinary(t)
	cmd := exec.Command(bin, "run", "--config", cfgPath)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	logs, logDone := watchLog(stderr)
	go func() {
		<-logDone
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
		}
	})
	m := logs.waitLine("listening", "address", 20*time.Second)
	if m == nil {
		t.Fatalf("no \"listening\" log line; log:\n%s", logs.text())
	}
	addr, _ := m["address"].(string)

	evalRun := func(name string, args ...string) *eval.Report {
		t.Helper()
		out := filepath.Join(dir, name+".json")
		args = append([]string{"waf", "eval", "--corpus", corpus, "--sample", "0", "--classes", "sqli,xss,xxe",
			"--json", out, "--cases", filepath.Join(dir, name+".cases.jsonl"), "--timeout", "2m"}, args...)
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 0 {
			t.Fatalf("rampart %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout.String(), stderr.String())
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		var rep eval.Report
		if err := json.Unmarshal(b, &rep); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(stdout.String(), "false positives:") {
			t.Errorf("%s: no false positive list in the output:\n%s", name, stdout.String())
		}
		return &rep
	}
	remote := evalRun("remote", "--url", "http://"+addr, "--audit-log", auditPath)
	local := evalRun("local", "--config", cfgPath, "--route", "app")

	wantAttacks := 3*len(eval.Placements)*len(eval.Encodings) + 2*len(eval.Placements)*len(eval.Encodings) + 2
	if remote.Attacks.Total != wantAttacks || remote.Benign.Total != 8+3*len(eval.ValuePlacements) {
		t.Errorf("remote run: %d attacks, %d benign; want %d and %d", remote.Attacks.Total, remote.Benign.Total,
			wantAttacks, 8+3*len(eval.ValuePlacements))
	}
	if remote.Attacks != local.Attacks || remote.Benign != local.Benign {
		t.Errorf("over HTTP %+v %+v; in process %+v %+v: the in-process inspection must decide as the proxy does",
			remote.Attacks, remote.Benign, local.Attacks, local.Benign)
	}
	if !slices.EqualFunc(remote.FalsePositives, local.FalsePositives, func(a, b eval.FalsePositive) bool {
		return a.Case == b.Case && slices.Equal(a.Rules, b.Rules)
	}) {
		t.Errorf("false positives over HTTP (rules from the audit log):\n%+v\nin process:\n%+v", remote.FalsePositives, local.FalsePositives)
	}
	if len(local.FalsePositives) < 5 {
		t.Fatalf("%d false positives; want the corpus's (at least 5): %+v", len(local.FalsePositives), local.FalsePositives)
	}
	if local.Attacks.Good == 0 {
		t.Errorf("no attack blocked: %+v", local.Attacks)
	}

	// The audit log of the benign requests alone, as an operator would
	// make one from legitimate traffic.
	if err := os.Truncate(auditPath, 0); err != nil {
		t.Fatal(err)
	}
	if rep := evalRun("benign", "--url", "http://"+addr, "--audit-log", auditPath, "--no-attacks"); rep.Attacks.Total != 0 || rep.Benign != local.Benign {
		t.Errorf("--no-attacks: %+v, %+v; want no attack and the same benign results", rep.Attacks, rep.Benign)
	}
	var repOut, repErr bytes.Buffer
	if code := run([]string{"waf", "report", "--audit-log", auditPath}, &repOut, &repErr); code != 0 {
		t.Fatalf("waf report: exit %d\n%s", code, repErr.String())
	}
	report := repOut.String()
	for _, want := range []string{"route app (policy shop)", "942290", "/odata/v4/Orders", "not excludable", "200002", "\nwaf:\n  shop:\n    exclusions:\n"} {
		if !strings.Contains(report, want) {
			t.Errorf("waf report lacks %q:\n%s", want, report)
		}
	}
	if strings.Contains(report, "941100") {
		t.Errorf("the report of benign requests names an XSS rule, which only the attacks matched:\n%s", report)
	}
	// The exclusions must remove every false positive but the
	// unparseable body.
	_, yml, _ := strings.Cut(report, "\nwaf:\n  shop:\n")
	tuned := filepath.Join(dir, "tuned.yaml")
	if err := os.WriteFile(tuned, []byte(strings.Replace(config, "    audit_log: "+auditPath+"\n", "", 1)+yml), 0o600); err != nil {
		t.Fatal(err)
	}
	after := evalRun("tuned", "--config", tuned, "--route", "app", "--classes", "sqli")
	for _, fp := range after.FalsePositives {
		if fp.Case != "t: XML the engine cannot parse" {
			t.Errorf("with the proposed exclusions, %s is still refused (rules %v)", fp.Case, fp.Rules)
		}
	}
	if len(after.FalsePositives) != 1 {
		t.Errorf("%d false positives after tuning; want only the unparseable body", len(after.FalsePositives))
	}
	if testing.Verbose() {
		fmt.Println(report)
	}
}
