package waf

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io/fs"
	"mime/multipart"
	"net/netip"
	"net/textproto"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/corazawaf/coraza/v3/types"
	"rsc.io/binaryregexp"

	"github.com/rampart-proxy/rampart/config"
)

// The differential test: generated requests (arguments, headers, cookies,
// JSON, urlencoded, multipart and XML bodies, in several encodings) must
// fire the same rules with the same matched data on Rampart's engine and
// on a reference engine: Coraza with the CRS as released, each @rx run by
// Go's regexp as Coraza's own operator runs it (refRX), without Rampart's
// fused transformation chains, rewritten ctl actions, memoized macros and
// @rx prefilters and RE2. Both run on the Coraza the test is built with:
// `make test` runs it on the patched and on the stock one, and `make
// coraza-verdicts` compares the two Corazas on the CRS's own tests.

// refRXName is the reference @rx operator's name in the reference CRS.
const refRXName = "rampart_refrx"

func init() {
	plugins.RegisterOperator(refRXName, newRefRX)
}

// refRX is Coraza's @rx as Coraza v3.8.1 runs it without its own
// prefilter: Go's regexp on "(?sm)"+pattern, the byte matcher for patterns
// of bytes that are not UTF-8, and TX.0 to TX.8 captured on a match.
type refRX struct {
	re interface {
		MatchString(string) bool
		FindStringSubmatchIndex(string) []int
	}
}

func newRefRX(opt plugintypes.OperatorOptions) (plugintypes.Operator, error) {
	pattern := "(?sm)" + opt.Arguments
	if matchesArbitraryBytes(pattern) {
		re, err := binaryregexp.Compile(opt.Arguments)
		if err != nil {
			return nil, err
		}
		return &refRX{re: re}, nil
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, err
	}
	return &refRX{re: re}, nil
}

func (o *refRX) Evaluate(tx plugintypes.TransactionState, value string) bool {
	if !tx.Capturing() {
		return o.re.MatchString(value)
	}
	m := o.re.FindStringSubmatchIndex(value)
	if m == nil {
		return false
	}
	for i := 0; i < len(m)/2 && i < 9; i++ {
		if m[2*i] >= 0 {
			tx.CaptureField(i, value[m[2*i]:m[2*i+1]])
		} else {
			tx.CaptureField(i, "")
		}
	}
	return true
}

// refFS is the CRS as released, its @rx operators renamed refRXName.
var refFS = sync.OnceValue(func() fs.FS {
	files := map[string][]byte{}
	names, _ := fs.Glob(coreruleset.FS, "@owasp_crs/*.conf")
	for _, name := range names {
		b, err := fs.ReadFile(coreruleset.FS, name)
		if err != nil {
			continue
		}
		files[name] = bytes.ReplaceAll(b, []byte(`"@rx `), []byte(`"@`+refRXName+` `))
		files[name] = bytes.ReplaceAll(files[name], []byte(`"!@rx `), []byte(`"!@`+refRXName+` `))
	}
	return overlayFS{base: coreruleset.FS, files: files}
})

// diffEngines holds the two engines and what each saw last.
type diffEngines struct {
	fast, ref *Policy
	mu        sync.Mutex
	seen      map[string]string // policy name -> summary of its last transaction
}

var diffOnce = sync.OnceValues(func() (*diffEngines, error) {
	d := &diffEngines{seen: map[string]string{}}
	hooks := Hooks{Request: func(policy string, tx types.Transaction) {
		s := summarize(tx)
		d.mu.Lock()
		d.seen[policy] = s
		d.mu.Unlock()
	}}
	// The CRS alone on both sides: what is compared is the engine
	// (prefilters, patch, caches), not Rampart's own rules on top of it,
	// which the reference does not have the same way (rampart_test.go
	// tests them).
	off := false
	cfg := config.WAFPolicy{Mode: config.WAFModeDetect, ParanoiaLevel: 2, AnomalyThreshold: 5,
		RequestBodyLimitAction: config.BodyLimitReject, RampartRules: &off}
	var err error
	memo := memoizeMacros
	if d.fast, err = Compile("fast", &cfg, Options{Hooks: hooks}); err != nil {
		return nil, err
	}
	memoizeMacros = false
	defer func() { memoizeMacros = memo }()
	d.ref, err = Compile("ref", &cfg, Options{Hooks: hooks, root: refFS()})
	return d, err
})

