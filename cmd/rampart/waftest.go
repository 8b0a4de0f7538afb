package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/waf"
)

const wafUsage = `usage: rampart waf test --config FILE --route NAME [options] [URL | PATH]
       rampart waf eval [options]             (rampart waf eval --help)
       rampart waf report --audit-log FILE    (rampart waf report --help)

Runs one request through the WAF policy of route NAME, as the proxy would
inspect it, without any upstream or listener, and prints the verdict, the
inbound anomaly score and every matched rule (id, severity, message, the
variable and the data that matched). Use it to tune false positives and to
prove that an exclusion works.

The request is given as with curl:
  URL | PATH                  http://host[:port]/path?query, host/path or /path
                              (default /); characters that cannot appear in a
                              request line (spaces, controls) are %-encoded
  -X, --request METHOD        default GET, or POST when data is given
  -H, --header 'Name: value'  repeatable, sent in order; 'Name:' removes a
                              default header (Host, User-Agent, Accept),
                              'Name;' sends it empty
  -d, --data DATA             body; @FILE reads FILE without its newlines
  --data-binary DATA          body; @FILE reads FILE as is
  --data-raw DATA             body; @ has no special meaning
                              Repeated data options are joined with '&'. Data
                              sets Content-Type application/x-www-form-urlencoded
                              unless -H gives one.
Host comes from -H Host, else the URL, else the route's exact match host,
else localhost. Default headers: User-Agent: rampart-waf-test, Accept: */*.
Content-Length is always the body's length (or the body is sent in one chunk
when -H 'Transfer-Encoding: chunked' is given).

Options:
  --config FILE               the configuration file (required)
  --route NAME                the route whose policy inspects (required)
  --client-ip ADDR            the downstream client's address (127.0.0.1)
  --json                      print the audit event as one JSON line instead

Exit status: 0 when the request would be forwarded (pass or detected),
1 when it would be blocked, 2 on a usage or configuration error.
`

// Exit statuses of rampart waf test.
const (
	wafExitForwarded = 0
	wafExitBlocked   = 1
	wafExitError     = 2
)

// defaultWAFTestID is the request id (the transaction id) when the request
// carries no X-Request-Id.
const defaultWAFTestID = "rampart-waf-test"

// cmdWAF dispatches the waf subcommands.
func cmdWAF(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		_, _ = io.WriteString(stdout, wafUsage)
		return 0
	}
	if len(args) > 0 {
		switch args[0] {
		case "test":
			return cmdWAFTest(args[1:], stdout, stderr)
		case "eval":
			return cmdWAFEval(args[1:], stdout, stderr)
		case "report":
			return cmdWAFReport(args[1:], stdout, stderr)
		}
	}
	_, _ = io.WriteString(stderr, wafUsage)
	return wafExitError
}

// wafTestArgs are the parsed arguments of rampart waf test.
type wafTestArgs struct {
	config, route string
	clientIP      netip.Addr
	json          bool
	method        string
	target        string   // URL or path; "" is /
	headers       []string // as given to -H
	data          []string // -d, --data-binary and --data-raw, joined with '&'
	help          bool
}

// parseWAFTestArgs parses curl-like arguments. Flags and the URL may come
// in any order; a value may follow its flag or be attached to it
// (-XPOST, --route=api).
func parseWAFTestArgs(args []string) (*wafTestArgs, error) {
	a := &wafTestArgs{clientIP: netip.AddrFrom4([4]byte{127, 0, 0, 1})}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		name, val, hasVal := arg, "", false
		switch {
		case strings.HasPrefix(arg, "--"):
			if k := strings.IndexByte(arg, '='); k > 0 {
				name, val, hasVal = arg[:k], arg[k+1:], true
			}
		case len(arg) > 2 && arg[0] == '-' && strings.ContainsRune("XHd", rune(arg[1])):
			name, val, hasVal = arg[:2], arg[2:], true
		}
		value := func() (string, error) {
			if hasVal {
				return val, nil
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("%s needs a value", name)
			}
			i++
			return args[i], nil
		}
		var err error
		switch name {
		case "-h", "--help":
			a.help = true
		case "--json":
			a.json = true
		case "--config", "-config":
			a.config, err = value()
		case "--route", "-route":
			a.route, err = value()
		case "--client-ip":
			var s string
			if s, err = value(); err == nil {
				if a.clientIP, err = netip.ParseAddr(s); err != nil {
					err = fmt.Errorf("--client-ip: %w", err)
				}
			}
		case "-X", "--request":
			a.method, err = value()
		case "-H", "--header":
			var h string
			if h, err = value(); err == nil {
				a.headers = append(a.headers, h)
			}
		case "-d", "--data", "--data-ascii":
			var d string
			if d, err = value(); err == nil {
				if d, err = readData(d, true); err == nil {
					a.data = append(a.data, d)
				}
			}
		case "--data-binary", "--data-raw":
			var d string
			if d, err = value(); err == nil {
				if name == "--data-binary" {
					d, err = readData(d, false)
				}
				if err == nil {
					a.data = append(a.data, d)
				}
			}
		default:
			if strings.HasPrefix(arg, "-") && arg != "-" {
				return nil, fmt.Errorf("unknown option %s", arg)
			}
			if a.target != "" {
				return nil, fmt.Errorf("one URL only: got %q and %q", a.target, arg)
			}
			a.target = arg
		}
		if err != nil {
			return nil, err
		}
	}
	return a, nil
}

