package proxy

// End-to-end tests of the WAF's limits (issue 17): arguments past
// max_arguments are refused rather than passed uninspected, bodies held for
// inspection stay within waf_buffer_limit, and response bodies larger than
// the old 64 KiB stream are inspected up to response_body_limit.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/waf"
)

// sqliPayload is an attack the CRS blocks at paranoia level 1.
const sqliPayload = "1' or '1'='1' union select password from users--"

// auditEvent waits for the audit event of request id in the JSON-lines
// file at path and returns it, or nil when none came within d.
func auditEvent(t *testing.T, path, id string, d time.Duration) *waf.Event {
	t.Helper()
	var found *waf.Event
	waitFor(d, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		for line := range bytes.SplitSeq(b, []byte("\n")) {
			var e waf.Event
			if json.Unmarshal(line, &e) == nil && e.RequestID == id {
				found = &e
				return true
			}
		}
		return false
	})
	return found
}

// ruleMatch returns the match of rule id in e, or nil.
func ruleMatch(e *waf.Event, id int) *waf.RuleMatch {
	if e == nil {
		return nil
	}
	for i := range e.Rules {
		if e.Rules[i].ID == id {
			return &e.Rules[i]
		}
	}
	return nil
}

// padArgs returns n arguments "pI=x" joined by &.
func padArgs(n int, name string) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte('&')
		}
		if name != "" {
			b.WriteString(name + "=x")
		} else {
			fmt.Fprintf(&b, "p%d=x", i)
		}
	}
	return b.String()
}

// postRaw is a whole POST request to path with the given body.
func postRaw(path, id, contentType, body string) string {
	return "POST " + path + " HTTP/1.1\r\nHost: app.test\r\nX-Request-Id: " + id + "\r\nContent-Type: " + contentType +
		"\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

// multipartFields is a multipart/form-data body of n fields, then the
// field q=last; boundary is "B0undary".
func multipartFields(n int, last string) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "--B0undary\r\nContent-Disposition: form-data; name=\"p%d\"\r\n\r\nx\r\n", i)
	}
	b.WriteString("--B0undary\r\nContent-Disposition: form-data; name=\"q\"\r\n\r\n" + last + "\r\n--B0undary--\r\n")
	return b.String()
}

