package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/config"
)

// panicLog records the panics the connection loop recovers from (it logs
// them and closes the connection, which a fuzzer would not notice).
type panicLog struct {
	mu     sync.Mutex // guards panics
	panics []string
	next   slog.Handler
}

func (h *panicLog) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelError || h.next.Enabled(ctx, l)
}

func (h *panicLog) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "panic") {
		var b strings.Builder
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
			return true
		})
		h.mu.Lock()
		h.panics = append(h.panics, b.String())
		h.mu.Unlock()
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *panicLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *panicLog) WithGroup(string) slog.Handler      { return h }

// take returns the panics logged since the last call.
func (h *panicLog) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.panics
	h.panics = nil
	return p
}

// fuzzProxy is a proxy in front of a recording upstream, shared by the
// inputs of one fuzzing process.
type fuzzProxy struct {
	addr string
	up   *recordingUpstream
	log  *panicLog
}

func startFuzzProxy(f *testing.F) *fuzzProxy {
	up := startRecordingUpstream(f)
	yaml := smugglingConfig(up.addr()) + `
`
	// Short limits: an input that leaves a request unfinished ends fast.
	yaml = strings.Replace(yaml, "    address: 127.0.0.1:0\n", "    address: 127.0.0.1:0\n    limits: {read_header_timeout: 2s, read_timeout: 2s, write_timeout: 2s, idle_timeout: 2s}\n", 1)
	addr, pl := startFuzzServer(f, yaml)
	return &fuzzProxy{addr: addr, up: up, log: pl}
}

// startFuzzServer starts a proxy on yaml (a smugglingConfig, given short
// upstream timeouts here) for the inputs of one fuzzing process, and
// returns its "web" address and the log of its panics.
func startFuzzServer(f *testing.F, yaml string) (string, *panicLog) {
	yaml = strings.Replace(yaml, "    retries: 0\n", "    retries: 0\n    timeouts: {connect: 1s, read: 2s}\n", 1)
	cfg, err := config.Parse([]byte(yaml), "fuzz.yaml")
	if err != nil {
		f.Fatalf("config.Parse: %v\n%s", err, yaml)
	}
	pl := &panicLog{next: e2eLogger().Handler()}
	srv := serveConfig(f, cfg, slog.New(pl))
	return srv.Addr("web"), pl
}

// fuzzAnswerDeadline bounds how long the proxy may take to answer or close
// after the client has sent everything (the limits above are 2 s).
const fuzzAnswerDeadline = 5 * time.Second

// exchangeRaw writes raw on a fresh connection, closes the writing side and
// reads until the proxy closes.
func exchangeRaw(addr string, raw []byte) ([]byte, error) {
	c, err := net.DialTimeout("tcp", addr, e2eTimeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(fuzzAnswerDeadline))
	wrote := make(chan error, 1)
	go func() { // the proxy may answer before reading it all
		_, err := c.Write(raw)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		wrote <- err
	}()
	got, err := io.ReadAll(c)
	<-wrote
	if err != nil && !isConnReset(err) {
		return got, fmt.Errorf("no answer or close within %v: %w", fuzzAnswerDeadline, err)
	}
	return got, nil
}

// fuzzKnown lists signatures of the bugs reported from the smuggling test
// (TestE2ERequestSmuggling). With RAMPART_FUZZ_KNOWN=skip, inputs that only
// hit them are skipped so that a fuzzing run can look for new ones.
var fuzzKnown = []string{
	`request line "`,                   // HTTP version forwarded as received
	`Host "`,                           // invalid Host forwarded
	`the name is not a token`,          // a space inside a field name
	`(an incomplete request)`,          // a bad chunked body cut while streaming
	`Content-Type at the upstream`,     // a Content-Type added to bodies
	`missing required host header`,     // HTTP/1.0 without Host
	`Host fields; want 1`,              // HTTP/1.0 without Host
	`absolute-form target`,             // absolute-form forwarded as received
	`neither origin-form nor absolute`, // odd targets forwarded
}

