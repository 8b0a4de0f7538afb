package waf

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/corazawaf/coraza/v3/experimental"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/corazawaf/coraza/v3/types"
	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/wire"
)

// Action is the outcome of an inspection.
type Action uint8

const (
	// ActionPass: no rule matched.
	ActionPass Action = iota
	// ActionDetected: rules matched but the request was not blocked
	// (detect mode, or a score below the threshold).
	ActionDetected
	// ActionBlocked: the request was refused.
	ActionBlocked
)

// String returns pass, detected or blocked.
func (a Action) String() string {
	switch a {
	case ActionDetected:
		return "detected"
	case ActionBlocked:
		return "blocked"
	}
	return "pass"
}

// Request is what the proxy knows about a request besides its
// *fasthttp.RequestCtx.
type Request struct {
	// ID is the request id (X-Request-Id), the transaction's id. Read only
	// during Inspect unless the policy inspects responses, in which case it
	// must stay unchanged until the Verdict is closed.
	ID []byte
	// ClientIP is the downstream client (after trusted X-Forwarded-For).
	ClientIP netip.Addr
	// Route is the matched route's name, for the audit log.
	Route string
	// URI, when not empty, is the request target as the proxy forwards it
	// (its path normalized), which the engine inspects as REQUEST_URI,
	// REQUEST_FILENAME, QUERY_STRING and ARGS_GET, so that it sees the
	// path the upstream receives; REQUEST_URI_RAW and REQUEST_LINE keep
	// the target as received. Empty: the target goes as received. Read
	// only during Inspect, unless the policy inspects responses.
	URI []byte
	// Owned are the fields the proxy sets itself, whatever the client
	// sent (the verified client certificate's subject; the Host of an
	// absolute-form target): the engine does not see the client's fields
	// of these names, in any case, but these values (none when a Value is
	// empty). Read only during Inspect, unless the policy inspects
	// responses.
	Owned []Field
	// GRPC says the request is a gRPC call to a route that serves gRPC.
	// The engine then stays away from the request and response bodies
	// (length-prefixed protobuf messages that stream both ways at once:
	// reading one to inspect it would hold up, or deadlock, the call);
	// only the request line and header fields (the gRPC method in the
	// path, the metadata) are inspected, and the response's header fields
	// when the policy inspects responses. Its content type
	// (application/grpc, with or without a +format) is allowed
	// (tx.allowed_request_content_type, CRS rule 920420).
	GRPC bool
}

// Field is a request header field.
type Field struct {
	Name  string
	Value []byte
}

// ownedValue returns the value of the owned field name and whether name is
// owned.
func ownedValue(owned []Field, name []byte) ([]byte, bool) {
	for i := range owned {
		if wire.EqualFold(owned[i].Name, name) {
			return owned[i].Value, true
		}
	}
	return nil, false
}

// Verdict is the result of Policy.Inspect. Nil means that the policy does
// not inspect (mode off); its methods accept a nil receiver. Close it when
// the request is done, after the body has been forwarded.
type Verdict struct {
	// Status is the status to answer with instead of forwarding the
	// request; 0 lets it through.
	Status int
	// Drop asks to close the connection after answering.
	Drop bool
	// Location is set for a redirect (a rule's redirect action).
	Location string
	// Action is pass, detected or blocked.
	Action Action
	// Score is the inbound anomaly score at the end of the request phases.
	Score int
	// Body, when not nil, replaces the request's body stream: it yields
	// the bytes the WAF read from the stream, then the rest. Valid until
	// Close.
	Body *Replay
	// RetryAfter, when not 0, is the Retry-After of the answer, in
	// seconds: the body could not be held for inspection now (503).
	RetryAfter int
	// BodyErr is the client's failure while the WAF read the request body
	// (a broken connection, a timeout). The request must not be
	// forwarded: answer it as a client error.
	BodyErr error

	p      *Policy
	tx     types.Transaction // open while the response may be inspected, or the body replayed
	info   Request
	method string
	uri    string
	replay Replay
	held   int64 // bytes reserved in p.budget
	taken  int64 // bytes ever reserved by this transaction (dropLargeBodies)
	note   note  // a finding of the adapter's own, for the audit event
	// copyStr asks str to copy: the transaction outlives Inspect.
	copyStr bool
	// inEngine is set while Inspect holds an engine slot.
	inEngine bool
	// ruleIDs are the first logged rules matched, kept by finish for the
	// access log and traces once the transaction is closed (logfields.go).
	ruleIDs [maxLoggedIDs]int32
	nRules  int
}

