package proxy

// "One request, one truth" as a property: for generated requests (paths
// with encodings and dot segments, queries, duplicate, odd-case, underscore,
// hop-by-hop and Connection-named fields, cookies, trailers, sized and
// chunked bodies, small and streamed), sent over a real socket to a running
// Rampart whose routes have a WAF in detect mode, the WAF's view (URI,
// query, headers, body), captured from its transaction, equals what a
// recording upstream received, up to the documented rules by which the proxy
// removes and sets fields; the route the request took is the one its
// forwarded path matches; and a refused request is one whose path has no
// normal form.

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/corazawaf/coraza/v3/types"

	"github.com/rampart-proxy/rampart/config"
)

// wafView is what the WAF saw of a request.
type wafView struct {
	rawURI, filename, query string
	headers                 map[string][]string // lower-case name -> values in order
	body                    string
}

// otPolicy is the property test's WAF policy; the hook ignores others.
const otPolicy = "onetruth"

var wafViews sync.Map // request id -> *wafView

func init() { inspectHook = captureWAFView }

// captureWAFView records the transaction's view of the request, copied.
func captureWAFView(policy string, tx types.Transaction) {
	if policy != otPolicy {
		return
	}
	st, ok := tx.(interface {
		Variables() plugintypes.TransactionVariables
	})
	if !ok {
		return
	}
	vars := st.Variables()
	v := &wafView{
		rawURI:   strings.Clone(vars.RequestURIRaw().Get()),
		filename: strings.Clone(vars.RequestFilename().Get()),
		query:    strings.Clone(vars.QueryString().Get()),
		headers:  map[string][]string{},
	}
	// FindAll walks a map: the order between names is random, the order
	// of one name's values is kept.
	for _, md := range vars.RequestHeaders().FindAll() {
		k := strings.ToLower(md.Key())
		v.headers[k] = append(v.headers[k], strings.Clone(md.Value()))
	}
	if r, err := tx.RequestBodyReader(); err == nil {
		b, _ := io.ReadAll(r)
		v.body = string(b)
	}
	wafViews.Store(tx.ID(), v)
}

// otProxy is a proxy with WAF routes in front of two recording upstreams:
// /p/ goes to p, the rest to rest.
type otProxy struct {
	addr    string
	p, rest *rawUpstream
	log     *panicLog
	n       atomic.Int64 // request ids
}