// summarize lists the rules that matched, one line each: the id, then
// every matched value (variable, key, value) and the messages, each
// sorted: a collection's values come in map order, which differs between
// two transactions, and a chain's message goes with the value that matched
// first. The logdata is left out: the CRS's names %{TX.0}, which
// operators that capture nothing (@detectXSS) leave as the last capture
// of an earlier rule, and that depends on the same order.
func summarize(tx types.Transaction) string {
	var b strings.Builder
	for _, mr := range tx.MatchedRules() {
		id := mr.Rule().ID()
		if id == 0 {
			continue
		}
		mds := mr.MatchedDatas()
		var vals, msgs []string
		for _, md := range mds {
			vals = append(vals, fmt.Sprintf("%s:%s=%q", md.Variable().Name(), md.Key(), md.Value()))
			if m := md.Message(); m != "" {
				msgs = append(msgs, strconv.Quote(m))
			}
		}
		slices.Sort(vals)
		slices.Sort(msgs)
		fmt.Fprintf(&b, "%d %s msg %s\n", id, strings.Join(vals, " "), strings.Join(msgs, " "))
	}
	return b.String()
}

// compare runs raw through both engines and fails on any difference.
//
// A few CRS rules depend on the order in which a collection's values are
// evaluated, which is Go's map order and differs from one transaction to
// the next in Coraza itself (942130's chained rule compares the captures
// of the last value that matched). So the engines get several tries: the
// request passes when one outcome of Rampart's engine equals one of the
// reference's. A real difference shows in every try.
func (d *diffEngines) compare(t *testing.T, raw string) (rules int) {
	t.Helper()
	const tries = 4
	var fast, ref []string
	for range tries {
		fast = append(fast, d.run(t, d.fast, raw))
		ref = append(ref, d.run(t, d.ref, raw))
		for _, f := range fast {
			if slices.Contains(ref, f) {
				return strings.Count(f, "\n") - 1
			}
		}
	}
	t.Fatalf("request:\n%s\n\nRampart's engine:\n%s\nreference engine:\n%s", raw, fast[0], ref[0])
	return 0
}

// run inspects raw with p and returns the verdict and the rules that
// matched.
func (d *diffEngines) run(t *testing.T, p *Policy, raw string) string {
	ctx := newCtx(t, raw)
	v := p.Inspect(ctx, Request{ID: []byte("diff"), ClientIP: netip.MustParseAddr("192.0.2.7"), Route: "r"})
	status, action := v.Status, v.Action
	v.Close()
	d.mu.Lock()
	defer d.mu.Unlock()
	s := fmt.Sprintf("status %d action %v\n%s", status, action, d.seen[p.Name()])
	delete(d.seen, p.Name())
	return s
}

// reqGen turns fuzz bytes into a request.
type reqGen struct {
	b []byte
	i int
}

func (g *reqGen) next() byte {
	if g.i >= len(g.b) {
		return 0
	}
	c := g.b[g.i]
	g.i++
	return c
}

func (g *reqGen) pick(n int) int { return int(g.next()) % n }

// diffTokens are pieces of attacks and of benign values.
var diffTokens = []string{
	"' OR 1=1--", "<script>alert(1)</script>", "../../etc/passwd", "${jndi:ldap://x/a}", "; cat /etc/passwd",
	"union select password from users", "javascript:alert(1)", "<img src=x onerror=alert(1)>", "eval(atob('YQ=='))",
	"system('id')", "/bin/sh -c id", "c'u'rl http://x", "w\"get x", "$(id)", "`id`", "php://input", "<?php echo 1; ?>",
	"{{7*7}}", "1 AND SLEEP(5)", "exec xp_cmdshell 'dir'", "document.cookie", "<svg onload=alert(1)>", "..\\..\\boot.ini",
	"http://169.254.169.254/latest", "<!ENTITY x SYSTEM 'file:///etc/passwd'>", "0x414243", "/*!50000select*/",
	"Running shoes", "hello world", "Cotton shirt, machine washable at 30 degrees", "42", "price_asc", "en-GB",
	"caf\u00e9", "\u212aelvin", "\xff\xfe", "a\x00b", "%27", "%2e%2e%2f", "&#x3c;script&#x3e;", "\\u003cscript\\u003e",
	"Zm9vYmFy", "select", "sleep", "onerror", "passwd", "  ", "=", "&", ";", "|", "--", "/*", "*/",
}

// value makes a value of one to three tokens or fuzz bytes, in one of
// several encodings.
func (g *reqGen) value() string {
	var b strings.Builder
	for range 1 + g.pick(3) {
		if k := g.pick(len(diffTokens) + 4); k < len(diffTokens) {
			b.WriteString(diffTokens[k])
		} else {
			n := g.pick(12)
			for range n {
				b.WriteByte(g.next())
			}
		}
	}
	s := b.String()
	switch g.pick(8) {
	case 1:
		s = url.QueryEscape(s)
	case 2:
		s = url.QueryEscape(url.QueryEscape(s))
	case 3:
		var u strings.Builder
		for _, r := range s {
			fmt.Fprintf(&u, "%%u%04x", r&0xffff)
		}
		s = u.String()
	case 4:
		s = html.EscapeString(s)
	case 5:
		s = base64.StdEncoding.EncodeToString([]byte(s))
	case 6:
		s = strings.ToUpper(s)
	}
	return s
}

// headerSafe drops what cannot be in a header line or a request line.
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

