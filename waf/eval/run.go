package eval

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/proxy"
	"github.com/rampart-proxy/rampart/waf"
)

// Outcome is what became of one case.
type Outcome struct {
	// Blocked says the request was refused.
	Blocked bool
	// Status is the status of the answer (0 in process when forwarded).
	Status int
	// Rules are the ids of the rules that matched, sorted, without the
	// CRS's evaluation and correlation rules (949xxx, 959xxx, 980xxx); nil
	// when unknown (over HTTP).
	Rules []int
}

// Inspector decides one case.
type Inspector interface {
	Inspect(c *Case) (Outcome, error)
}

// Local inspects cases in process with a compiled policy, as the proxy
// does: the request is parsed by fasthttp from its wire form, its path put
// in the proxy's normal form (a path without one is refused, as the proxy
// refuses it with 400 before the WAF: it counts as blocked), and given to
// waf.Policy.Inspect. It is not safe for concurrent use.
type Local struct {
	p     *waf.Policy
	route string
	rules []int // filled by the policy's RuleMatched hook during Inspect
	req   fasthttp.Request
	raw   []byte
	br    *bufio.Reader
	rd    bytes.Reader
}

// NewLocal compiles the policy cfg called name for the route called
// route; baseDir resolves its rule files. The policy's audit log is not
// opened: the evaluation writes none.
func NewLocal(name string, cfg *config.WAFPolicy, baseDir, route string) (*Local, error) {
	c := *cfg
	c.AuditLog = ""
	l := &Local{route: route}
	p, err := waf.Compile(name, &c, waf.Options{BaseDir: baseDir, Hooks: waf.Hooks{
		RuleMatched: func(_ string, id int) { l.rules = append(l.rules, id) },
	}})
	if err != nil {
		return nil, err
	}
	if p.Mode() == config.WAFModeOff {
		return nil, fmt.Errorf("eval: policy %q is off: nothing would be inspected", name)
	}
	l.p = p
	l.br = bufio.NewReaderSize(&l.rd, 64<<10)
	return l, nil
}

// Close releases the policy.
func (l *Local) Close() error { return l.p.Close() }

var localAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000}

// Inspect parses the case's request and inspects it.
func (l *Local) Inspect(c *Case) (Outcome, error) {
	l.raw = c.Req.AppendRaw(l.raw[:0])
	l.rd.Reset(l.raw)
	l.br.Reset(&l.rd)
	l.req.Reset()
	if err := l.req.Read(l.br); err != nil {
		return Outcome{}, fmt.Errorf("%s: the request cannot be parsed: %w", c.Name, err)
	}
	// The proxy puts the path in its normal form before the WAF, which
	// inspects the target the upstream receives, and refuses a path
	// without one (as a listener does by default, path_handling
	// normalize).
	u := l.req.URI()
	target, ok := proxy.NormalizedTarget(u.PathOriginal(), u.QueryString())
	if !ok {
		return Outcome{Blocked: true, Status: fasthttp.StatusBadRequest}, nil
	}
	var ctx fasthttp.RequestCtx
	ctx.Init(&l.req, localAddr, nil)
	l.rules = l.rules[:0]
	v := l.p.Inspect(&ctx, waf.Request{ID: []byte(c.Name), ClientIP: netip.AddrFrom4([4]byte{127, 0, 0, 1}), Route: l.route, URI: target})
	o := Outcome{Blocked: v.Blocked()}
	if v != nil {
		o.Status = v.Status
	}
	v.Close()
	o.Rules = scoring(l.rules)
	return o, nil
}