// TestE2EWAFArgumentLimit sends an attack after as many padding arguments
// as Coraza keeps (1000), in each place arguments come from: Coraza drops
// what is past the limit, and the request used to pass uninspected. Now it
// is refused (block mode) or logged (detect mode), with an audit event
// naming the limit.
func TestE2EWAFArgumentLimit(t *testing.T) {
	up := startRawUpstream(t, func(*rawMessage) (string, bool) { return okResponse("ok"), false })
	audit := filepath.Join(t.TempDir(), "waf.jsonl")
	p := startProxy(t, fmt.Sprintf(`
listeners:
  web: {address: "127.0.0.1:0"}
upstreams:
  app: {targets: [{url: "http://%s"}]}
waf:
  block: {mode: block, audit_log: %[2]q}
  detect: {mode: detect, audit_log: %[2]q}
  strict: {mode: block, max_arguments: 50, limit_status: 403, audit_log: %[2]q}
routes:
  - {name: block, match: {path_prefix: /block/}, upstream: app, waf: block}
  - {name: detect, match: {path_prefix: /detect/}, upstream: app, waf: detect}
  - {name: strict, match: {path_prefix: /strict/}, upstream: app, waf: strict}
access_log: {path: "off"}
`, up.addr(), audit))

	attack := "q=" + url.QueryEscape(sqliPayload)
	jsonMembers := func(n int) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			fmt.Fprintf(&b, "%q:\"x\",", "p"+strconv.Itoa(i))
		}
		q, _ := json.Marshal(sqliPayload)
		b.WriteString(`"q":` + string(q) + "}")
		return b.String()
	}
	jsonArray := func(n int) string {
		q, _ := json.Marshal(sqliPayload)
		return "[" + strings.Repeat(`"x",`, n) + string(q) + "]"
	}
	cookies := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "c%d=x; ", i)
		}
		return b.String() + "q=" + url.QueryEscape(sqliPayload)
	}
	tests := []struct {
		name      string
		raw       func(id string) string
		status    int
		rule      int  // the rule of the audit event; 0: none expected
		forwarded bool // the upstream receives the request
	}{
		{"query: 1000 padding arguments, then the attack", func(id string) string {
			return "GET /block/search?" + padArgs(1000, "") + "&" + attack + " HTTP/1.1\r\nHost: app.test\r\nX-Request-Id: " + id + "\r\n\r\n"
		}, 400, 200004, false},
		{"query: one name repeated 1000 times, then the attack", func(id string) string {
			return "GET /block/search?" + padArgs(1000, "a") + "&" + attack + " HTTP/1.1\r\nHost: app.test\r\nX-Request-Id: " + id + "\r\n\r\n"
		}, 400, 200004, false},
		{"form: 1000 padding arguments, then the attack", func(id string) string {
			return postRaw("/block/form", id, "application/x-www-form-urlencoded", padArgs(1000, "")+"&"+attack)
		}, 400, 200005, false},
		{"json: 1000 members, then the attack", func(id string) string {
			return postRaw("/block/api", id, "application/json", jsonMembers(1000))
		}, 400, 200005, false},
		{"json: an array of 1000, then the attack", func(id string) string {
			return postRaw("/block/api", id, "application/json", jsonArray(1000))
		}, 400, 200005, false},
		{"multipart: 1000 fields, then the attack (streamed body)", func(id string) string {
			return postRaw("/block/upload", id, "multipart/form-data; boundary=B0undary", multipartFields(1000, sqliPayload))
		}, 400, 200007, false},
		{"cookies are never cut: 1000 cookies, then the attack", func(id string) string {
			return "GET /block/ HTTP/1.1\r\nHost: app.test\r\nX-Request-Id: " + id + "\r\nCookie: " + cookies(1000) + "\r\n\r\n"
		}, 403, 0, false},
		{"limit_status 403 over max_arguments 50, benign", func(id string) string {
			return postRaw("/strict/form", id, "application/x-www-form-urlencoded", padArgs(51, ""))
		}, 403, 200005, false},
		{"exactly max_arguments passes", func(id string) string {
			return postRaw("/strict/form", id, "application/x-www-form-urlencoded", padArgs(50, ""))
		}, 200, 0, true},
		{"detect mode forwards and logs", func(id string) string {
			return "GET /detect/search?" + padArgs(1000, "") + "&" + attack + " HTTP/1.1\r\nHost: app.test\r\nX-Request-Id: " + id + "\r\n\r\n"
		}, 200, 200004, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "argslimit-" + strconv.Itoa(i)
			before := up.count()
			resp := dialRaw(t, p.addr).roundTrip(tt.raw(id))
			if got := resp.status(); got != tt.status {
				t.Fatalf("got status %d; want %d", got, tt.status)
			}
			if forwarded := up.count() > before; forwarded != tt.forwarded {
				t.Errorf("forwarded: got %v; want %v", forwarded, tt.forwarded)
			}
			if tt.rule == 0 {
				return
			}
			e := auditEvent(t, audit, id, e2eTimeout)
			m := ruleMatch(e, tt.rule)
			if m == nil {
				t.Fatalf("audit event %+v; want a match of rule %d", e, tt.rule)
			}
			if !strings.Contains(m.Msg, "Arguments limit exceeded") {
				t.Errorf("rule %d message %q; want it to name the arguments limit", tt.rule, m.Msg)
			}
			wantAction := "blocked"
			if tt.forwarded {
				wantAction = "detected"
			}
			if e.Action != wantAction {
				t.Errorf("audit action %q; want %q", e.Action, wantAction)
			}
		})
	}
}