// readData returns d, or the content of the file it names when it starts
// with @; -d drops the file's carriage returns and newlines as curl does.
func readData(d string, stripNewlines bool) (string, error) {
	if !strings.HasPrefix(d, "@") {
		return d, nil
	}
	b, err := os.ReadFile(d[1:])
	if err != nil {
		return "", err
	}
	if stripNewlines {
		b = bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r"), nil), []byte("\n"), nil)
	}
	return string(b), nil
}

func cmdWAFTest(args []string, stdout, stderr io.Writer) int {
	a, err := parseWAFTestArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "rampart waf test: %v\n\n%s", err, wafUsage)
		return wafExitError
	}
	if a.help {
		_, _ = io.WriteString(stdout, wafUsage)
		return 0
	}
	if a.config == "" || a.route == "" {
		fmt.Fprintf(stderr, "rampart waf test: --config FILE and --route NAME are required\n\n%s", wafUsage)
		return wafExitError
	}
	cfg, err := config.Load(a.config)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return wafExitError
	}
	route, err := findRoute(cfg, a.route)
	if err != nil {
		fmt.Fprintf(stderr, "rampart waf test: %v\n", err)
		return wafExitError
	}
	raw, err := buildRawRequest(a, route)
	if err != nil {
		fmt.Fprintf(stderr, "rampart waf test: %v\n", err)
		return wafExitError
	}
	res, err := inspectOnce(cfg, route, a.clientIP, raw)
	if err != nil {
		fmt.Fprintf(stderr, "rampart waf test: %v\n", err)
		return wafExitError
	}
	if a.json {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(res.event); err != nil {
			fmt.Fprintf(stderr, "rampart waf test: %v\n", err)
			return wafExitError
		}
	} else {
		res.print(stdout, raw)
	}
	if res.event.Action == waf.ActionBlocked.String() {
		return wafExitBlocked
	}
	return wafExitForwarded
}

// findRoute returns the route called name, with a WAF policy.
func findRoute(cfg *config.Config, name string) (*config.Route, error) {
	names := make([]string, 0, len(cfg.Routes))
	for _, r := range cfg.Routes {
		if r.Name == name {
			if r.WAF == "" {
				return nil, fmt.Errorf("route %q has no waf policy: nothing would inspect its requests", name)
			}
			return r, nil
		}
		names = append(names, r.Name)
	}
	sort.Strings(names)
	return nil, fmt.Errorf("no route %q in %s (routes: %s)", name, cfg.File, strings.Join(names, ", "))
}