var verdictPool = sync.Pool{New: func() any { return new(Verdict) }}

// Blocked reports whether the request must be answered with Status
// instead of being forwarded.
func (v *Verdict) Blocked() bool { return v != nil && v.Status != 0 }

// bodyPrefix is the start of the answer to a blocked request; the request
// id follows. It says nothing about the rules.
var bodyPrefix = []byte("Request blocked by the web application firewall. Request id: ")

// Answers that are not a rule's verdict.
var (
	bodyBusy      = []byte("The web application firewall cannot hold this body for inspection now; retry later. Request id: ")
	bodyRespLarge = []byte("The response is larger than the web application firewall inspects. Request id: ")
)

// AppendBody appends the short plain-text answer to a blocked request,
// carrying the request id, to dst.
func (v *Verdict) AppendBody(dst, requestID []byte) []byte {
	dst = append(dst, strconv.Itoa(v.Status)...)
	dst = append(dst, ' ')
	dst = append(dst, fasthttp.StatusMessage(v.Status)...)
	dst = append(dst, ". "...)
	switch {
	case v.Status == fasthttp.StatusServiceUnavailable && v.note.overBudget():
		dst = append(dst, bodyBusy...)
	case v.note&noteResponseTooLarge != 0:
		dst = append(dst, bodyRespLarge...)
	default:
		dst = append(dst, bodyPrefix...)
	}
	dst = append(dst, requestID...)
	return append(dst, '\n')
}

// Respond writes the answer to a blocked request into ctx's response.
func (v *Verdict) Respond(ctx *fasthttp.RequestCtx, requestID []byte) {
	resp := &ctx.Response
	resp.Reset()
	resp.SetStatusCode(v.Status)
	resp.Header.SetContentType("text/plain; charset=utf-8")
	if v.Location != "" {
		resp.Header.Set(fasthttp.HeaderLocation, v.Location)
	}
	if v.RetryAfter > 0 {
		resp.Header.Set(fasthttp.HeaderRetryAfter, strconv.Itoa(v.RetryAfter))
	}
	if v.Drop {
		ctx.SetConnectionClose()
	}
	resp.SetBodyRaw(v.AppendBody(resp.Body()[:0], requestID))
}

