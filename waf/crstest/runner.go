package crstest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// MarkerRuleID is the id of the rule that logs marker requests.
const MarkerRuleID = 999999

// PolicyRules is the SecLang to put in the tested policy's rules (which
// load after the CRS). It reproduces the CRS's regression test setup (rule
// 900005 of the CRS tests' README): the argument limits the tests assume
// are appended to the CRS initialization rule 901200, so that they hold
// before any CRS rule runs; the response types the tests use; and the
// marker rule. The policy itself must be in detect mode at paranoia level
// 4 with inspect_response true.
const PolicyRules = `SecRuleUpdateActionById 901200 "setvar:tx.crs_validate_utf8_encoding=1,setvar:tx.arg_name_length=100,setvar:tx.arg_length=400,setvar:tx.total_arg_length=64000,setvar:tx.max_num_args=255,setvar:tx.max_file_size=64100,setvar:tx.combined_file_sizes=65535"
SecResponseBodyMimeType text/plain text/html text/xml application/json
SecRule REQUEST_HEADERS:X-CRS-Test "@rx ^.*$" "id:999999,phase:1,pass,t:none,log,msg:'X-CRS-Test %{MATCHED_VAR}',ctl:ruleRemoveById=1-999998"
`

// Event is the part of an audit event the runner reads.
type Event struct {
	RequestID string `json:"request_id"`
	Rules     []struct {
		ID     int    `json:"id"`
		Msg    string `json:"msg"`
		Target string `json:"target"`
		Data   string `json:"data"`
	} `json:"rules"`
}

// Tail reads a JSON-lines audit log as it grows.
type Tail struct {
	r   *bufio.Reader
	buf []byte // a partial last line
}

// NewTail reads r (a file opened for reading) from its current offset.
func NewTail(r io.Reader) *Tail { return &Tail{r: bufio.NewReaderSize(r, 1<<20)} }

// OpenTail opens the audit log at path and skips what it holds already.
func OpenTail(path string) (*Tail, *os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return nil, nil, err
	}
	return NewTail(f), f, nil
}

// next returns the next complete event, or nil when none is there yet.
func (t *Tail) next() (*Event, error) {
	for {
		line, err := t.r.ReadBytes('\n')
		t.buf = append(t.buf, line...)
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		l := bytes.TrimSpace(t.buf)
		t.buf = t.buf[:0]
		if len(l) == 0 {
			continue
		}
		var e Event
		if err := json.Unmarshal(l, &e); err != nil {
			return nil, fmt.Errorf("crstest: audit line %.80q: %w", l, err)
		}
		return &e, nil
	}
}

// Runner sends tests to Addr and reads fired rules from Audit.
type Runner struct {
	// Addr is the endpoint's host:port.
	Addr string
	// Audit is the endpoint's audit log.
	Audit *Tail
	// Timeout bounds each request and the wait for its marker. Default 5s.
	Timeout time.Duration
}

// Result is the outcome of one test.
type Result struct {
	Name   string
	Pass   bool
	Reason string // why it failed
	Fired  []int  // rule ids that fired, in order
	Log    string // the fired rules as log lines (see logLine)
}

// logLine writes what a ModSecurity error log line says of a rule, for the
// tests' match_regex and no_match_regex.
func logLine(b *strings.Builder, id int, msg, target, data string) {
	fmt.Fprintf(b, "[id \"%d\"] [msg \"%s\"] [data \"%s\"] [target \"%s\"]\n", id, escape(msg), escape(data), escape(target))
}

// escape writes control bytes as \xHH, as ModSecurity's log does.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			fmt.Fprintf(&b, "\\x%02x", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Run runs every stage of t and checks its expectations.
func (r *Runner) Run(t *Test) Result {
	res := Result{Name: t.Name, Pass: true}
	for i := range t.Stages {
		st := &t.Stages[i]
		fired, log, status, sendErr, err := r.stage(&st.Input)
		res.Fired = append(res.Fired, fired...)
		res.Log += log
		if err != nil {
			return Result{Name: t.Name, Reason: err.Error(), Fired: res.Fired, Log: res.Log}
		}
		if reason := check(&st.Output, fired, log, status, sendErr); reason != "" {
			return Result{Name: t.Name, Reason: fmt.Sprintf("stage %d: %s", i+1, reason), Fired: res.Fired, Log: res.Log}
		}
	}
	return res
}