// buildRawRequest writes the request as a client would send it, in
// HTTP/1.1 wire format.
func buildRawRequest(a *wafTestArgs, route *config.Route) ([]byte, error) {
	urlHost, target := splitTarget(a.target)
	body := strings.Join(a.data, "&")
	method := a.method
	if method == "" {
		method = fasthttp.MethodGet
		if len(a.data) > 0 {
			method = fasthttp.MethodPost
		}
	}
	if method == "" || strings.ContainsAny(method, " \t\r\n") {
		return nil, fmt.Errorf("-X %q: not a method", method)
	}
	host := urlHost
	if host == "" {
		host = route.Match.Host
		if host == "" && len(route.Match.Hosts) > 0 {
			host = route.Match.Hosts[0]
		}
		if host == "" || strings.Contains(host, "*") {
			host = "localhost"
		}
	}

	type field struct{ name, value string }
	fields := []field{{"Host", host}, {"User-Agent", "rampart-waf-test"}, {"Accept", "*/*"}}
	if len(a.data) > 0 {
		fields = append(fields, field{"Content-Type", "application/x-www-form-urlencoded"})
	}
	defaults := len(fields) // replaced in place, or removed, by -H
	find := func(name string) int {
		for i, f := range fields {
			if strings.EqualFold(f.name, name) {
				return i
			}
		}
		return -1
	}
	for _, h := range a.headers {
		var name, value string
		remove := false
		if k := strings.IndexByte(h, ':'); k > 0 {
			name, value = strings.TrimSpace(h[:k]), strings.TrimLeft(h[k+1:], " \t")
			remove = strings.TrimSpace(value) == ""
		} else if strings.HasSuffix(h, ";") && len(h) > 1 {
			name = strings.TrimSpace(h[:len(h)-1])
		} else {
			return nil, fmt.Errorf("-H %q: want 'Name: value'", h)
		}
		if name == "" || strings.ContainsAny(name, " \t\r\n") || strings.ContainsAny(value, "\r\n") {
			return nil, fmt.Errorf("-H %q: not a header", h)
		}
		if strings.EqualFold(name, fasthttp.HeaderContentLength) {
			continue // always the body's length
		}
		// A default header given again is replaced in place (as curl does).
		i := find(name)
		isDefault := i >= 0 && i < defaults
		switch {
		case remove && isDefault:
			fields[i].name = ""
		case remove:
			// 'Name:' without a default to remove: nothing to send.
		case isDefault:
			fields[i] = field{name, value}
		default:
			fields = append(fields, field{name, value})
		}
	}

	chunked := false
	for _, f := range fields {
		if strings.EqualFold(f.name, fasthttp.HeaderTransferEncoding) && strings.Contains(strings.ToLower(f.value), "chunked") {
			chunked = true
		}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\n", method, target)
	for _, f := range fields {
		if f.name != "" {
			fmt.Fprintf(&b, "%s: %s\r\n", f.name, f.value)
		}
	}
	switch {
	case chunked:
		b.WriteString("\r\n")
		if len(body) > 0 {
			fmt.Fprintf(&b, "%x\r\n%s\r\n", len(body), body)
		}
		b.WriteString("0\r\n\r\n")
	case len(a.data) > 0 || method == fasthttp.MethodPost || method == fasthttp.MethodPut || method == fasthttp.MethodPatch:
		fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	default:
		b.WriteString("\r\n")
	}
	return b.Bytes(), nil
}

// splitTarget splits a curl URL argument into its host (with port; "" for
// a path) and the request target, %-encoding what a request line cannot
// carry. The fragment is dropped, as clients do.
func splitTarget(s string) (host, target string) {
	if k := strings.IndexByte(s, '#'); k >= 0 {
		s = s[:k]
	}
	if s != "" && s[0] != '/' {
		if k := strings.Index(s, "://"); k >= 0 {
			s = s[k+3:]
		}
		end := strings.IndexAny(s, "/?")
		if end < 0 {
			end = len(s)
		}
		host, s = s[:end], s[end:]
		if k := strings.LastIndexByte(host, '@'); k >= 0 {
			host = host[k+1:] // user:password@ is not sent in the Host
		}
	}
	if s == "" || s[0] == '?' {
		s = "/" + s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return host, b.String()
}

// wafTestResult is what one inspection found.
type wafTestResult struct {
	policy string
	cfg    *config.WAFPolicy
	event  waf.Event
	off    bool // the policy's mode is off: nothing was inspected
}

// inspectOnce compiles the route's policy and inspects raw with it,
// capturing the audit event in memory.
func inspectOnce(cfg *config.Config, route *config.Route, clientIP netip.Addr, raw []byte) (*wafTestResult, error) {
	var req fasthttp.Request
	br := bufio.NewReaderSize(bytes.NewReader(raw), len(raw)+4096)
	if err := req.Read(br); err != nil {
		return nil, fmt.Errorf("the request cannot be parsed (the listener would refuse it before the WAF): %w", err)
	}
	id := string(req.Header.Peek("X-Request-Id"))
	if id == "" {
		id = defaultWAFTestID
	}

	var sink bytes.Buffer // written by the audit goroutine, read after Close
	audit := waf.NewAuditLog(&sink, 1)
	base := ""
	if cfg.File != "" {
		base = filepath.Dir(cfg.File)
	}
	pc := cfg.WAF[route.WAF]
	p, err := waf.Compile(route.WAF, pc, waf.Options{BaseDir: base, Audit: audit})
	if err != nil {
		_ = audit.Close()
		return nil, err
	}
	defer p.Close()

	res := &wafTestResult{policy: route.WAF, cfg: pc}
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, &net.TCPAddr{IP: clientIP.AsSlice(), Port: 50000}, nil)
	v := p.Inspect(&ctx, waf.Request{ID: []byte(id), ClientIP: clientIP, Route: route.Name})
	status, score := 0, 0
	if v == nil {
		res.off = true
	} else {
		status, score = v.Status, v.Score
		v.Close() // the logging phase; the event is sent
	}
	if err := audit.Close(); err != nil {
		return nil, err
	}
	if audit.Dropped() > 0 || audit.Failed() > 0 {
		return nil, errors.New("the audit event was lost")
	}
	res.event = waf.Event{
		RequestID: id, ClientIP: clientIP.String(), Route: route.Name, Policy: route.WAF,
		Method: string(req.Header.Method()), URI: string(req.Header.RequestURI()),
		Action: waf.ActionPass.String(), Status: status, AnomalyScore: score, Rules: []waf.RuleMatch{},
	}
	if line := bytes.TrimSpace(sink.Bytes()); len(line) > 0 {
		if err := json.Unmarshal(line, &res.event); err != nil {
			return nil, fmt.Errorf("audit event: %w", err)
		}
	}
	return res, nil
}

// print writes the verdict for a person.
func (r *wafTestResult) print(w io.Writer, raw []byte) {
	e := &r.event
	head, body, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	fmt.Fprintln(w, "request:")
	for _, line := range strings.Split(string(head), "\r\n") {
		fmt.Fprintf(w, "  %s\n", printable(line))
	}
	if len(body) > 0 {
		fmt.Fprintf(w, "  (body: %d bytes)\n", len(body))
	}
	mode := r.cfg.Mode
	if mode == "" {
		mode = config.DefaultWAFMode
	}
	fmt.Fprintf(w, "route:     %s (policy %q: mode %s, paranoia level %d, anomaly threshold %d)\n",
		e.Route, r.policy, mode, r.cfg.ParanoiaLevel, r.cfg.AnomalyThreshold)
	if r.off {
		fmt.Fprintln(w, "verdict:   pass: forwarded (the policy's mode is off: nothing is inspected)")
		return
	}
	switch e.Action {
	case waf.ActionBlocked.String():
		fmt.Fprintf(w, "verdict:   blocked: answered %d %s, not forwarded\n", e.Status, fasthttp.StatusMessage(e.Status))
	case waf.ActionDetected.String():
		why := fmt.Sprintf("the score is below the threshold %d", r.cfg.AnomalyThreshold)
		if mode == config.WAFModeDetect {
			why = "mode detect"
			if e.Status != 0 {
				why += fmt.Sprintf("; mode block would answer %d", e.Status)
			}
		}
		fmt.Fprintf(w, "verdict:   detected: forwarded (%s)\n", why)
	default:
		fmt.Fprintln(w, "verdict:   pass: forwarded (no rule matched)")
	}
	fmt.Fprintf(w, "score:     %d (inbound anomaly score)\n", e.AnomalyScore)
	fmt.Fprintf(w, "matched:   %d rule(s)\n", len(e.Rules))
	for _, m := range e.Rules {
		sev := m.Severity
		if sev == "" {
			sev = "-"
		}
		fmt.Fprintf(w, "  %d  %s  %s\n", m.ID, strings.ToUpper(sev), printable(m.Msg))
		if m.Target != "" && m.Target != "UNKNOWN" { // UNKNOWN: a rule on no variable (980170)
			fmt.Fprintf(w, "      target: %s\n", printable(m.Target))
		}
		if m.Data != "" {
			fmt.Fprintf(w, "      data:   %s\n", printable(m.Data))
		}
	}
}

// printable quotes s when it holds characters a terminal would interpret:
// matched data comes from the request, which is attacker input.
func printable(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) && r != ' ' {
			q := strconv.QuoteToGraphic(s)
			return q[1 : len(q)-1]
		}
	}
	return s
}