func startOneTruth(tb testing.TB) *otProxy {
	ok := func(*rawMessage) (string, bool) { return okResponse("ok"), false }
	o := &otProxy{p: startRawUpstream(tb, ok), rest: startRawUpstream(tb, ok)}
	yaml := fmt.Sprintf(`
listeners:
  web:
    address: 127.0.0.1:0
    limits: {read_header_timeout: 2s, read_timeout: 5s, idle_timeout: 5s}
upstreams:
  p:
    targets: [{url: "http://%s"}]
    timeouts: {connect: 1s, read: 5s}
  rest:
    targets: [{url: "http://%s"}]
    timeouts: {connect: 1s, read: 5s}
waf:
  %s: {mode: detect}
routes:
  - {name: p, match: {path_prefix: /p/}, upstream: p, waf: %s}
  - {name: rest, upstream: rest, waf: %s}
access_log: {path: "off"}
`, o.p.addr(), o.rest.addr(), otPolicy, otPolicy, otPolicy)
	cfg, err := config.Parse([]byte(yaml), "onetruth.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	o.log = &panicLog{next: e2eLogger().Handler()}
	srv := serveConfig(tb, cfg, slog.New(o.log))
	o.addr = srv.Addr("web")
	return o
}

// otGen turns bytes into choices; past the end every choice is the first.
type otGen struct {
	b []byte
	i int
}

func (g *otGen) n(k int) int {
	if g.i >= len(g.b) {
		return 0
	}
	c := g.b[g.i]
	g.i++
	return int(c) % k
}

func (g *otGen) pick(list []string) string { return list[g.n(len(list))] }

var (
	otSegments = []string{"a", "p", "..", ".", "%2e%2e", "%2E", ".%2e", "x;y=1", "..;", ".;z", "%41b", "%20",
		"c%C3%A9", "%252e", "%25", "%7Eu", "%3F", "%23", "b+c", "%00", "...", "p", "q", "%2541"}
	otSeparators = []string{"/", "/", "/", "/", `\`, "%2f", "%5C", "//"}
	otQuery      = []string{"a=1", "b=%2e%2e/..", "c=x+y", "d", "=v", "e=%26%3D", "f=%00", "a=2", "g=<b>", "h=%252e", ""}
	otFields     = []string{"X-A: 1", "X-A: 2", "X-B: two words", "X-Empty:", "x-lower: v", "X-UPPER: V", "X-Tab: a\tb",
		"X_Under: u", "x_forwarded_for: 6.6.6.6", "X_Request_Id: dup", "X_Client_Cert_Subject: CN=u",
		"Forwarded: for=1.1.1.1", "X-Real-IP: 1.1.1.1", "X-Forwarded-Proto: https", "X-Forwarded-Host: evil.test",
		"X-Forwarded-Port: 1", "X-Forwarded-Prefix: /p", "X-Forwarded-For: 9.9.9.9", "X-Forwarded-For: 8.8.8.8, 7.7.7.7",
		"X-Client-Cert-Subject: CN=x", "x-client-cert-subject: CN=y", "Keep-Alive: 5", "Proxy-Connection: keep-alive",
		"TE: trailers", "Proxy-Authorization: Basic eA==", "Upgrade: h2c", "Connection: X-A", "Connection: keep-alive, X_Under",
		"Connection: X-B, x-forwarded-host", "Connection: X-Client-Cert-Subject, X-Request-Id, X-Forwarded-For",
		"Cookie: a=1", `Cookie: b="q,v"; c`, "Accept: */*", "X-Request-Id: dup", "Via: 1.1 other"}
	otTrailers = []string{"X-Trlr: TRLR1", "User-Agent: TRLR2", "X-Client-Cert-Subject: TRLR3", "X-A: TRLR4", "X_Trlr: TRLR5"}
)

// otRequest is one generated request.
type otRequest struct {
	id, method, target, path, query string
	raw                             string // on the wire
	body                            string
}

// generate builds a request from data; id is its X-Request-Id.
func generate(data []byte, id string) otRequest {
	g := &otGen{b: data}
	r := otRequest{id: id, method: "GET"}
	var p strings.Builder
	p.WriteString([]string{"/p/", "/", "/q/", "//p/"}[g.n(4)])
	for i, n := 0, g.n(6); i < n; i++ {
		if i > 0 {
			p.WriteString(g.pick(otSeparators))
		}
		p.WriteString(g.pick(otSegments))
	}
	r.path = p.String()
	if n := g.n(4); n > 0 {
		var q []string
		for range n {
			q = append(q, g.pick(otQuery))
		}
		r.query = strings.Join(q, "&")
	}
	r.target = r.path
	if r.query != "" {
		r.target += "?" + r.query
	}
	host := []string{"app.test", "App.Test", "app.test:8080"}[g.n(3)]
	if g.n(8) == 0 {
		host = "app.test"
		r.target = []string{"http://app.test", "http://other.test"}[g.n(2)] + r.target
	}
	var h strings.Builder
	h.WriteString("Host: " + host + "\r\nX-Request-Id: " + id + "\r\n")
	for i, n := 0, g.n(9); i < n; i++ {
		f := g.pick(otFields)
		switch g.n(4) {
		case 1:
			name, value, _ := strings.Cut(f, ":")
			f = strings.ToLower(name) + ":" + value
		case 2:
			name, value, _ := strings.Cut(f, ":")
			f = strings.ToUpper(name) + ":" + value
		}
		h.WriteString(f + "\r\n")
	}
	if g.n(3) == 0 {
		h.WriteString("User-Agent: gen/1\r\n")
	}
	var body, trailer strings.Builder
	switch kind := g.n(7); kind {
	case 1, 2, 3, 4, 5: // a body: sized or chunked, small or large
		r.method = []string{"POST", "PUT"}[g.n(2)]
		h.WriteString("Content-Type: " + []string{"application/x-www-form-urlencoded", "application/json", "text/plain"}[g.n(3)] + "\r\n")
		size := 1 + g.n(200)
		if kind == 5 && g.n(3) == 0 {
			size = 70<<10 + g.n(1000) // beyond smallBody: streamed
		}
		r.body = "a=1&b=" + strings.Repeat(string(rune('a'+g.n(26))), size)
		if kind <= 2 {
			fmt.Fprintf(&h, "Content-Length: %d\r\n", len(r.body))
			body.WriteString(r.body)
			break
		}
		h.WriteString("Transfer-Encoding: chunked\r\n")
		var names []string
		for i, n := 0, g.n(3); i < n; i++ {
			t := g.pick(otTrailers)
			trailer.WriteString(t + "\r\n")
			name, _, _ := strings.Cut(t, ":")
			names = append(names, name)
		}
		if len(names) > 0 && g.n(2) == 0 {
			h.WriteString("Trailer: " + strings.Join(names, ", ") + "\r\n")
		}
		for rest := r.body; len(rest) > 0; {
			n := min(len(rest), 1+g.n(40)<<10)
			fmt.Fprintf(&body, "%x\r\n%s\r\n", n, rest[:n])
			rest = rest[n:]
		}
		body.WriteString("0\r\n" + trailer.String() + "\r\n")
	case 6:
		r.method = "POST"
		h.WriteString("Content-Length: 0\r\n")
	}
	r.raw = r.method + " " + r.target + " HTTP/1.1\r\n" + h.String() + "\r\n" + body.String()
	return r
}

// send writes the request on a fresh connection and returns the status.
func (o *otProxy) send(r otRequest) (int, error) {
	c, err := net.DialTimeout("tcp", o.addr, e2eTimeout)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(e2eTimeout))
	if _, err := io.WriteString(c, r.raw); err != nil {
		return 0, err
	}
	resp, err := readRawResponse(bufio.NewReader(c), r.method)
	if err != nil {
		return 0, err
	}
	return resp.status(), nil
}

// received returns the request up got with id, or nil.
func received(up *rawUpstream, id string) *rawMessage {
	up.mu.Lock()
	defer up.mu.Unlock()
	for i := len(up.reqs) - 1; i >= 0 && i >= len(up.reqs)-8; i-- {
		if v, _ := up.reqs[i].get("X-Request-Id"); v == id {
			return up.reqs[i]
		}
	}
	return nil
}

// hopNames are the request fields the proxy removes as hop-by-hop.
var hopNames = []string{"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer", "upgrade"}

// expectedFields applies the proxy's documented rules to the fields the WAF
// saw, for a client that is not a trusted proxy on a listener without client
// certificates or underscores_in_headers: it returns the fields the
// upstream must get, framing aside.
func expectedFields(view map[string][]string, id string) map[string][]string {
	want := map[string][]string{}
	for k, vs := range view {
		want[k] = slices.Clone(vs)
	}
	// Hop-by-hop fields and those Connection names, but the protected.
	for _, v := range view["connection"] {
		for _, tok := range strings.Split(v, ",") {
			tok = strings.ToLower(strings.TrimSpace(tok))
			switch tok {
			case "close", "keep-alive", "upgrade", "content-length", "transfer-encoding", "host",
				"x-forwarded-for", "x-request-id", "x-client-cert-subject":
				continue
			}
			delete(want, tok)
		}
	}
	for _, k := range hopNames {
		delete(want, k)
	}
	for k := range want {
		if strings.Contains(k, "_") || k == "forwarded" || k == "x-real-ip" ||
			strings.HasPrefix(k, "x-forwarded-") || k == "content-length" || k == "transfer-encoding" {
			delete(want, k)
		}
	}
	// The client is not a trusted proxy: its X-Forwarded-For is replaced
	// by the peer's address (the WAF still saw what it sent).
	want["x-forwarded-for"] = []string{"127.0.0.1"}
	want["x-forwarded-proto"] = []string{"http"}
	want["x-forwarded-host"] = view["host"]
	want["x-request-id"] = []string{id}
	return want
}

// checkOneTruth sends r and checks the property.
func (o *otProxy) checkOneTruth(t *testing.T, r otRequest) {
	t.Helper()
	status, err := o.send(r)
	if p := o.log.take(); len(p) > 0 {
		t.Fatalf("the proxy panicked on %q: %s", r.raw, p)
	}
	if err != nil {
		t.Fatalf("%q: %v", r.raw, err)
	}
	viewAny, seen := wafViews.LoadAndDelete(r.id)
	up, other := o.rest, o.p
	atP := received(o.p, r.id)
	atRest := received(o.rest, r.id)
	got := atRest
	if atP != nil {
		up, other, got = o.p, o.rest, atP
	}
	want := refNormalize(r.path)
	if status == 400 {
		if want != "" {
			t.Fatalf("%q: got 400; want it forwarded as %q", r.raw, want)
		}
		if got != nil || seen {
			t.Fatalf("%q: got 400 but the upstream or the WAF saw it", r.raw)
		}
		return
	}
	if status != 200 || want == "" || got == nil || !seen || (atP != nil && atRest != nil) {
		t.Fatalf("%q: got %d (upstream saw it: %v, WAF: %v); want 200 and one upstream, or 400 for a path without normal form (reference %q)",
			r.raw, status, got != nil, seen, want)
	}
	view := viewAny.(*wafView)

	// One path: the route, the upstream's target and the WAF's.
	target := want
	if r.query != "" {
		target += "?" + r.query
	}
	if gotTarget := strings.TrimSuffix(strings.TrimPrefix(got.first, r.method+" "), " HTTP/1.1"); gotTarget != target {
		t.Errorf("%q: upstream target %q; want %q", r.raw, gotTarget, target)
	}
	if wantP := strings.HasPrefix(decodeOnce(want), "/p/"); wantP != (up == o.p) {
		t.Errorf("%q: routed to the %s upstream; want the route its path %q matches", r.raw, upName(up, o.p, other), want)
	}
	if view.filename != decodeOnce(want) || view.query != r.query || view.rawURI != r.target {
		t.Errorf("%q: WAF saw path %q, query %q, raw %q; want %q, %q, %q", r.raw, view.filename, view.query, view.rawURI,
			decodeOnce(want), r.query, r.target)
	}

	// One body, and no trailer anywhere.
	if string(got.body) != r.body || view.body != r.body {
		t.Errorf("%q: bodies: upstream %d bytes, WAF %d bytes; want the %d sent", r.raw, len(got.body), len(view.body), len(r.body))
	}
	if len(got.trailers) > 0 {
		t.Errorf("%q: upstream trailers %q; want none", r.raw, got.trailers)
	}

	// One set of fields, up to the documented rules.
	for k, vs := range view.headers {
		for _, v := range vs {
			if strings.Contains(v, "TRLR") {
				t.Errorf("%q: the WAF saw the trailer field %s: %s", r.raw, k, v)
			}
		}
	}
	if vs := view.headers["x-client-cert-subject"]; len(vs) > 0 {
		t.Errorf("%q: the WAF saw the client's X-Client-Cert-Subject %q; want the proxy's (none here)", r.raw, vs)
	}
	exp := expectedFields(view.headers, r.id)
	act := map[string][]string{}
	for _, f := range got.fields {
		k := strings.ToLower(f[0])
		if k == "content-length" || k == "transfer-encoding" {
			continue
		}
		act[k] = append(act[k], f[1])
	}
	// Cookie lines reach the upstream as received, but their order may
	// change when fields before them are deleted (restoreOrder).
	slices.Sort(exp["cookie"])
	slices.Sort(act["cookie"])
	for _, k := range []string{"host", "x-forwarded-host"} { // host names are case-insensitive
		for i := range exp[k] {
			exp[k][i] = strings.ToLower(exp[k][i])
		}
		for i := range act[k] {
			act[k][i] = strings.ToLower(act[k][i])
		}
	}
	for k, vs := range exp {
		if !slices.Equal(act[k], vs) {
			t.Errorf("%q: upstream %s: %q; want %q (the WAF saw %q)", r.raw, k, act[k], vs, view.headers[k])
		}
	}
	for k, vs := range act {
		if _, ok := exp[k]; !ok {
			t.Errorf("%q: upstream got %s: %q, which the WAF did not see or the proxy should have removed", r.raw, k, vs)
		}
	}
}

// TestOneRequest runs the property on a few hundred generated requests (a
// fixed seed): make test runs it besides FuzzOneRequest's seed corpus.
func TestOneRequest(t *testing.T) {
	o := startOneTruth(t)
	rng := rand.New(rand.NewPCG(17, 2026))
	n := 300
	if testing.Short() {
		n = 60
	}
	for i := range n {
		data := make([]byte, 64)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		r := generate(data, fmt.Sprintf("ot-%d", o.n.Add(1)))
		t.Run(fmt.Sprint(i), func(t *testing.T) { o.checkOneTruth(t, r) })
	}
}

// FuzzOneRequest is the property over fuzzed choices; one proxy serves the
// inputs of a fuzzing process.
func FuzzOneRequest(f *testing.F) {
	for _, s := range []string{
		"",
		"\x00\x05\x02\x03\x04\x05\x06\x07",
		"\x01\x03\x04\x00\x01\x02\x02\x01\x08\x20\x21\x22\x23\x24\x25\x03\x04\x01",
		"\x03\x05\x09\x01\x11\x02\x03\x07\x00\x00\x00\x01\x00\x13\x00\x14\x00\x15\x05\x00\x00\x02\x02\x00\x01",
		"\x00\x02\x04\x06\x03\x01\x00\x00\x08\x1e\x00\x1f\x01\x20\x02\x21\x00\x22\x00\x05\x01\x00\x05\x00\x02\x01\x04",
		"\x02\x01\x11\x01\x12\x00\x00\x00\x00\x07\x16\x00\x17\x00\x18\x00\x0c\x00\x0d\x00\x0e\x00\x0f\x00\x04\x00\x01\x00\x02\x00\x02\x02\x01",
	} {
		f.Add([]byte(s))
	}
	o := startOneTruth(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 256 {
			t.Skip("the generator reads fewer choices")
		}
		o.checkOneTruth(t, generate(data, fmt.Sprintf("ot-%d", o.n.Add(1))))
	})
}