// stallUpload opens a connection, sends the header of a POST to path with
// Content-Length cl and the first sent bytes of its body, and leaves it
// there. Closing the returned connection ends the upload.
func stallUpload(t *testing.T, addr, path string, cl, sent int) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, e2eTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(e2eTimeout))
	head := "POST " + path + " HTTP/1.1\r\nHost: app.test\r\nContent-Type: application/octet-stream\r\nContent-Length: " + strconv.Itoa(cl) + "\r\n\r\n"
	if _, err := io.WriteString(c, head+strings.Repeat("s", sent)); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestE2EWAFBufferBudget: waf_buffer_limit bounds the bodies held for
// inspection process-wide. Stalled uploads hold their declared length;
// once it is spent, a new body is refused with 503 and Retry-After in
// block mode (whatever its size and framing) or forwarded uninspected in
// detect mode, and the bytes come back when the uploads end.
func TestE2EWAFBufferBudget(t *testing.T) {
	up := startRawUpstream(t, func(req *rawMessage) (string, bool) {
		return okResponse("got " + strconv.Itoa(len(req.body))), false
	})
	audit := filepath.Join(t.TempDir(), "waf.jsonl")
	p := startProxy(t, fmt.Sprintf(`
listeners:
  web: {address: "127.0.0.1:0"}
upstreams:
  app: {targets: [{url: "http://%s"}]}
waf_buffer_limit: 256KiB
waf:
  block: {mode: block, request_body_limit: 100KiB, audit_log: %[2]q}
  detect: {mode: detect, request_body_limit: 100KiB, audit_log: %[2]q}
routes:
  - {name: block, match: {path_prefix: /block/}, upstream: app, waf: block}
  - {name: detect, match: {path_prefix: /detect/}, upstream: app, waf: detect}
access_log: {path: "off"}
`, up.addr(), audit))
	budget := p.srv.wafBuffer
	const declared = 100 << 10 // streamed: above the 64 KiB read whole
	a := stallUpload(t, p.addr, "/block/a", declared, 10<<10)
	b := stallUpload(t, p.addr, "/block/b", declared, 10<<10)
	if !waitFor(e2eTimeout, func() bool { return budget.Used() == 2*declared }) {
		t.Fatalf("two stalled uploads hold %d bytes; want %d", budget.Used(), 2*declared)
	}

	body := func(n int) string { return "k=" + strings.Repeat("v", n-2) }
	chunked := func(path, id string, n int) string {
		return "POST " + path + " HTTP/1.1\r\nHost: app.test\r\nX-Request-Id: " + id +
			"\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n" +
			strconv.FormatInt(int64(n), 16) + "\r\n" + body(n) + "\r\n0\r\n\r\n"
	}
	refused := []struct {
		name string
		raw  func(id string) string
	}{
		{"a whole streamed body", func(id string) string {
			return postRaw("/block/c", id, "application/x-www-form-urlencoded", body(declared))
		}},
		{"a small body read whole", func(id string) string {
			return postRaw("/block/c", id, "application/x-www-form-urlencoded", body(60000))
		}},
		{"a chunked body", func(id string) string { return chunked("/block/c", id, 70000) }},
	}
	for i, tt := range refused {
		t.Run("refused: "+tt.name, func(t *testing.T) {
			id := "budget-refused-" + strconv.Itoa(i)
			before := up.count()
			resp := dialRaw(t, p.addr).roundTrip(tt.raw(id))
			if got := resp.status(); got != 503 {
				t.Fatalf("got status %d; want 503 (the budget holds %d of %d bytes)", got, budget.Used(), budget.Limit())
			}
			if got, _ := resp.get("Retry-After"); got != "1" {
				t.Errorf("Retry-After %q; want 1", got)
			}
			if !bytes.Contains(resp.body, []byte("retry later")) {
				t.Errorf("body %q; want it to say why", resp.body)
			}
			if up.count() != before {
				t.Error("the refused request reached the upstream")
			}
			e := auditEvent(t, audit, id, e2eTimeout)
			if ruleMatch(e, waf.RuleRequestBodyBudget) == nil || e.Status != 503 {
				t.Errorf("audit event %+v; want rule %d and status 503", e, waf.RuleRequestBodyBudget)
			}
		})
	}

	t.Run("detect mode forwards uninspected", func(t *testing.T) {
		id := "budget-detect"
		sent := "q=" + url.QueryEscape(sqliPayload) + "&" + body(declared-100)
		resp := dialRaw(t, p.addr).roundTrip(postRaw("/detect/c", id, "application/x-www-form-urlencoded", sent))
		if got := resp.status(); got != 200 || string(resp.body) != "got "+strconv.Itoa(len(sent)) {
			t.Fatalf("got %d %q; want 200 %q", got, resp.body, "got "+strconv.Itoa(len(sent)))
		}
		if got := up.last(); got == nil || string(got.body) != sent {
			t.Fatal("the upstream did not receive the body as sent")
		}
		if e := auditEvent(t, audit, id, e2eTimeout); ruleMatch(e, waf.RuleRequestBodyBudget) == nil {
			t.Errorf("audit event %+v; want rule %d", e, waf.RuleRequestBodyBudget)
		}
	})

	_ = a.Close()
	_ = b.Close()
	if !waitFor(e2eTimeout, func() bool { return budget.Used() == 0 }) {
		t.Fatalf("after the uploads ended the budget holds %d bytes; want 0", budget.Used())
	}
	for _, tt := range []struct {
		name, raw string
		n         int
	}{
		{"streamed", postRaw("/block/d", "budget-after-1", "application/x-www-form-urlencoded", body(declared)), declared},
		{"chunked", chunked("/block/d", "budget-after-2", 90000), 90000},
	} {
		t.Run("after the stalls: "+tt.name+" body inspected and forwarded whole", func(t *testing.T) {
			resp := dialRaw(t, p.addr).roundTrip(tt.raw)
			if got, want := resp.status(), 200; got != want || string(resp.body) != "got "+strconv.Itoa(tt.n) {
				t.Fatalf("got %d %q; want %d %q", got, resp.body, want, "got "+strconv.Itoa(tt.n))
			}
			if got := up.last(); got == nil || string(got.body) != body(tt.n) {
				t.Fatal("the upstream did not receive the body as sent")
			}
		})
	}
	if !waitFor(e2eTimeout, func() bool { return budget.Used() == 0 }) {
		t.Errorf("after every request the budget holds %d bytes; want 0", budget.Used())
	}
}