// Inspect runs the request phases of the policy on ctx's request. It
// returns nil when the policy does not inspect (mode off); otherwise a
// Verdict the caller must Close once the request is done.
//
// The request's headers and URI are read in place. Its body is read only
// when the engine asks for it: a body in memory is handed to the engine as
// is; a streamed body is read up to the limit into the engine, and
// Verdict.Body replays it from there. Either is reserved in the policy's
// Budget first.
func (p *Policy) Inspect(ctx *fasthttp.RequestCtx, info Request) *Verdict {
	if p == nil || p.waf == nil {
		return nil
	}
	v := verdictPool.Get().(*Verdict)
	v.p, v.info = p, info
	// A streamed body is replayed from the transaction, which then stays
	// open while the request is forwarded.
	v.copyStr = p.inspectRx || ctx.Request.IsBodyStream()
	enterEngine()
	v.inEngine = true
	tx := p.waf.NewTransactionWithOptions(experimental.Options{ID: v.str(info.ID), Context: context.Background()})
	p.open.Add(1)
	v.tx = tx
	done := false
	defer func() {
		if !done { // a panic in the engine: do not leak the transaction
			v.finish()
		}
		if v.inEngine {
			v.inEngine = false
			leaveEngine()
		}
	}()

	req := &ctx.Request
	h := &req.Header
	v.method, v.uri = v.str(h.Method()), v.str(h.RequestURI())
	cport, sip, sport := 0, "", 0
	if a, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		cport = a.Port
	}
	if a, ok := ctx.LocalAddr().(*net.TCPAddr); ok {
		sip, sport = a.IP.String(), a.Port
	}
	tx.ProcessConnection(info.ClientIP.String(), cport, sip, sport)
	if proto := v.str(h.Protocol()); len(info.URI) > 0 {
		tx.ProcessURI(v.str(info.URI), v.method, proto)
		keepRawURI(tx, v.uri, v.method, proto)
	} else {
		tx.ProcessURI(v.uri, v.method, proto)
	}
	host := h.Host()
	if ov, ok := ownedValue(info.Owned, hostName); ok {
		host = ov
	}
	if len(host) > 0 {
		if hn, _, err := net.SplitHostPort(v.str(host)); err == nil {
			tx.SetServerName(hn)
		} else {
			tx.SetServerName(v.str(host))
		}
	}
	v.addHeaders(tx, h, info.Owned)
	if info.GRPC {
		allowContentType(tx, h.ContentType())
	}

	stock := !CorazaPatched() // only stock Coraza grows large caches (txcache.go)
	if it := tx.ProcessRequestHeaders(); it == nil {
		if tx.IsRequestBodyAccessible() && !info.GRPC {
			v.writeBody(req)
		}
		if !tx.IsInterrupted() && v.Status == 0 && v.BodyErr == nil {
			if p.scanMarkup && !info.GRPC {
				v.scanMarkup(req, tx)
			}
			if cl := req.Header.ContentLength(); stock && !info.GRPC && (cl >= largeBody || cl == -1) {
				borrowBigCache(tx)
			}
			_, _ = tx.ProcessRequestBody()
		}
	}
	if stock {
		releaseBigCache(tx)
	}
	if p.hooks.Request != nil {
		p.hooks.Request(p.name, tx)
	}
	v.decide()
	done = true
	if v.Status != 0 || v.BodyErr != nil {
		v.Body = nil // not forwarded
		v.finish()
	} else if !p.inspectRx && v.Body == nil {
		v.finish()
	}
	return v
}

// keepRawURI sets REQUEST_URI_RAW and REQUEST_LINE to the request target as
// received, after ProcessURI was given the target as forwarded: rules that
// look for traversal or odd bytes in what the client sent (CRS 920, 930)
// still see it.
func keepRawURI(tx types.Transaction, raw, method, proto string) {
	st, ok := tx.(interface {
		Variables() plugintypes.TransactionVariables
	})
	if !ok {
		return
	}
	vars := st.Variables()
	if s, ok := vars.RequestURIRaw().(interface{ Set(string) }); ok {
		s.Set(raw)
	}
	if s, ok := vars.RequestLine().(interface{ Set(string) }); ok {
		s.Set(method + " " + raw + " " + proto)
	}
}

// allowContentType lets ct's media type (without parameters) through CRS
// rule 920420: the CRS's initialization keeps an allowed list set before
// it (rule 901162).
func allowContentType(tx types.Transaction, ct []byte) {
	st, ok := tx.(interface {
		Variables() plugintypes.TransactionVariables
	})
	if !ok {
		return
	}
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	mt := strings.ToLower(string(bytes.TrimSpace(ct)))
	st.Variables().TX().Set("allowed_request_content_type", []string{"|" + mt + "|"})
}

var hostName = []byte(fasthttp.HeaderHost)

