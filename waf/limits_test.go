package waf

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/corazawaf/coraza/v3/experimental"
	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/config"
)

func TestBudget(t *testing.T) {
	b := NewBudget(100)
	steps := []struct {
		name string
		op   func() bool
		want bool
		used int64
	}{
		{"reserve within", func() bool { return b.reserve(60) }, true, 60},
		{"reserve past the limit", func() bool { return b.reserve(41) }, false, 60},
		{"reserve up to the limit", func() bool { return b.reserve(40) }, true, 100},
		{"release", func() bool { b.release(30); return true }, true, 70},
		{"lower limit refuses new", func() bool { b.SetLimit(50); return b.reserve(1) }, false, 70},
		{"held bytes come back", func() bool { b.release(70); return b.reserve(50) }, true, 50},
		{"nothing is free", func() bool { return b.reserve(0) }, true, 50},
	}
	for _, s := range steps {
		if got := s.op(); got != s.want || b.Used() != s.used {
			t.Fatalf("%s: got %v, used %d; want %v, used %d", s.name, got, b.Used(), s.want, s.used)
		}
	}
	var nilBudget *Budget
	if !nilBudget.reserve(1<<40) || nilBudget.Used() != 0 {
		t.Error("a nil budget must bound nothing")
	}

	// Concurrent reservations never exceed the limit.
	c := NewBudget(1000)
	var won atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 500 {
				if c.reserve(1) {
					won.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if won.Load() != 1000 || c.Used() != 1000 {
		t.Errorf("concurrent reservations: got %d won, %d used; want 1000, 1000", won.Load(), c.Used())
	}
}

// TestArgumentLimitBoundary: max_arguments arguments pass and one more is
// refused with limit_status, from every source; detect mode only logs.
func TestArgumentLimitBoundary(t *testing.T) {
	block := policy(t, "args-block", config.WAFPolicy{Mode: "block", MaxArguments: 20})
	detect := policy(t, "args-detect", config.WAFPolicy{Mode: "detect", MaxArguments: 20, LimitStatus: 403})
	form := func(n int) string {
		b := padForm(n)
		return "POST /f HTTP/1.1\nHost: a\nContent-Type: application/x-www-form-urlencoded\nContent-Length: " + strconv.Itoa(len(b)) + "\n\n" + b
	}
	query := func(n int) string { return "GET /q?" + padForm(n) + " HTTP/1.1\nHost: a\n\n" }
	jsonBody := func(n int) string {
		b := "[" + strings.TrimSuffix(strings.Repeat("1,", n), ",") + "]"
		return "POST /j HTTP/1.1\nHost: a\nContent-Type: application/json\nContent-Length: " + strconv.Itoa(len(b)) + "\n\n" + b
	}
	multipart := func(fields, files int) string {
		var b strings.Builder
		for i := range fields {
			fmt.Fprintf(&b, "--XB\r\nContent-Disposition: form-data; name=\"f%d\"\r\n\r\nv\r\n", i)
		}
		for i := range files {
			fmt.Fprintf(&b, "--XB\r\nContent-Disposition: form-data; name=\"u%d\"; filename=\"a%d.txt\"\r\nContent-Type: text/plain\r\n\r\nv\r\n", i, i)
		}
		b.WriteString("--XB--\r\n")
		return "POST /m HTTP/1.1\nHost: a\nContent-Type: multipart/form-data; boundary=XB\nContent-Length: " + strconv.Itoa(b.Len()) + "\n\n" + b.String()
	}
	cases := []struct {
		name   string
		p      *Policy
		raw    string
		status int
		rule   int
	}{
		{"query at the limit", block, query(20), 0, 0},
		{"query over", block, query(21), 400, 200004},
		{"form at the limit", block, form(20), 0, 0},
		{"form over", block, form(21), 400, 200005},
		{"json at the limit", block, jsonBody(20), 0, 0},
		{"json over", block, jsonBody(21), 400, 200005},
		{"multipart fields at the limit", block, multipart(20, 0), 0, 0},
		{"multipart fields over", block, multipart(21, 0), 400, 200007},
		{"multipart files over", block, multipart(0, 21), 400, 200007},
		{"detect logs the limit", detect, form(21), 0, 200005},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, id := inspect(t, c.p, c.raw)
			if v.Status != c.status {
				t.Fatalf("got status %d; want %d (event %+v)", v.Status, c.status, testAudit.event(t, id))
			}
			if c.rule == 0 {
				return
			}
			e := testAudit.event(t, id)
			if !ruleIDs(e)[c.rule] {
				t.Fatalf("event %+v; want rule %d", e, c.rule)
			}
			if c.p == detect && (e.Action != "detected" || e.Status != 403) {
				t.Errorf("detect event: action %q status %d; want detected 403 (what block mode would send)", e.Action, e.Status)
			}
		})
	}
}

