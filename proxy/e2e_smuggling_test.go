package proxy

// The differential request smuggling test: hostile requests go through a
// running proxy to an upstream that records the raw bytes of every
// connection, and a strict parser checks that the upstream received nothing
// or exactly one well-formed request whose framing cannot be read two ways.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/internal/testnet"
)

// recordingUpstream is an HTTP/1.1 server on a plain listener that keeps the
// raw bytes of each connection. It answers the first request it can read on
// a connection (net/http's parser) with 200 "ok" and Connection: close, then
// keeps reading until the proxy closes, so that bytes sent after the first
// request are recorded too.
type recordingUpstream struct {
	ln net.Listener

	mu    sync.Mutex // guards the fields below
	conns []*recordedConn
	last  time.Time // the last accept or close
}

type recordedConn struct {
	mu   sync.Mutex // guards raw and done
	raw  bytes.Buffer
	done bool
}

func (rc *recordedConn) Write(p []byte) (int, error) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.raw.Write(p)
}

// upstreamOK is what the recording upstream answers.
// upstreamAnswered marks it, so that a client can count the answers that
// came from the upstream.
const (
	upstreamOK       = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" + upstreamAnswered + "\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
	upstreamAnswered = "X-Recorded-Upstream: answered"
)

func startRecordingUpstream(tb testing.TB) *recordingUpstream {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	u := &recordingUpstream{ln: ln, last: time.Now()}
	testnet.Serve(tb, ln, func(c net.Conn) {
		rc := &recordedConn{}
		u.mu.Lock()
		u.conns = append(u.conns, rc)
		u.last = time.Now()
		u.mu.Unlock()
		u.serve(c, rc)
	})
	return u
}

func (u *recordingUpstream) addr() string { return u.ln.Addr().String() }

func (u *recordingUpstream) serve(c net.Conn, rc *recordedConn) {
	defer func() {
		_ = c.Close()
		rc.mu.Lock()
		rc.done = true
		rc.mu.Unlock()
		u.mu.Lock()
		u.last = time.Now()
		u.mu.Unlock()
	}()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(io.TeeReader(c, rc))
	if req, err := http.ReadRequest(br); err == nil {
		_, _ = io.Copy(io.Discard, req.Body)
		_, _ = io.WriteString(c, upstreamOK)
	} else {
		_, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	}
	// Whatever follows is recorded: the proxy closes after our answer.
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, _ = io.Copy(io.Discard, br)
}

// mark returns how many connections the upstream has accepted, for settle.
func (u *recordingUpstream) mark() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.conns)
}

// settle waits until every connection the upstream accepted since mark
// from has ended and nothing happened for quiet, and returns the raw bytes
// of each.
func (u *recordingUpstream) settle(tb testing.TB, from int, quiet time.Duration) [][]byte {
	tb.Helper()
	var raws [][]byte
	ok := waitFor(e2eTimeout, func() bool {
		u.mu.Lock()
		defer u.mu.Unlock()
		if time.Since(u.last) < quiet {
			return false
		}
		raws = raws[:0]
		for _, rc := range u.conns[from:] {
			rc.mu.Lock()
			done, raw := rc.done, bytes.Clone(rc.raw.Bytes())
			rc.mu.Unlock()
			if !done {
				return false
			}
			raws = append(raws, raw)
		}
		return true
	})
	if !ok {
		tb.Fatalf("the upstream's connections did not end within %v", e2eTimeout)
	}
	return raws
}

// forwarded is one request as the upstream received it, read strictly.
type forwarded struct {
	req  *http.Request
	body []byte
	raw  []byte
}

// strictRequests reads what the upstream received on each connection: every
// connection must hold nothing or exactly one request that passes
// checkStrictRequest, and no byte may follow it.
func strictRequests(raws [][]byte) ([]forwarded, error) {
	var out []forwarded
	for i, raw := range raws {
		if len(raw) == 0 {
			continue
		}
		f, rest, err := strictRequest(raw)
		if err != nil {
			return out, fmt.Errorf("upstream connection %d: %w in %q", i, err, raw)
		}
		if len(rest) > 0 {
			return out, fmt.Errorf("upstream connection %d: %d bytes after the request (a second request?): %q", i, len(rest), rest)
		}
		out = append(out, f)
	}
	return out, nil
}

