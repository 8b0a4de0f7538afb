package waf

import (
	"bufio"
	"encoding/json"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	crstests "github.com/corazawaf/coraza-coreruleset/v4/tests"
	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/internal/testlog"
	"github.com/rampart-proxy/rampart/waf/crstest"
)

// sink is the buffer that audit logs write to in tests.
type sink struct{ testlog.Buffer }

// events decodes every line written so far.
func (s *sink) events(t *testing.T) []Event {
	t.Helper()
	var out []Event
	for _, line := range s.Lines() {
		if len(line) == 0 {
			continue
		}
		var e Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		out = append(out, e)
	}
	return out
}

// event waits (bounded) for the audit event of request id.
func (s *sink) event(t *testing.T, id string) *Event {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		for _, e := range s.events(t) {
			if e.RequestID == id {
				return &e
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// counters records hook calls.
type counters struct {
	mu      sync.Mutex
	actions map[string]int // policy/action
	rules   map[int]int
}

func (c *counters) hooks() Hooks {
	return Hooks{
		Inspected: func(p string, a Action) {
			c.mu.Lock()
			c.actions[p+"/"+a.String()]++
			c.mu.Unlock()
		},
		RuleMatched: func(_ string, id int) {
			c.mu.Lock()
			c.rules[id]++
			c.mu.Unlock()
		},
	}
}

func (c *counters) action(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.actions[key]
}

func (c *counters) rule(id int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rules[id]
}

var (
	testAudit = &sink{}
	testHooks = &counters{actions: map[string]int{}, rules: map[int]int{}}
	testLog   = NewAuditLog(testAudit, 0)

	policiesMu sync.Mutex
	policies   = map[string]*Policy{}
)

// policy compiles cfg once per test binary under name.
func policy(t testing.TB, name string, cfg config.WAFPolicy) *Policy {
	t.Helper()
	policiesMu.Lock()
	defer policiesMu.Unlock()
	if p := policies[name]; p != nil {
		return p
	}
	if cfg.ParanoiaLevel == 0 {
		cfg.ParanoiaLevel = 1
	}
	if cfg.AnomalyThreshold == 0 {
		cfg.AnomalyThreshold = 5
	}
	if cfg.RequestBodyLimitAction == "" {
		cfg.RequestBodyLimitAction = config.BodyLimitReject
	}
	p, err := Compile(name, &cfg, Options{Audit: testLog, Hooks: testHooks.hooks()})
	if err != nil {
		t.Fatalf("Compile %s: %v", name, err)
	}
	policies[name] = p
	return p
}

var reqSeq atomic.Int64

// newCtx parses a raw HTTP/1.1 request into a RequestCtx from client
// 192.0.2.7. The raw text uses \n line ends; they become \r\n.
func newCtx(t testing.TB, raw string) *fasthttp.RequestCtx {
	t.Helper()
	head, body, _ := strings.Cut(raw, "\n\n")
	wire := strings.ReplaceAll(head, "\n", "\r\n") + "\r\n\r\n" + body
	var req fasthttp.Request
	if err := req.Read(bufio.NewReader(strings.NewReader(wire))); err != nil {
		t.Fatalf("parse request: %v\n%s", err, wire)
	}
	ctx := &fasthttp.RequestCtx{}
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 41000}, nil)
	return ctx
}

// inspect runs raw through p and returns the verdict (closed by the test's
// cleanup: the test must not Close it) and the request id used.
func inspect(t testing.TB, p *Policy, raw string) (*Verdict, string) {
	t.Helper()
	ctx := newCtx(t, raw)
	return inspectCtx(t, p, ctx)
}

func inspectCtx(t testing.TB, p *Policy, ctx *fasthttp.RequestCtx) (*Verdict, string) {
	t.Helper()
	v, id := inspectOpen(ctx, p)
	t.Cleanup(v.Close)
	return v, id
}

// inspectNow is inspect for a test that closes the verdict itself. A
// verdict closed twice goes back to its pool twice, and two later
// inspections then share it.
func inspectNow(t testing.TB, p *Policy, raw string) (*Verdict, string) {
	t.Helper()
	return inspectOpen(newCtx(t, raw), p)
}

func inspectOpen(ctx *fasthttp.RequestCtx, p *Policy) (*Verdict, string) {
	id := "req-" + strconv.FormatInt(reqSeq.Add(1), 10)
	return p.Inspect(ctx, Request{ID: []byte(id), ClientIP: netip.MustParseAddr("192.0.2.7"), Route: "r1"}), id
}

// ruleIDs returns the ids of the event's rules.
func ruleIDs(e *Event) map[int]bool {
	m := map[int]bool{}
	if e != nil {
		for _, r := range e.Rules {
			m[r.ID] = true
		}
	}
	return m
}

const browserHeaders = `Host: shop.example.com
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8
Accept-Language: en-US,en;q=0.5
Accept-Encoding: gzip, deflate, br
Connection: keep-alive`

// attackCorpus returns the strings of the CRS regression tests (URIs,
// their decoded query values, header values, bodies) and variants of each
// as the CRS's transformations would give them.
func attackCorpus(t testing.TB) []string {
	t.Helper()
	files, err := crstest.Load(crstests.FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	add := func(s string) {
		for _, v := range []string{s, strings.ToLower(s), strings.ToUpper(s), strings.Join(strings.Fields(s), ""),
			strings.Join(strings.Fields(s), " ")} {
			if len(v) <= 4096 {
				set[v] = true
			}
		}
		for v := s; ; {
			d, err := url.QueryUnescape(v)
			if err != nil || d == v {
				break
			}
			set[d], set[strings.ToLower(d)] = true, true
			v = d
		}
	}
	for _, f := range files {
		for _, test := range f.Tests {
			for _, st := range test.Stages {
				in := st.Input
				if in.URI != nil {
					add(*in.URI)
					if _, q, ok := strings.Cut(*in.URI, "?"); ok {
						for _, kv := range strings.Split(q, "&") {
							k, v, _ := strings.Cut(kv, "=")
							add(k)
							add(v)
						}
					}
				}
				for _, v := range in.Headers {
					add(v)
				}
				if in.Data != nil {
					add(*in.Data)
					for _, kv := range strings.Split(*in.Data, "&") {
						k, v, _ := strings.Cut(kv, "=")
						add(k)
						add(v)
					}
				}
			}
		}
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	return out
}
