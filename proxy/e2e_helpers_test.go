package proxy

// Helpers of the end-to-end tests: a proxy built from YAML on a loopback
// port, upstreams that record what reaches them byte for byte, and raw
// HTTP/1.1 clients that see exactly what the proxy sends.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/internal/testnet"
	"github.com/rampart-proxy/rampart/internal/testport"
)

// e2eTimeout bounds every network wait of these tests.
const e2eTimeout = 10 * time.Second

// testProxy is a running proxy and the way to stop it once.
type testProxy struct {
	srv  *Server
	addr string // the "web" listener's address

	once sync.Once
	err  error
}

// shutdown stops the proxy (once; later calls return the first result).
func (p *testProxy) shutdown(ctx context.Context) error {
	p.once.Do(func() { p.err = p.srv.Shutdown(ctx) })
	return p.err
}

// e2eLogger discards the proxy's logs unless RAMPART_E2E_LOG is set (the
// server may log after a test ends, when t.Log is no longer allowed).
func e2eLogger() *slog.Logger {
	if os.Getenv("RAMPART_E2E_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startProxy parses yaml, starts the proxy and stops it when the test ends.
// The configuration must have a listener named "web".
func startProxy(t *testing.T, yaml string) *testProxy {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), "test.yaml")
	if err != nil {
		t.Fatalf("config.Parse: %v\n%s", err, yaml)
	}
	srv, err := New(cfg, e2eLogger())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	p := &testProxy{srv: srv, addr: srv.Addr("web")}
	if p.addr == "" {
		t.Fatal(`Addr("web") is empty after Start`)
	}
	t.Cleanup(func() { p.stop(t) })
	return p
}

// serveConfig builds and starts a server for cfg and shuts it down when
// the test ends (within 5 s). For tests that want the *Server itself;
// startProxy is the usual way in.
func serveConfig(tb testing.TB, cfg *config.Config, log *slog.Logger, opts ...Option) *Server {
	tb.Helper()
	srv, err := New(cfg, log, opts...)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	if err := srv.Start(); err != nil {
		tb.Fatalf("Start: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return srv
}

// stop shuts the proxy down (once), flushing its logs, and fails t if that
// fails.
func (p *testProxy) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// oneUpstreamConfig is a listener "web", an upstream "app" with one target
// and a catch-all route to it. extraListener is YAML under the listener
// (limits: ...), extraUpstream YAML under the upstream (timeouts: ...),
// extraTop YAML at the top level.
func oneUpstreamConfig(target, extraListener, extraUpstream, extraTop string) string {
	return fmt.Sprintf(`
listeners:
  web:
    address: 127.0.0.1:0
%s
upstreams:
  app:
    targets:
      - url: http://%s
%s
routes:
  - name: all
    upstream: app
access_log:
  path: "off"
%s
`, indent(extraListener, 4), target, indent(extraUpstream, 4), extraTop)
}

// indent prefixes every non-empty line of s with n spaces.
func indent(s string, n int) string {
	if s == "" {
		return ""
	}
	pad := strings.Repeat(" ", n)
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = pad + l
		}
	}
	return strings.Join(lines, "\n")
}

// freeAddr returns a loopback address on which nothing listens, never one
// given out before in this process (Pebble's and Redis's ports included).
func freeAddr(t *testing.T) string {
	t.Helper()
	return testport.Addr(t)
}

// httpUpstream is an httptest server that counts the connections it accepts.
type httpUpstream struct {
	*httptest.Server
	conns atomic.Int64
}

func (u *httpUpstream) addr() string { return u.Listener.Addr().String() }

func startHTTPUpstream(t *testing.T, h http.Handler) *httpUpstream {
	t.Helper()
	u := &httpUpstream{Server: httptest.NewUnstartedServer(h)}
	u.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			u.conns.Add(1)
		}
	}
	u.Config.ErrorLog = nil
	u.Start()
	t.Cleanup(u.Close)
	return u
}

// rawMessage is an HTTP/1.1 message as read from the wire: the first line,
// the header fields in order with their names as sent, and the decoded body.
type rawMessage struct {
	first  string
	fields [][2]string
	body   []byte
	// trailers are the fields of a chunked body's trailer section.
	trailers [][2]string
}

// values returns the values of every field named name (any case), in order.
func (m *rawMessage) values(name string) []string {
	var vs []string
	for _, f := range m.fields {
		if strings.EqualFold(f[0], name) {
			vs = append(vs, f[1])
		}
	}
	return vs
}

// get returns the value of the only field named name, "" when absent, and
// how many fields had that name.
func (m *rawMessage) get(name string) (string, int) {
	vs := m.values(name)
	if len(vs) == 0 {
		return "", 0
	}
	return vs[0], len(vs)
}

// status is the status code of a response.
func (m *rawMessage) status() int {
	parts := strings.SplitN(m.first, " ", 3)
	if len(parts) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(parts[1])
	return n
}

// readRawHeader reads a first line and header fields up to the empty line.
func readRawHeader(br *bufio.Reader) (*rawMessage, error) {
	m := &rawMessage{}
	for i := 0; ; i++ {
		if i > 1000 {
			return nil, errors.New("too many header lines")
		}
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		line = strings.TrimRight(line, "\r\n")
		if i == 0 {
			m.first = line
			continue
		}
		if line == "" {
			return m, nil
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("malformed header line %q", line)
		}
		m.fields = append(m.fields, [2]string{name, strings.TrimSpace(value)})
	}
}