// padForm returns n benign arguments.
func padForm(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = "a" + strconv.Itoa(i) + "=v"
	}
	return strings.Join(parts, "&")
}

// budgetPolicy compiles a policy that shares budget b.
func budgetPolicy(t *testing.T, mode string, b *Budget, over *atomic.Int64) *Policy {
	t.Helper()
	cfg := config.WAFPolicy{Mode: mode, RequestBodyLimit: 64 << 10, ResponseBodyLimit: 64 << 10, InspectResponse: true}
	hooks := testHooks.hooks()
	hooks.OverBudget = func(string) { over.Add(1) }
	p, err := Compile("budget-"+mode, &cfg, Options{Audit: testLog, Hooks: hooks, Budget: b})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRequestBodyBudget: a body reserves its bytes before it is read and
// gives them back on Close; one that does not fit is refused (block) or
// passed unread (detect).
func TestRequestBodyBudget(t *testing.T) {
	b := NewBudget(100 << 10)
	var over atomic.Int64
	block := budgetPolicy(t, "block", b, &over)
	detect := budgetPolicy(t, "detect", b, &over)
	body := append([]byte("k="), bytes.Repeat([]byte("v"), 60<<10)...)
	streamed := func(p *Policy, cl int) (*Verdict, string) {
		ctx := newCtx(t, "POST /u HTTP/1.1\n"+browserHeaders+"\nContent-Type: application/x-www-form-urlencoded\n\n")
		ctx.Request.SetBodyStream(bytes.NewReader(body), cl)
		return inspectOpen(ctx, p)
	}

	// One body holds its declared length until closed.
	v1, _ := streamed(block, len(body))
	if v1.Status != 0 || b.Used() != int64(len(body)) {
		t.Fatalf("first body: status %d, budget used %d; want 0, %d", v1.Status, b.Used(), len(body))
	}
	cases := []struct {
		name   string
		p      *Policy
		cl     int
		status int
	}{
		{"declared length does not fit", block, len(body), 503},
		{"chunked body does not fit", block, -1, 503},
		{"detect passes it unread", detect, len(body), 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := over.Load()
			v, id := streamed(c.p, c.cl)
			defer v.Close()
			if v.Status != c.status {
				t.Fatalf("got status %d; want %d", v.Status, c.status)
			}
			if c.status == 503 && v.RetryAfter != retryAfterBudget {
				t.Errorf("RetryAfter %d; want %d", v.RetryAfter, retryAfterBudget)
			}
			if c.status == 0 && v.Body != nil {
				t.Errorf("Body is a replay; want nil (the stream goes on unread)")
			}
			if over.Load() != before+1 {
				t.Errorf("OverBudget hook called %d times; want 1", over.Load()-before)
			}
			v.Close()
			if e := testAudit.event(t, id); !ruleIDs(e)[RuleRequestBodyBudget] || e.Status != 503 {
				t.Errorf("event %+v; want rule %d and status 503", e, RuleRequestBodyBudget)
			}
		})
	}
	got, err := io.ReadAll(v1.Body)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("replayed %d bytes (%v); want the %d sent", len(got), err, len(body))
	}
	v1.Close()
	if b.Used() != 0 {
		t.Fatalf("after Close the budget holds %d bytes; want 0", b.Used())
	}
	// A chunked body reserves as it arrives.
	v2, _ := streamed(block, -1)
	if want := int64(budgetStep); v2.Status != 0 || b.Used() != want {
		t.Errorf("chunked body of %d bytes: status %d, budget used %d; want 0, %d", len(body), v2.Status, b.Used(), want)
	}
	v2.Close()
	if b.Used() != 0 {
		t.Errorf("after Close the budget holds %d bytes; want 0", b.Used())
	}
}

// TestBodyStreamEdges: a body cut short of its Content-Length is reported,
// not inspected as whole; a body the rules put out of the engine's reach
// streams on untouched.
func TestBodyStreamEdges(t *testing.T) {
	off := policy(t, "engine-off", config.WAFPolicy{Mode: "block", Rules: `SecRule REQUEST_URI "@beginsWith /off" "id:10201,phase:1,pass,nolog,ctl:ruleEngine=Off"
SecRule REQUEST_URI "@beginsWith /noaccess" "id:10202,phase:1,pass,nolog,ctl:requestBodyAccess=Off"`})
	body := bytes.Repeat([]byte("x"), 100<<10)
	cases := []struct {
		name    string
		path    string
		src     io.Reader
		cl      int
		bodyErr error
	}{
		{"cut short of Content-Length", "/u", bytes.NewReader(body[:50<<10]), len(body), io.ErrUnexpectedEOF},
		{"engine switched off", "/off", bytes.NewReader(body), len(body), nil},
		{"body access switched off", "/noaccess", bytes.NewReader(body), len(body), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := newCtx(t, "POST "+c.path+" HTTP/1.1\n"+browserHeaders+"\nContent-Type: application/json\n\n")
			ctx.Request.SetBodyStream(c.src, c.cl)
			v, _ := inspectCtx(t, off, ctx)
			if v.BodyErr != c.bodyErr || v.Blocked() {
				t.Fatalf("got BodyErr %v, status %d; want %v, 0", v.BodyErr, v.Status, c.bodyErr)
			}
			if c.bodyErr != nil {
				return
			}
			if v.Body != nil {
				t.Fatal("Body is a replay; want nil (the engine read nothing)")
			}
			got, _ := io.ReadAll(c.src)
			if !bytes.Equal(got, body) {
				t.Errorf("the stream lost bytes: %d left; want %d", len(got), len(body))
			}
		})
	}
}