// strictRequest reads one request from raw with net/http and with the
// stricter checks of checkStrictHeader and readStrictChunked, which must
// agree on where it ends. It returns the bytes after it.
func strictRequest(raw []byte) (forwarded, []byte, error) {
	end := bytes.Index(raw, []byte("\r\n\r\n"))
	if end < 0 {
		return forwarded{}, nil, errors.New("no CRLF CRLF ending a header (an incomplete request)")
	}
	head := raw[:end+2]
	framing, err := checkStrictHeader(head)
	if err != nil {
		return forwarded{}, nil, err
	}
	// The framing by the strict checks.
	bodyStart := end + 4
	var ourBody []byte
	var ourEnd int
	switch {
	case framing.chunked:
		ourBody, ourEnd, err = readStrictChunked(raw[bodyStart:])
		if err != nil {
			return forwarded{}, nil, err
		}
		ourEnd += bodyStart
	default:
		if bodyStart+framing.length > len(raw) {
			return forwarded{}, nil, fmt.Errorf("Content-Length %d but %d body bytes (an incomplete request)", framing.length, len(raw)-bodyStart)
		}
		ourBody = raw[bodyStart : bodyStart+framing.length]
		ourEnd = bodyStart + framing.length
	}
	// The framing by net/http.
	r := bytes.NewReader(raw)
	br := bufio.NewReader(r)
	req, err := http.ReadRequest(br)
	if err != nil {
		return forwarded{}, nil, fmt.Errorf("net/http cannot read it: %w", err)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return forwarded{}, nil, fmt.Errorf("net/http cannot read its body: %w", err)
	}
	theirEnd := len(raw) - r.Len() - br.Buffered()
	if theirEnd != ourEnd || !bytes.Equal(body, ourBody) {
		return forwarded{}, nil, fmt.Errorf("framing read two ways: net/http ends it at %d with a %d-byte body, the strict reader at %d with %d bytes",
			theirEnd, len(body), ourEnd, len(ourBody))
	}
	return forwarded{req: req, body: body, raw: raw[:ourEnd]}, raw[ourEnd:], nil
}

// framing is how a strictly checked header frames its body.
type framing struct {
	chunked bool
	length  int
}