// readRawBody reads m's body: chunked (its trailer fields into m.trailers),
// Content-Length, or until EOF when untilEOF (a response without framing).
func readRawBody(br *bufio.Reader, m *rawMessage, untilEOF bool) error {
	if te, _ := m.get("Transfer-Encoding"); strings.EqualFold(te, "chunked") {
		b, err := io.ReadAll(httputil.NewChunkedReader(br))
		if err != nil {
			return fmt.Errorf("chunked body: %w", err)
		}
		m.body = b
		for i := 0; i < 100; i++ { // trailer section
			line, err := br.ReadString('\n')
			if err != nil {
				return err
			}
			line = strings.TrimRight(line, "\r\n")
			if line == "" {
				return nil
			}
			name, value, _ := strings.Cut(line, ":")
			m.trailers = append(m.trailers, [2]string{name, strings.TrimSpace(value)})
		}
		return errors.New("trailer too long")
	}
	if cl, n := m.get("Content-Length"); n > 0 {
		size, err := strconv.Atoi(cl)
		if err != nil {
			return fmt.Errorf("bad Content-Length %q", cl)
		}
		m.body = make([]byte, size)
		_, err = io.ReadFull(br, m.body)
		return err
	}
	if untilEOF {
		b, err := io.ReadAll(br)
		m.body = b
		return err
	}
	return nil
}

// readRawResponse reads one response to a request with method.
func readRawResponse(br *bufio.Reader, method string) (*rawMessage, error) {
	m, err := readRawHeader(br)
	if err != nil {
		return nil, err
	}
	st := m.status()
	if method == "HEAD" || st == 204 || st == 304 || (st >= 100 && st < 200) {
		return m, nil
	}
	_, hasCL := m.get("Content-Length")
	_, hasTE := m.get("Transfer-Encoding")
	return m, readRawBody(br, m, hasCL == 0 && hasTE == 0)
}

// rawUpstream is an HTTP/1.1 server on a plain listener that records every
// request exactly as received and answers with the bytes its handler gives.
type rawUpstream struct {
	ln    net.Listener
	conns atomic.Int64

	mu   sync.Mutex // guards reqs
	reqs []*rawMessage

	// handle returns the raw response and whether to close the connection
	// after writing it.
	handle func(req *rawMessage) (resp string, closeConn bool)
	// closeDelay is how long a connection stays open, unread, between an
	// answer and the close that handle asked for.
	closeDelay time.Duration
}

func startRawUpstream(t testing.TB, handle func(req *rawMessage) (string, bool)) *rawUpstream {
	t.Helper()
	return startRawUpstreamClosing(t, 0, handle)
}

// startRawUpstreamClosing starts a rawUpstream that waits closeDelay after
// an answer before a close its handler asked for.
func startRawUpstreamClosing(t testing.TB, closeDelay time.Duration, handle func(req *rawMessage) (string, bool)) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln, handle: handle, closeDelay: closeDelay}
	testnet.Serve(t, ln, func(c net.Conn) {
		u.conns.Add(1)
		u.serve(c)
	})
	return u
}

func (u *rawUpstream) addr() string { return u.ln.Addr().String() }

func (u *rawUpstream) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for i := 0; i < 10000; i++ {
		_ = c.SetReadDeadline(time.Now().Add(e2eTimeout))
		req, err := readRawHeader(br)
		if err != nil {
			return
		}
		if err := readRawBody(br, req, false); err != nil {
			return
		}
		u.mu.Lock()
		u.reqs = append(u.reqs, req)
		u.mu.Unlock()
		resp, closeConn := u.handle(req)
		if _, err := io.WriteString(c, resp); err != nil {
			return
		}
		if closeConn {
			time.Sleep(u.closeDelay)
			return
		}
	}
}

// last returns the last request received, or nil.
func (u *rawUpstream) last() *rawMessage {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		return nil
	}
	return u.reqs[len(u.reqs)-1]
}

// count returns how many requests were received.
func (u *rawUpstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

// okResponse is a small keep-alive response.
func okResponse(body string) string {
	return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

// rawClient is one downstream connection on which requests are written as
// given and responses read exactly.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, e2eTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(e2eTimeout))
	return &rawClient{t: t, conn: c, br: bufio.NewReader(c)}
}

// with returns c reporting to t, for use in a subtest.
func (c *rawClient) with(t *testing.T) *rawClient {
	return &rawClient{t: t, conn: c.conn, br: c.br}
}

// roundTrip writes req (a whole request, CRLF line ends) and reads the
// response.
func (c *rawClient) roundTrip(req string) *rawMessage {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, req); err != nil {
		c.t.Fatalf("write request: %v", err)
	}
	method, _, _ := strings.Cut(req, " ")
	resp, err := readRawResponse(c.br, method)
	if err != nil {
		c.t.Fatalf("read response to %q: %v", firstLine(req), err)
	}
	return resp
}

// closedByPeer reports whether the proxy closed the connection (EOF) before
// the deadline d.
func (c *rawClient) closedByPeer(d time.Duration) bool {
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	defer c.conn.SetReadDeadline(time.Now().Add(e2eTimeout))
	_, err := c.br.ReadByte()
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isConnReset(err)
}

func isConnReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}

// rawGet sends a GET with the given Host and extra header lines over a fresh
// connection.
func rawGet(t *testing.T, addr, host, path string, headers ...string) *rawMessage {
	t.Helper()
	c := dialRaw(t, addr)
	var b strings.Builder
	b.WriteString("GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n")
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return c.roundTrip(b.String())
}

// waitFor polls cond every few milliseconds until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}