// scoring returns the sorted distinct ids of ids, without the CRS's
// evaluation and correlation rules.
func scoring(ids []int) []int {
	out := make([]int, 0, len(ids))
	for _, id := range ids {
		switch id / 1000 {
		case 949, 959, 980:
			continue
		}
		out = append(out, id)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Remote sends cases to a running Rampart over HTTP/1.1, one at a time on
// a kept-alive connection, and reads the answer: Rampart's WAF refusal
// (recognized by its body, whatever its status: 403 for a rule, 400 for a
// body the engine cannot parse, 413 for one over the limit), the proxy's
// own 400 (a path without a normal form, refused before the WAF) or a
// status in BlockStatuses is a block. The route evaluated should answer
// everything else with a 2xx (a respond route does).
type Remote struct {
	Addr string // host:port
	// Host replaces the cases' Host when not empty.
	Host string
	// BlockStatuses are the statuses of a refusal (default 403).
	BlockStatuses []int
	// Timeout bounds each exchange (default 10 s).
	Timeout time.Duration

	// IDPrefix starts the X-Request-Id of every request sent: the i-th
	// is IDPrefix followed by i, so that the audit events of a run can be
	// told from others (see AttachAudit). Empty: "eval-".
	IDPrefix string

	sent int
	conn net.Conn
	br   *bufio.Reader
	resp fasthttp.Response
	raw  []byte
}

// requestID returns the id of the i-th request.
func (r *Remote) requestID(i int) string {
	p := r.IDPrefix
	if p == "" {
		p = "eval-"
	}
	return p + strconv.Itoa(i)
}

// Close closes the connection.
func (r *Remote) Close() error {
	if r.conn != nil {
		return r.conn.Close()
	}
	return nil
}

// Inspect sends the case and reads the answer, reconnecting once when the
// kept connection was closed.
func (r *Remote) Inspect(c *Case) (Outcome, error) {
	req := c.Req
	if r.Host != "" {
		req.Header = slices.Clone(req.Header)
		for i := range req.Header {
			if equalFold(req.Header[i][0], "Host") {
				req.Header[i][1] = r.Host
			}
		}
	}
	r.raw = req.AppendRaw(r.raw[:0], [2]string{"X-Request-Id", r.requestID(r.sent)})
	r.sent++
	var err error
	for try := 0; try < 2; try++ {
		var o Outcome
		if o, err = r.exchange(req.Method == "HEAD"); err == nil {
			return o, nil
		}
		r.Close()
		r.conn = nil
	}
	return Outcome{}, fmt.Errorf("%s: %w", c.Name, err)
}

// exchange sends r.raw and reads the answer; head says the request was a
// HEAD, whose answer has no body whatever its Content-Length says.
func (r *Remote) exchange(head bool) (Outcome, error) {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	if r.conn == nil {
		d := net.Dialer{Timeout: timeout}
		conn, err := d.DialContext(context.Background(), "tcp", r.Addr)
		if err != nil {
			return Outcome{}, err
		}
		r.conn = conn
		if r.br == nil {
			r.br = bufio.NewReaderSize(conn, 64<<10)
		} else {
			r.br.Reset(conn)
		}
	}
	if err := r.conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return Outcome{}, err
	}
	if _, err := r.conn.Write(r.raw); err != nil {
		return Outcome{}, err
	}
	r.resp.Reset()
	r.resp.SkipBody = head
	if err := r.resp.Read(r.br); err != nil {
		return Outcome{}, err
	}
	st := r.resp.StatusCode()
	body := r.resp.Body()
	refused := st >= 400 && bytes.Contains(body, wafAnswer) ||
		st == fasthttp.StatusBadRequest && bytes.Equal(body, proxyBadRequest)
	if r.resp.ConnectionClose() {
		r.conn.Close()
		r.conn = nil
	}
	statuses := r.BlockStatuses
	if len(statuses) == 0 {
		statuses = []int{fasthttp.StatusForbidden}
	}
	return Outcome{Blocked: refused || slices.Contains(statuses, st), Status: st}, nil
}

// wafAnswer is in the body of every answer of Rampart's WAF to a request
// it refuses (waf.Verdict.AppendBody).
var wafAnswer = []byte("the web application firewall")

// proxyBadRequest is the body of the proxy's own 400, such as for a path
// it cannot put in a normal form: the request was refused before the WAF,
// and not forwarded.
var proxyBadRequest = []byte("400 Bad Request\n")

// Result is a case and its outcome.
type Result struct {
	Case *Case
	Outcome
}

// Limits bound a run.
type Limits struct {
	// Timeout bounds the whole run; 0 means no bound. Cases not run in
	// time make Run fail.
	Timeout time.Duration
}

// ErrTimeout is returned when a run is not done within its time.
var ErrTimeout = errors.New("eval: the run took longer than its timeout")

// Run decides every case with in, in order.
func Run(in Inspector, cases []*Case, lim Limits) ([]Result, error) {
	start := time.Now()
	out := make([]Result, 0, len(cases))
	for i, c := range cases {
		if lim.Timeout > 0 && i%64 == 0 && time.Since(start) > lim.Timeout {
			return out, fmt.Errorf("%w (%v, %d of %d cases run)", ErrTimeout, lim.Timeout, i, len(cases))
		}
		o, err := in.Inspect(c)
		if err != nil {
			return out, err
		}
		out = append(out, Result{Case: c, Outcome: o})
	}
	return out, nil
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if a[i]|0x20 != b[i]|0x20 {
			return false
		}
	}
	return true
}