// checkStrictHeader checks a request line and header fields (each line
// ended by CRLF) as RFC 9112 and RFC 9110 would have a sender write them:
// CRLF line ends only, no obs-fold, token names right before the colon, no
// control characters in values, an origin-form or absolute-form target, one
// Host, and framing by exactly one of Content-Length (digits) and
// Transfer-Encoding: chunked.
func checkStrictHeader(head []byte) (framing, error) {
	if i := bytes.IndexByte(head, 0); i >= 0 {
		return framing{}, fmt.Errorf("NUL at %d", i)
	}
	for i, c := range head {
		if c == '\n' && (i == 0 || head[i-1] != '\r') {
			return framing{}, fmt.Errorf("bare LF at %d", i)
		}
		if c == '\r' && (i+1 >= len(head) || head[i+1] != '\n') {
			return framing{}, fmt.Errorf("bare CR at %d", i)
		}
	}
	lines := strings.Split(strings.TrimSuffix(string(head), "\r\n"), "\r\n")
	method, rest, ok1 := strings.Cut(lines[0], " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || !isToken(method) || proto != "HTTP/1.1" {
		return framing{}, fmt.Errorf("request line %q", lines[0])
	}
	var authority string
	switch {
	case strings.HasPrefix(target, "/"):
	case strings.HasPrefix(target, "http://"), strings.HasPrefix(target, "https://"):
		_, after, _ := strings.Cut(target, "://")
		authority, _, _ = strings.Cut(after, "/")
		authority, _, _ = strings.Cut(authority, "?")
	default:
		return framing{}, fmt.Errorf("request target %q is neither origin-form nor absolute-form", target)
	}
	for _, c := range []byte(target) {
		if c <= ' ' || c == 0x7f || c == '#' {
			return framing{}, fmt.Errorf("request target %q holds %q", target, c)
		}
	}
	var f framing
	var hosts, lengths, encodings []string
	for _, line := range lines[1:] {
		if line == "" || line[0] == ' ' || line[0] == '\t' {
			return framing{}, fmt.Errorf("obs-fold or empty line %q", line)
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || !isToken(name) {
			return framing{}, fmt.Errorf("field line %q: the name is not a token right before a colon", line)
		}
		for _, c := range []byte(value) {
			if (c < ' ' && c != '\t') || c == 0x7f {
				return framing{}, fmt.Errorf("field %q: control character %q in the value", name, c)
			}
		}
		value = strings.Trim(value, " \t")
		switch strings.ToLower(name) {
		case "host":
			hosts = append(hosts, value)
		case "content-length":
			lengths = append(lengths, value)
		case "transfer-encoding":
			encodings = append(encodings, value)
		}
	}
	if len(hosts) != 1 {
		return framing{}, fmt.Errorf("%d Host fields; want 1", len(hosts))
	}
	if strings.ContainsAny(hosts[0], " ,@/\\") {
		return framing{}, fmt.Errorf("Host %q", hosts[0])
	}
	if authority != "" && !strings.EqualFold(authority, hosts[0]) {
		return framing{}, fmt.Errorf("absolute-form target %q and Host %q disagree", target, hosts[0])
	}
	switch {
	case len(lengths) > 0 && len(encodings) > 0:
		return framing{}, fmt.Errorf("both Content-Length %q and Transfer-Encoding %q", lengths, encodings)
	case len(lengths) > 1:
		return framing{}, fmt.Errorf("%d Content-Length fields", len(lengths))
	case len(encodings) > 1:
		return framing{}, fmt.Errorf("%d Transfer-Encoding fields", len(encodings))
	case len(encodings) == 1:
		if !strings.EqualFold(encodings[0], "chunked") {
			return framing{}, fmt.Errorf("Transfer-Encoding %q; want chunked alone", encodings[0])
		}
		f.chunked = true
	case len(lengths) == 1:
		n, err := strconv.Atoi(lengths[0])
		if err != nil || n < 0 || strings.TrimLeft(lengths[0], "0123456789") != "" {
			return framing{}, fmt.Errorf("Content-Length %q", lengths[0])
		}
		f.length = n
	}
	return f, nil
}

// readStrictChunked reads a chunked body: hexadecimal sizes without sign or
// prefix, extensions free of CR and LF, CRLF after each line and each
// chunk's data, and a trailer section of well-formed fields. It returns the
// decoded body and the length of the encoded one.
func readStrictChunked(b []byte) ([]byte, int, error) {
	var body []byte
	pos := 0
	line := func() (string, error) {
		i := bytes.Index(b[pos:], []byte("\r\n"))
		if i < 0 {
			return "", errors.New("chunked body: a line without CRLF (an incomplete request)")
		}
		l := string(b[pos : pos+i])
		if strings.ContainsAny(l, "\r\n\x00") {
			return "", fmt.Errorf("chunked body: bare CR, LF or NUL in line %q", l)
		}
		pos += i + 2
		return l, nil
	}
	for {
		l, err := line()
		if err != nil {
			return nil, 0, err
		}
		size, _, _ := strings.Cut(l, ";")
		if size == "" || len(size) > 15 || strings.Trim(size, "0123456789abcdefABCDEF") != "" {
			return nil, 0, fmt.Errorf("chunked body: chunk size %q", size)
		}
		n, _ := strconv.ParseInt(size, 16, 64)
		if n == 0 {
			break
		}
		if pos+int(n)+2 > len(b) {
			return nil, 0, errors.New("chunked body: a chunk cut short (an incomplete request)")
		}
		body = append(body, b[pos:pos+int(n)]...)
		pos += int(n)
		if !bytes.HasPrefix(b[pos:], []byte("\r\n")) {
			return nil, 0, fmt.Errorf("chunked body: no CRLF after a chunk's data at %d", pos)
		}
		pos += 2
	}
	for { // trailer section
		l, err := line()
		if err != nil {
			return nil, 0, err
		}
		if l == "" {
			return body, pos, nil
		}
		if name, _, ok := strings.Cut(l, ":"); !ok || !isToken(name) {
			return nil, 0, fmt.Errorf("chunked body: trailer line %q", l)
		}
	}
}

// isToken reports an RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// downstreamResult is what the client read back: the interim and final
// responses in order, and whether the last final response said
// Connection: close.
type downstreamResult struct {
	interim []int
	final   []*http.Response
	bodies  [][]byte
	raw     []byte
	err     error // a response that could not be parsed
}

// sendHostile writes raw on a fresh connection to addr, closes the writing
// side (nothing more will come) and reads every response until the proxy
// closes.
func sendHostile(tb testing.TB, addr string, raw []byte) downstreamResult {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr, e2eTimeout)
	if err != nil {
		tb.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(e2eTimeout))
	if _, err := c.Write(raw); err != nil {
		tb.Fatalf("write: %v", err)
	}
	_ = c.(*net.TCPConn).CloseWrite()
	all, err := io.ReadAll(c)
	if err != nil && !isConnReset(err) {
		tb.Fatalf("read the answer: %v (got %q)", err, all)
	}
	return parseResponses(all)
}