// addHeaders gives the engine every request header as received, in order
// and with duplicates (Host and Transfer-Encoding included), but the owned
// fields, which it gives as the proxy set them.
func (v *Verdict) addHeaders(tx types.Transaction, h *fasthttp.RequestHeader, owned []Field) {
	if len(h.RawHeaders()) > 0 {
		for k, val := range h.AllInOrder() {
			if _, ok := ownedValue(owned, k); !ok {
				tx.AddRequestHeader(v.str(k), v.str(val))
			}
		}
	} else {
		// A request built in code has no raw headers.
		te := false
		for k, val := range h.All() {
			te = te || string(k) == fasthttp.HeaderTransferEncoding
			if _, ok := ownedValue(owned, k); !ok {
				tx.AddRequestHeader(v.str(k), v.str(val))
			}
		}
		if !te && h.ContentLength() == -1 {
			tx.AddRequestHeader(fasthttp.HeaderTransferEncoding, "chunked")
		}
	}
	for i := range owned {
		if len(owned[i].Value) > 0 {
			tx.AddRequestHeader(owned[i].Name, v.str(owned[i].Value))
		}
	}
}

// writeBody hands the request body to the engine, at most the policy's
// limit, plus one byte when a larger body must be refused (the engine then
// interrupts with 413). In detect mode nothing is refused. The bytes are
// reserved in the policy's budget first: a body that does not fit is
// refused with 503 (block mode) or left uninspected (detect mode).
func (v *Verdict) writeBody(req *fasthttp.Request) {
	p, tx := v.p, v.tx
	if tx.IsRuleEngineOff() {
		// A rule switched the engine off: it would keep nothing, and the
		// body goes past it as the rule asked.
		return
	}
	max := p.bodyLimit
	if !p.partial && p.mode != config.WAFModeDetect {
		max++
	}
	if !req.IsBodyStream() {
		b := req.Body()
		if int64(len(b)) > max {
			b = b[:max]
		}
		if len(b) == 0 {
			return
		}
		if !v.reserve(int64(len(b))) {
			v.overBudget(noteRequestBudget)
			return
		}
		_, _, _ = tx.WriteRequestBody(b)
		return
	}
	want := int64(-1) // chunked: reserved as it arrives
	if cl := req.Header.ContentLength(); cl >= 0 {
		want = min(int64(cl), max)
	}
	src := req.BodyStream()
	// Reading from the network is not engine work: give the slot up
	// meanwhile. Writing into the transaction's buffer evaluates no rule.
	v.inEngine = false
	leaveEngine()
	n, ended, err := v.readInto(src, tx.WriteRequestBody, max, want)
	enterEngine()
	v.inEngine = true
	switch err {
	case nil:
	case errBudget:
		v.overBudget(noteRequestBudget)
	case errShortWrite:
		v.Status, v.Action = fasthttp.StatusInternalServerError, ActionBlocked
		return
	default:
		v.BodyErr = err
		return
	}
	if n > 0 {
		head, rerr := tx.RequestBodyReader()
		if rerr != nil {
			v.Status, v.Action = fasthttp.StatusInternalServerError, ActionBlocked
			return
		}
		v.replay = Replay{head: head, rest: src}
		if ended {
			v.replay.rest = nil
		}
		v.Body = &v.replay
	}
}

// reserve takes n bytes of the policy's budget for this verdict.
func (v *Verdict) reserve(n int64) bool {
	if !v.p.budget.reserve(n) {
		return false
	}
	v.held += n
	v.taken += n
	return true
}

// overBudget records a body that the budget could not hold: block mode
// refuses it with 503, detect mode lets it pass uninspected; the audit
// event says so either way.
func (v *Verdict) overBudget(n note) {
	v.note |= n
	if h := v.p.hooks.OverBudget; h != nil {
		h(v.p.name)
	}
	if v.p.mode != config.WAFModeDetect {
		v.Status, v.RetryAfter, v.Action = fasthttp.StatusServiceUnavailable, retryAfterBudget, ActionBlocked
	}
}

// retryAfterBudget is the Retry-After of a body refused for lack of
// budget: bodies under inspection take about that long to finish.
const retryAfterBudget = 1