func isKnown(err error) bool {
	if os.Getenv("RAMPART_FUZZ_KNOWN") != "skip" {
		return false
	}
	for _, k := range fuzzKnown {
		if strings.Contains(err.Error(), k) {
			return true
		}
	}
	return false
}

// FuzzProxyRequest sends arbitrary bytes as a request to a running proxy in
// front of a recording upstream. It must not panic, must answer or close
// within a deadline, and what reaches the upstream must be well-formed
// requests, one per upstream connection, each read one way only (see
// strictRequests), no more of them than the answers the client got from the
// upstream: for a single request, at most one.
func FuzzProxyRequest(f *testing.F) {
	for _, tc := range smugglingCases {
		f.Add([]byte(tc.raw))
	}
	fp := startFuzzProxy(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 64<<10 {
			t.Skip("larger than the read buffer; nothing new")
		}
		from := fp.up.mark()
		got, err := exchangeRaw(fp.addr, raw)
		if p := fp.log.take(); len(p) > 0 {
			t.Fatalf("the proxy panicked on %q: %s", raw, p)
		}
		if err != nil {
			t.Fatalf("%q: %v (got %q)", raw, err, got)
		}
		raws := fp.up.settle(t, from, 10*time.Millisecond)
		reqs, err := strictRequests(raws)
		if err != nil {
			if isKnown(err) {
				t.Skip(err)
			}
			t.Fatalf("input %q: %v", raw, err)
		}
		answered := bytes.Count(got, []byte("\r\n"+upstreamAnswered+"\r\n"))
		if len(reqs) > answered {
			t.Fatalf("input %q: %d requests reached the upstream but the client got %d answers from it: %q",
				raw, len(reqs), answered, raws)
		}
		if answered > len(reqs) {
			t.Fatalf("input %q: the client got %d upstream answers for %d requests at the upstream", raw, answered, len(reqs))
		}
	})
}

// refHostWithoutPort is hostWithoutPort written another way: strings and
// net.SplitHostPort.
func refHostWithoutPort(h string) string {
	if strings.HasPrefix(h, "[") {
		inner, rest, ok := strings.Cut(h[1:], "]")
		if !ok || (rest != "" && rest[0] != ':') {
			return h
		}
		return inner
	}
	if strings.Count(h, ":") == 1 {
		h, _, _ = strings.Cut(h, ":")
	}
	return strings.TrimSuffix(h, ".")
}

// FuzzHostHeader checks hostWithoutPort, which the router and the HTTPS
// redirect apply to the Host header: it returns a part of its input without
// allocating, agrees with a reference, and for a well-formed host[:port]
// returns the host net.SplitHostPort finds (less one trailing dot, for a
// name).
func FuzzHostHeader(f *testing.F) {
	for _, s := range []string{"a.example", "a.example:8080", "a.example.", "a.example.:443", "[::1]:80", "[::1]", "::1",
		"[::1", "[::1]x", ":80", ".", "", "a.example:80@b.example", "b.example@a.example", "a.example b.example",
		"a.example,b.example", "A.EXAMPLE:1", "[fe80::1%25eth0]:80", "a.example:", "a..", "[]:80", "x:y:z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		in := make([]byte, len(s)) // cap == len: a sub-slice's cap tells where it starts
		copy(in, s)
		got := hostWithoutPort(in)
		if len(got) > 0 {
			start := len(in) - cap(got) // a sub-slice shares the end of in's array
			if start < 0 || start+len(got) > len(in) || !bytes.Equal(in[start:start+len(got)], got) {
				t.Fatalf("hostWithoutPort(%q) = %q; want a sub-slice of the input", s, got)
			}
		}
		if want := refHostWithoutPort(s); string(got) != want {
			t.Fatalf("hostWithoutPort(%q) = %q; want %q (reference)", s, got, want)
		}
		// Bracketed values are IP literals, which have no trailing dot.
		if host, port, err := net.SplitHostPort(s); err == nil && isDigits(port) && host != "" && s[0] != '[' {
			if want := strings.TrimSuffix(host, "."); string(got) != want {
				t.Fatalf("hostWithoutPort(%q) = %q; want %q (net.SplitHostPort)", s, got, want)
			}
		}
	})
}

func isDigits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