// parseResponses reads the responses in raw.
func parseResponses(raw []byte) downstreamResult {
	res := downstreamResult{raw: raw}
	br := bufio.NewReader(bytes.NewReader(raw))
	for {
		if _, err := br.Peek(1); err != nil {
			return res
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			res.err = err
			return res
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			res.err = err
			return res
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 {
			res.interim = append(res.interim, resp.StatusCode)
			continue
		}
		res.final = append(res.final, resp)
		res.bodies = append(res.bodies, body)
	}
}

// smugglingConfig routes a.example and anything without a more specific
// route to the upstream, and answers b.example itself with 418, so that a
// request routed by the wrong host shows.
func smugglingConfig(upstream string) string {
	return fmt.Sprintf(`
listeners:
  web:
    address: 127.0.0.1:0
upstreams:
  app:
    targets: [{url: "http://%s"}]
    retries: 0
routes:
  - name: a
    match: {host: a.example}
    upstream: app
  - name: b
    match: {host: b.example}
    respond: {status: 418, body: "b"}
  - name: all
    upstream: app
access_log: {path: "off"}
`, upstream)
}

// smugglingCase is one hostile request. want lists the acceptable final
// statuses; 200 means the upstream's answer, which requires exactly one
// well-formed request at the upstream, and check (when set) checks it.
// Every other status requires that nothing reached the upstream.
type smugglingCase struct {
	name  string
	raw   string
	want  []int
	check func(f forwarded) error
	// close requires Connection: close on an answer from the upstream
	// (RFC 9112 section 6.3 for Content-Length with Transfer-Encoding).
	close bool
}

// teCLSmuggled is a request hidden in the chunk of teCL: an upstream that
// framed teCL by its Content-Length would read it as a second request.
const teCLSmuggled = "GPOST / HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\n\r\nx=1"

var teCL = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n" +
	strconv.FormatInt(int64(len(teCLSmuggled)), 16) + "\r\n" + teCLSmuggled + "\r\n0\r\n\r\n"

// smugglingCases are the named attacks, also the seed corpus of
// FuzzProxyRequest. Hosts are "x" (the catch-all route) unless the case is
// about the host.
var smugglingCases = []smugglingCase{
	// Content-Length and Transfer-Encoding together: RFC 9112 section 6.3
	// allows refusing, or forwarding by Transfer-Encoding alone (the
	// Content-Length removed) and closing the connection after.
	{name: "CL.TE", raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
		want: []int{400, 200}, close: true, check: wantBody("")},
	{name: "TE.CL", raw: teCL,
		want: []int{400, 200}, close: true, check: wantBody(teCLSmuggled)},
	{name: "CL.TE with TE first and a smuggled GET", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 35\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
		want: []int{400, 200}, close: true, check: wantBody("")},

	// Several Content-Lengths (RFC 9112 section 6.3 item 5: 400).
	{name: "two differing Content-Length fields", raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc",
		want: []int{400}},
	{name: "Content-Length list with differing values", raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 30\r\n\r\nabc",
		want: []int{400}},
	{name: "two equal Content-Length fields", raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
		want: []int{400, 200}, check: wantBody("abc")},
	{name: "Content-Length with a sign", raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc",
		want: []int{400}},
	{name: "Content-Length negative", raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\nabc",
		want: []int{400}},
	{name: "Content-Length in hex", raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x3\r\n\r\nabc",
		want: []int{400}},
	{name: "Content-Length with trailing garbage", raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3x\r\n\r\nabc",
		want: []int{400}},
	{name: "Content-Length overflowing 64 bits", raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551619\r\n\r\nabc",
		want: []int{400, 413}},

	// Transfer-Encoding other than a final chunked (RFC 9112 section 6.3
	// item 4: 400; section 6.1: 501 for a coding the server does not know).
	{name: "TE gzip", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc",
		want: []int{400, 501}},
	{name: "TE identity", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
		want: []int{400, 501}},
	{name: "TE chunked then identity", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
		want: []int{400, 501}},
	{name: "TE chunked, chunked", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		want: []int{400, 501}},
	{name: "TE gzip, chunked", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		want: []int{400, 501}},
	{name: "two TE fields chunked and identity", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
		want: []int{400, 501}},
	// RFC 9112 section 5.2: refuse, or unfold and then interpret (here
	// as Content-Length and Transfer-Encoding together).
	{name: "TE obs-folded", raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
		want: []int{400, 200}, close: true, check: wantBody("")},
	{name: "TE with trailing garbage", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked garbage\r\n\r\n0\r\n\r\n",
		want: []int{400, 501}},
	{name: "TE xchunked", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
		want: []int{400, 501}},
	{name: "TE with a NUL after chunked", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\x00\r\n\r\n0\r\n\r\n",
		want: []int{400}},
	{name: "TE with a vertical tab", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n",
		want: []int{400, 501}},
	{name: "TE name with a space before the colon", raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
		want: []int{400}},
	{name: "TE chunked in capitals", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: CHUNKED\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		want: []int{200}, check: wantBody("abc")},

	// Malformed chunks.
	{name: "chunk size negative", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n",
		want: []int{400}},
	{name: "chunk size overflowing 64 bits", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000003\r\nabc\r\n0\r\n\r\n",
		want: []int{400, 413}},
	{name: "chunk size 0x prefix", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n",
		want: []int{400}},
	{name: "chunk extension with a bare LF", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;ext\nabc\r\n0\r\n\r\n",
		want: []int{400}},
	{name: "chunk size line ended by a bare LF", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
		want: []int{400}},
	{name: "chunk data without CRLF after it", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n",
		want: []int{400}},
	{name: "chunk data longer than its size", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n",
		want: []int{400}},
	{name: "chunked body without the last chunk", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
		want: []int{400}},
	{name: "chunk extension well-formed", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;name=value\r\nabc\r\n0\r\n\r\n",
		want: []int{200}, check: wantBody("abc")},
	{name: "chunked with a trailer", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n",
		want: []int{200}, check: wantBody("abc")},
	{name: "chunked trailer smuggling a Content-Length", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nContent-Length: 50\r\n\r\n",
		want: []int{400, 200}, check: wantBody("abc")},

	// Line ends and header syntax.
	{name: "bare LF line ends", raw: "GET / HTTP/1.1\nHost: x\nX-A: 1\n\n",
		want: []int{400, 200}},
	{name: "bare LF line ends hiding a Content-Length", raw: "POST / HTTP/1.1\r\nHost: x\r\nX-A: 1\nContent-Length: 3\r\n\r\nabc",
		want: []int{400, 200}, check: wantBody("abc")},
	{name: "bare CR in a header value", raw: "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\rContent-Length: 3\r\n\r\nabc",
		want: []int{400}},
	{name: "NUL in a header value", raw: "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
		want: []int{400}},
	{name: "LF in a header value", raw: "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\nb\r\n\r\n",
		want: []int{400}},
	{name: "obs-folded header", raw: "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
		want: []int{400, 200}},
	{name: "obs-fold as the first field line", raw: "GET / HTTP/1.1\r\n X-A: a\r\nHost: x\r\n\r\n",
		want: []int{400}},
	{name: "space before the colon", raw: "GET / HTTP/1.1\r\nHost: x\r\nX-A : a\r\n\r\n",
		want: []int{400}},
	{name: "tab before the colon", raw: "GET / HTTP/1.1\r\nHost: x\r\nX-A\t: a\r\n\r\n",
		want: []int{400}},
	{name: "Content-Length with a space before the colon", raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 3\r\n\r\nabc",
		want: []int{400}},
	{name: "header name with a space inside", raw: "GET / HTTP/1.1\r\nHost: x\r\nX A: a\r\n\r\n",
		want: []int{400}},
	{name: "header name with a non-token character", raw: "GET / HTTP/1.1\r\nHost: x\r\nX@A: a\r\n\r\n",
		want: []int{400}},
	{name: "header line without a colon", raw: "GET / HTTP/1.1\r\nHost: x\r\nX-A\r\n\r\n",
		want: []int{400}},
	{name: "empty header name", raw: "GET / HTTP/1.1\r\nHost: x\r\n: a\r\n\r\n",
		want: []int{400}},

	// Request targets and the request line.
	{name: "target with a space", raw: "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
		want: []int{400}},
	{name: "target without a leading slash", raw: "GET a HTTP/1.1\r\nHost: x\r\n\r\n",
		want: []int{400}},
	{name: "target with a fragment", raw: "GET /a#frag HTTP/1.1\r\nHost: x\r\n\r\n",
		want: []int{400}},
	{name: "target with a NUL", raw: "GET /a\x00b HTTP/1.1\r\nHost: x\r\n\r\n",
		want: []int{400}},
	{name: "target with a tab", raw: "GET /a\tb HTTP/1.1\r\nHost: x\r\n\r\n",
		want: []int{400}},
	{name: "path with a % not followed by two hex digits", raw: "GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n",
		want: []int{400}},
	{name: "path ending in a lone %", raw: "GET /!0% HTTP/1.0\r\nHost: x\r\n\r\n",
		want: []int{400}},
	{name: "path ending in % and one digit", raw: "GET /a%4 HTTP/1.1\r\nHost: x\r\n\r\n",
		want: []int{400}},
	{name: "path with valid escapes", raw: "GET /a%20b%2F%c3%A9 HTTP/1.1\r\nHost: x\r\n\r\n",
		want: []int{200}},
	{name: "query with a bad escape, forwarded as sent", raw: "GET /a?q=%zz&r=% HTTP/1.1\r\nHost: x\r\n\r\n",
		want: []int{200}},
	{name: "asterisk-form on GET", raw: "GET * HTTP/1.1\r\nHost: x\r\n\r\n",
		want: []int{400}},
	{name: "two spaces in the request line", raw: "GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
		want: []int{400}},
	{name: "unknown HTTP version", raw: "GET / HTTP/1.2\r\nHost: x\r\n\r\n",
		want: []int{400, 505}},
	{name: "HTTP/2 version on HTTP/1 framing", raw: "GET / HTTP/2.0\r\nHost: x\r\n\r\n",
		want: []int{400, 505}},
	{name: "lowercase protocol name", raw: "GET / http/1.1\r\nHost: x\r\n\r\n",
		want: []int{400, 505}},

	// Host.
	{name: "two Host fields", raw: "GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
		want: []int{400}},
	// HTTP/1.0 needs no Host; the proxy must make one for the upstream
	// (or refuse), not fail as if the target had.
	{name: "no Host on HTTP/1.0", raw: "GET / HTTP/1.0\r\n\r\n",
		want: []int{200, 400}},
	{name: "no Host on HTTP/1.1", raw: "GET / HTTP/1.1\r\nX-A: a\r\n\r\n",
		want: []int{400}},
	{name: "Host with a space", raw: "GET / HTTP/1.1\r\nHost: a.example b.example\r\n\r\n",
		want: []int{400}},
	{name: "Host with a comma", raw: "GET / HTTP/1.1\r\nHost: a.example,b.example\r\n\r\n",
		want: []int{400}},
	{name: "Host with userinfo", raw: "GET / HTTP/1.1\r\nHost: b.example@a.example\r\n\r\n",
		want: []int{400}},
	{name: "Host with a path", raw: "GET / HTTP/1.1\r\nHost: a.example/x\r\n\r\n",
		want: []int{400}},
	// RFC 9112 section 3.2.2: the target's authority wins and the Host
	// sent on is made from it.
	{name: "absolute-form with a different Host", raw: "GET http://a.example/p HTTP/1.1\r\nHost: b.example\r\n\r\n",
		want: []int{200, 400}, check: wantHost("a.example")},

	// Expect.
	{name: "Expect 100-continue with the body sent at once", raw: "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
		want: []int{200}, check: wantBody("abc")},
	{name: "Expect 100-continue with a request as the body", raw: "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 35\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
		want: []int{200}, check: wantBody("GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")},
	{name: "Expect 100-continue refused by the route, body a request", raw: "POST / HTTP/1.1\r\nHost: b.example\r\nExpect: 100-continue\r\nContent-Length: 35\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
		want: []int{418}},
	{name: "Expect 100-continue on a GET without a body", raw: "GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
		want: []int{200}},
	{name: "Expect 100-continue on HTTP/1.0", raw: "POST / HTTP/1.0\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
		want: []int{200}, check: wantBody("abc")},
	{name: "Expect with an unknown expectation", raw: "POST / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 3\r\n\r\nabc",
		want: []int{417, 200}, check: wantBody("abc")},

	// HTTP/1.0 with Transfer-Encoding (RFC 9112 section 6.1: faulty framing).
	{name: "HTTP/1.0 with TE chunked", raw: "POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		want: []int{400}},
	{name: "HTTP/1.0 with TE chunked and Content-Length", raw: "POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
		want: []int{400}},

	// Baselines: well-formed requests reach the upstream once.
	{name: "baseline GET", raw: "GET /ok?q=1 HTTP/1.1\r\nHost: x\r\n\r\n",
		want: []int{200}},
	// RFC 9110 section 6.2: an intermediary sends its own HTTP-version.
	{name: "baseline GET on HTTP/1.0", raw: "GET / HTTP/1.0\r\nHost: x\r\n\r\n",
		want: []int{200}},
	{name: "baseline POST with Content-Length", raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
		want: []int{200}, check: all(wantBody("abc"), wantAbsent("Content-Type"))},
	{name: "baseline POST chunked", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		want: []int{200}, check: wantBody("abc")},
}

func wantBody(want string) func(forwarded) error {
	return func(f forwarded) error {
		if string(f.body) != want {
			return fmt.Errorf("body at the upstream: got %q; want %q", f.body, want)
		}
		return nil
	}
}

// wantAbsent checks that the proxy added no field name the client did not
// send.
func wantAbsent(name string) func(forwarded) error {
	return func(f forwarded) error {
		if v, ok := f.req.Header[http.CanonicalHeaderKey(name)]; ok {
			return fmt.Errorf("%s at the upstream: got %q; want none (the client sent none)", name, v)
		}
		return nil
	}
}

func all(checks ...func(forwarded) error) func(forwarded) error {
	return func(f forwarded) error {
		for _, c := range checks {
			if err := c(f); err != nil {
				return err
			}
		}
		return nil
	}
}

func wantHost(want string) func(forwarded) error {
	return func(f forwarded) error {
		if f.req.Host != want {
			return fmt.Errorf("Host at the upstream: got %q; want %q", f.req.Host, want)
		}
		return nil
	}
}

// TestE2ERequestSmuggling sends each hostile request through a proxy to a
// recording upstream: the client must get one of the statuses the RFCs
// allow, and the upstream nothing (when the proxy answered itself) or
// exactly one well-formed request (when the upstream answered).
func TestE2ERequestSmuggling(t *testing.T) {
	for _, tc := range smugglingCases {
		t.Run(tc.name, func(t *testing.T) {
			up := startRecordingUpstream(t)
			p := startProxy(t, smugglingConfig(up.addr()))
			res := sendHostile(t, p.addr, []byte(tc.raw))
			raws := up.settle(t, 0, 50*time.Millisecond)
			reqs, strictErr := strictRequests(raws)

			if res.err != nil {
				t.Errorf("the answer cannot be parsed: %v in %q", res.err, res.raw)
			}
			if len(res.final) == 0 {
				t.Fatalf("got no answer (%q); want one of %v", res.raw, tc.want)
			}
			got := res.final[0].StatusCode
			if !containsInt(tc.want, got) {
				t.Errorf("status: got %d; want one of %v (body %q)", got, tc.want, res.bodies[0])
			}
			if len(res.final) > 1 {
				var sts []int
				for _, r := range res.final {
					sts = append(sts, r.StatusCode)
				}
				t.Errorf("got %d answers %v to one request: the proxy read it as several", len(res.final), sts)
			}
			if got == 400 && !res.final[0].Close {
				t.Errorf("400 without Connection: close; RFC 9112 wants the connection closed")
			}
			if tc.close && got == 200 && !res.final[0].Close {
				t.Errorf("answer without Connection: close; RFC 9112 section 6.3 wants the connection closed after it")
			}
			if strings.HasPrefix(tc.raw, "POST / HTTP/1.0") && containsInt(res.interim, 100) {
				t.Errorf("100 Continue sent to an HTTP/1.0 client (RFC 9110 section 10.1.1: ignore the expectation)")
			}
			if strictErr != nil {
				t.Errorf("the upstream received a request that is not well-formed: %v", strictErr)
			}
			total := 0
			for _, raw := range raws {
				if len(raw) > 0 {
					total++
				}
			}
			fromUpstream := got == 200 && len(res.bodies) > 0 && string(res.bodies[0]) == "ok"
			switch {
			case fromUpstream && total != 1:
				t.Errorf("upstream connections carrying bytes: got %d; want 1", total)
			case !fromUpstream && total != 0:
				t.Errorf("the proxy answered %d itself, yet %d upstream connections carried bytes: %q", got, total, raws)
			}
			if fromUpstream && len(reqs) == 1 && tc.check != nil {
				if err := tc.check(reqs[0]); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestStrictRequestParser checks the strict reader of the smuggling test on
// requests it must accept and refuse, so that a pass above means something.
func TestStrictRequestParser(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		ok   bool
	}{
		{"GET", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", true},
		{"chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", true},
		{"absolute-form", "GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n", true},
		{"CL and TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false},
		{"two CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n", false},
		{"bare LF", "GET / HTTP/1.1\nHost: x\n\n", false},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n c\r\n\r\n", false},
		{"space before colon", "GET / HTTP/1.1\r\nHost: x\r\nA : b\r\n\r\n", false},
		{"leftover second request", "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"truncated body", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab", false},
		{"chunk size 0x", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n", false},
		{"chunk ext bare LF", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;a\nabc\r\n0\r\n\r\n", false},
		{"two Host", "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", false},
		{"absolute-form disagreeing with Host", "GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n", false},
		{"fragment", "GET /#a HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"TE gzip", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := strictRequests([][]byte{[]byte(tt.raw)})
			if (err == nil) != tt.ok {
				t.Errorf("strictRequests: got error %v; want ok=%v", err, tt.ok)
			}
		})
	}
}