// decide sets the verdict's fields from the transaction's state.
func (v *Verdict) decide() {
	tx := v.tx
	if it := tx.Interruption(); it != nil {
		v.Action = ActionBlocked
		v.Status = it.Status
		switch it.Action {
		case "redirect":
			if v.Status == 0 {
				v.Status = fasthttp.StatusFound
			}
			v.Location = it.Data
		case "drop":
			v.Drop = true
		}
		if v.Status == 0 || (v.Location == "" && v.Status < 400) {
			v.Status = fasthttp.StatusForbidden
		}
	}
	v.Score = v.p.score(tx)
}

// Close ends the request's inspection: the logging phase, the audit event
// and the transaction's release if still open, then the verdict's own
// release. The verdict and its Body must not be used afterwards. A second
// Close right after the first does nothing (a closed verdict has no policy),
// so that the verdict cannot go back to its pool twice and then serve two
// inspections at once.
func (v *Verdict) Close() {
	if v == nil || v.p == nil {
		return
	}
	if v.tx != nil {
		enterEngine()
		v.finish()
		leaveEngine()
	}
	v.p.budget.release(v.held)
	*v = Verdict{}
	verdictPool.Put(v)
}

// finish runs the logging phase, reports the transaction and closes it.
func (v *Verdict) finish() {
	tx, p := v.tx, v.p
	v.tx = nil
	tx.ProcessLogging()
	matched := tx.MatchedRules()
	logged := 0
	for _, m := range matched {
		if isLogged(m) {
			v.keepRuleID(m.Rule().ID())
			logged++
			if p.hooks.RuleMatched != nil {
				p.hooks.RuleMatched(p.name, m.Rule().ID())
			}
		}
	}
	if v.note != 0 && p.hooks.RuleMatched != nil {
		v.note.ids(func(id int) { p.hooks.RuleMatched(p.name, id) })
	}
	if (logged > 0 || v.note != 0) && v.Action == ActionPass {
		v.Action = ActionDetected
	}
	if p.hooks.Inspected != nil {
		p.hooks.Inspected(p.name, v.Action)
	}
	if p.audit != nil && (logged > 0 || v.note != 0 || v.Action == ActionBlocked) {
		p.audit.send(v.event(tx, matched))
	}
	if v.taken > keptBodyBuffer {
		dropLargeBodies(tx)
	}
	_ = tx.Close()
	p.open.Add(-1)
}

// isLogged reports whether a matched rule is one that logs (not a nolog
// bookkeeping rule such as the CRS initialization).
func isLogged(m types.MatchedRule) bool {
	if l, ok := m.(interface{ Log() bool }); ok {
		return l.Log()
	}
	return true
}

// score returns the inbound anomaly score: the CRS blocking score once
// the blocking evaluation ran, else the sum of the per-level scores so far.
func (p *Policy) score(tx types.Transaction) int {
	st, ok := tx.(interface {
		Variables() plugintypes.TransactionVariables
	})
	if !ok {
		return 0
	}
	vars := st.Variables().TX()
	if s := vars.Get("blocking_inbound_anomaly_score"); len(s) > 0 {
		if n, err := strconv.Atoi(s[0]); err == nil && n > 0 {
			return n
		}
	}
	sum := 0
	for _, k := range [...]string{"inbound_anomaly_score_pl1", "inbound_anomaly_score_pl2", "inbound_anomaly_score_pl3", "inbound_anomaly_score_pl4"} {
		if s := vars.Get(k); len(s) > 0 {
			n, _ := strconv.Atoi(s[0])
			sum += n
		}
	}
	return sum
}

// str returns b as a string. When the transaction is closed within
// Inspect, before the request's buffers can change, b is not copied;
// otherwise (response inspection, a replayed body) it is.
func (v *Verdict) str(b []byte) string {
	if v.copyStr {
		return string(b)
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}