var diffNames = []string{"q", "id", "page", "user", "redirect", "file", "cmd", "name", "a[b]", "x.y", "search", "json"}

func (g *reqGen) name() string {
	if g.pick(4) == 0 {
		return url.QueryEscape(g.value())
	}
	return diffNames[g.pick(len(diffNames))]
}

// request makes a whole request in the form newCtx reads.
func (g *reqGen) request() string {
	var q []string
	for range g.pick(4) {
		q = append(q, url.QueryEscape(g.name())+"="+url.QueryEscape(g.value()))
	}
	path := "/" + url.PathEscape(g.value())
	if g.pick(2) == 0 {
		path = "/api/v1/items"
	}
	if len(q) > 0 {
		path += "?" + strings.Join(q, "&")
	}
	var h strings.Builder
	h.WriteString("Host: shop.example.com\n")
	ua := "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	if g.pick(3) == 0 {
		ua = headerSafe(g.value())
	}
	h.WriteString("User-Agent: " + ua + "\nAccept: */*\n")
	if g.pick(2) == 0 {
		h.WriteString("Referer: " + headerSafe(g.value()) + "\n")
	}
	if g.pick(2) == 0 {
		h.WriteString("Cookie: session=" + headerSafe(url.QueryEscape(g.value())) + "; theme=" + headerSafe(url.QueryEscape(g.value())) + "\n")
	}
	if g.pick(3) == 0 {
		h.WriteString("X-Forwarded-For: " + headerSafe(g.value()) + "\n")
	}
	method := "GET"
	var body, ctype string
	switch g.pick(5) {
	case 1:
		method, ctype = "POST", "application/x-www-form-urlencoded"
		var f []string
		for range 1 + g.pick(4) {
			f = append(f, url.QueryEscape(g.name())+"="+url.QueryEscape(g.value()))
		}
		body = strings.Join(f, "&")
	case 2:
		method, ctype = "POST", "application/json"
		doc := map[string]any{}
		for range 1 + g.pick(4) {
			if g.pick(3) == 0 {
				doc[g.name()] = []any{g.value(), map[string]any{g.name(): g.value()}, 7}
			} else {
				doc[g.name()] = g.value()
			}
		}
		b, _ := json.Marshal(doc)
		body = string(b)
	case 3:
		method = "POST"
		var buf bytes.Buffer
		w := multipart.NewWriter(&buf)
		for range 1 + g.pick(3) {
			_ = w.WriteField(g.name(), g.value())
		}
		if g.pick(2) == 0 {
			hdr := textproto.MIMEHeader{}
			hdr.Set("Content-Disposition", `form-data; name="upload"; filename="`+strings.ReplaceAll(headerSafe(g.value()), `"`, "")+`"`)
			hdr.Set("Content-Type", "application/octet-stream")
			if pw, err := w.CreatePart(hdr); err == nil {
				_, _ = pw.Write([]byte(g.value()))
			}
		}
		_ = w.Close()
		ctype, body = w.FormDataContentType(), buf.String()
	case 4:
		method, ctype = "POST", "text/xml"
		var x strings.Builder
		x.WriteString(`<?xml version="1.0"?><root>`)
		for range 1 + g.pick(3) {
			x.WriteString("<item a=\"" + html.EscapeString(g.value()) + "\">" + html.EscapeString(g.value()) + "</item>")
		}
		x.WriteString("</root>")
		body = x.String()
	}
	raw := method + " " + path + " HTTP/1.1\n" + h.String()
	if body != "" {
		raw += "Content-Type: " + ctype + "\nContent-Length: " + strconv.Itoa(len(body)) + "\n"
	}
	return raw + "\n" + body
}

// FuzzEngineDifferential: Rampart's engine and the reference engine fire
// the same rules with the same matched data on generated requests. Its
// seeds run in `go test` (a smoke test of a few seconds), make test runs
// 20 inputs under the fuzzer (TEST_DIFF_FUZZTIME) and `make fuzz` five
// minutes (DIFF_FUZZTIME).
func FuzzEngineDifferential(f *testing.F) {
	for i := range 16 {
		seed := make([]byte, 64)
		for j := range seed {
			seed[j] = byte((i+1)*(j*7+13) + i*j*j)
		}
		f.Add(seed)
	}
	d, err := diffOnce()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		g := &reqGen{b: in}
		d.compare(t, g.request())
	})
}

// TestEngineDifferentialFires: the generated requests make the engines
// fire rules, so the comparison compares something.
func TestEngineDifferentialFires(t *testing.T) {
	d, err := diffOnce()
	if err != nil {
		t.Fatal(err)
	}
	fired := 0
	for i := range 20 {
		seed := make([]byte, 64)
		for j := range seed {
			seed[j] = byte((i+1)*(j*7+13) + i*j*j)
		}
		fired += d.compare(t, (&reqGen{b: seed}).request())
	}
	if fired < 20 {
		t.Errorf("%d rules fired over 20 generated requests; want 20 or more", fired)
	}
}