// TestEngineBuffers: the adapter finds Coraza's body buffers (their layout
// is not exported), and drops a large one before its transaction goes back
// to the pool.
func TestEngineBuffers(t *testing.T) {
	p := policy(t, "buffers", config.WAFPolicy{Mode: "block", RequestBodyLimit: 1 << 20})
	tx := p.waf.NewTransactionWithOptions(experimental.Options{ID: "buffers"})
	defer tx.Close()
	for _, f := range []string{requestBuffer, responseBuffer} {
		if engineBuffer(tx, f) == nil {
			t.Fatalf("engineBuffer(%s) = nil: Coraza's layout changed; see bodybuf.go", f)
		}
	}
	if _, _, err := tx.WriteRequestBody(bytes.Repeat([]byte("x"), 200<<10)); err != nil {
		t.Fatal(err)
	}
	if c := engineBuffer(tx, requestBuffer).Cap(); c < 200<<10 {
		t.Fatalf("request buffer capacity %d after 200 KiB; want at least that", c)
	}
	dropLargeBodies(tx)
	if c := engineBuffer(tx, requestBuffer).Cap(); c > keptBodyBuffer {
		t.Errorf("request buffer capacity %d after dropLargeBodies; want at most %d", c, keptBodyBuffer)
	}
}

// TestResponseBodyStream: a streamed response of an inspected type is read
// into the engine, inspected, and relayed whole; the relay holds the budget
// until closed.
func TestResponseBodyStream(t *testing.T) {
	b := NewBudget(1 << 20)
	var over atomic.Int64
	p := budgetPolicy(t, "block", b, &over) // response_body_limit 64 KiB
	leak := "You have an error in your SQL syntax; check the manual that corresponds to your MySQL server version"
	page := strings.Repeat("<p>fine</p>\n", 4000)[:40<<10]
	cases := []struct {
		name    string
		body    string
		cl      int
		refused bool
		status  int
	}{
		{"benign, length declared", page, len(page), false, 0},
		{"benign, chunked", page, -1, false, 0},
		{"leak, chunked", page + leak, -1, true, 403},
		{"over the limit", page + page, len(page) * 2, true, 502},
		{"over the limit, chunked", page + page, -1, true, 502},
		{"exactly the limit, chunked", (page + page)[:64<<10], -1, false, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, _ := inspect(t, p, "GET /page HTTP/1.1\n"+browserHeaders+"\n\n")
			resp := newResponse("text/html", c.cl)
			src := &closeCounter{Reader: strings.NewReader(c.body)}
			refused, out := v.InspectResponse(resp, src)
			if refused != c.refused || v.Status != c.status {
				t.Fatalf("got refused %v, status %d; want %v, %d", refused, v.Status, c.refused, c.status)
			}
			if refused {
				if out != nil || src.closed != 1 {
					t.Errorf("refused: out %v, upstream body closed %d times; want nil, once", out, src.closed)
				}
				return
			}
			if b.Used() == 0 {
				t.Error("the relay holds no budget while it relays")
			}
			got, err := io.ReadAll(out)
			if err != nil || string(got) != c.body {
				t.Fatalf("relayed %d bytes (%v); want the %d sent", len(got), err, len(c.body))
			}
			_ = out.Close()
			if src.closed != 1 || b.Used() != 0 {
				t.Errorf("after the relay: upstream body closed %d times, budget used %d; want once, 0", src.closed, b.Used())
			}
		})
	}
}

// newResponse is a 200 response header of type ct and length cl (-1:
// chunked), its body to come from a stream.
func newResponse(ct string, cl int) *fasthttp.Response {
	resp := &fasthttp.Response{}
	resp.SetStatusCode(200)
	resp.Header.SetContentType(ct)
	resp.Header.SetContentLength(cl)
	return resp
}

// closeCounter is an upstream body that counts its Close calls.
type closeCounter struct {
	io.Reader
	closed int
}

func (c *closeCounter) Close() error { c.closed++; return nil }