// chunkedResponse frames body as a chunked 200 response of type ct.
func chunkedResponse(ct, body string) string {
	var b strings.Builder
	b.WriteString("HTTP/1.1 200 OK\r\nContent-Type: " + ct + "\r\nTransfer-Encoding: chunked\r\n\r\n")
	for len(body) > 0 {
		n := min(len(body), 16<<10)
		b.WriteString(strconv.FormatInt(int64(n), 16) + "\r\n" + body[:n] + "\r\n")
		body = body[n:]
	}
	b.WriteString("0\r\n\r\n")
	return b.String()
}

// TestE2EWAFResponseBodyLimit: inspect_response used to skip every response
// body above 64 KiB (those stream). Now a body of a type the WAF inspects
// is inspected up to response_body_limit, whatever its framing; a larger
// one is refused with 502 (reject) or inspected in part (partial, detect),
// with an audit event either way; other types stream as before.
func TestE2EWAFResponseBodyLimit(t *testing.T) {
	const leak = "<p>You have an error in your SQL syntax; check the manual that corresponds to your MySQL server version</p>\n"
	pad := func(n int) string { return strings.Repeat("<p>all is well here</p>\n", n/24+1)[:n] }
	bodies := map[string]string{
		"/leak":       pad(150<<10) + leak, // past the old 64 KiB, within the limit
		"/ok":         pad(200 << 10),
		"/big":        pad(300 << 10), // past the 256 KiB limit
		"/big-leak":   leak + pad(300<<10),
		"/bin":        strings.Repeat("\x00\x01binary", 100<<10),
		"/small-leak": pad(1000) + leak,
	}
	up := startRawUpstream(t, func(req *rawMessage) (string, bool) {
		path, _, _ := strings.Cut(strings.Fields(req.first)[1], "?")
		path = path[strings.LastIndexByte(path, '/'):]
		name, isChunked := strings.CutSuffix(path, "-chunked")
		body, ok := bodies[name]
		if !ok {
			return "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", false
		}
		ct := "text/html"
		if name == "/bin" {
			ct = "application/octet-stream"
		}
		if isChunked {
			return chunkedResponse(ct, body), false
		}
		return "HTTP/1.1 200 OK\r\nContent-Type: " + ct + "\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body, false
	})
	audit := filepath.Join(t.TempDir(), "waf.jsonl")
	p := startProxy(t, fmt.Sprintf(`
listeners:
  web: {address: "127.0.0.1:0"}
upstreams:
  app: {targets: [{url: "http://%s"}]}
waf:
  reject: {mode: block, inspect_response: true, response_body_limit: 256KiB, audit_log: %[2]q}
  partial: {mode: block, inspect_response: true, response_body_limit: 256KiB, response_body_limit_action: partial, audit_log: %[2]q}
  detect: {mode: detect, inspect_response: true, response_body_limit: 256KiB, audit_log: %[2]q}
routes:
  - {name: reject, match: {path_prefix: /reject/}, upstream: app, waf: reject}
  - {name: partial, match: {path_prefix: /partial/}, upstream: app, waf: partial}
  - {name: detect, match: {path_prefix: /detect/}, upstream: app, waf: detect}
access_log: {path: "off"}
`, up.addr(), audit))
	tests := []struct {
		path   string
		status int
		rule   int // a rule the audit event must hold; 0: none checked
	}{
		{"/reject/leak", 403, 951230},
		{"/reject/leak-chunked", 403, 951230},
		{"/reject/small-leak", 403, 951230},
		{"/reject/ok", 200, 0},
		{"/reject/ok-chunked", 200, 0},
		{"/reject/big", 502, waf.RuleResponseBodyLimit},
		{"/reject/big-chunked", 502, waf.RuleResponseBodyLimit},
		{"/reject/bin", 200, 0},
		{"/reject/bin-chunked", 200, 0},
		{"/partial/big", 200, waf.RuleResponseBodyLimit},
		{"/partial/big-chunked", 200, waf.RuleResponseBodyLimit},
		{"/partial/big-leak", 403, 951230},
		{"/detect/big-chunked", 200, waf.RuleResponseBodyLimit},
		{"/detect/leak", 200, 951230},
	}
	for i, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			id := "resp-" + strconv.Itoa(i)
			c := dialRaw(t, p.addr)
			resp := c.roundTrip("GET " + tt.path + " HTTP/1.1\r\nHost: app.test\r\nX-Request-Id: " + id + "\r\n\r\n")
			if got := resp.status(); got != tt.status {
				t.Fatalf("got status %d; want %d", got, tt.status)
			}
			if tt.status == 200 {
				name := tt.path[strings.LastIndexByte(tt.path, '/'):]
				name = strings.TrimSuffix(name, "-chunked")
				if string(resp.body) != bodies[name] {
					t.Errorf("relayed %d bytes; want the %d the upstream sent, unchanged", len(resp.body), len(bodies[name]))
				}
				// The connection stays usable: the body was relayed whole.
				if got := c.roundTrip("GET /reject/ok HTTP/1.1\r\nHost: app.test\r\n\r\n").status(); got != 200 {
					t.Errorf("next request on the connection: got %d; want 200", got)
				}
			}
			if tt.rule != 0 {
				if e := auditEvent(t, audit, id, e2eTimeout); ruleMatch(e, tt.rule) == nil {
					t.Errorf("audit event %+v; want rule %d", e, tt.rule)
				}
			}
		})
	}
	if !waitFor(e2eTimeout, func() bool { return p.srv.wafBuffer.Used() == 0 }) {
		t.Errorf("after every response the budget holds %d bytes; want 0", p.srv.wafBuffer.Used())
	}
}