// check returns why the outcome fails out, or "".
func check(out *Output, fired []int, log string, status int, sendErr error) string {
	var why []string
	if out.ExpectError {
		if sendErr == nil {
			why = append(why, fmt.Sprintf("got status %d; want an error", status))
		}
	} else if sendErr != nil && len(out.Status) > 0 {
		why = append(why, "request failed: "+sendErr.Error())
	}
	if len(out.Status) > 0 && sendErr == nil && !slices.Contains(out.Status, status) {
		why = append(why, fmt.Sprintf("got status %d; want %v", status, []int(out.Status)))
	}
	for _, id := range out.Log.ExpectIDs {
		if !slices.Contains(fired, id) {
			why = append(why, fmt.Sprintf("rule %d did not fire", id))
		}
	}
	for _, id := range out.Log.NoExpectIDs {
		if slices.Contains(fired, id) {
			why = append(why, fmt.Sprintf("rule %d fired", id))
		}
	}
	if out.Log.MatchRegex != "" {
		if re, err := regexp.Compile(out.Log.MatchRegex); err != nil {
			why = append(why, "match_regex: "+err.Error())
		} else if !re.MatchString(log) {
			why = append(why, fmt.Sprintf("log does not match %q", out.Log.MatchRegex))
		}
	}
	if out.Log.NoMatchRegex != "" {
		if re, err := regexp.Compile(out.Log.NoMatchRegex); err != nil {
			why = append(why, "no_match_regex: "+err.Error())
		} else if re.MatchString(log) {
			why = append(why, fmt.Sprintf("log matches %q", out.Log.NoMatchRegex))
		}
	}
	return strings.Join(why, "; ")
}

// stage sends one request and its marker and returns the rules that fired
// and the response status (or the error sending the request).
func (r *Runner) stage(in *Input) (fired []int, log string, status int, sendErr, err error) {
	raw, err := Build(in)
	if err != nil {
		return nil, "", 0, nil, fmt.Errorf("build request: %w", err)
	}
	status, sendErr = r.send(raw)
	if sendErr != nil && in.RetryOnce {
		status, sendErr = r.send(raw)
	}
	token := newToken()
	marker := "GET /crs-marker HTTP/1.1\r\nHost: localhost\r\nUser-Agent: rampart-crstest\r\nAccept: */*\r\n" +
		"X-CRS-Test: " + token + "\r\nX-Request-Id: " + token + "\r\nConnection: close\r\n\r\n"
	if _, err := r.send([]byte(marker)); err != nil {
		return nil, "", 0, nil, fmt.Errorf("marker request: %w", err)
	}
	var lb strings.Builder
	deadline := time.Now().Add(r.timeout())
	for {
		e, err := r.Audit.next()
		if err != nil {
			return nil, "", 0, nil, err
		}
		if e == nil {
			if time.Now().After(deadline) {
				return fired, lb.String(), status, sendErr, errors.New("the marker's audit event did not arrive")
			}
			time.Sleep(2 * time.Millisecond)
			continue
		}
		if isMarker(e, token) {
			return fired, lb.String(), status, sendErr, nil
		}
		if isMarker(e, "") {
			continue // a previous test's late marker
		}
		for _, rl := range e.Rules {
			fired = append(fired, rl.ID)
			logLine(&lb, rl.ID, rl.Msg, rl.Target, rl.Data)
		}
	}
}

// isMarker reports whether e is the marker event of token ("" for any).
func isMarker(e *Event, token string) bool {
	if token != "" && e.RequestID == token {
		return true
	}
	for _, rl := range e.Rules {
		if rl.ID == MarkerRuleID && (token == "" || strings.Contains(rl.Msg, token)) {
			return true
		}
	}
	return false
}

func (r *Runner) timeout() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return 5 * time.Second
}

// send writes raw on a new connection and reads the response's status.
func (r *Runner) send(raw []byte) (int, error) {
	c, err := net.DialTimeout("tcp", r.Addr, r.timeout())
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(r.timeout()))
	if _, err := c.Write(raw); err != nil {
		return 0, err
	}
	var resp fasthttp.Response
	resp.SkipBody = bytes.HasPrefix(raw, []byte("HEAD "))
	if err := resp.Read(bufio.NewReader(c)); err != nil {
		return 0, err
	}
	return resp.StatusCode(), nil
}

func newToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "crs-" + hex.EncodeToString(b[:])
}
